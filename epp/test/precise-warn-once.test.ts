/**
 * The precise scorer warns once per pod about a kind of KV event it cannot index (here a block size that is neither a
 * multiple nor a divisor of tokenProcessorConfig.blockSize), and forgets a pod's warnings when the pod leaves: pods
 * coming and going do not grow what it remembers, and a new pod under the same name is warned about afresh.
 * Real ZMQ on loopback, as vLLM publishes (vllm/distributed/kv_events.py ZmqEventPublisher @ v0.10.0).
 */
import type { BlockStored } from '@kvroute/protocol/kv-events';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { subscribedConfig } from './precise-subscribed-config';
import type { PluginLogger } from '../src/scheduling/framework';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';

jest.setTimeout(60_000);

const MODEL = 'Qwen/Qwen3-0.6B';
const POD = '10.0.9.1:8000';

describe('precise-prefix-cache-scorer warnings about a pod\'s KV events', () => {
  const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
  const logger: PluginLogger = { debug: () => undefined, info: () => undefined, warn: (msg, fields) => warnings.push({ msg, fields }), error: () => undefined };
  let scheduler: Scheduler;
  let pub: TestKvEventPublisher;
  let seq = 0n;

  beforeAll(async () => {
    scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { modelName: "${MODEL}" }`), { logger });
    await scheduler.plugins.start();
    pub = new TestKvEventPublisher();
    pub.connect((scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer).subscriber.boundEndpoint!);
    await pub.waitSubscribed();
  });
  afterAll(async () => {
    pub.close();
    await scheduler.plugins.close();
  });

  const addPod = () => scheduler.plugins.addEndpoint({ key: POD, name: 'decode-0', namespace: 'ns', address: '10.0.9.1', port: 8000, labels: {} });
  const stored = (hash: number, blockSize: number): BlockStored => ({
    type: 'BlockStored', blockHashes: [String(hash)], parentBlockHash: null,
    tokenIds: Array.from({ length: blockSize }, (_, i) => 1000 + hash + i), blockSize, loraId: null,
  });
  const publish = (...events: BlockStored[]) => pub.publish(events, { topic: `kv@${POD}@${MODEL}`, encoding: 'positional-v0.10.0', seq: seq++ });
  const blockSizeWarnings = () => warnings.filter((w) => w.msg.startsWith('KV event block size'));
  const scorer = () => scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;

  test('once while the pod stays, and again for the pod that replaces it under the same name', async () => {
    addPod();
    await publish(stored(1, 12));
    await waitFor(() => blockSizeWarnings().length === 1, 'the first block-size warning');
    expect(blockSizeWarnings()[0]!.fields).toMatchObject({ endpoint: POD, eventBlockSize: 12, configuredBlockSize: 16 });
    // More such events, then one it can index: once the good one is in, the bad ones before it were seen too.
    await publish(stored(2, 12), stored(3, 12));
    await publish(stored(4, 16));
    await waitFor(() => scorer().index.blocksOf(POD) === 1, 'the indexable block');
    expect(blockSizeWarnings()).toHaveLength(1);

    scheduler.plugins.removeEndpoint(POD);
    addPod();
    seq = 0n; // the replacement's vLLM numbers its batches from 0
    await publish(stored(5, 12));
    await waitFor(() => blockSizeWarnings().length === 2, 'the replacement pod\'s own warning');
  });
});
