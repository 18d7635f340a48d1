import type { KvCacheEvent } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { TestKvEventPublisher, waitFor } from '@kvroute/testkit';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { startSubscribed, subscribedConfig } from './precise-subscribed-config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';

jest.setTimeout(30_000);

// Two base models of one tokenizer (the Qwen3 family shares it), so their prompts' token ids, and blocks, are equal.
const SMALL = 'Qwen/Qwen3-0.6B';
const LARGE = 'Qwen/Qwen3-8B';

/**
 * llm-d-router v0.10.0 keys a `BlockStored` under the model its topic names (`kv@<pod>@<model>`, engineadapter
 * common.go parseTopic; pool.go processEventBatch: `effectiveModelName` is the topic's model unless the event names a
 * LoRA, and TokensToKVBlockKeys starts the chain at `getInitHash(modelName)`, kvblock/token_processor.go), and a request
 * under the model it targets (preciseprefixcache/blockkeys.go: `request.TargetModel`). So a pod whose events name
 * another base model holds none of a request's blocks, even when the two models tokenize a prompt alike. Events come
 * over real ZMQ into the loader-built scorer's bound socket, each pod naming its model in its topic.
 */
describe('a pod whose topic names another base model matches none of a request\'s blocks (llm-d-router v0.10.0)', () => {
  let scheduler: Scheduler;
  let scorer: PrecisePrefixCacheScorer;
  let pub: TestKvEventPublisher;
  let close: () => Promise<void>;
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: SMALL, hubCache: '/nonexistent' }));
  const [a, b] = ['10.0.51.1:8000', '10.0.51.2:8000'] as const;
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: 0 }, activeRequests: 0,
  });
  const TEXT = 'A prompt both models tokenize alike. ';
  const inputOf = (model: string) => parseRequestBody(Buffer.from(JSON.stringify({ model, messages: [{ role: 'user', content: TEXT.repeat(30) }] }))).input;

  beforeAll(async () => {
    scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { modelName: "${SMALL}" }`));
    ({ scorer, pub, close } = await startSubscribed(scheduler, [a, b].map((key) => snapshot(key).endpoint)));
  });
  afterAll(() => close());

  async function score(model: string): Promise<number[]> {
    const request = { requestId: `${model}`, model, prompt: '', input: inputOf(model), headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    return scorer.score({ request, state: new CycleState() }, [snapshot(a), snapshot(b)]);
  }

  test('pod a (topic: the small model) and pod b (topic: the large one) store the same prompt: each model\'s request matches its own pod only', async () => {
    const ids = [...(await tokenizer.promptTokens(inputOf(SMALL)))!.ids];
    const n = Math.floor(ids.length / 16);
    const stored = (base: number): KvCacheEvent => ({
      type: 'BlockStored', blockHashes: Array.from({ length: n }, (_, i) => String(base + i)), parentBlockHash: null,
      tokenIds: ids.slice(0, n * 16), blockSize: 16, loraId: null,
    });
    await pub.publish([stored(100)], { topic: `kv@${a}@${SMALL}`, encoding: 'positional-v0.10.0', seq: 0n });
    await pub.publish([stored(100)], { topic: `kv@${b}@${LARGE}`, encoding: 'positional-v0.10.0', seq: 0n });
    await waitFor(() => scorer.index.blocksOf(a) === n && scorer.index.blocksOf(b) === n, 'both pods\' blocks to be applied');
    expect(await score(SMALL)).toEqual([1, 0]);
    expect(await score(LARGE)).toEqual([0, 1]);
  });

  // Upstream keys every block by its topic's model, so a pod restarted at the same address under the large model holds
  // the large model's blocks only: a request for the small model matches nothing there.
  test('pod a restarted under the large model: the small model\'s request no longer matches its new blocks', async () => {
    const ids = [...(await tokenizer.promptTokens(inputOf(SMALL)))!.ids];
    const n = Math.floor(ids.length / 16);
    scorer.endpointRestarted(a, 0);
    expect(scorer.index.blocksOf(a)).toBe(0);
    await pub.publish([{
      type: 'BlockStored', blockHashes: Array.from({ length: n }, (_, i) => String(300 + i)), parentBlockHash: null,
      tokenIds: ids.slice(0, n * 16), blockSize: 16, loraId: null,
    }], { topic: `kv@${a}@${LARGE}`, encoding: 'positional-v0.10.0', seq: 0n });
    await waitFor(() => scorer.index.blocksOf(a) === n, 'the restarted pod\'s blocks to be applied');
    expect(await score(SMALL)).toEqual([0, 0]);
    expect(await score(LARGE)).toEqual([1, 1]);
  });
});
