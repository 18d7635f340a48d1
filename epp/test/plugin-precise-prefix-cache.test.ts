import type { BlockStored, KvCacheEvent, KvEventEncoding } from '@kvroute/protocol/kv-events';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { TestKvEventPublisher, waitFor, writeTemplateTokenizer } from '@kvroute/testkit';
import { ModelTokenizer, resolveTokenizerFiles } from '@kvroute/tokenizer';
import { endpointPickerConfigNotes, parseEndpointPickerConfig, preciseEndpointPickerConfig, renderEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { RequestControl } from '../src/requestcontrol/request-control';
import { monotonicMs } from '../src/clock';
import { Datastore } from '../src/datastore/datastore';
import { CycleState } from '../src/scheduling/framework';
import { endpointKey } from '../src/datastore/endpoint-key';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { minMaxNormalized, type PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';
import { engineEventHashes, engineRoot } from '../src/kvindex/engine-hash';
import { subscribedConfig } from './precise-subscribed-config';
import { PREFIX_MATCH } from '../src/scheduling/prefix-match';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { Tokenizer as RustTokenizer } from 'tokenizers';

jest.setTimeout(60_000);

const HEADER = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';
const MODEL = 'Qwen/Qwen3-0.6B';

/** A config of the precise scorer alone (no subscription: blocks are stored straight into its index) and a picker. */
const preciseOnlyConfig = (tokenizersPool: string, extra = '') => parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" }
      indexerConfig:
        tokenProcessorConfig: { blockSize: 16 }
        tokenizersPoolConfig: ${tokenizersPool}
${extra}  - type: max-score-picker
`);

describe('precise-prefix-cache-scorer configuration', () => {
  test('llm-d v0.3.2\'s sample config loads unchanged (deploy/config/epp-precise-prefix-cache-config.yaml @ v0.3.2)', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
  - type: single-profile-handler
  - type: decode-filter
  - type: precise-prefix-cache-scorer
    parameters:
      indexerConfig:
        tokenProcessorConfig:
          blockSize: 64                 # must match vLLM block size
          hashSeed: "42"                # must match vLLM PYTHONHASHSEED env var
        kvBlockIndexConfig:
          enableMetrics: true           # enable kv-block index metrics (prometheus)
  - type: kv-cache-scorer # kv-cache-utilization
  - type: queue-scorer
  - type: max-score-picker
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: decode-filter
      - pluginRef: precise-prefix-cache-scorer
        weight: 2.0
      - pluginRef: kv-cache-scorer
        weight: 1.0
      - pluginRef: queue-scorer
        weight: 1.0
      - pluginRef: max-score-picker
`);
    const precise = config.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')!;
    expect(precise.parameters).toMatchObject({
      indexerConfig: { tokenProcessorConfig: { blockSize: 64, hashSeed: '42' }, kvBlockIndexConfig: { enableMetrics: true } },
      kvEventsConfig: { topicFilter: 'kv@', podDiscoveryConfig: { socketPort: 5557 } },
      // llm-d's default (precise_prefix_cache.go @ v0.8.0: a Go bool the sample leaves unset).
      speculativeIndexing: false,
      speculativeTTL: '2s',
    });
    expect((precise.parameters as { kvEventsConfig: object }).kvEventsConfig).not.toHaveProperty('discoverPods');
  });

  // llm-d v0.8.0 (precise_prefix_cache.go) starts from llm-d-kv-cache's DefaultConfig (discoverPods true since v0.5.0,
  // pool.go @ v0.7.1) and binds zmqEndpoint besides when one is set; before v0.5.0 the same unset fields meant a socket
  // bound at tcp://*:5557.
  test.each<[string, string, string | undefined]>([
    ['{}', 'both', 'tcp://*:5557'],
    ['{ zmqEndpoint: "tcp://*:6000" }', 'both', 'tcp://*:6000'],
    ['{ discoverPods: true }', 'per-pod', undefined],
    ['{ discoverPods: true, zmqEndpoint: "tcp://*:6000" }', 'both', 'tcp://*:6000'],
    ['{ discoverPods: false }', 'central', 'tcp://*:5557'],
    ['{ discoverPods: false, zmqEndpoint: "tcp://*:6000" }', 'central', 'tcp://*:6000'],
  ])('kvEventsConfig %s subscribes %s, binding %s', (events, mode, bound) => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters: { kvEventsConfig: ${events} }
  - type: max-score-picker
`));
    const { subscriber } = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    expect([subscriber.mode, subscriber.zmqEndpoint]).toEqual([mode, bound]);
  });

  test('llm-d v0.2\'s cache_tracking mode keeps its only shape, a bound socket (llm-d-kv-cache-manager v0.2)', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
  - type: prefix-cache-scorer
    parameters: { mode: cache_tracking, kvEventsConfig: { zmqEndpoint: "tcp://*:5557" } }
  - type: max-score-picker
`);
    expect(config.plugins[0]!.parameters).toMatchObject({ kvEventsConfig: { discoverPods: false, zmqEndpoint: 'tcp://*:5557' } });
  });

  test('the minimal config (endpoint, topic filter, block size) is complete', () => {
    const config = parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { zmqEndpoint: "tcp://*:5557", topicFilter: "kv@" }
      indexerConfig: { tokenProcessorConfig: { blockSize: 16 } }
`);
    expect(config.plugins[0]!.parameters).toMatchObject({ kvEventsConfig: { zmqEndpoint: 'tcp://*:5557' } });
  });

  test.each<[string, RegExp]>([
    ['kvEventsConfig: { zmqEndpoint: "localhost:5557" }', /kvEventsConfig\.zmqEndpoint: must be a ZMQ endpoint/],
    ['kvEventsConfig: { engineType: sglang }', /kvEventsConfig\.engineType: only "vllm" is supported/],
    ['indexerConfig: { tokenProcessorConfig: { blockSize: -1 } }', /indexerConfig\.tokenProcessorConfig\.blockSize: must be an integer between 0 and 1024/],
    ['kvEventsConfig: { replayPort: 5558, podDiscoveryConfig: { replaySocketPort: 5558 } }', /kvEventsConfig\.replayPort: names the replay port podDiscoveryConfig\.replaySocketPort names too/],
    ['kvEventsConfig: { zmqEndpoin: "tcp://*:1" }', /kvEventsConfig\.zmqEndpoin: unknown field/],
    ['kvEventsConfig: { discoverPods: true, warmUpTimeout: 10 }', /kvEventsConfig\.warmUpTimeout: must be a duration/],
    ['indexerConfig: { kvCacheBackendConfigs: { gpu: 1 } }', /indexerConfig\.kvCacheBackendConfigs: must be a list of \{name, weight\}/],
    ['indexerConfig: { kvCacheBackendConfigs: [{ name: gpu, weight: -1 }] }', /indexerConfig\.kvCacheBackendConfigs\[0\]\.weight: must be a non-negative number, got -1/],
    ['indexerConfig: { kvCacheBackendConfigs: [{ weight: 1 }] }', /indexerConfig\.kvCacheBackendConfigs\[0\]\.name: must be a tier name/],
    ['indexerConfig: { kvCacheBackendConfigs: [{ name: " gpu", weight: 1 }] }', /kvCacheBackendConfigs\[0\]\.name: must be a tier name \(an event's medium, e\.g\. gpu or cpu\) without surrounding spaces, got " gpu"/],
    ['indexerConfig: { kvCacheBackendConfigs: [{ name: gpu, weight: 1 }, { name: GPU, weight: 0.5 }] }', /indexerConfig\.kvCacheBackendConfigs\[1\]\.name: names tier "gpu" a second time/],
  ])('%s is refused, naming the field', (params, message) => {
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n  - type: precise-prefix-cache-scorer\n    parameters: { ${params} }\n`)).toThrow(message);
  });

  // llm-d-router v0.10.0 pkg/kvcache/kvblock/token_processor.go `HashSeed string`: its strict decoder fails a YAML number
  // ("cannot unmarshal number into Go struct field ... of type string"). Read as a string it would lose the seed's
  // spelling (007 is 7, vLLM hashes "007"), and every block would miss.
  test.each([
    ['tokenProcessorConfig: { hashSeed: 42 }', 'plugins[0].parameters.tokenProcessorConfig.hashSeed', '42'],
    ['indexerConfig: { tokenProcessorConfig: { hashSeed: 007 } }', 'plugins[0].parameters.indexerConfig.tokenProcessorConfig.hashSeed', '7'],
    ['tokenProcessorConfig: { hashSeed: true }', 'plugins[0].parameters.tokenProcessorConfig.hashSeed', 'true'],
  ])('a hashSeed that is not a string (%s) is refused, saying to quote it', (params, field, got) => {
    expect(() => parseEndpointPickerConfig(`${HEADER}plugins:\n  - type: precise-prefix-cache-scorer\n    parameters: { ${params} }\n`))
      .toThrow(`${field}: must be a string, the vLLM pods' PYTHONHASHSEED as they spell it; quote it (hashSeed: "42"), got ${got}`);
  });

  test('a quoted hashSeed keeps its spelling; null is unset, as Go leaves the string empty', () => {
    const tokenProcessor = (seed: string): unknown =>
      (parseEndpointPickerConfig(`${HEADER}plugins:\n  - type: precise-prefix-cache-scorer\n    parameters: { tokenProcessorConfig: { hashSeed: ${seed} } }\n`).plugins[0]!.parameters as Record<string, unknown>).tokenProcessorConfig;
    expect(tokenProcessor('"007"')).toEqual({ hashSeed: '007' });
    expect(tokenProcessor('null')).toEqual({});
  });
});

describe('values llm-d-router v0.10.0 takes as unset, and its replaySocketPort', () => {
  const parameters = (params: string): Record<string, unknown> =>
    parseEndpointPickerConfig(`${HEADER}plugins:\n  - type: precise-prefix-cache-scorer\n    parameters: { ${params} }\n`).plugins[0]!.parameters as Record<string, unknown>;

  test('a 0 block size is unset, the other size or 16 applying (pkg/kvcache/kvblock/token_processor.go NewChunkedTokenDatabase)', () => {
    expect(parameters('tokenProcessorConfig: { blockSize: 64, blockSizeTokens: 0 }').tokenProcessorConfig).toEqual({ blockSize: 64 });
    expect(parameters('tokenProcessorConfig: { blockSize: 0, blockSizeTokens: 32 }').tokenProcessorConfig).toEqual({ blockSizeTokens: 32 });
    expect(parameters('tokenProcessorConfig: { blockSize: 0 }').tokenProcessorConfig).toEqual({});
  });

  test('a speculativeTTL that is not positive, or "", keeps 2s (preciseprefixcache/prerequest.go buildSpeculativeCache); one that is no duration is refused', () => {
    for (const ttl of ['"0s"', '"0"', '"-5s"', '""']) expect(parameters(`speculativeIndexing: true, speculativeTTL: ${ttl}`).speculativeTTL).toBe('2s');
    expect(parameters('speculativeIndexing: true, speculativeTTL: "5s"').speculativeTTL).toBe('5s');
    expect(() => parameters('speculativeTTL: "soon"')).toThrow(/speculativeTTL: must be a duration/);
  });

  test('podDiscoveryConfig.replaySocketPort (pkg/kvevents/pool.go) is the replay port; 0 or negative is none, as EffectiveReplayPort', () => {
    const replay = (params: string): number | undefined => {
      const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEADER}plugins:\n  - type: precise-prefix-cache-scorer\n    parameters: { ${params} }\n`));
      const scorer = scheduler.plugin('precise-prefix-cache-scorer') as unknown as { subscriber: { options: { replayPort?: number } } };
      return scorer.subscriber.options.replayPort;
    };
    expect(replay('kvEventsConfig: { discoverPods: true, podDiscoveryConfig: { replaySocketPort: 5600 } }')).toBe(5600);
    expect(replay('kvEventsConfig: { discoverPods: true, podDiscoveryConfig: { replaySocketPort: 0 } }')).toBeUndefined();
    expect(replay('kvEventsConfig: { discoverPods: true, replayPort: 5558 }')).toBe(5558);
    expect(replay('kvEventsConfig: { discoverPods: true }')).toBeUndefined();
  });
});

describe('kvCacheBackendConfigs (llm-d-kv-cache indexer.go / kvblock_scorer.go @ 7be76e1)', () => {
  /** The weight the scorer built with this list gives a block held on `medium` alone. */
  function weightOn(backends: string | undefined, medium: string): number | undefined {
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" }
      indexerConfig: { tokenProcessorConfig: { blockSize: 4 }${backends === undefined ? '' : `, kvCacheBackendConfigs: ${backends}`} }
  - type: max-score-picker
`));
    const index = (scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer).index;
    const tokenIds = [1, 2, 3, 4];
    const root = 7;
    index.store('a', { type: 'BlockStored', blockHashes: ['1'], parentBlockHash: null, tokenIds, blockSize: 4, loraId: null, medium }, root);
    return index.longestPrefix([blockKey(root, tokenIds, 0, 4)], new Set(['a']), 0).get('a')?.weight;
  }

  test('the default weighs gpu 1 and cpu 0.8 (backend.go); a medium it does not name weighs 1', () => {
    expect(weightOn(undefined, 'GPU')).toBe(1);
    expect(weightOn(undefined, 'CPU')).toBe(0.8);
    expect(weightOn(undefined, 'LocalDiskBackend')).toBe(1);
  });

  test('a list replaces the default, as llm-d\'s JSON does: cpu left out weighs 1; names match the media lower-cased', () => {
    expect(weightOn('[{ name: gpu, weight: 1 }]', 'CPU')).toBe(1);
    expect(weightOn('[{ name: gpu, weight: 1 }, { name: LocalDiskBackend, weight: 0.25 }]', 'LocalDiskBackend')).toBe(0.25);
  });
});

/**
 * A precise scorer marking speculatively (TTL 2 s) on a manual clock (`clock.now`, ms), pods `a` and `b` in subnet
 * 10.0.`subnet`.0, its `kvroute_epp_kv_index_blocks` gauge recorded per pod, and `pick` scoring a prompt of `text` on
 * both and committing it to `pod`.
 */
function speculativePicks(subnet: number) {
  const clock = { now: 0 };
  const gauge = new Map<string, number>();
  const scheduler = buildScheduler(preciseOnlyConfig(`{ modelName: "${MODEL}" }`, '      speculativeIndexing: true\n      speculativeTTL: 2s\n'), {
    now: () => clock.now,
    metrics: { ...NOOP_SCHEDULING_METRICS, setKvIndexBlocks: (pod, blocks) => gauge.set(pod, blocks) },
  });
  const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  const [a, b] = [`10.0.${subnet}.1:8000`, `10.0.${subnet}.2:8000`] as const;
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: clock.now }, activeRequests: 0,
  });
  for (const key of [a, b]) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
  const inputOf = (text: string) => parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: text.repeat(40) }] }))).input;
  const pick = async (text: string, pod: string): Promise<void> => {
    const request = { requestId: text, model: MODEL, prompt: '', input: inputOf(text), headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    const cycle = { request, state: new CycleState() };
    scorer.score(cycle, [snapshot(a), snapshot(b)]);
    scorer.postCycle(cycle, { targets: [snapshot(pod)] } as unknown as Parameters<PrecisePrefixCacheScorer['postCycle']>[1]);
  };
  return { clock, gauge, scheduler, scorer, a, b, inputOf, pick };
}

// Session 74 made a pick drop every pod's lapsed speculative marks, not only the picked pod's (llm-d-router v0.10.0
// preciseprefixcache/prerequest.go buildSpeculativeCache: the TTL cache expires them on its own, OnEviction ->
// index.Evict), but set `kvroute_epp_kv_index_blocks` for the picked pod only: a pod whose marks the sweep dropped went
// on reporting them until its own next pick or events batch, which a pod no longer picked (the case the sweep is for)
// may never have.
test('the lapsed marks another pod\'s pick drops leave that pod\'s kv_index_blocks gauge too', async () => {
  const { clock, gauge, scheduler, scorer, a, b, pick } = speculativePicks(11);
  try {
    await pick('Alpha text. ', a);
    const marked = scorer.index.blocksOf(a);
    expect(marked).toBeGreaterThan(0);
    expect(gauge.get(a)).toBe(marked);
    // A TTL on, b is picked: a's marks lapsed and the sweep drops them; a's gauge says so.
    clock.now = 2_500;
    await pick('Beta text. ', b);
    expect(scorer.index.blocksOf(a)).toBe(0);
    expect(gauge.get(a)).toBe(0);
    expect(gauge.get(b)).toBe(scorer.index.blocksOf(b));
  } finally {
    await scheduler.plugins.close();
  }
});

// A pick wholly matched on GPU marked nothing until session 76 (upstream marks every key on every pick, prerequest.go
// PreRequest; it now does too: test/llmd-v0.10-speculative-removal.test.ts), and session 74 swept lapsed marks only when a pick marked: a run of
// such picks (a hot prefix served where it is cached) kept every other pod's lapsed marks, where upstream's TTL cache
// expires them on its own (llm-d-router v0.10.0 preciseprefixcache/prerequest.go buildSpeculativeCache: go cache.Start()).
test('a pick that marks nothing (its prompt wholly cached on the pod) still sweeps other pods\' lapsed marks when a sweep is due', async () => {
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const { clock, gauge, scheduler, scorer, a, b, inputOf, pick } = speculativePicks(12);
  try {
    // b holds the hot prompt on GPU, every block of it.
    const { ids } = (await tokenizer.promptTokens(inputOf('Hot text. ')))!;
    const n = Math.floor(ids.length / 16);
    scorer.index.store(b, { type: 'BlockStored', blockHashes: Array.from({ length: n }, (_, i) => String(900 + i)), parentBlockHash: null,
      tokenIds: Array.from(ids.slice(0, n * 16)), blockSize: 16, loraId: null }, rootKey(''));
    await pick('Cold text. ', a);
    expect(scorer.index.blocksOf(a)).toBeGreaterThan(0);
    expect(gauge.get(a)).toBe(scorer.index.blocksOf(a));
    // A TTL on, the hot prompt goes to b, which holds all of it: nothing is marked, and a's lapsed marks go.
    clock.now = 2_500;
    await pick('Hot text. ', b);
    expect(scorer.index.blocksOf(b)).toBe(n);
    expect([scorer.index.blocksOf(a), gauge.get(a)]).toEqual([0, 0]);
  } finally {
    await scheduler.plugins.close();
  }
});

describe('a tier weighted 0 (kvCacheBackendConfigs)', () => {
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));

  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() }, activeRequests: 0,
  });

  /**
   * A scorer with `extra` parameter lines (no subscription: blocks are stored straight into its index), the pods
   * `keys` in its pool, a chat prompt of `text` prepared, and a builder of that prompt's leading `blocks` blocks.
   */
  async function scorerWith(extra: string, keys: readonly string[], text: string) {
    const scheduler = buildScheduler(preciseOnlyConfig(`{ modelName: "${MODEL}" }`, extra));
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const input = parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `Summarize: ${text.repeat(60)}` }] }))).input;
    const { ids } = (await tokenizer.promptTokens(input))!;
    const stored = (blocks: number, base: number, medium?: string): BlockStored => ({
      type: 'BlockStored', blockHashes: Array.from({ length: blocks }, (_, i) => String(base + i)), parentBlockHash: null,
      tokenIds: Array.from(ids.slice(0, blocks * 16)), blockSize: 16, loraId: null, ...(medium !== undefined ? { medium } : {}),
    });
    for (const key of keys) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
    const request = { requestId: 'r', model: MODEL, prompt: '', input, headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    const scores = (pods: readonly string[]) => scorer.score({ request, state: new CycleState() }, pods.map(snapshot));
    const ratios = (pods: readonly string[]) => scorer.matchRatios({ request, state: new CycleState() }, pods.map(snapshot));
    return { scheduler, scorer, ids, stored, scores, ratios, request };
  }

  // llm-d-router v0.10.0's in-memory index keeps a block until its own BlockRemoved, with no per-pod bound
  // (pkg/kvcache/kvblock/in_memory.go; pkg/kvevents/pool.go removes per tier): a pod that offloads holds more blocks
  // than its num_gpu_blocks, and its CPU copies must not be cut to that.
  test('a pod whose events store CPU copies is not bounded by its num_gpu_blocks: a prefix offloaded to CPU still scores after its GPU filled with other blocks', async () => {
    const a = '10.0.6.1:8000';
    const { scheduler, scorer, ids, stored, scores, request } = await scorerWith('', [a], 'Offload text. ');
    const n = Math.floor(ids.length / 16);
    scorer.index.store(a, stored(n, 100, 'GPU'), rootKey(''));
    scorer.index.store(a, { ...stored(n, 100, 'CPU'), tokenIds: [] }, rootKey(''));
    scorer.index.remove(a, { type: 'BlockRemoved', blockHashes: Array.from({ length: n }, (_, i) => String(100 + i)), medium: 'GPU' });
    const other = Array.from(ids).reverse();
    scorer.index.store(a, { type: 'BlockStored', blockHashes: Array.from({ length: n }, (_, i) => String(500 + i)), parentBlockHash: null, tokenIds: other.slice(0, n * 16), blockSize: 16, loraId: null, medium: 'GPU' }, rootKey(''));
    const gpuFull = (key: string): EndpointSnapshot => ({ ...snapshot(key), metrics: { ...snapshot(key).metrics, numGpuBlocks: n, blockSize: 16 } });
    // The scrape's num_gpu_blocks reaches the scorer with the candidate.
    const [score] = scorer.score({ request, state: new CycleState() }, [gpuFull(a)]);
    expect(score).toBeCloseTo(0.8, 9);
    expect(scores([a])[0]).toBeCloseTo(0.8, 9);
    expect(scorer.index.offloads(a)).toBe(true);
    await scheduler.plugins.close();
  });

  // llm-d-router v0.10.0 preciseprefixcache/prerequest.go PreRequest marks every key of the request on the pick,
  // whatever it matched; a mark weighs as GPU (kvroute's; upstream's untiered entry weighs 1, the default GPU weight).
  test('with speculativeIndexing, a prefix the pick holds only on CPU is marked on it: the next request scores it as GPU', async () => {
    const a = '10.0.7.1:8000';
    const { scheduler, scorer, ids, stored, scores, request } = await scorerWith('      speculativeIndexing: true\n', [a], 'Spec text. ');
    scorer.index.store(a, stored(Math.floor(ids.length / 16), 100, 'CPU'), rootKey(''));
    const cycle = { request, state: new CycleState() };
    expect(scorer.score(cycle, [snapshot(a)])[0]).toBeCloseTo(0.8, 9);
    scorer.postCycle(cycle, { targets: [snapshot(a)] } as unknown as Parameters<PrecisePrefixCacheScorer['postCycle']>[1]);
    expect(scores([a])[0]).toBeCloseTo(1, 9);
    await scheduler.plugins.close();
  });

  // KVM's score map holds a pod whose only copy is on a tier weighted 0 at 0 (kvblock_scorer.go @ llm-d-kv-cache
  // v0.7.1), and utils.go's min-max (llm-d-inference-scheduler v0.8.0) takes its min over that map: such a holder
  // lowers the floor to 0, so a one-block GPU holder scores 1/3 of a three-block one, not 0.
  test('a pod holding the prefix only on a tier weighted 0 is in the min-max population at 0: a shorter GPU holder scores above 0', async () => {
    const [a, b, c] = ['10.0.9.1:8000', '10.0.9.2:8000', '10.0.9.3:8000'] as const;
    const { scheduler, scorer, ids, stored, scores, ratios } = await scorerWith(
      '        kvCacheBackendConfigs: [{ name: gpu, weight: 1 }, { name: cpu, weight: 0 }]\n      scoreNormalization: min-max\n', [a, b, c], 'Tier text. ');
    expect(ids.length).toBeGreaterThanOrEqual(48);
    scorer.index.store(a, stored(3, 100, 'GPU'), rootKey(''));
    scorer.index.store(b, stored(1, 200, 'GPU'), rootKey(''));
    scorer.index.store(c, stored(1, 300, 'CPU'), rootKey(''));
    expect(scores([a, b, c])).toEqual([1, 1 / 3, 0]);
    // What prefix-cache-affinity-filter reads is upstream's PrefixCacheMatchInfo ratio whatever the normalization: the
    // tier-weighted match ÷ the request's blocks.
    const total = Math.floor(ids.length / 16);
    expect(ratios([a, b, c])).toEqual([3 / total, 1 / total, 0]);
    // Filtered out, it is still a pod of the pool and still in the population (as in the score map over every pod).
    expect(scores([a, b])).toEqual([1, 1 / 3]);
    // Gone from the pool, the floor is the one-block GPU holder's: it scores 0.
    scheduler.plugins.removeEndpoint(c);
    expect(scores([a, b])).toEqual([1, 0]);
    await scheduler.plugins.close();
  });

  // llm-d-router v0.10.0: the producer's matchLen (the tier-weighted score) over the request's total blocks
  // (dataproducer/preciseprefixcache/producer.go), scored as prefix-cache-scorer's matchRatioScore (scorer/prefix/plugin.go).
  test('by default a pod scores its matched share of the request\'s blocks, as llm-d since llm-d-router v0.9.0 (#1107): a lone partial holder is not worth the full weight', async () => {
    const [a, b, c] = ['10.0.8.1:8000', '10.0.8.2:8000', '10.0.8.3:8000'] as const;
    const { scheduler, scorer, ids, stored, scores, ratios } = await scorerWith('', [a, b, c], 'Share text. ');
    const total = Math.floor(ids.length / 16);
    expect(total).toBeGreaterThanOrEqual(6);
    scorer.index.store(a, stored(2, 100), rootKey(''));
    // min-max (v0.8.0) gave the lone holder 1.
    expect(scores([a, b, c])).toEqual([2 / total, 0, 0]);
    expect(ratios([a, b, c])).toEqual([2 / total, 0, 0]);
    scorer.index.store(b, stored(total, 200), rootKey(''));
    expect(scores([a, b, c])).toEqual([2 / total, 1, 0]);
    await scheduler.plugins.close();
  });

  // llm-d-router v0.10.0 scorer/prefix/plugin.go Score, over the precise producer's match info (tier-weighted matched
  // blocks of the request's total, blockSizeTokens the index's): w·min(1, matched·blockSize/scale)² + (1−w)·matched/total.
  test('matchLengthWeight blends the matched length into the share as llm-d-router v0.10.0\'s prefix-cache-scorer does; a CPU-tier match counts its weighted blocks', async () => {
    const [a, b, c] = ['10.0.7.1:8000', '10.0.7.2:8000', '10.0.7.3:8000'] as const;
    const { scheduler, scorer, ids, stored, scores, ratios } = await scorerWith('      matchLengthWeight: 0.5\n      matchLengthScaleTokens: 64\n', [a, b, c], 'Length text. ');
    const total = Math.floor(ids.length / 16);
    expect(total).toBeGreaterThanOrEqual(6);
    scorer.index.store(a, stored(2, 100), rootKey(''));
    scorer.index.store(b, stored(total, 200), rootKey(''));
    scorer.index.store(c, stored(2, 300, 'CPU'), rootKey(''));
    const [sa, sb, sc] = scores([a, b, c]);
    expect(sa).toBeCloseTo(0.5 * (2 * 16 / 64) ** 2 + 0.5 * (2 / total), 12);
    expect(sb).toBe(1);
    // Two CPU blocks weigh 1.6 (the default 0.8 each); upstream truncates that to 1 block, kvroute keeps the fraction.
    expect(sc).toBeCloseTo(0.5 * (1.6 * 16 / 64) ** 2 + 0.5 * (1.6 / total), 12);
    // What prefix-cache-affinity-filter reads stays the match ratio (PrefixCacheMatchInfo), not the scorer's blend.
    const [ra, rb, rc] = ratios([a, b, c]);
    expect(ra).toBeCloseTo(2 / total, 12);
    expect(rb).toBe(1);
    expect(rc).toBeCloseTo(1.6 / total, 12);
    await scheduler.plugins.close();
  });

  test('a positive matchLengthWeight with min-max normalization (llm-d v0.8.0\'s, which had no such blend) is refused', () => {
    expect(() => resolvePluginParameters('precise-prefix-cache-scorer', { scoreNormalization: 'min-max', matchLengthWeight: 0.5 }))
      .toThrow('parameters.matchLengthWeight: blends the match length into the matched share (scoreNormalization "share", llm-d-router v0.10.0); with "min-max" (llm-d v0.8.0\'s) set it to 0 or drop it');
    expect(resolvePluginParameters('precise-prefix-cache-scorer', { scoreNormalization: 'min-max', matchLengthWeight: 0 })).toMatchObject({ matchLengthWeight: 0 });
  });

  // vLLM 0.10.0 refuses it (transformers: continue_final_message with add_generation_prompt): a 400 for the client,
  // neither keys nor an error for the EPP (request control logs what prepareRequest throws as an internal error).
  test('a chat vLLM refuses while applying its template is prepared without keys and without an error', async () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" }
      indexerConfig: { tokenizersPoolConfig: { modelName: "${MODEL}" } }
  - type: max-score-picker
`));
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const body = { model: MODEL, messages: [{ role: 'user', content: 'Go on' }], chat_template_kwargs: { continue_final_message: true } };
    const request = { requestId: 'refused', model: MODEL, prompt: '', input: parseRequestBody(Buffer.from(JSON.stringify(body))).input, headers: {}, attributes: new CycleState() };
    await expect(scorer.prepareRequest(request)).resolves.toBeUndefined();
    const snapshot: EndpointSnapshot = { endpoint: { key: 'p:1', name: 'p', namespace: 'ns', address: 'p', port: 1, labels: {} }, metrics: { ...EMPTY_METRICS, updateTime: Date.now() }, activeRequests: 0 };
    expect(scorer.score({ request, state: new CycleState() }, [snapshot])).toEqual([0]);
    await scheduler.plugins.close();
  });
});

/**
 * A batch (`prompt` or `input` as a list) is keyed prompt by prompt, as llm-d-router v0.10.0 keys it:
 * `dataproducer/preciseprefixcache/blockkeys.go` computeBlockKeys makes one key list per `PerPromptTokens` entry (the
 * cache salt in each one's first block), `producer.go` produceFromBlockKeys sums each pod's match over the prompts
 * against the sum of their blocks, and `prerequest.go` PreRequest speculates every prompt's keys on the pick. vLLM
 * serves each prompt as an engine request of its own (serving_engine.py @ v0.10.0 `_tokenize_prompt_inputs`), so its
 * KV events store each prompt's blocks as a chain of their own. Until session 65 a batch was keyed by its first prompt.
 */
describe('a batch of prompts (llm-d-router v0.10.0 preciseprefixcache/blockkeys.go computeBlockKeys, producer.go produceFromBlockKeys, prerequest.go PreRequest)', () => {
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() }, activeRequests: 0,
  });
  const completion = (prompt: unknown) => ({
    requestId: 'r', model: MODEL, prompt: '', headers: {}, attributes: new CycleState(),
    input: parseRequestBody(Buffer.from(JSON.stringify({ model: MODEL, prompt })), '/v1/completions').input,
  });
  /** The blocks vLLM stores for a completion prompt: its token ids in blocks of 16, opaque engine hashes. */
  const storedFor = async (text: string, hashBase: number): Promise<{ stored: BlockStored; tokens: number }> => {
    const { ids } = (await tokenizer.promptTokens({ kind: 'text', text }))!;
    const full = Math.floor(ids.length / 16);
    return {
      stored: { type: 'BlockStored', blockHashes: Array.from({ length: full }, (_, i) => String(hashBase + i)), parentBlockHash: null, tokenIds: [...ids.slice(0, full * 16)], blockSize: 16, loraId: null },
      tokens: ids.length,
    };
  };
  const A = `The alpha manual. ${'Alpha section text. '.repeat(40)}`;
  const C = `The gamma manual. ${'Gamma section text. '.repeat(60)}`;

  test('a batch [A, C] against A on one pod and C on another scores both, each pod its blocks over the batch\'s; after the pick, C alone is speculated there', async () => {
    const [a, b] = ['10.0.10.1:8000', '10.0.10.2:8000'] as const;
    const scheduler = buildScheduler(preciseOnlyConfig(`{ modelName: "${MODEL}" }`, '      speculativeIndexing: true\n'));
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    for (const key of [a, b]) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
    const alpha = await storedFor(A, 100);
    const gamma = await storedFor(C, 200);
    scorer.index.store(a, alpha.stored, rootKey(''));
    scorer.index.store(b, gamma.stored, rootKey(''));
    const [nA, nC] = [alpha.stored.blockHashes.length, gamma.stored.blockHashes.length];
    expect(Math.min(nA, nC)).toBeGreaterThanOrEqual(4);
    const batch = completion([A, C]);
    await scorer.prepareRequest(batch);
    const cycle = { request: batch, state: new CycleState() };
    expect(scorer.score(cycle, [snapshot(a), snapshot(b)])).toEqual([nA / (nA + nC), nC / (nA + nC)]);
    expect(scorer.matchRatios({ request: batch, state: new CycleState() }, [snapshot(a), snapshot(b)])).toEqual([nA / (nA + nC), nC / (nA + nC)]);
    // What the latency scorer and the P/D decider read: the batch's tokens, and each pod's held ones summed.
    const match = cycle.state.get(PREFIX_MATCH)!;
    expect(match.promptLength).toBe(alpha.tokens + gamma.tokens);
    expect(new Map(match.cachedLength)).toEqual(new Map([[a, nA * 16], [b, nC * 16]]));
    scorer.postCycle(cycle, { targets: [snapshot(a)] } as unknown as Parameters<PrecisePrefixCacheScorer['postCycle']>[1]);
    const alone = completion(C);
    await scorer.prepareRequest(alone);
    expect(scorer.score({ request: alone, state: new CycleState() }, [snapshot(a), snapshot(b)])).toEqual([1, 1]);
    await scheduler.plugins.close();
  });
});

describe('truncate_prompt_tokens on a model whose tokenizer adds a BOS', () => {
  // vLLM 0.10.0 truncates a text prompt in the tokenizer (`truncation=True, max_length=n`, truncation_side "left":
  // serving_engine.py _normalize_prompt_text_to_input), and the Rust tokenizer keeps the post-processor's BOS, cutting
  // the text to n - 1 tokens (tokenizers/src/tokenizer/mod.rs post_process). The pods' blocks start with that BOS.
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'kvroute-bos-'));
    writeTemplateTokenizer(dir, ['<s>', 'A'], { bos_token: '<s>', chat_template: '{% for m in messages %}{{ m.content }}\n{% endfor %}' });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the request is keyed on the BOS and the text\'s last n - 1 tokens, the blocks vLLM stores', async () => {
    const model = 'acme/bos-model';
    const scheduler = buildScheduler(preciseOnlyConfig(`{ modelName: "${model}", localTokenizerDir: "${dir}" }`));
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const pod = '10.0.7.1:8000';
    scheduler.plugins.addEndpoint({ key: pod, name: pod, namespace: 'ns', address: '10.0.7.1', port: 8000, labels: {} });
    const prompt = 'The manual, chapter by chapter: '.repeat(8);
    const keep = 32;
    // What vLLM's tokenizer gives: the Rust tokenizer with left truncation at 32, special tokens added.
    const rust = RustTokenizer.fromFile(nodePath.join(dir, 'tokenizer.json'));
    rust.setTruncation(keep, { direction: 'left' });
    const vllm = (await rust.encode(prompt, undefined, { addSpecialTokens: true })).getIds();
    expect(vllm).toHaveLength(keep);
    expect(vllm[0]).toBe(1);
    scorer.index.store(pod, { type: 'BlockStored', blockHashes: ['1', '2'], parentBlockHash: null, tokenIds: vllm, blockSize: 16, loraId: null }, rootKey(''));
    const body = { model, prompt, max_tokens: 1, truncate_prompt_tokens: keep };
    const parsed = parseRequestBody(Buffer.from(JSON.stringify(body)));
    const request = { requestId: 'r', model, prompt: '', input: parsed.input, truncatePromptTokens: parsed.truncatePromptTokens, headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    const snapshot: EndpointSnapshot = { endpoint: { key: pod, name: pod, namespace: 'ns', address: '10.0.7.1', port: 8000, labels: {} }, metrics: { ...EMPTY_METRICS, updateTime: Date.now() }, activeRequests: 0 };
    // Both of the request's blocks are the pod's (a slice of the last 32 ids, BOS dropped, matched none).
    expect(scorer.score({ request, state: new CycleState() }, [snapshot])).toEqual([1]);
    await scheduler.plugins.close();
  });
});

describe('speculativeIndexing (llm-d precise_prefix_cache.go @ v0.8.0: off unless a config sets it; kvroute\'s precise config sets it)', () => {
  const pods = ['10.0.0.1:8000', '10.0.0.2:8000'];
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
    activeRequests: 0,
  });
  const body = { model: MODEL, messages: [{ role: 'user', content: `A new prefix nobody holds yet. ${'Some context. '.repeat(40)}` }] };

  test.each<[string, string, boolean]>([
    ['unset (llm-d\'s default)', '', false],
    ['true', '\n      speculativeIndexing: true', true],
  ])('%s: before any KV event, the pod just picked for a prompt holds it for the next request only when speculating', async (_what, setting, held) => {
    const scheduler = buildScheduler(subscribedConfig(`\n        tokenizersPoolConfig: { modelName: "${MODEL}" }`, setting));
    await scheduler.plugins.start();
    const datastore = new Datastore({ scrape: false });
    try {
      for (const key of pods) {
        scheduler.plugins.addEndpoint(snapshot(key).endpoint);
        datastore.upsertEndpoint(snapshot(key).endpoint);
        datastore.setMetrics(key, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: Date.now(), consecutiveFailures: 0 });
      }
      const control = new RequestControl({ datastore, scheduler });
      const d = await control.route({ requestId: 'first', headers: new Map([['content-type', 'application/json'], [':path', '/v1/chat/completions']]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {} });
      if (d.kind !== 'route') throw new Error(`rejected: ${d.body}`);
      const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
      const request = { requestId: 'second', model: MODEL, prompt: '', input: parseRequestBody(Buffer.from(JSON.stringify(body))).input, headers: {}, attributes: new CycleState() };
      await scorer.prepareRequest(request);
      const scores = scorer.score({ request, state: new CycleState() }, pods.map(snapshot));
      expect(scores).toEqual(pods.map((p) => (held && p === d.endpoint ? 1 : 0)));
      control.release(d.ticket, 'completed');
    } finally {
      datastore.stop();
      await scheduler.plugins.close();
    }
  });

  test('kvroute\'s precise config sets it', () => {
    const config = preciseEndpointPickerConfig({ mode: 'central', modelName: MODEL, blockSize: 16 });
    expect(config.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')!.parameters).toMatchObject({ speculativeIndexing: true });
  });
});

describe('llm-d\'s producer form (precise-prefix-cache-producer read by prefix-cache-scorer; llm-d-inference-scheduler PRs #1086/#1112/#1121) is an alias', () => {
  const producerForm = (scorerParams: string, extra = '') => `${HEADER}plugins:
  - type: precise-prefix-cache-producer
    name: kv-events
    parameters:
      kvEventsConfig: { zmqEndpoint: "tcp://*:5557", topicFilter: "kv@" }
      indexerConfig: { tokenProcessorConfig: { blockSize: 16 } }
      speculativeIndexing: false
  - type: prefix-cache-scorer
    parameters: ${scorerParams}
  - type: queue-scorer
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: prefix-cache-scorer
        weight: 3
      - pluginRef: queue-scorer${extra}
`;

  test('the pair loads as one precise-prefix-cache-scorer with the producer\'s parameters, the scorer\'s name and weight', () => {
    const config = parseEndpointPickerConfig(producerForm('{ prefixMatchInfoProducerName: kv-events }'));
    expect(config.plugins.map((p) => `${p.type}/${p.name}`)).toEqual([
      'precise-prefix-cache-scorer/prefix-cache-scorer', 'queue-scorer/queue-scorer', 'max-score-picker/max-score-picker', 'single-profile-handler/single-profile-handler',
      'utilization-detector/utilization-detector', // GIE's default detector (no saturation-filter here)
    ]);
    expect(config.plugins[0]!.parameters).toMatchObject({
      kvEventsConfig: { zmqEndpoint: 'tcp://*:5557', topicFilter: 'kv@' },
      indexerConfig: { tokenProcessorConfig: { blockSize: 16 } },
      speculativeIndexing: false,
    });
    expect(config.schedulingProfiles[0]!.plugins[0]).toEqual({ pluginRef: 'prefix-cache-scorer', weight: 3 });
    // And it is the same config as the single-plugin form.
    const single = parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    name: prefix-cache-scorer
    parameters:
      kvEventsConfig: { zmqEndpoint: "tcp://*:5557", topicFilter: "kv@" }
      indexerConfig: { tokenProcessorConfig: { blockSize: 16 } }
      speculativeIndexing: false
  - type: queue-scorer
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: prefix-cache-scorer
        weight: 3
      - pluginRef: queue-scorer
`);
    expect(config).toEqual(single);
  });

  test.each<[string, string, RegExp]>([
    ['a scorer naming a missing producer', '{ prefixMatchInfoProducerName: other }', /plugins\[1\]\.parameters\.prefixMatchInfoProducerName: no approx-prefix-cache-producer or precise-prefix-cache-producer named "other"; approx-prefix-cache-producers: \(none\); precise-prefix-cache-producers: kv-events$/],
    ['a scorer mixing estimate parameters in', '{ prefixMatchInfoProducerName: kv-events, hashBlockSize: 64 }', /plugins\[1\]\.parameters\.hashBlockSize: .*do not apply/],
  ])('%s is refused, naming the field', (_what, scorerParams, message) => {
    expect(() => parseEndpointPickerConfig(producerForm(scorerParams))).toThrow(message);
  });

  // llm-d-router v0.10.0: matchLengthWeight and matchLengthScaleTokens sit on the prefix-cache-scorer reading the producer
  // (scorer/prefix/plugin.go Config), which the merged plugin now is.
  test('the scorer\'s matchLengthWeight and matchLengthScaleTokens are carried onto the merged plugin; on the producer they are refused', () => {
    const config = parseEndpointPickerConfig(producerForm('{ prefixMatchInfoProducerName: kv-events, matchLengthWeight: 0.3, matchLengthScaleTokens: 2048 }'));
    expect(config.plugins[0]).toMatchObject({ type: 'precise-prefix-cache-scorer', name: 'prefix-cache-scorer', parameters: { matchLengthWeight: 0.3, matchLengthScaleTokens: 2048, speculativeIndexing: false } });
    expect(parseEndpointPickerConfig(renderEndpointPickerConfig(config))).toEqual(config);
    expect(() => parseEndpointPickerConfig(producerForm('{ prefixMatchInfoProducerName: kv-events }').replace('      speculativeIndexing: false\n', '      speculativeIndexing: false\n      matchLengthWeight: 0.3\n')))
      .toThrow(/^plugins\[0\]\.parameters\.matchLengthWeight: is a prefix-cache-scorer parameter .*set it on the scorer that reads this producer$/);
    expect(() => parseEndpointPickerConfig(producerForm('{ prefixMatchInfoProducerName: kv-events, matchLengthWeight: 1.5 }')))
      .toThrow('plugins[1].parameters.matchLengthWeight: matchLengthWeight must be between 0.0 and 1.0, got 1.500000');
  });

  // llm-d-router v0.10.0 scorer/preciseprefixcache/precise_prefix_cache.go PluginFactory: "When a
  // precise-prefix-cache-producer is already registered in the handle, the factory returns a prefix-cache-scorer bound
  // to it and ignores any legacy parameters" (precise_prefix_cache_test.go TestPluginFactory_DefersToExistingProducer).
  describe('the deprecated precise-prefix-cache-scorer beside a precise-prefix-cache-producer (llm-d-router v0.10.0 precise_prefix_cache.go PluginFactory)', () => {
    const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
    const beside = (producers: string) => `${LLMD}plugins:
${producers}- type: precise-prefix-cache-scorer
  parameters:
    speculativeIndexing: true
    kvEventsConfig: { zmqEndpoint: "tcp://*:5999" }
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
    weight: 2
`;
    const producer = (name: string) => `- type: precise-prefix-cache-producer
  name: ${name}
  parameters:
    tokenProcessorConfig:
      blockSizeTokens: 64
    speculativeIndexing: false
`;

    test('one producer: the scorer scores from it under its own name and weight; its legacy parameters are ignored with a note', () => {
      const config = parseEndpointPickerConfig(beside(producer('kv-events')));
      expect(() => buildScheduler(config)).not.toThrow();
      expect(config.plugins.filter((p) => p.type.startsWith('precise-prefix-cache')).map((p) => `${p.type}/${p.name}`))
        .toEqual(['precise-prefix-cache-scorer/precise-prefix-cache-scorer']);
      expect(config.plugins[0]!.parameters).toMatchObject({ tokenProcessorConfig: { blockSizeTokens: 64 }, speculativeIndexing: false });
      expect((config.plugins[0]!.parameters as { kvEventsConfig: Record<string, unknown> }).kvEventsConfig.zmqEndpoint).toBeUndefined();
      expect(config.schedulingProfiles[0]!.plugins[0]).toEqual({ pluginRef: 'precise-prefix-cache-scorer', weight: 2 });
      expect(endpointPickerConfigNotes(config)).toContain(
        'plugins[1]: precise-prefix-cache-scorer "precise-prefix-cache-scorer" is deprecated and defers to precise-prefix-cache-producer "kv-events" (plugins[0]), '
          + 'scoring from it; its own parameters (speculativeIndexing, kvEventsConfig) are ignored, as llm-d-router v0.10.0 ignores them',
      );
    });

    test('several producers are refused with upstream\'s error (precise_prefix_cache_test.go TestPluginFactory_RejectsMultipleExistingProducers)', () => {
      expect(() => parseEndpointPickerConfig(beside(producer('first') + producer('second')))).toThrow(
        'plugins[2]: multiple precise-prefix-cache-producer instances configured (first/precise-prefix-cache-producer, second/precise-prefix-cache-producer); '
          + 'precise-prefix-cache-scorer cannot disambiguate — configure prefix-cache-scorer directly with an explicit prefixMatchInfoProducerName',
      );
    });
  });

  // llm-d-router v0.10.0 config/loader/configloader.go instantiatePlugins makes every listed plugin, read or not.
  test('a producer nobody reads is skipped with a note (llm-d-router v0.10.0 configloader.go instantiatePlugins does not refuse it)', () => {
    const config = parseEndpointPickerConfig(producerForm('{ mode: estimate }'));
    expect(config.plugins.map((p) => p.type)).not.toContain('precise-prefix-cache-producer');
    expect(config.plugins.find((p) => p.name === 'prefix-cache-scorer')!.type).toBe('prefix-cache-scorer');
    expect(endpointPickerConfigNotes(config).some((n) => n.startsWith('plugins[0]: precise-prefix-cache-producer "kv-events" is read by no scorer and was skipped'))).toBe(true);
  });

  test('a profile referencing the producer itself is refused', () => {
    expect(() => parseEndpointPickerConfig(producerForm('{ prefixMatchInfoProducerName: kv-events }', '\n      - pluginRef: kv-events')))
      .toThrow(/schedulingProfiles\[0\]\.plugins\[2\]\.pluginRef: "kv-events" is a precise-prefix-cache-producer, which runs before scheduling/);
  });
});

describe('precise scoring from KV events (central mode, real sockets, the model\'s own tokenizer)', () => {
  let scheduler: Scheduler;
  let datastore: Datastore;
  let pub: TestKvEventPublisher;
  const tokenizer = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));

  const pods = ['10.0.0.1:8000', '10.0.0.2:8000'];
  const snapshot = (key: string): EndpointSnapshot => ({
    endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: Date.now() },
    activeRequests: 0,
  });

  beforeAll(async () => {
    scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { modelName: "${MODEL}" }
        kvCacheBackendConfigs: [{ name: gpu, weight: 1.0 }, { name: cpu, weight: 0.8 }, { name: localdiskbackend, weight: 0.5 }]`, `
      speculativeIndexing: false
      loraAdapters: [chat-lora, billing-lora]
      scoreNormalization: min-max`));
    await scheduler.plugins.start();
    datastore = new Datastore({ scrape: false });
    for (const key of pods) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
    pub = new TestKvEventPublisher();
    pub.connect((scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer).subscriber.boundEndpoint!);
    await pub.waitSubscribed();
  });
  afterAll(async () => {
    pub.close();
    datastore.stop();
    await scheduler.plugins.close();
  });

  /** Each pod's vLLM numbers its own batches from 0: one publisher stands in for all, so it counts per pod. */
  const nextSeq = new Map<string, bigint>();
  async function publish(pod: string, events: KvCacheEvent[], encoding: KvEventEncoding = 'positional-v0.10.0'): Promise<void> {
    const seq = nextSeq.get(pod) ?? 0n;
    nextSeq.set(pod, seq + 1n);
    await pub.publish(events, { topic: `kv@${pod}@${MODEL}`, encoding, seq });
  }

  /** The blocks vLLM would store for a chat: its token ids in blocks of 16, opaque engine hashes. */
  async function storedFor(body: unknown, hashBase: number): Promise<BlockStored> {
    const { ids } = (await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body))).input))!;
    const full = Math.floor(ids.length / 16);
    return {
      type: 'BlockStored', blockHashes: Array.from({ length: full }, (_, i) => String(hashBase + i)), parentBlockHash: null,
      tokenIds: [...ids.slice(0, full * 16)], blockSize: 16, loraId: null,
    };
  }

  const chat = (question: string, manual = 'a long manual') => ({
    model: MODEL,
    messages: [{ role: 'system', content: `You answer questions about ${manual}. ${'Section text. '.repeat(80)}` }, { role: 'user', content: question }],
  });

  async function pick(body: unknown): Promise<{ endpoint: string; score: number }> {
    const control = new RequestControl({ datastore, scheduler });
    datastore.upsertEndpoint(snapshot(pods[0]!).endpoint);
    datastore.upsertEndpoint(snapshot(pods[1]!).endpoint);
    for (const p of pods) datastore.setMetrics(p, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: Date.now(), consecutiveFailures: 0 });
    const d = await control.route({ requestId: 'r', headers: new Map([['content-type', 'application/json'], [':path', '/v1/chat/completions']]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {} });
    if (d.kind !== 'route') throw new Error(`rejected: ${d.body}`);
    control.release(d.ticket, 'completed');
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    return { endpoint: d.endpoint, score: scorer.index.blocksOf(d.endpoint) };
  }

  test('an IPv6 pod naming itself as the decode pods do, kv@$(POD_IP):8000@model without brackets, is resolved to its endpoint (audit s36: every batch was dropped as unknown-pod)', async () => {
    const address = 'fd00:10:244::7';
    const key = endpointKey(address, 8000);
    scheduler.plugins.addEndpoint({ key, name: 'v6', namespace: 'ns', address, port: 8000, labels: {} });
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    try {
      await publish(`${address}:8000`, [await storedFor(chat('An IPv6 question?', 'an IPv6 manual'), 5000)]);
      await waitFor(() => scorer.index.blocksOf(key) > 0, 'the IPv6 pod\'s blocks to be indexed');
      expect(key).toBe('[fd00:10:244::7]:8000');
    } finally {
      scheduler.plugins.removeEndpoint(key);
    }
  });

  test('a pod whose metrics say its vLLM restarted loses its entries at once, and the new process\'s batches from 0 are applied as a publisher joining; a step back seen since the reading before wins', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const [k1, k2] = ['10.0.7.1:8000', '10.0.7.2:8000'];
    for (const key of [k1, k2]) scheduler.plugins.addEndpoint(snapshot(key).endpoint);
    try {
      const old = await storedFor(chat('Before the restart?', 'a restart manual'), 7000);
      await publish(k1, [old]);
      await publish(k1, [await storedFor(chat('Also before?', 'another restart manual'), 7100)]);
      await waitFor(() => scorer.index.blocksOf(k1) === 2 * old.blockHashes.length, 'the old process\'s blocks');
      // Readings are times on the EPP's monotonic clock (src/clock.ts), as the datastore gives them: Date.now() may lag it.
      scheduler.plugins.endpointRestarted(k1, monotonicMs() - 50);
      expect(scorer.index.blocksOf(k1)).toBe(0);
      // The new process numbers from 0: taken as a publisher joining (no replay socket here), not a step back.
      nextSeq.set(k1, 0n);
      const fresh = await storedFor(chat('After the restart?', 'a restart manual'), 7200);
      await publish(k1, [fresh]);
      await waitFor(() => scorer.index.blocksOf(k1) === fresh.blockHashes.length, 'the new process\'s blocks');

      // k2: the new process's first batch arrives (a step back: the subscriber resets and applies it) before the scrape.
      await publish(k2, [old]);
      await publish(k2, [await storedFor(chat('Also before?', 'another restart manual'), 7100)]);
      await waitFor(() => scorer.index.blocksOf(k2) === 2 * old.blockHashes.length, 'k2\'s old blocks');
      const readingBefore = monotonicMs();
      nextSeq.set(k2, 0n);
      await publish(k2, [fresh]);
      await waitFor(() => scorer.index.blocksOf(k2) === fresh.blockHashes.length, 'the step back and the new batch');
      scheduler.plugins.endpointRestarted(k2, readingBefore);
      expect(scorer.index.blocksOf(k2)).toBe(fresh.blockHashes.length);
      // A restart read after that step back (a second one) drops them.
      scheduler.plugins.endpointRestarted(k2, monotonicMs() + 1);
      expect(scorer.index.blocksOf(k2)).toBe(0);
      // An endpoint not in the pool: nothing happens.
      scheduler.plugins.endpointRestarted('10.0.7.9:8000', 0);
    } finally {
      for (const key of [k1, k2]) scheduler.plugins.removeEndpoint(key);
    }
  });

  test('a prefix stored on pod 2 (by traffic the EPP never saw) draws the next request with it; its eviction releases it', async () => {
    const first = chat('What does section 3 say?');
    const stored = await storedFor(first, 1000);
    await publish(pods[1]!, [stored]);
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    await waitFor(() => scorer.index.blocksOf(pods[1]!) > 0, 'the stored blocks to be indexed');
    for (let i = 0; i < 5; i++) expect((await pick(chat(`Question ${i} about section 3?`))).endpoint).toBe(pods[1]);

    // The pod evicts the prefix (one BlockRemoved per block, as vLLM sends them): nothing pulls the next request there.
    const hashes = stored.blockHashes;
    await publish(pods[1]!, hashes.map((h) => ({ type: 'BlockRemoved', blockHashes: [h] })));
    await waitFor(() => scorer.index.blocksOf(pods[1]!) === 0, 'the removals to be applied');
    const after = new Set<string>();
    for (let i = 0; i < 20; i++) after.add((await pick(chat(`Later question ${i}?`))).endpoint);
    expect(after.size).toBe(2);
  });

  // vLLM sends BlockStored once per block, when first cached (block_pool.py cache_full_blocks @ v0.10.0): a system
  // prompt cached before this EPP subscribed is never sent again, and the blocks of every later request name it as
  // parent. The request this EPP routed there tells which prefix that parent ends.
  test('a prefix cached before the EPP subscribed: the blocks stored for the request it routed there name an unseen parent, and the prefix is indexed from that request', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const manual = 'the recovery manual';
    const earlier = (await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(chat('Earlier question?', manual)))).input))!.ids;
    const routedBody = chat(`What does the first section say? ${'Please quote it in full, with its notes. '.repeat(12)}`, manual);
    const routed = await pick(routedBody);
    const before = scorer.index.blocksOf(routed.endpoint);
    const ids = (await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(routedBody))).input))!.ids;
    // The blocks the pod had cached already: those of the system prompt both requests share.
    let shared = 0;
    while (shared < ids.length && ids[shared] === earlier[shared]) shared++;
    const cachedBlocks = Math.floor(shared / 16);
    const full = Math.floor(ids.length / 16);
    expect(cachedBlocks).toBeGreaterThan(10);
    expect(full).toBeGreaterThan(cachedBlocks);
    await publish(routed.endpoint, [{
      type: 'BlockStored', blockHashes: Array.from({ length: full - cachedBlocks }, (_, i) => String(7000 + i)),
      parentBlockHash: '6999', tokenIds: [...ids.slice(cachedBlocks * 16, full * 16)], blockSize: 16, loraId: null,
    }]);
    await waitFor(() => scorer.index.blocksOf(routed.endpoint) >= before + full, 'the event and the recovered prefix to be indexed');
    // The next question about the manual goes where its system prompt is.
    for (let i = 0; i < 5; i++) expect((await pick(chat(`Question ${i} about the first section?`, manual))).endpoint).toBe(routed.endpoint);
  });

  // vLLM frees a request's blocks in reverse when it ends ("so that the tail blocks are evicted first",
  // vllm/v1/core/kv_cache_manager.py free @ v0.10.0): its prompt's head is then the last of its blocks to go.
  test('when a routed request ends, its blocks on the pod are the most recently used, tail first: over capacity the tail goes, its prefix stays', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const pod = pods[1]!;
    scorer.index.clearPod(pod);
    const prefixBody = chat('A first question?', 'the eviction manual');
    const prefix = await storedFor(prefixBody, 11000);
    await publish(pod, [prefix]);
    await waitFor(() => scorer.index.blocksOf(pod) === prefix.blockHashes.length, 'the prefix to be indexed');
    const body = chat(`A longer second question? ${'With its own details. '.repeat(20)}`, 'the eviction manual');
    const ids = (await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body))).input))!.ids;
    const keys: number[] = [];
    for (let i = 0, parent = rootKey(''); (i + 1) * 16 <= ids.length; i++) keys.push((parent = blockKey(parent, ids, i * 16, (i + 1) * 16)));
    const control = new RequestControl({ datastore, scheduler });
    for (const p of pods) {
      datastore.upsertEndpoint(snapshot(p).endpoint);
      datastore.setMetrics(p, { waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, updateTime: Date.now(), consecutiveFailures: 0 });
    }
    const d = await control.route({ requestId: 'evict', headers: new Map([['content-type', 'application/json'], [':path', '/v1/chat/completions']]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {} });
    if (d.kind !== 'route') throw new Error(`rejected: ${d.body}`);
    expect(d.endpoint).toBe(pod);
    // The pod prefills the rest of the prompt while the request runs: its blocks are stored after the pick.
    const held = prefix.blockHashes.length;
    await publish(pod, [{
      type: 'BlockStored', blockHashes: keys.slice(held).map((_, i) => String(12000 + i)), parentBlockHash: prefix.blockHashes.at(-1)!,
      tokenIds: [...ids.slice(held * 16, keys.length * 16)], blockSize: 16, loraId: null,
    }]);
    await waitFor(() => scorer.index.blocksOf(pod) === keys.length, 'the rest to be indexed');
    control.release(d.ticket, 'completed');
    // Over capacity the oldest go. Touched at the end, those are the request's last blocks and what stays is a prefix;
    // otherwise the prefix's own last blocks (touched at the pick, before the rest was stored) would go first and
    // break the prefix. (The index budget may shrink the capacity further; what stays is a prefix all the same.)
    scorer.index.setCapacity(pod, keys.length - 1);
    const kept = scorer.index.blocksOf(pod);
    expect(kept).toBeLessThan(keys.length);
    expect(kept).toBeGreaterThan(0);
    expect(scorer.index.longestPrefix(keys, new Set([pod]), Date.now()).get(pod)?.blocks).toBe(kept);
    scorer.index.setCapacity(pod, 1_000_000);
  });

  test('a prefix left only in an offloading connector\'s own tier (a KV connector passes on its cache\'s medium) weighs what kvCacheBackendConfigs gives that tier: a GPU holder wins', async () => {
    const body = chat('What does the offloaded chapter say?', 'the offloaded manual');
    const stored = await storedFor(body, 9000);
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const [before0, before1] = [scorer.index.blocksOf(pods[0]!), scorer.index.blocksOf(pods[1]!)];
    // Pod 1 computed the prefix and its connector copied it to disk; then pod 1's GPU evicted it. Pod 2 holds it on GPU.
    // vLLM >= 0.10.2's encoding, which carries the medium (BlockStored field 6, BlockRemoved field 2).
    await publish(pods[0]!, [stored, { ...stored, medium: 'LocalDiskBackend' }, { type: 'BlockRemoved', blockHashes: stored.blockHashes }], 'positional-v0.10.2');
    await publish(pods[1]!, [{ ...stored, blockHashes: stored.blockHashes.map((h) => `${h}1`) }], 'positional-v0.10.2');
    await waitFor(() => scorer.index.blocksOf(pods[0]!) === before0 + stored.blockHashes.length && scorer.index.blocksOf(pods[1]!) === before1 + stored.blockHashes.length, 'the blocks to be indexed');
    // Min-max over the holders: the disk copy weighs 0.5 a block, the GPU copy 1.
    expect(await scores(body)).toEqual([0, 1]);
    // The connector drops its copy too: pod 1 holds nothing of it.
    await publish(pods[0]!, [{ type: 'BlockRemoved', blockHashes: stored.blockHashes, medium: 'LocalDiskBackend' }], 'positional-v0.10.2');
    await waitFor(() => scorer.index.blocksOf(pods[0]!) === before0, 'the disk copy to be removed');
  });

  test('chunk events (LMCache: one hash per 64-token chunk here, medium cpu, through vLLM\'s lmcache_connector) are cut into the configured 16-token blocks and match, as llm-d-kv-cache @ 7be76e1 maps one engine key to many', async () => {
    const body = chat('What does the chunked chapter say?', 'the chunked manual');
    const blocks = await storedFor(body, 11000);
    const chunks = Math.floor(blocks.tokenIds.length / 64);
    const event: BlockStored = {
      type: 'BlockStored', blockHashes: Array.from({ length: chunks }, (_, i) => String(12000 + i)), parentBlockHash: null,
      tokenIds: blocks.tokenIds.slice(0, chunks * 64), blockSize: 64, loraId: null, medium: 'cpu',
    };
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const before = scorer.index.blocksOf(pods[1]!);
    await publish(pods[1]!, [event], 'positional-v0.10.2');
    await waitFor(() => scorer.index.blocksOf(pods[1]!) === before + chunks * 4, 'the chunks to be indexed as blocks');
    expect(await scores(body)).toEqual([0, 1]);
    await publish(pods[1]!, [{ type: 'BlockRemoved', blockHashes: event.blockHashes, medium: 'cpu' }], 'positional-v0.10.2');
    await waitFor(() => scorer.index.blocksOf(pods[1]!) === before, 'the chunks to be removed with all their blocks');
  });

  test('a pod\'s index capacity is its num_gpu_blocks in configured blocks: vLLM\'s block_size × blocks ÷ the configured size', async () => {
    // A scheduler of its own: earlier tests of this block stored CPU copies on its pods, which lifts their bound.
    const own = buildScheduler(preciseOnlyConfig(`{ modelName: "${MODEL}" }`));
    const scorer = own.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const withCache = (key: string, numGpuBlocks: number, blockSize: number): EndpointSnapshot => ({ ...snapshot(key), metrics: { ...snapshot(key).metrics, numGpuBlocks, blockSize } });
    const request = { requestId: 'cap', model: MODEL, prompt: '', headers: {}, attributes: new CycleState() };
    const [p, q] = [pods[0]!, pods[1]!];
    scorer.score({ request, state: new CycleState() }, [withCache(p, 1000, 8), withCache(q, 1000, 64)]);
    expect([scorer.index.capacityOf(p), scorer.index.capacityOf(q)]).toEqual([500, 4000]);
    scorer.score({ request, state: new CycleState() }, [withCache(p, 1000, 16), withCache(q, 1000, 16)]);
    expect([scorer.index.capacityOf(p), scorer.index.capacityOf(q)]).toEqual([1000, 1000]);
    await own.plugins.close();
  });

  test('a pod whose events stored CPU copies keeps 4× its num_gpu_blocks (its CPU blocks are on no page), also after its entries are cleared; one that does not, its num_gpu_blocks', async () => {
    const own = buildScheduler(preciseOnlyConfig(`{ modelName: "${MODEL}" }`));
    const scorer = own.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const [offloading, gpuOnly] = [pods[0]!, pods[1]!];
    const cpuCopy: BlockStored = { type: 'BlockStored', blockHashes: ['1'], parentBlockHash: null, tokenIds: Array.from({ length: 16 }, (_, i) => i + 1), blockSize: 16, loraId: null, medium: 'CPU' };
    scorer.index.store(offloading, cpuCopy, rootKey(''));
    const request = { requestId: 'cap', model: MODEL, prompt: '', headers: {}, attributes: new CycleState() };
    const withGpu = (key: string): EndpointSnapshot => ({ ...snapshot(key), metrics: { ...snapshot(key).metrics, numGpuBlocks: 10, blockSize: 16 } });
    scorer.score({ request, state: new CycleState() }, [withGpu(offloading), withGpu(gpuOnly)]);
    expect([scorer.index.capacityOf(offloading), scorer.index.capacityOf(gpuOnly)]).toEqual([40, 10]);
    // AllBlocksCleared (or lost events): the pod still offloads.
    scorer.index.clearPod(offloading);
    scorer.score({ request, state: new CycleState() }, [withGpu(offloading), withGpu(gpuOnly)]);
    expect(scorer.index.capacityOf(offloading)).toBe(40);
    await own.plugins.close();
  });

  test('engine blocks of 8 under the configured 16 (vLLM\'s --block-size below tokenProcessorConfig.blockSize), in two events split inside a configured block, are gathered and match, as llm-d-kv-cache @ 7be76e1 maps many engine keys to one', async () => {
    const body = chat('What does the gathered chapter say?', 'the gathered manual');
    const blocks = await storedFor(body, 13000);
    const configured = blocks.blockHashes.length;
    const hashes = Array.from({ length: 2 * configured }, (_, i) => String(14000 + i));
    // The first event ends one engine block into a configured block; the second continues from there.
    const cut = 2 * Math.floor(configured / 2) + 1;
    const first: BlockStored = { type: 'BlockStored', blockHashes: hashes.slice(0, cut), parentBlockHash: null, tokenIds: blocks.tokenIds.slice(0, cut * 8), blockSize: 8, loraId: null };
    const second: BlockStored = { type: 'BlockStored', blockHashes: hashes.slice(cut), parentBlockHash: hashes[cut - 1]!, tokenIds: blocks.tokenIds.slice(cut * 8), blockSize: 8, loraId: null };
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const before = scorer.index.blocksOf(pods[1]!);
    await publish(pods[1]!, [first, second], 'positional-v0.10.2');
    await waitFor(() => scorer.index.blocksOf(pods[1]!) === before + configured, 'the engine blocks to be gathered into configured ones');
    expect(await scores(body)).toEqual([0, 1]);
    // The first engine block leaves: the first configured block can no longer be hit whole, and the prefix with it.
    await publish(pods[1]!, [{ type: 'BlockRemoved', blockHashes: [hashes[0]!] }], 'positional-v0.10.2');
    await waitFor(() => scorer.index.blocksOf(pods[1]!) === before + configured - 1, 'the first configured block to be removed');
    expect(await scores(body)).toEqual([0, 0]);
  });

  // Runs before any event with extra_keys reaches this scheduler (the ones below publish vLLM >= #33304's).
  test('with vLLM 0.10.x events (no extra_keys) a cache_salt is ignored, as llm-d-kv-cache v0.7.1 ignores it: the salted prompt\'s own blocks match it', async () => {
    const body = chat('What does the salted appendix say?', 'the salted manual');
    await publish(pods[0]!, [await storedFor(body, 7000)]);
    await waitFor(async () => (await scores(body, 'tenant-a'))[0] === 1, 'the blocks to match the salted request');
    expect(await scores(body)).toEqual([1, 0]);
  });

  test('a pod serving two target ports: an IP-only topic\'s blocks go to the endpoint of the batch\'s data_parallel_rank (rank i serves targetPorts[i])', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const rank = (port: number, r: number) => ({ key: `10.0.0.3:${port}`, name: `dp-rank-${r}`, podName: 'dp', namespace: 'ns', address: '10.0.0.3', port, labels: {}, rank: r });
    scheduler.plugins.addEndpoint(rank(8000, 0));
    scheduler.plugins.addEndpoint(rank(8001, 1));
    try {
      const stored = await storedFor(chat('Which rank holds this?', 'a manual for ranks'), 5000);
      await pub.publish([stored], { topic: `kv@10.0.0.3@${MODEL}`, seq: 0n, dataParallelRank: 1 });
      await waitFor(() => scorer.index.blocksOf('10.0.0.3:8001') > 0, 'rank 1\'s blocks to be indexed');
      expect(scorer.index.blocksOf('10.0.0.3:8000')).toBe(0);
      // Rank 0's batches (its own sequence from 0) go to the first port's endpoint.
      await pub.publish([await storedFor(chat('And this one?', 'a manual for rank zero'), 6000)], { topic: `kv@10.0.0.3@${MODEL}`, seq: 0n, dataParallelRank: 0 });
      await waitFor(() => scorer.index.blocksOf('10.0.0.3:8000') > 0, 'rank 0\'s blocks to be indexed');
    } finally {
      scheduler.plugins.removeEndpoint('10.0.0.3:8000');
      scheduler.plugins.removeEndpoint('10.0.0.3:8001');
    }
  });

  test('a pod serving two target ports whose topic names its first port (kvroute\'s decode pods: kv@$(POD_IP):8000@model): rank 1\'s blocks still go to rank 1\'s endpoint', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const rank = (port: number, r: number) => ({ key: `10.0.0.4:${port}`, name: `dp4-rank-${r}`, podName: 'dp4', namespace: 'ns', address: '10.0.0.4', port, labels: {}, rank: r });
    scheduler.plugins.addEndpoint(rank(8000, 0));
    scheduler.plugins.addEndpoint(rank(8001, 1));
    try {
      await pub.publish([await storedFor(chat('Which port holds this?', 'a manual for ports'), 5100)], { topic: `kv@10.0.0.4:8000@${MODEL}`, seq: 0n, dataParallelRank: 1 });
      await waitFor(() => scorer.index.blocksOf('10.0.0.4:8001') > 0, 'rank 1\'s blocks to be indexed');
      expect(scorer.index.blocksOf('10.0.0.4:8000')).toBe(0);
      await pub.publish([await storedFor(chat('And this port?', 'a manual for port zero'), 6100)], { topic: `kv@10.0.0.4:8000@${MODEL}`, seq: 0n, dataParallelRank: 0 });
      await waitFor(() => scorer.index.blocksOf('10.0.0.4:8000') > 0, 'rank 0\'s blocks to be indexed');
    } finally {
      scheduler.plugins.removeEndpoint('10.0.0.4:8000');
      scheduler.plugins.removeEndpoint('10.0.0.4:8001');
    }
  });

  test('one endpoint fronting two data-parallel ranks (one port, vLLM\'s internal load balancing): when its vLLM restarts, the second rank\'s step back does not drop the first rank\'s new blocks', async () => {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const key = '10.0.0.5:8000';
    scheduler.plugins.addEndpoint({ key, name: 'dp5', namespace: 'ns', address: '10.0.0.5', port: 8000, labels: {} });
    const topic = `kv@${key}@${MODEL}`;
    try {
      const old0 = await storedFor(chat('Rank zero, old?', 'a manual for the old process'), 5200);
      const old1 = await storedFor(chat('Rank one, old?', 'another manual for the old process'), 5300);
      await pub.publish([old0], { topic, seq: 0n, dataParallelRank: 0 });
      await pub.publish([old1], { topic, seq: 0n, dataParallelRank: 1 });
      await pub.publish([{ type: 'BlockRemoved', blockHashes: ['999999'] }], { topic, seq: 1n, dataParallelRank: 0 });
      await pub.publish([{ type: 'BlockRemoved', blockHashes: ['999998'] }], { topic, seq: 1n, dataParallelRank: 1 });
      await pub.publish([{ type: 'BlockRemoved', blockHashes: ['999997'] }], { topic, seq: 2n, dataParallelRank: 0 });
      await pub.publish([{ type: 'BlockRemoved', blockHashes: ['999996'] }], { topic, seq: 2n, dataParallelRank: 1 });
      const both = old0.blockHashes.length + old1.blockHashes.length;
      await waitFor(() => scorer.index.blocksOf(key) === both, 'both ranks\' old blocks');
      // The new process: rank 0's first batch (a step back: the pod's entries go), then rank 1's.
      const new0 = await storedFor(chat('Rank zero, new?', 'a manual for the new process'), 5400);
      const new1 = await storedFor(chat('Rank one, new?', 'another manual for the new process'), 5500);
      await pub.publish([new0], { topic, seq: 0n, dataParallelRank: 0 });
      await waitFor(() => scorer.index.blocksOf(key) === new0.blockHashes.length, 'the reset and rank 0\'s new blocks');
      await pub.publish([new1], { topic, seq: 0n, dataParallelRank: 1 });
      await waitFor(() => scorer.index.blocksOf(key) !== new0.blockHashes.length, 'rank 1\'s new blocks');
      expect(scorer.index.blocksOf(key)).toBe(new0.blockHashes.length + new1.blockHashes.length);
    } finally {
      scheduler.plugins.removeEndpoint(key);
    }
  });

  /** The scorer's scores for pods 1 and 2, as one scheduling cycle computes them (no pick, no speculation). */
  async function scores(body: { model: string }, cacheSalt?: string, path?: string, state = new CycleState()): Promise<number[]> {
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const parsed = parseRequestBody(Buffer.from(JSON.stringify(body)), path);
    const request = {
      requestId: 'r', model: body.model, prompt: '', input: parsed.input,
      headers: {}, attributes: new CycleState(), ...(cacheSalt !== undefined ? { cacheSalt } : {}),
      ...(parsed.truncatePromptTokens !== undefined ? { truncatePromptTokens: parsed.truncatePromptTokens } : {}),
      ...(parsed.skipsPrefixCache ? { skipsPrefixCache: true as const } : {}),
    };
    await scorer.prepareRequest(request);
    return scorer.score({ request, state }, pods.map(snapshot));
  }

  test('scoreNormalization min-max scores as llm-d v0.8.0 (utils.go) over the pool\'s holders: a lone partial holder scores 1, the shorter of two 0, filtered or not', async () => {
    const body = chat('What does the normalization chapter say?', 'the normalization manual');
    const stored = await storedFor(body, 9000);
    const blocks = stored.blockHashes.length;
    expect(blocks).toBeGreaterThan(4);
    // Pod 1 holds the first two blocks only.
    const partial: BlockStored = { ...stored, blockHashes: stored.blockHashes.slice(0, 2), tokenIds: stored.tokenIds.slice(0, 32) };
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    // Counted from what pod 1 already holds (earlier tests' blocks): waiting for "≥ 2" alone passed at once and raced
    // the event's delivery (a fresh-clone CI run scored [0, 0]).
    const before = scorer.index.blocksOf(pods[0]!);
    await publish(pods[0]!, [partial]);
    await waitFor(() => scorer.index.blocksOf(pods[0]!) >= before + 2, 'the partial prefix to be indexed');
    expect(await scores(body)).toEqual([1, 0]);
    // Pod 2 then holds the whole prompt: it is the longest match (1), pod 1 the shortest (0).
    await publish(pods[1]!, [{ ...stored, blockHashes: stored.blockHashes.map((h) => String(Number(h) + 500)) }]);
    await waitFor(async () => (await scores(body))[1] === 1, 'the full prefix to be indexed');
    expect(await scores(body)).toEqual([0, 1]);
    // A holder a filter removed still counts, as KVM's score map holds every pod of the index: pod 1 alone among the
    // candidates is still the shortest match, 0 (kvroute's first version, over the candidates only, gave it 1).
    const request = { requestId: 'r', model: body.model, prompt: '', input: parseRequestBody(Buffer.from(JSON.stringify(body))).input, headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    expect(scorer.score({ request, state: new CycleState() }, [snapshot(pods[0]!)])).toEqual([0]);
    await publish(pods[0]!, [{ type: 'AllBlocksCleared' }]);
    await publish(pods[1]!, [{ type: 'AllBlocksCleared' }]);
    await waitFor(() => scorer.index.blocksOf(pods[0]!) === 0 && scorer.index.blocksOf(pods[1]!) === 0, 'cleared');
  });

  test('hash-only events, as llm-d-kv-cache\'s demo publisher sends them (placeholder tokens, block_size 256: examples/kv_events @ v0.3.0), match through the engine-hash chain (sha256_cbor, hashSeed "")', async () => {
    const body = chat('What does the hashing chapter say?', 'the hashing manual');
    const { ids } = (await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body))).input))!;
    const hashes = engineEventHashes(ids, 16, engineRoot(''));
    await publish(pods[0]!, [{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: [1, 2, 3], blockSize: 256, loraId: null }]);
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    await waitFor(() => scorer.index.blocksOf(pods[0]!) >= hashes.length, 'the hashes to be indexed');
    // Every block matches, not only the first: the pod holds the whole prompt's blocks under the engine chain.
    const request = { requestId: 'r', model: body.model, prompt: '', input: parseRequestBody(Buffer.from(JSON.stringify(body))).input, headers: {}, attributes: new CycleState() };
    await scorer.prepareRequest(request);
    const cycle = { request, state: new CycleState() };
    expect(scorer.score(cycle, pods.map(snapshot))).toEqual([1, 0]);
    expect(cycle.state.get(PREFIX_MATCH)?.cachedLength.get(pods[0]!)).toBe(hashes.length * 16);
    // The longest match's blocks by kvroute's own keys, for the latency scorer's count of a prefix's requests in flight.
    const held = cycle.state.get(PREFIX_MATCH)!.heldBlocks!;
    expect(held.longest).toBe(hashes.length);
    expect(held.keys.length).toBe(hashes.length);
    expect(held.lengthOf(held.longest)).toBe(hashes.length * 16);
    await publish(pods[0]!, [{ type: 'AllBlocksCleared' }]);
    await waitFor(() => scorer.index.blocksOf(pods[0]!) === 0, 'cleared');
  });

  // vLLM >= #27577 hashes a LoRA block with its adapter's *name* as the first extra key and reports `lora_name`;
  // since #33304 `BlockStored` carries each block's extra keys (vllm/v1/core/kv_cache_utils.py
  // generate_block_hash_extra_keys and vllm/v1/core/block_pool.py cache_full_blocks, main 001cabc1). The name is not a
  // cache salt: reading the first string of block 0's extra keys as the salt made LoRA blocks unmatchable.
  test('LoRA blocks with lora_name and per-block extra_keys (vLLM >= #33304) match requests for the adapter', async () => {
    const body = { ...chat('What does the SQL appendix say?', 'the SQL manual'), model: 'sql-lora' };
    const stored = await storedFor(body, 5000);
    await publish(pods[1]!, [{ ...stored, loraId: 1, loraName: 'sql-lora', extraKeys: stored.blockHashes.map(() => ['sql-lora']) }], 'map');
    await waitFor(async () => (await scores(body))[1] === 1, 'the LoRA blocks to match the adapter\'s request in full');
    expect(await scores(body)).toEqual([0, 1]);
    // The same tokens for the base model were never cached: vLLM hashed these blocks with the adapter's name.
    expect(await scores({ ...body, model: MODEL })).toEqual([0, 0]);
  });

  test('LoRA and cache_salt: the salt is the string after the LoRA name on the first block only', async () => {
    const body = { ...chat('What does the billing appendix say?', 'the billing manual'), model: 'sql-lora' };
    const stored = await storedFor(body, 6000);
    const extraKeys = stored.blockHashes.map((_, i) => (i === 0 ? ['sql-lora', 'tenant-a'] : ['sql-lora']));
    await publish(pods[0]!, [{ ...stored, loraId: 1, loraName: 'sql-lora', extraKeys }], 'map');
    await waitFor(async () => (await scores(body, 'tenant-a'))[0] === 1, 'the salted LoRA blocks to match the salted request');
    expect(await scores(body, 'tenant-a')).toEqual([1, 0]);
    expect(await scores(body)).toEqual([0, 0]);
    expect(await scores(body, 'tenant-b')).toEqual([0, 0]);
  });

  test('truncate_prompt_tokens: vLLM caches the prompt\'s last N tokens only (left truncation, serving_engine.py @ v0.10.0), and the request is matched on them', async () => {
    const body = chat('What does the truncation appendix say?', 'the truncation manual');
    const { ids } = (await tokenizer.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body))).input))!;
    const keep = 160; // ten blocks of the prompt's tail, starting mid-prompt
    const tail = ids.slice(ids.length - keep);
    await publish(pods[0]!, [{ type: 'BlockStored', blockHashes: Array.from({ length: 10 }, (_, i) => String(8000 + i)), parentBlockHash: null, tokenIds: [...tail], blockSize: 16, loraId: null }]);
    const truncated = { ...body, truncate_prompt_tokens: keep };
    await waitFor(async () => (await scores(truncated))[0] === 1, 'the tail\'s blocks to match the truncated request');
    expect(await scores(truncated)).toEqual([1, 0]);
    // Without the field the request's blocks start at the prompt's first token: none of them is the tail's.
    expect(await scores(body)).toEqual([0, 0]);
  });

  test('a request vLLM serves without a prefix-cache lookup (prompt logprobs: kv_cache_manager.py @ v0.10.0 get_computed_blocks) scores 0 on the holder and predicts its whole prompt uncached', async () => {
    const body = chat('What does the logprobs appendix say?', 'the logprobs manual');
    const stored = await storedFor(body, 7000);
    await publish(pods[0]!, [stored]);
    await waitFor(async () => (await scores(body))[0] === 1, 'the prompt to be indexed');
    const state = new CycleState();
    const withPromptLogprobs = { ...body, prompt_logprobs: 1 };
    expect(await scores(withPromptLogprobs, undefined, undefined, state)).toEqual([0, 0]);
    expect(state.get(PREFIX_MATCH)?.cachedLength.get(pods[0]!) ?? 0).toBe(0);
    expect(state.get(PREFIX_MATCH)?.heldBlocks).toBeUndefined();
    expect(state.get(PREFIX_MATCH)?.promptLength).toBeGreaterThan(0);
  });

  test('/v1/responses is keyed as the chat vLLM renders from it (serving_responses.py): instructions as the system message, the input as the user\'s', async () => {
    const body = chat('What does the responses appendix say?', 'the responses manual');
    const [system, user] = body.messages;
    const stored = await storedFor(body, 7500);
    await publish(pods[1]!, [stored]);
    await waitFor(async () => (await scores(body))[1] === 1, 'the chat to be indexed');
    const responses = { model: body.model, instructions: system!.content, input: user!.content };
    expect(await scores(responses, undefined, '/v1/responses')).toEqual([0, 1]);
    // Read by its fields alone (no path) it was a raw text prompt, which shares no block with the chat.
    expect(await scores(responses)).toEqual([0, 0]);
  });

  test('/v1/responses with a function call item is routed unkeyed: which prompt vLLM 0.10.0 renders from such items is not modelled (the approximate scorer keys their JSON, the precise one must match vLLM\'s tokens)', async () => {
    const body = chat('What does the tooling appendix say?', 'the tooling manual');
    const [system, user] = body.messages;
    const stored = await storedFor(body, 7700);
    await publish(pods[1]!, [stored]);
    await waitFor(async () => (await scores(body))[1] === 1, 'the chat to be indexed');
    const responses = {
      model: body.model, instructions: system!.content,
      input: [{ role: 'user', content: user!.content }, { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"q":"tooling"}' }],
    };
    expect(await scores(responses, undefined, '/v1/responses')).toEqual([0, 0]);
  });

  test('a LoRA block reported by lora_id only (vLLM #27728 to #27577) matches requests for the adapter at that place of loraAdapters (--lora-modules order: serving_models.py @ v0.10.0 numbers them 1, 2, …); an id beyond the list matches nothing', async () => {
    const body = { ...chat('What does the invoice appendix say?', 'the invoice manual'), model: 'billing-lora' };
    const stored = await storedFor(body, 9000);
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    await publish(pods[1]!, [{ ...stored, loraId: 2 }]);
    await waitFor(async () => (await scores(body))[1] === 1, 'the id-only LoRA blocks to match the adapter\'s request');
    expect(await scores(body)).toEqual([0, 1]);
    // vLLM hashed them with lora_int_id 2: neither another adapter nor the base model can hit them.
    expect(await scores({ ...body, model: 'chat-lora' })).toEqual([0, 0]);
    expect(await scores({ ...body, model: MODEL })).toEqual([0, 0]);
    // An adapter loaded at run time gets the next id on each pod, which no request can be told.
    const other = { ...chat('What does the audit appendix say?', 'the audit manual'), model: 'runtime-lora' };
    const storedOther = await storedFor(other, 9500);
    const before = scorer.index.blocksOf(pods[0]!);
    await publish(pods[0]!, [{ ...storedOther, loraId: 3 }]);
    await waitFor(() => scorer.index.blocksOf(pods[0]!) >= before + storedOther.blockHashes.length, 'the run-time LoRA blocks to be indexed');
    expect(await scores(other)).toEqual([0, 0]);
  });

  test('loraAdapters: a list of distinct names', () => {
    const config = (list: string) => parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0" }
      loraAdapters: ${list}
`);
    expect(() => config('[sql, chat, sql]')).toThrow(/plugins\[0\]\.parameters\.loraAdapters\[2\]: names "sql" twice; list each adapter once, in --lora-modules order/);
    expect(() => config('sql')).toThrow(/plugins\[0\]\.parameters\.loraAdapters: must be a list of strings/);
  });

  test('a LoRA block reported by lora_id only (vLLM #27728 to #27577, no lora_name) never counts for the base model', async () => {
    // vllm/v1/core/kv_cache_utils.py @ v0.10.0 puts lora_int_id in the extra keys: a base-model request cannot hit it.
    const body = chat('What does the glossary say?', 'the glossary');
    const stored = await storedFor(body, 7000);
    const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
    const before = scorer.index.blocksOf(pods[1]!);
    await publish(pods[1]!, [{ ...stored, loraId: 3 }]);
    await waitFor(() => scorer.index.blocksOf(pods[1]!) >= before + stored.blockHashes.length, 'the LoRA blocks to be indexed');
    expect(await scores(body)).toEqual([0, 0]);
  });
});

describe('score normalization', () => {
  test('min-max as llm-d (utils.go indexedScoresToNormalizedScoredPods @ v0.8.0): holders only, ties and lone holders 1', () => {
    expect(minMaxNormalized([undefined, 3, 5, 4])).toEqual([0, 0, 1, 0.5]);
    expect(minMaxNormalized([undefined, 2, undefined])).toEqual([0, 1, 0]);
    expect(minMaxNormalized([6, 6])).toEqual([1, 1]);
    expect(minMaxNormalized([undefined, undefined])).toEqual([0, 0]);
    expect(minMaxNormalized([1.8, 2])).toEqual([0, 1]); // tier-weighted: CPU-held blocks count 0.8
  });

  test('a holder whose only copy is in a tier weighted 0 is in the min-max population at 0, as in KVM\'s score map (kvblock_scorer.go @ llm-d-kv-cache v0.7.1)', () => {
    // A holds 3 GPU blocks, B 1, C block 0 on a CPU tier weighted 0: upstream's min is C's 0.
    expect(minMaxNormalized([3, 1, 0])).toEqual([1, 1 / 3, 0]);
    // Only zero-weight holders: min equals max, every holder 1 (utils.go L32-34); a pod holding nothing stays 0.
    expect(minMaxNormalized([0, 0, undefined])).toEqual([1, 1, 0]);
  });

  test('scoreNormalization defaults to share, llm-d\'s matched/total since llm-d-router v0.9.0 (#1107); v0.8.0\'s min-max on request; kvroute\'s precise config states share; anything else is refused', () => {
    expect(resolvePluginParameters('precise-prefix-cache-scorer', {})).toMatchObject({ scoreNormalization: 'share' });
    expect(resolvePluginParameters('precise-prefix-cache-scorer', { scoreNormalization: 'min-max' })).toMatchObject({ scoreNormalization: 'min-max' });
    const precise = preciseEndpointPickerConfig({ mode: 'central', zmqEndpoint: 'tcp://*:5557', blockSize: 16, modelName: 'm' });
    expect(precise.plugins.find((p) => p.type === 'precise-prefix-cache-scorer')?.parameters).toMatchObject({ scoreNormalization: 'share' });
    expect(() => resolvePluginParameters('precise-prefix-cache-scorer', { scoreNormalization: 'max' })).toThrow('scoreNormalization: must be "min-max" or "share", got "max"');
  });
});

describe('tokenizers by model (no modelName configured)', () => {
  // llm-d v0.8.0 refuses a config without tokenizersPoolConfig.modelName (precise_prefix_cache.go); kvroute takes the
  // base model from the events' topics, so a name it could not load (a LoRA adapter's) must not stick for the others.
  test('a first request naming a LoRA adapter before any event does not turn precise scoring off: the base model\'s tokenizer loads when an event names it', async () => {
    const scheduler = buildScheduler(subscribedConfig('', `
      speculativeIndexing: false
      loraAdapters: [chat-lora]`));
    await scheduler.plugins.start();
    const pub = new TestKvEventPublisher();
    try {
      const pod = '10.0.0.1:8000';
      const snapshot: EndpointSnapshot = {
        endpoint: { key: pod, name: pod, namespace: 'ns', address: '10.0.0.1', port: 8000, labels: {} },
        metrics: { ...EMPTY_METRICS, updateTime: Date.now() }, activeRequests: 0,
      };
      scheduler.plugins.addEndpoint(snapshot.endpoint);
      const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
      const body = (model: string) => ({ model, messages: [{ role: 'user', content: `Tell me about tokenizers. ${'More context. '.repeat(40)}` }] });
      const score = async (model: string): Promise<number[]> => {
        const parsed = parseRequestBody(Buffer.from(JSON.stringify(body(model))));
        const request = { requestId: 'r', model, prompt: '', input: parsed.input, headers: {}, attributes: new CycleState() };
        await scorer.prepareRequest(request);
        return scorer.score({ request, state: new CycleState() }, [snapshot]);
      };
      expect(await score('chat-lora')).toEqual([0]); // no tokenizer named chat-lora
      const own = ModelTokenizer.load(resolveTokenizerFiles({ model: MODEL, hubCache: '/nonexistent' }));
      const { ids } = (await own.promptTokens(parseRequestBody(Buffer.from(JSON.stringify(body(MODEL)))).input))!;
      const full = Math.floor(ids.length / 16);
      pub.connect(scorer.subscriber.boundEndpoint!);
      await pub.waitSubscribed();
      await pub.publish([{
        type: 'BlockStored', blockHashes: Array.from({ length: full }, (_, i) => String(100 + i)), parentBlockHash: null,
        tokenIds: [...ids.slice(0, full * 16)], blockSize: 16, loraId: null,
      }], { topic: `kv@${pod}@${MODEL}`, seq: 0n });
      await waitFor(() => scorer.index.blocksOf(pod) >= full, 'the blocks to be indexed');
      await waitFor(async () => (await score(MODEL))[0] === 1, 'the base model\'s tokenizer to load and the request to match');
    } finally {
      pub.close();
      await scheduler.plugins.close();
    }
  });
  // Each vLLM server tokenizes with its own model's tokenizer; a pool whose events name two base models keys each
  // request with the tokenizer of the base model it names, not the first one the events named (tokenizer audit F13).
  test('a request naming the second of two base models the events named is keyed with that model\'s tokenizer', async () => {
    const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'kvroute-two-models-'));
    const [withBos, without] = ['acme/with-bos', 'acme/without-bos'];
    fs.mkdirSync(nodePath.join(dir, withBos), { recursive: true });
    fs.mkdirSync(nodePath.join(dir, without), { recursive: true });
    writeTemplateTokenizer(nodePath.join(dir, withBos), ['<s>', 'A'], { bos_token: '<s>' });
    writeTemplateTokenizer(nodePath.join(dir, without), ['A'], {});
    const scheduler = buildScheduler(subscribedConfig(`
        tokenizersPoolConfig: { local: { autoDiscoveryDir: "${dir}" } }`, `
      speculativeIndexing: false`));
    await scheduler.plugins.start();
    const pub = new TestKvEventPublisher();
    try {
      const pods = ['10.0.0.1:8000', '10.0.0.2:8000'];
      const snapshots: EndpointSnapshot[] = pods.map((key) => ({
        endpoint: { key, name: key, namespace: 'ns', address: key.split(':')[0]!, port: 8000, labels: {} },
        metrics: { ...EMPTY_METRICS, updateTime: Date.now() }, activeRequests: 0,
      }));
      for (const s of snapshots) scheduler.plugins.addEndpoint(s.endpoint);
      const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
      const prompt = 'Every pod serves its own model, with its own vocabulary. '.repeat(2);
      const score = async (model: string): Promise<number[]> => {
        const parsed = parseRequestBody(Buffer.from(JSON.stringify({ model, prompt })));
        const request = { requestId: 'r', model, prompt: '', input: parsed.input, headers: {}, attributes: new CycleState() };
        await scorer.prepareRequest(request);
        return scorer.score({ request, state: new CycleState() }, snapshots);
      };
      // What each model's vLLM prefills for the prompt: with and without the BOS, so every block differs.
      const ids = async (model: string) => [...(await ModelTokenizer.load(resolveTokenizerFiles({ model, path: nodePath.join(dir, model) })).promptTokens(parseRequestBody(Buffer.from(JSON.stringify({ prompt }))).input))!.ids];
      const stored = async (pod: string, model: string, seq: bigint, first: number) => {
        const tokens = await ids(model);
        const full = Math.floor(tokens.length / 16);
        await pub.publish([{
          type: 'BlockStored', blockHashes: Array.from({ length: full }, (_, i) => String(first + i)), parentBlockHash: null,
          tokenIds: tokens.slice(0, full * 16), blockSize: 16, loraId: null,
        }], { topic: `kv@${pod}@${model}`, seq });
        await waitFor(() => scorer.index.blocksOf(pod) >= full, `${model}'s blocks to be indexed on ${pod}`);
      };
      pub.connect(scorer.subscriber.boundEndpoint!);
      await pub.waitSubscribed();
      await stored(pods[0]!, withBos, 0n, 100);
      await stored(pods[1]!, without, 0n, 200);
      expect(await ids(withBos)).not.toEqual(await ids(without));
      await waitFor(async () => (await score(without))[1] === 1, 'the second model\'s request to match its own pod');
      expect(await score(without)).toEqual([0, 1]);
      expect(await score(withBos)).toEqual([1, 0]);
    } finally {
      pub.close();
      await scheduler.plugins.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
