/**
 * llm-d-router v0.10.0's predicted-latency family on kvroute's online latency model (no sidecar):
 * - `predicted-latency-producer` (requestcontrol/dataproducer/predictedlatency/: plugin.go Config and parseSLOHeaders,
 *   prediction.go validatePrediction and its TPOT neutralization; plugin_test.go, prediction_test.go);
 * - `slo-headroom-tier-filter` (scheduling/filter/sloheadroomtier/plugin_test.go, test by test);
 * - `latency-slo-admitter` (requestcontrol/admitter/latencyslo/plugin_test.go, case by case);
 * - llm-d's guide "predicted-latency-slo" verbatim through buildScheduler and RequestControl: an SLO header makes the
 *   tier filter drop the pod predicted too slow, and the admitter deny a sheddable request no pod can meet.
 */
import { seededRandom } from '@kvroute/testkit';
import { ConfigError } from '../src/config/errors';
import { parseEndpointPickerConfig, resolvePluginParameters } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import type { IncomingRequest } from '../src/extproc/request-director';
import { NOT_ADMITTED_PREFIX, RequestControl } from '../src/requestcontrol/request-control';
import { CycleState, SILENT_PLUGIN_LOGGER, type Plugin, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { LatencySloAdmitter } from '../src/scheduling/plugins/latency-slo-admitter';
import { hasPrefillRole, parseSloHeader, predictionInfo, PredictedLatencyProducer, sloOf, TPOT_SLO_HEADERS, TTFT_SLO_HEADERS, type LatencyPredictionInfo } from '../src/scheduling/plugins/predicted-latency-producer';
import { headroomScoresInto } from '../src/scheduling/plugins/headroom-score';
import type { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import { SloHeadroomTierFilter } from '../src/scheduling/plugins/slo-headroom-tier-filter';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';
import { LLMD_GUIDE_CONFIGS } from './llmd-guides';
import { configErrorOf } from './config-error';

function endpoint(name: string, metrics: Partial<EndpointMetrics> = {}, activeRequests = 0): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: { ...EMPTY_METRICS, updateTime: 1, ...metrics },
    activeRequests,
  };
}

const req = (headers: Record<string, string> = {}, prompt = 'p'): LLMRequest => ({ requestId: 'r', model: 'm', prompt, headers, attributes: new CycleState() });

function handle(random: () => number = () => 0.5, plugins: Plugin[] = []): PluginHandle {
  return {
    now: () => 1_000_000, random, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER,
    plugin: (name) => plugins.find((p) => p.name === name), plugins: () => plugins, profiles: () => [],
  };
}

/** A producer stand-in whose predictions the test sets (upstream's tests put LatencyPredictionInfo on endpoints). */
function fakeProducer(byName: Record<string, LatencyPredictionInfo> | undefined): PredictedLatencyProducer {
  const producer = new PredictedLatencyProducer('plp', resolvePluginParameters('predicted-latency-producer', undefined), handle());
  producer.predict = (_request, candidates) => byName === undefined ? undefined
    : new Map(candidates.filter((c) => byName[c.endpoint.name] !== undefined).map((c) => [c.endpoint.key, byName[c.endpoint.name]!]));
  return producer;
}

/** upstream's makeEndpointWithPrediction(ttftHeadroom, tpotHeadroom). */
const headroom = (ttftHeadroom: number, tpotHeadroom: number): LatencyPredictionInfo =>
  ({ ttftValid: ttftHeadroom >= 0, tpotValid: tpotHeadroom >= 0, ttftHeadroom, tpotHeadroom, ttft: 0, tpot: 0, dispatchedRequestCount: 0 });

describe('predicted-latency-producer parameters (plugin.go Config, DefaultConfig, validate @ v0.10.0)', () => {
  test('upstream\'s defaults; kvroute adds latencyScorerName', () => {
    expect(resolvePluginParameters('predicted-latency-producer', undefined)).toEqual({
      samplingMean: 1000, maxDecodeTokenSamplesForPrediction: 0, sloBufferFactor: 1, contextTTL: '5m', streamingMode: false,
      endpointRoleLabel: '', predictInProduce: true, prefixMatchInfoProducerName: '', latencyScorerName: '',
    });
  });

  test('every upstream parameter kvroute can take is accepted (the deprecated ones ignored, as upstream ignores them)', () => {
    expect(resolvePluginParameters('predicted-latency-producer', {
      samplingMean: 50, maxDecodeTokenSamplesForPrediction: 3, sloBufferFactor: 0.9, contextTTL: '1m', streamingMode: true,
      endpointRoleLabel: 'llm-d.ai/role', predictInProduce: false, prefixMatchInfoProducerName: 'x', useEncoderCacheFeatures: false,
      encoderCacheMatchInfoProducerName: '', inFlightLoadProducerName: '',
    })).toMatchObject({ sloBufferFactor: 0.9, streamingMode: true, predictInProduce: false, prefixMatchInfoProducerName: 'x' });
  });

  // plugin.go @ v0.10.0: `ContextTTL time.Duration \`json:"contextTTL,omitempty"\`` decoded by encoding/json
  // (PredictedLatencyFactory: rawParameters.Decode): time.Duration has no UnmarshalJSON, so upstream takes a JSON
  // integer of nanoseconds and refuses a string or a fraction. kvroute takes the integer too, and keeps its Go duration
  // string as an extension.
  test('contextTTL: 300000000000 (5 min in ns, the form upstream\'s decoder takes) loads and is kept as given; "5m" stays accepted (kvroute)', () => {
    expect(resolvePluginParameters('predicted-latency-producer', { contextTTL: 300_000_000_000 }, 'p')).toMatchObject({ contextTTL: 300_000_000_000 });
    expect(resolvePluginParameters('predicted-latency-producer', { contextTTL: '5m' }, 'p')).toMatchObject({ contextTTL: '5m' });
  });

  test('contextTTL: 1.5 is refused, as encoding/json refuses a fraction for a time.Duration', () => {
    expect(() => resolvePluginParameters('predicted-latency-producer', { contextTTL: 1.5 }, 'p'))
      .toThrow('p.contextTTL: must be an integer number of nanoseconds (Go\'s time.Duration) or a duration like');
  });

  test.each([
    [{ sloBufferFactor: 0 }, 'p.sloBufferFactor: sloBufferFactor must be > 0, got 0.000000'],
    [{ sloBufferFactor: -1 }, 'p.sloBufferFactor: sloBufferFactor must be > 0, got -1.000000'],
    [{ useEncoderCacheFeatures: true }, 'p.useEncoderCacheFeatures: true is not supported: kvroute has no multimodal encoder-cache producer'],
    [{ encoderCacheMatchInfoProducerName: 'mm' }, 'p.encoderCacheMatchInfoProducerName: is not supported'],
    [{ inFlightLoadProducerName: 'ifl' }, 'p.inFlightLoadProducerName: is not supported: kvroute\'s TTFT model (the latency-scorer) counts the prefill in flight'],
    [{ streamingMode: 'yes' }, 'p.streamingMode: must be true or false'],
    [{ bogus: 1 }, 'p.bogus: unknown field'],
  ])('%j is refused: %s', (raw, message) => {
    expect(() => resolvePluginParameters('predicted-latency-producer', raw, 'p')).toThrow(ConfigError);
    expect(() => resolvePluginParameters('predicted-latency-producer', raw, 'p')).toThrow(message);
  });

  test('without a latency-scorer the producer is refused at start-up, naming the fix', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: predicted-latency-producer\n- type: max-score-picker\n'
      + 'schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: predicted-latency-producer\n  - pluginRef: max-score-picker\n')))
      .toThrow('predicts TTFT with kvroute\'s latency-scorer');
  });

  test('the latency-scorer must be in each profile listing the producer (its commits count the queued prefill)', () => {
    expect(() => buildScheduler(parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: predicted-latency-producer\n- type: latency-scorer\n- type: max-score-picker\n'
      + 'schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: predicted-latency-producer\n  - pluginRef: max-score-picker\n')))
      .toThrow('schedulingProfiles[0].plugins: lists "predicted-latency-producer" (predicted-latency-producer), which predicts with "latency-scorer"');
  });
});

describe('parseSLOHeaders (plugin_test.go TestParseSLOHeaders @ v0.10.0)', () => {
  test.each([
    ['SLO headers', { 'x-llm-d-slo-ttft-ms': '100', 'x-llm-d-slo-tpot-ms': '50' }, 100, 50],
    ['old aliases', { 'x-slo-ttft-ms': '101', 'x-slo-tpot-ms': '51' }, 101, 51],
    ['new headers take precedence', { 'x-llm-d-slo-ttft-ms': '102', 'x-slo-ttft-ms': '999', 'x-llm-d-slo-tpot-ms': '52', 'x-slo-tpot-ms': '999' }, 102, 52],
    ['none: 0', {}, 0, 0],
    ['not a float: 0 (upstream logs BadRequest and goes on)', { 'x-llm-d-slo-ttft-ms': 'fast', 'x-llm-d-slo-tpot-ms': ' 5' }, 0, 0],
    ['Go float forms', { 'x-llm-d-slo-ttft-ms': '1e3', 'x-llm-d-slo-tpot-ms': '.5' }, 1000, 0.5],
  ])('%s', (_name, headers, ttft, tpot) => {
    expect(sloOf(req(headers))).toEqual({ ttftSlo: ttft, tpotSlo: tpot });
  });

  // strconv.ParseFloat (Go's src/strconv/atof.go special, readFloat, atof64; atoi.go underscoreOK), whose error
  // parseFloatHeader turns into 0 (plugin.go @ v0.10.0).
  test.each([
    ['hexadecimal with a p exponent', '0x1p10', 1024],
    ['hexadecimal with a fraction', '0x1.8p+9', 768],
    ['hexadecimal with an underscore after its prefix', '0X_1P10', 1024],
    ['hexadecimal without an exponent: a syntax error', '0x10', 0],
    ['underscores between digits', '1_000', 1000],
    ['underscores in the fraction and exponent', '1_0.5_0e1_0', 10.5e10],
    ['two underscores in a row', '1__0', 0],
    ['a leading underscore', '_1', 0],
    ['a trailing underscore', '1_', 0],
    ['beyond float64: ErrRange, so 0', '1e400', 0],
    ['beyond float64, negative: 0', '-1e400', 0],
    ['a hexadecimal beyond float64: 0', '0x1p2000', 0],
    ['below float64: 0 without an error', '1e-400', 0],
    ['nan', 'NaN', NaN],
    ['a signed nan is not a float', '+nan', 0],
    ['a signed nan is not a float (-)', '-NaN', 0],
    ['signed infinity', '-Infinity', -Infinity],
    ['"infinit" is not a float', 'infinit', 0],
    ['a binary prefix is not a float', '0b101', 0],
  ])('%s: %j', (_name, value, expected) => {
    expect(parseSloHeader({ 'x-llm-d-slo-ttft-ms': value }, TTFT_SLO_HEADERS)).toBe(expected);
  });

  test('the header names are metadata.TTFTSLOHeaderKey/TPOTSLOHeaderKey and their deprecated aliases (pkg/epp/metadata/consts.go)', () => {
    expect(TTFT_SLO_HEADERS).toEqual(['x-llm-d-slo-ttft-ms', 'x-slo-ttft-ms']);
    expect(TPOT_SLO_HEADERS).toEqual(['x-llm-d-slo-tpot-ms', 'x-slo-tpot-ms']);
    expect(parseSloHeader({ 'x-llm-d-slo-ttft-ms': 'Inf' }, TTFT_SLO_HEADERS)).toBe(Infinity);
  });
});

describe('validatePrediction with TPOT neutralized (prediction_test.go @ v0.10.0)', () => {
  test('TestValidatePrediction_NonStreamingMode: TTFT 50 < SLO 100 valid, TPOT always valid with headroom 0', () => {
    expect(predictionInfo(50, 100, 2)).toEqual({ ttftValid: true, tpotValid: true, ttftHeadroom: 50, tpotHeadroom: 0, ttft: 50, tpot: 0, dispatchedRequestCount: 2 });
  });

  test('TTFT exceeds SLO: invalid, negative headroom; at the SLO exactly invalid too (ttft < SLO)', () => {
    expect(predictionInfo(150, 100, 0)).toMatchObject({ ttftValid: false, ttftHeadroom: -50 });
    expect(predictionInfo(100, 100, 0)).toMatchObject({ ttftValid: false, ttftHeadroom: 0 });
  });

  test('no SLO: SLO 0, every prediction invalid with headroom −predicted (upstream\'s no-SLO convention)', () => {
    expect(predictionInfo(30, 0, 0)).toMatchObject({ ttftValid: false, ttftHeadroom: -30, tpotValid: true, tpotHeadroom: 0 });
  });
});

describe('predicted-latency-producer on kvroute\'s latency-scorer', () => {
  const config = (producerParameters = '') => parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: predicted-latency-producer${producerParameters}
- type: latency-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: predicted-latency-producer
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`);

  test('per candidate: TTFT in ms from the latency-scorer\'s model, headroom against the header, this EPP\'s dispatched count', () => {
    const scheduler = buildScheduler(config(), { now: () => 1_000_000 });
    const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
    const latency = scheduler.plugin('latency-scorer') as unknown as { predictTtftSeconds(r: LLMRequest, m: undefined, c: readonly EndpointSnapshot[]): Float64Array };
    const prompt = 'x'.repeat(4000);
    const pods = [endpoint('fast', { waitingQueueSize: 0 }, 1), endpoint('slow', { waitingQueueSize: 4 }, 3)];
    // The requests committed there (request control's pre-request hooks), which the snapshots' in-flight counts show.
    [0, 1, 1, 1].forEach((i) => producer.preRequest(req(), { target: pods[i]!, profile: 'default', scores: new Map() }));
    const predictions = producer.predict(req({ 'x-llm-d-slo-ttft-ms': '500' }, prompt), pods)!;
    const expected = latency.predictTtftSeconds(req({}, prompt), undefined, pods);
    const fast = predictions.get('fast:8000')!;
    const slow = predictions.get('slow:8000')!;
    expect(fast.ttft).toBeCloseTo(expected[0]! * 1000, 6);
    expect(slow.ttft).toBeCloseTo(expected[1]! * 1000, 6);
    // Prior 0.2 ms/token, 20 ms overhead; 4000 characters ≈ 1000 tokens; the slow pod has 4 prompts waiting ahead.
    expect(fast.ttft).toBeCloseTo(220, 0);
    expect(slow.ttft).toBeCloseTo(1020, 0);
    expect(fast).toMatchObject({ ttftValid: true, ttftHeadroom: 500 - fast.ttft, tpotValid: true, tpotHeadroom: 0, tpot: 0, dispatchedRequestCount: 1 });
    expect(slow).toMatchObject({ ttftValid: false, dispatchedRequestCount: 3 });
  });

  // dataproducer_hooks.go Produce: NewLatencyPredictionInfo(..., pl.getEndpointRunningRequestCount(endpoint)), the size
  // of the producer's running queue there (plugin.go getEndpointRunningRequestCount), which PreRequest fills with the
  // primary profile's target only (requestcontrol_hooks.go) and whose Add refuses a negative TPOT SLO
  // (running_request_tpot_slo_queue.go), emptied at the response's end. Not the pod's in-flight count: a pod with
  // requests in flight that the producer did not queue (a P/D request's prefill pick, a negative TPOT SLO) is idle to
  // the latency-scorer's idle preference upstream.
  test('dispatchedRequestCount: the requests the producer queued on the endpoint (getEndpointRunningRequestCount), not the pod\'s in-flight count', () => {
    const scheduler = buildScheduler(config(), { now: () => 1_000_000 });
    const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
    // a: two requests in flight, one of them with a negative TPOT SLO the queue refused; b: one in flight (the prefill
    // pick of a P/D request whose primary target is elsewhere: no commit to b reaches the producer); c: one, ended.
    const a = endpoint('a', {}, 2);
    const b = endpoint('b', {}, 1);
    const c = endpoint('c', {}, 0);
    const commit = (target: EndpointSnapshot, headers: Record<string, string> = {}) => {
      const r = req(headers);
      producer.preRequest(r, { target, profile: 'default', scores: new Map() });
      return r;
    };
    commit(a, { 'x-llm-d-slo-tpot-ms': '30' });
    commit(a, { 'x-llm-d-slo-tpot-ms': '-1' });
    producer.responseComplete(commit(c), c.endpoint);
    const predictions = producer.predict(req(), [a, b, c])!;
    expect([a, b, c].map((x) => predictions.get(x.endpoint.key)!.dispatchedRequestCount)).toEqual([1, 0, 0]);
  });

  test('through request control: a routed request counts on its pod from its commit to its end; one with a negative TPOT SLO counts in flight but not there', async () => {
    const ds = new Datastore({ scrape: false });
    try {
      for (let i = 0; i < 2; i++) {
        ds.upsertEndpoint({ key: `10.0.0.${i + 1}:8000`, name: `p${i}`, namespace: 'ns', address: `10.0.0.${i + 1}`, port: 8000, labels: {} });
        ds.setMetrics(`10.0.0.${i + 1}:8000`, { waitingQueueSize: 0, runningQueueSize: 1, kvCacheUsagePercent: 0.5, updateTime: Date.now(), consecutiveFailures: 0 });
      }
      const scheduler = buildScheduler(parseEndpointPickerConfig(LLMD_GUIDE_CONFIGS['predicted-latency-slo']), { now: () => Date.now(), random: seededRandom(5) });
      const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
      const control = new RequestControl({ datastore: ds, scheduler, monotonicSeconds: () => Date.now() / 1000 });
      const dispatched = () => {
        const counts = producer.predict(req(), ds.snapshot())!;
        return ds.endpoints().map((e) => [ds.activeRequests(e.key), counts.get(e.key)!.dispatchedRequestCount]);
      };
      const route = async (headers: Record<string, string>) => {
        const d = await control.route({
          requestId: `q${Math.random()}`,
          headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
          body: Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello '.repeat(100) })),
          filterMetadata: {},
        });
        if (d.kind !== 'route') throw new Error(JSON.stringify(d));
        return d;
      };
      const first = await route({});
      const at = ds.endpoints().findIndex((e) => e.key === first.endpoint);
      expect(dispatched()[at]).toEqual([1, 1]);
      control.release(first.ticket, 'completed');
      expect(dispatched()).toEqual([[0, 0], [0, 0]]);
      const refused = await route({ 'x-llm-d-slo-tpot-ms': '-1' });
      expect(dispatched()[ds.endpoints().findIndex((e) => e.key === refused.endpoint)]).toEqual([1, 0]);
      control.release(refused.ticket, 'cancelled');
    } finally {
      ds.stop();
    }
  });

  // plugin_test.go TestPredictedLatency_GetPodRunningRequestCount: 0, 1, 3 requests in the endpoint's queue.
  test.each([[[], 0], [['0.04'], 1], [['0.04', '0.03', '0.05'], 3]])('TestPredictedLatency_GetPodRunningRequestCount: TPOT SLOs %j queued, count %d', (slos, expected) => {
    const scheduler = buildScheduler(config(), { now: () => 1_000_000 });
    const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
    const pod = endpoint('test-pod', { kvCacheUsagePercent: 0.5, waitingQueueSize: 2, runningQueueSize: 1 });
    for (const slo of slos) producer.preRequest(req({ 'x-llm-d-slo-tpot-ms': slo }), { target: pod, profile: 'default', scores: new Map() });
    expect(producer.predict(req(), [pod])!.get(pod.endpoint.key)!.dispatchedRequestCount).toBe(expected);
  });

  test('predictInProduce: false publishes nothing (training-only mode)', () => {
    const scheduler = buildScheduler(config('\n  parameters:\n    predictInProduce: false'), { now: () => 1_000_000 });
    expect((scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer).predict(req(), [endpoint('a')])).toBeUndefined();
  });
});

describe('validatePrediction with TPOT validated (prediction_test.go TestValidatePrediction_StreamingMode @ v0.10.0)', () => {
  const streaming = (tpotMs: number, tpotSlo: number, podMinTpotSlo = 0, sloBufferFactor = 1) => ({ tpotMs, tpotSlo, podMinTpotSlo, sloBufferFactor, validate: true });
  test('both within SLO: valid, positive headroom', () => {
    expect(predictionInfo(50, 100, 0, streaming(20, 30))).toMatchObject({ ttftValid: true, tpotValid: true, tpotHeadroom: 10, tpot: 20 });
  });
  test('TTFT exceeds SLO', () => expect(predictionInfo(150, 100, 0, streaming(20, 30))).toMatchObject({ ttftValid: false, tpotValid: true }));
  test('TPOT exceeds SLO', () => expect(predictionInfo(50, 100, 0, streaming(40, 30))).toMatchObject({ ttftValid: true, tpotValid: false, tpotHeadroom: -10 }));
  test('podMinTPOTSLO tightens threshold: 25 > 20 × 1.0', () => {
    expect(predictionInfo(50, 100, 0, streaming(25, 30, 20))).toMatchObject({ tpotValid: false, tpotHeadroom: -5 });
  });
  test('sloBufferFactor multiplies the request\'s SLO and the pod minimum', () => {
    expect(predictionInfo(50, 100, 0, streaming(25, 30, 0, 0.5))).toMatchObject({ tpotValid: false, tpotHeadroom: -10 });
    expect(predictionInfo(50, 100, 0, streaming(25, 30, 40, 1.2))).toMatchObject({ tpotValid: true, tpotHeadroom: 36 - 25 });
    expect(predictionInfo(50, 100, 0, streaming(25, 30, 20, 1.2))).toMatchObject({ tpotValid: false });
  });
  test('no TPOT SLO in streaming mode: buffered 0, every prediction invalid (upstream\'s no-SLO convention)', () => {
    expect(predictionInfo(50, 100, 0, streaming(20, 0))).toMatchObject({ tpotValid: false, tpotHeadroom: -20 });
  });
  test('TestValidatePrediction_NonStreamingMode: TPOT 999 against SLO 30 valid, headroom 0, the prediction still published', () => {
    expect(predictionInfo(50, 100, 0, { ...streaming(999, 30), validate: false })).toMatchObject({ ttftValid: true, tpotValid: true, tpotHeadroom: 0, tpot: 999 });
  });
  test('TestValidatePrediction_PrefillEndpointNeutralizeTPOT: hasPrefillRole by the role label\'s value', () => {
    const ep = (labels: Record<string, string>) => ({ key: 'k', name: 'n', namespace: '', address: 'a', port: 1, labels });
    expect(hasPrefillRole('role', ep({ role: 'prefill' }))).toBe(true);
    expect(hasPrefillRole('role', ep({ role: 'decode' }))).toBe(false);
    expect(hasPrefillRole('', ep({ role: 'prefill' }))).toBe(false);
  });
});

describe('predicted-latency-producer: TPOT from the latency-scorer\'s TPOT model (prediction.go generatePredictions @ v0.10.0)', () => {
  const config = (producerParameters = '') => parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: predicted-latency-producer${producerParameters}
- type: latency-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: predicted-latency-producer
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`);
  const producerOf = (parameters = '') => buildScheduler(config(parameters), { now: () => 1_000_000 }).plugin('predicted-latency-producer') as PredictedLatencyProducer;
  // The pods export the inter-token histogram (no tokens yet): the TPOT model predicts on its prior, 20 ms + 0.2 ms per
  // request in the batch the request joins (pod-tpot-model.ts DEFAULT_TPOT_PRIOR).
  const histogram = { interTokenCount: 0, interTokenSecondsSum: 0 };
  const idle = (labels: Record<string, string> = {}) => ({ ...endpoint('idle', { ...histogram, runningQueueSize: 0 }), endpoint: { ...endpoint('idle').endpoint, labels } });
  const busy = () => endpoint('busy', { ...histogram, runningQueueSize: 200 }, 3);
  const STREAMING = '\n  parameters:\n    streamingMode: true';

  test('streamingMode: a large running batch is invalid for a tight TPOT SLO and valid for a loose one', () => {
    const producer = producerOf(STREAMING);
    const tight = producer.predict(req({ 'x-llm-d-slo-ttft-ms': '10000', 'x-llm-d-slo-tpot-ms': '40' }), [idle(), busy()])!;
    expect(tight.get('idle:8000')!.tpot).toBeCloseTo(20.2, 9);
    expect(tight.get('busy:8000')!.tpot).toBeCloseTo(20 + 0.2 * 201, 9);
    expect(tight.get('idle:8000')).toMatchObject({ tpotValid: true, ttftValid: true });
    expect(tight.get('idle:8000')!.tpotHeadroom).toBeCloseTo(40 - 20.2, 9);
    expect(tight.get('busy:8000')).toMatchObject({ tpotValid: false, ttftValid: true });
    expect(tight.get('busy:8000')!.tpotHeadroom).toBeCloseTo(40 - 60.2, 9);
    const loose = producer.predict(req({ 'x-llm-d-slo-ttft-ms': '10000', 'x-llm-d-slo-tpot-ms': '100' }), [idle(), busy()])!;
    expect(loose.get('busy:8000')).toMatchObject({ tpotValid: true });
    expect(loose.get('busy:8000')!.tpotHeadroom).toBeCloseTo(100 - 60.2, 9);
  });

  test('sloBufferFactor applies to the TPOT SLO: 100 × 0.5 = 50 < 60.2', () => {
    const producer = producerOf(`${STREAMING}\n    sloBufferFactor: 0.5`);
    const out = producer.predict(req({ 'x-llm-d-slo-tpot-ms': '100' }), [busy()])!;
    expect(out.get('busy:8000')).toMatchObject({ tpotValid: false });
    expect(out.get('busy:8000')!.tpotHeadroom).toBeCloseTo(50 - 60.2, 9);
  });

  test('streamingMode false (the default): TPOT predicted and published, but neutralized (valid, headroom 0)', () => {
    const out = producerOf().predict(req({ 'x-llm-d-slo-tpot-ms': '1' }), [busy()])!;
    expect(out.get('busy:8000')).toMatchObject({ tpotValid: true, tpotHeadroom: 0 });
    expect(out.get('busy:8000')!.tpot).toBeCloseTo(60.2, 9);
  });

  test('endpointRoleLabel: a prefill endpoint\'s TPOT is neutralized in streaming mode, a decode endpoint\'s is not', () => {
    const producer = producerOf(`${STREAMING}\n    endpointRoleLabel: llm-d.ai/role`);
    const prefillBusy = { ...busy(), endpoint: { ...busy().endpoint, labels: { 'llm-d.ai/role': 'prefill' } } };
    const decodeBusy = { ...busy(), endpoint: { ...busy().endpoint, key: 'busy2:8000', labels: { 'llm-d.ai/role': 'decode' } } };
    const out = producer.predict(req({ 'x-llm-d-slo-tpot-ms': '30' }), [prefillBusy, decodeBusy])!;
    expect(out.get('busy:8000')).toMatchObject({ tpotValid: true, tpotHeadroom: 0 });
    expect(out.get('busy2:8000')).toMatchObject({ tpotValid: false });
  });

  test('no pod has reported the inter-token histogram: TPOT neutralized as before the model (tpot 0), even in streaming mode', () => {
    const out = producerOf(STREAMING).predict(req({ 'x-llm-d-slo-tpot-ms': '1' }), [endpoint('busy', { runningQueueSize: 200 })])!;
    expect(out.get('busy:8000')).toMatchObject({ tpotValid: true, tpotHeadroom: 0, tpot: 0 });
  });

  test('the TPOT model learns from the pods\' scrapes: a pod whose tokens came 1 ms apart per running request is predicted so', () => {
    const producer = producerOf(STREAMING);
    // Scrapes of one pod at batches 10 and 50: 5 + 1 ms × batch per token.
    let count = 0;
    let sum = 0;
    for (let k = 1; k <= 40; k++) {
      const running = k % 2 === 0 ? 10 : 50;
      const snapshot = (tokens: number) => {
        count += tokens;
        sum += tokens * (0.005 + 0.001 * running);
        return endpoint('learnt', { runningQueueSize: running, interTokenCount: count, interTokenSecondsSum: sum, updateTime: 2 * k + (tokens > 0 ? 1 : 0) });
      };
      producer.predict(req(), [snapshot(0)]);
      producer.predict(req(), [snapshot(2000)]);
    }
    const out = producer.predict(req({ 'x-llm-d-slo-tpot-ms': '30' }), [endpoint('learnt', { runningQueueSize: 29, interTokenCount: count, interTokenSecondsSum: sum, updateTime: 1000 })])!;
    expect(out.get('learnt:8000')!.tpot).toBeCloseTo(5 + 30, 0);
    expect(out.get('learnt:8000')!.tpotValid).toBe(false);
  });

  test('podMinTPOTSLO: the tightest TPOT SLO among the requests committed to the endpoint (running_request_tpot_slo_queue.go), until their response ends', () => {
    const producer = producerOf(STREAMING);
    const target = idle();
    const commit = (headers: Record<string, string>): LLMRequest => {
      const r = req(headers);
      producer.preRequest(r, { target, profile: 'default', scores: new Map() });
      return r;
    };
    const check = () => producer.predict(req({ 'x-llm-d-slo-tpot-ms': '100' }), [target])!.get('idle:8000')!;
    expect(check()).toMatchObject({ tpotValid: true });
    expect(check().tpotHeadroom).toBeCloseTo(100 - 20.2, 9);
    const tight = commit({ 'x-llm-d-slo-tpot-ms': '20' });
    commit({ 'x-llm-d-slo-tpot-ms': '50' });
    expect(producer.endpointMinTpotSlo('idle:8000')).toBe(20);
    // 20.2 ms is past the running request's 20 ms: min(100, 20) × 1.
    expect(check()).toMatchObject({ tpotValid: false });
    expect(check().tpotHeadroom).toBeCloseTo(20 - 20.2, 9);
    producer.responseComplete(tight, target.endpoint);
    expect(producer.endpointMinTpotSlo('idle:8000')).toBe(50);
    expect(check().tpotHeadroom).toBeCloseTo(50 - 20.2, 9);
    // A running request without a TPOT SLO is 0 in the queue: the minimum is 0 and does not tighten (podMinTPOTSLO > 0).
    commit({});
    expect(producer.endpointMinTpotSlo('idle:8000')).toBe(0);
    expect(check().tpotHeadroom).toBeCloseTo(100 - 20.2, 9);
  });
});

describe('slo-headroom-tier-filter (sloheadroomtier/plugin_test.go @ v0.10.0)', () => {
  const filter = (epsilonExploreNeg: number, byName: Record<string, LatencyPredictionInfo> | undefined, random = () => 0.5) => {
    const producer = fakeProducer(byName);
    const f = new SloHeadroomTierFilter('tier', { epsilonExploreNeg, latencyPredictionInfoProducerName: '' }, handle(random, [producer]));
    f.resolveReferences();
    return (names: string[]) => {
      const cycle = { request: req(), state: new CycleState() };
      const candidates = names.map((n) => endpoint(n));
      const predictions = producer.predict(cycle.request, candidates);
      if (predictions !== undefined) cycle.state.set(producer.predictionsKey, predictions);
      return f.filter(cycle, candidates).map((c) => c.endpoint.name);
    };
  };

  test('TestFilter_SingleEndpoint', () => expect(filter(0.01, { a: headroom(-1, -1) })(['a'])).toEqual(['a']));
  test('TestFilter_NoPredictions: all kept', () => expect(filter(0, {})(['a', 'b'])).toEqual(['a', 'b']));
  test('no producer output at all (predictInProduce false): all kept', () => expect(filter(0, undefined)(['a', 'b'])).toEqual(['a', 'b']));
  test('TestFilter_AllPositive', () => expect(filter(0, { a: headroom(10, 5), b: headroom(0, 0) })(['a', 'b'])).toEqual(['a', 'b']));
  test('TestFilter_AllNegative', () => expect(filter(0, { a: headroom(-10, 5), b: headroom(5, -1) })(['a', 'b'])).toEqual(['a', 'b']));
  test('TestFilter_BothTiers_SelectPositive', () => expect(filter(0, { a: headroom(10, 5), b: headroom(-10, 5) })(['a', 'b'])).toEqual(['a']));
  test('TestFilter_BothTiers_EpsilonExploreNeg', () => expect(filter(1, { a: headroom(10, 5), b: headroom(-10, 5) })(['a', 'b'])).toEqual(['b']));
  test('TestFilter_NoPredictionGoesToNegative', () => expect(filter(1, { a: headroom(10, 5), b: headroom(-10, 5) })(['a', 'b', 'c'])).toEqual(['b', 'c']));

  test('epsilonExploreNeg is drawn from the plugin handle\'s random source: below it the negative tier', () => {
    expect(filter(0.01, { a: headroom(10, 5), b: headroom(-10, 5) }, () => 0.005)(['a', 'b'])).toEqual(['b']);
    expect(filter(0.01, { a: headroom(10, 5), b: headroom(-10, 5) }, () => 0.01)(['a', 'b'])).toEqual(['a']);
  });

  test('TestFactory_ValidConfig / TestFactory_InvalidEpsilon', () => {
    expect(resolvePluginParameters('slo-headroom-tier-filter', undefined)).toEqual({ epsilonExploreNeg: 0.01, latencyPredictionInfoProducerName: '' });
    expect(resolvePluginParameters('slo-headroom-tier-filter', { epsilonExploreNeg: 0.5 })).toMatchObject({ epsilonExploreNeg: 0.5 });
    expect(() => resolvePluginParameters('slo-headroom-tier-filter', { epsilonExploreNeg: 1.5 }, 'p')).toThrow('p.epsilonExploreNeg: epsilonExploreNeg must be in [0, 1], got 1.500000');
    expect(() => resolvePluginParameters('slo-headroom-tier-filter', { epsilonExploreNeg: -0.1 }, 'p')).toThrow('epsilonExploreNeg must be in [0, 1], got -0.100000');
  });

  test('a config without a predicted-latency-producer is refused at start-up (upstream: a required data dependency)', () => {
    const f = new SloHeadroomTierFilter('tier', { epsilonExploreNeg: 0.01, latencyPredictionInfoProducerName: '' }, handle());
    expect(() => f.resolveReferences()).toThrow('tier.type: reads the latency predictions of a predicted-latency-producer, and the config has none');
  });
});

describe('latency-slo-admitter (latencyslo/plugin_test.go TestLatencyAdmission_Admit @ v0.10.0)', () => {
  const SLO = { 'x-llm-d-slo-ttft-ms': '100', 'x-llm-d-slo-tpot-ms': '50' };
  const busy = (name: string) => endpoint(name, { kvCacheUsagePercent: 0.5, runningQueueSize: 5 });
  const admit = (headers: Record<string, string>, priority: number, pods: EndpointSnapshot[], byName: Record<string, LatencyPredictionInfo> | undefined) => {
    const a = new LatencySloAdmitter('lsa', { latencyPredictionInfoProducerName: '' }, handle(undefined, [fakeProducer(byName)]));
    a.resolveReferences();
    return a.admit(req(headers), priority, pods);
  };
  const invalid = headroom(-10, 0);
  const valid = headroom(10, 0);

  test('non-sheddable request: always admit', () => expect(admit(SLO, 0, [busy('a')], { a: invalid })).toBeUndefined());
  test('no SLO headers: admit', () => expect(admit({}, -1, [busy('a')], { a: invalid })).toBeUndefined());
  test('sheddable, all invalid, all busy, no cold: reject', () => {
    expect(admit(SLO, -1, [busy('a'), busy('b')], { a: invalid, b: invalid })).toBe('no valid endpoint available to serve the request');
  });
  test('sheddable, old SLO aliases: reject', () => expect(admit({ 'x-slo-ttft-ms': '100' }, -1, [busy('a')], { a: invalid })).toBeDefined());
  test('new SLO headers take precedence over old aliases (new 0 → no SLO → admit)', () => {
    expect(admit({ 'x-llm-d-slo-ttft-ms': '0', 'x-slo-ttft-ms': '100' }, -1, [busy('a')], { a: invalid })).toBeUndefined();
  });
  test('a TPOT SLO alone counts as an SLO', () => expect(admit({ 'x-llm-d-slo-tpot-ms': '50' }, -1, [busy('a')], { a: invalid })).toBeDefined());
  test('sheddable, all invalid, but one pod idle: admit', () => {
    expect(admit(SLO, -1, [busy('a'), endpoint('b', { kvCacheUsagePercent: 0.5, runningQueueSize: 0 })], { a: invalid, b: invalid })).toBeUndefined();
  });
  test('sheddable, all invalid, but a cold pod (KV < 2%): admit', () => {
    expect(admit(SLO, -1, [busy('a'), endpoint('b', { kvCacheUsagePercent: 0.01, runningQueueSize: 5 })], { a: invalid, b: invalid })).toBeUndefined();
    expect(admit(SLO, -1, [busy('a'), endpoint('b', { kvCacheUsagePercent: 0.02, runningQueueSize: 5 })], { a: invalid, b: invalid })).toBeDefined();
  });
  test('sheddable, one valid endpoint: admit', () => expect(admit(SLO, -1, [busy('a'), busy('b')], { a: invalid, b: valid })).toBeUndefined());
  test('sheddable, no prediction data on endpoints: admit (fail-open)', () => {
    expect(admit(SLO, -1, [busy('a')], {})).toBeUndefined();
    expect(admit(SLO, -1, [busy('a')], undefined)).toBeUndefined();
  });
});

describe('llm-d\'s predicted-latency-slo guide, verbatim, on kvroute\'s model', () => {
  const guide = LLMD_GUIDE_CONFIGS['predicted-latency-slo'];
  const prompt = (i: number) => `${i} `.padEnd(4000, 'x');

  test('buildScheduler: with a TTFT SLO the tier filter drops the pod predicted too slow; without one the slow pod scores 0.01 against 1.01 (scorer/latency/plugin.go scoreBucket @ v0.10.0)', () => {
    // Draws of at least 0.02: the tier filter never explores its negative tier (epsilonExploreNeg 0.01). Without an SLO
    // both pods are negative and idle (nothing dispatched): min-max within them, the fastest 1.01, the slowest 0.01,
    // so the weighted picker takes the slow pod about once in a hundred.
    const draw = seededRandom(7);
    const scheduler = buildScheduler(parseEndpointPickerConfig(guide), { now: () => 1_000_000, random: () => 0.02 + 0.98 * draw() });
    const pods = [endpoint('fast', { waitingQueueSize: 0, runningQueueSize: 1, kvCacheUsagePercent: 0.5 }), endpoint('slow', { waitingQueueSize: 4, runningQueueSize: 1, kvCacheUsagePercent: 0.5 })];
    const pick = (i: number, headers: Record<string, string>) => scheduler.schedule({ ...req(headers, prompt(i)), requestId: `r${i}` }, pods).target.endpoint.name;
    const withSlo = new Set<string>();
    let slowWithout = 0;
    for (let i = 0; i < 100; i++) {
      withSlo.add(pick(i, { 'x-llm-d-slo-ttft-ms': '500' }));
      if (pick(1000 + i, {}) === 'slow') slowWithout++;
    }
    expect([...withSlo]).toEqual(['fast']);
    expect(slowWithout).toBeLessThan(6);
  });

  function chat(i: number, headers: Record<string, string>): IncomingRequest {
    return {
      requestId: `c${i}`,
      headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
      body: Buffer.from(JSON.stringify({ model: 'm', prompt: prompt(i) })),
      filterMetadata: {},
    };
  }

  test('RequestControl: a sheddable request no pod can meet is denied (500, upstream\'s message); one pod meeting it admits', async () => {
    const ds = new Datastore({ scrape: false });
    for (let i = 0; i < 2; i++) ds.upsertEndpoint({ key: `10.0.0.${i + 1}:8000`, name: `p${i}`, namespace: 'ns', address: `10.0.0.${i + 1}`, port: 8000, labels: {} });
    const load = (waiting: readonly number[]) => ds.endpoints().forEach((e, i) => ds.setMetrics(e.key, { waitingQueueSize: waiting[i]!, runningQueueSize: 1, kvCacheUsagePercent: 0.5, updateTime: Date.now(), consecutiveFailures: 0 }));
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(guide), { now: () => Date.now(), random: () => 0.5 }), monotonicSeconds: () => Date.now() / 1000 });
    const slo = { 'x-llm-d-slo-ttft-ms': '500', 'x-kvroute-priority': '-1' };
    // One pod meets the SLO (~220 ms predicted against ~1020 ms with 4 prompts waiting): admitted, and routed there.
    load([0, 4]);
    expect(await director.route(chat(1, slo))).toMatchObject({ kind: 'route', endpoint: '10.0.0.1:8000' });
    // Neither does: denied.
    load([4, 4]);
    const denied = await director.route(chat(2, slo));
    expect(denied).toMatchObject({ kind: 'reject', status: 500 });
    expect(JSON.stringify(denied)).toContain(`${NOT_ADMITTED_PREFIX}no valid endpoint available to serve the request`);
    // Not sheddable, or no SLO: admitted and routed.
    expect(await director.route(chat(3, { 'x-llm-d-slo-ttft-ms': '500' }))).toMatchObject({ kind: 'route' });
    expect(await director.route(chat(4, { 'x-kvroute-priority': '-1' }))).toMatchObject({ kind: 'route' });
  });
});

/** llm-d-router v0.10.0's chart config with router.latencyPredictor.enabled (config/charts/routerlib/templates/_config.yaml; vLLM over HTTP, no parsers): the producer without parameters, so in its default non-streaming mode. */
const LLMD_CHART_PREDICTED_LATENCY = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
- type: predicted-latency-producer
- name: strict-affinity-filter
  type: prefix-cache-affinity-filter
  parameters:
    affinityThreshold: 0.99
    ttftSource: latencyPredictor
    maxTTFTPenaltyMs: 5000
- name: loose-affinity-filter
  type: prefix-cache-affinity-filter
  parameters:
    affinityThreshold: 0.80
    ttftSource: latencyPredictor
    maxTTFTPenaltyMs: 5000
- type: latency-scorer
- type: weighted-random-picker
- type: slo-headroom-tier-filter
- type: latency-slo-admitter
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: predicted-latency-producer
  - pluginRef: strict-affinity-filter
  - pluginRef: slo-headroom-tier-filter
  - pluginRef: loose-affinity-filter
  - pluginRef: latency-scorer
  - pluginRef: weighted-random-picker
`;

describe('predicted-latency-producer streamingMode: false (the default) predicts end-to-end latency (llm-d-router v0.10.0 predictedlatency/requestcontrol_hooks.go ResponseBody, README.md "Default Behavior")', () => {
  // Upstream, with !StreamingMode, takes the "TTFT" sample at EndOfStream (processFirstTokenForLatencyPrediction: now −
  // requestReceivedTimestamp; "In non-streaming mode, TTFT represents full e2e latency"), and validatePrediction
  // (prediction.go) compares that prediction with x-llm-d-slo-ttft-ms: the header is an end-to-end budget there.
  const guide = LLMD_GUIDE_CONFIGS['predicted-latency-slo'];
  const nonStreaming = guide.replace('- type: predicted-latency-producer\n  parameters:\n    streamingMode: true\n', '- type: predicted-latency-producer\n');

  /** Cumulative counters after `n` finished requests, each 50 ms to its first token and 5 s running (vllm:request_inference_time_seconds). */
  const counters = (n: number, update: number): Partial<EndpointMetrics> => ({
    updateTime: update, runningQueueSize: 10, waitingQueueSize: 0, kvCacheUsagePercent: 0.5,
    firstTokenCount: n, firstTokenSecondsSum: 0.05 * n, inferenceCount: n, inferenceSecondsSum: 5 * n,
    prefixCacheQueryTokens: 100 * n, prefixCacheHitTokens: 0,
  });

  function predictionsAfterLearning(config: string): LatencyPredictionInfo {
    let now = 1_000_000;
    const scheduler = buildScheduler(parseEndpointPickerConfig(config), { now: () => now, random: () => 0.5 });
    const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
    for (let k = 0; k < 20; k++) {
      now += 1000;
      producer.predict(req({}, 'x'.repeat(400)), [endpoint('a', counters(10 * k, k + 1), 10), endpoint('b', counters(10 * k, k + 1), 10)]);
    }
    now += 10;
    return producer.predict(req({ 'x-llm-d-slo-ttft-ms': '1000' }, 'x'.repeat(400)), [endpoint('a', counters(200, 21), 10), endpoint('b', counters(200, 21), 10)])!.get('a:8000')!;
  }

  test('the guide without streamingMode loads in non-streaming mode', () => {
    expect(nonStreaming).not.toContain('streamingMode');
    expect((buildScheduler(parseEndpointPickerConfig(nonStreaming)).plugin('predicted-latency-producer') as PredictedLatencyProducer).parameters.streamingMode).toBe(false);
  });

  test('pods whose requests take 5 s end to end (50 ms to the first token): ~5,000 ms predicted, a 1,000 ms budget not met', () => {
    const a = predictionsAfterLearning(nonStreaming);
    expect(a.ttft).toBeGreaterThan(4500);
    expect(a.ttft).toBeLessThan(6000);
    expect(a.ttftValid).toBe(false);
    expect(a.ttftHeadroom).toBeCloseTo(1000 - a.ttft, 6);
  });

  test('streamingMode: true (the guide) predicts the time to first token on the same pods: the budget is met', () => {
    const a = predictionsAfterLearning(guide);
    expect(a.ttft).toBeLessThan(1000);
    expect(a.ttftValid).toBe(true);
  });

  function chat(i: number, headers: Record<string, string>): IncomingRequest {
    return {
      requestId: `c${i}`,
      headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
      body: Buffer.from(JSON.stringify({ model: 'm', prompt: `${i} `.padEnd(400, 'x') })),
      filterMetadata: {},
    };
  }

  /** RequestControl on `config` after three scrapes of busy pods whose requests take 5 s (50 ms to the first token): the answer to a sheddable request with a 1,000 ms budget. */
  async function sheddableWithBudget(config: string): Promise<unknown> {
    const ds = new Datastore({ scrape: false });
    for (let i = 0; i < 2; i++) ds.upsertEndpoint({ key: `10.0.0.${i + 1}:8000`, name: `p${i}`, namespace: 'ns', address: `10.0.0.${i + 1}`, port: 8000, labels: {} });
    let update = 0;
    const scrape = (n: number) => ds.endpoints().forEach((e) => ds.setMetrics(e.key, {
      waitingQueueSize: 0, runningQueueSize: 1, kvCacheUsagePercent: 0.5, updateTime: Date.now() + ++update, consecutiveFailures: 0,
      firstTokenCount: n, firstTokenSecondsSum: 0.05 * n, inferenceCount: n, inferenceSecondsSum: 5 * n, prefixCacheQueryTokens: 100 * n, prefixCacheHitTokens: 0,
    }));
    const director = new RequestControl({ datastore: ds, scheduler: buildScheduler(parseEndpointPickerConfig(config), { now: () => Date.now(), random: () => 0.5 }), monotonicSeconds: () => Date.now() / 1000 });
    for (let k = 0; k < 3; k++) {
      scrape(10 * k);
      // Not sheddable, no SLO: routed, and the model learns the pods' counters.
      expect(await director.route(chat(k, {}))).toMatchObject({ kind: 'route' });
    }
    scrape(30);
    return director.route(chat(99, { 'x-llm-d-slo-ttft-ms': '1000', 'x-kvroute-priority': '-1' }));
  }

  test('RequestControl on the guide without streamingMode: the sheddable request is denied (500), as upstream\'s e2e prediction denies it', async () => {
    expect(await sheddableWithBudget(nonStreaming)).toMatchObject({ kind: 'reject', status: 500 });
  });

  test('RequestControl on llm-d-router v0.10.0\'s chart config (producer without parameters): denied (500) too', async () => {
    expect((buildScheduler(parseEndpointPickerConfig(LLMD_CHART_PREDICTED_LATENCY)).plugin('predicted-latency-producer') as PredictedLatencyProducer).parameters.streamingMode).toBe(false);
    expect(await sheddableWithBudget(LLMD_CHART_PREDICTED_LATENCY)).toMatchObject({ kind: 'reject', status: 500 });
  });

  test('RequestControl on the guide (streamingMode: true): admitted, the budget being for the first token', async () => {
    expect(await sheddableWithBudget(guide)).toMatchObject({ kind: 'route' });
  });

  // prefixcacheaffinity/plugin.go @ llm-d-router v0.10.0, ttftSource latencyPredictor: the gate reads
  // LatencyPredictionInfo.TTFT(), the producer's published "TTFT", which is end to end in non-streaming mode.
  test.each([
    ['llm-d\'s chart config (non-streaming): the gate compares end-to-end predictions, 20 s against 5 s, and breaks stickiness', false, ['a', 'b']],
    ['the same with streamingMode: true: the gate compares times to first token, 50 ms each, and keeps the holder', true, ['a']],
  ] as const)('prefix-cache-affinity-filter reading the producer, %s', (_name, streaming, kept) => {
    const config = streaming
      ? LLMD_CHART_PREDICTED_LATENCY.replace('- type: predicted-latency-producer\n', '- type: predicted-latency-producer\n  parameters:\n    streamingMode: true\n')
      : LLMD_CHART_PREDICTED_LATENCY;
    let now = 1_000_000;
    const scheduler = buildScheduler(parseEndpointPickerConfig(config), { now: () => now, random: () => 0.5 });
    const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
    /** `n` finished requests, 50 ms each to the first token and `seconds` running. */
    const pod = (name: string, n: number, update: number, seconds: number) => endpoint(name, {
      updateTime: update, runningQueueSize: 10, waitingQueueSize: 0, kvCacheUsagePercent: 0.5,
      firstTokenCount: n, firstTokenSecondsSum: 0.05 * n, inferenceCount: n, inferenceSecondsSum: seconds * n,
      prefixCacheQueryTokens: 100 * n, prefixCacheHitTokens: 0,
    }, 10);
    const prompt = 'the shared document '.repeat(40);
    for (let k = 0; k < 20; k++) {
      now += 1000;
      producer.predict(req({}, `warm ${k}`.padEnd(400, 'x')), [pod('a', 10 * k, k + 1, 20), pod('b', 10 * k, k + 1, 5)]);
    }
    now += 10;
    const a = pod('a', 200, 21, 20);
    const b = pod('b', 200, 21, 5);
    // The prompt goes to a first (the only candidate): the producer records the pick in its prefix scorer's index.
    expect(scheduler.schedule(req({}, prompt), [a]).target.endpoint.name).toBe('a');
    const filter = scheduler.plugin('strict-affinity-filter') as unknown as { filter(cycle: { request: LLMRequest; state: CycleState }, c: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] };
    expect(filter.filter({ request: req({}, prompt), state: new CycleState() }, [a, b]).map((c) => c.endpoint.name)).toEqual(kept);
  });
});

describe('latency-scorer serving a predicted-latency-producer scores as llm-d-router v0.10.0\'s latency-scorer (scheduling/scorer/latency/plugin.go Score, scoreBucket; plugin_test.go)', () => {
  /** upstream's NewLatencyPredictionInfo(ttftValid, tpotValid, ttftHeadroom, tpotHeadroom, ttft, tpot, dispatched). */
  const info = (ttftHeadroom: number, tpotHeadroom: number, dispatchedRequestCount = 0): LatencyPredictionInfo =>
    ({ ttftValid: ttftHeadroom >= 0, tpotValid: tpotHeadroom >= 0, ttftHeadroom, tpotHeadroom, ttft: 0, tpot: 0, dispatchedRequestCount });
  const scores = (infos: (LatencyPredictionInfo | undefined)[]): number[] => {
    const out = new Float64Array(infos.length);
    headroomScoresInto(infos, out);
    return [...out];
  };

  test('TestScorePositiveHeadroom: least strategy, the least headroom 1.01, the most 0.01', () => expect(scores([info(100, 20), info(30, 5)])).toEqual([0.01, 1.01]));
  test('TestScoreNegativeOnly: the smaller violation 1.01', () => expect(scores([info(-10, -5), info(-100, -30)])).toEqual([1.01, 0.01]));
  test('TestScoreTierSplit', () => expect(scores([info(10, 2), info(50, 10)])).toEqual([1.01, 0.01]));
  test('TestScoreIdlePodPreference: only the idle pod is scored (0.51: no range), the busy one 0', () => expect(scores([info(-50, -10, 5), info(-50, -10, 0)])).toEqual([0, 0.51]));
  test('TestScoreHierarchicalBuckets (every pod idle: one bucket, 0.8 TTFT / 0.2 TPOT blended)', () => expect(scores([info(-50, -10), info(-30, 5), info(10, -8)])).toEqual([0.01, 0.61, 0.89]));
  test('all busy and negative: the least severe deficit bucket (TPOT negative only) alone', () => expect(scores([info(-50, -10, 1), info(-30, 5, 1), info(10, -8, 1)])).toEqual([0, 0, 0.51]));
  test('a mix: only the positive ones are scored; a candidate without a prediction counts as positive', () => expect(scores([info(-5, 0), info(20, 0), undefined])).toEqual([0, 0.01, 1.01]));
  // scoreBucket's bounds start at ±math.MaxFloat64 and move on `<` / `>` only: NaN TTFT headrooms (x-llm-d-slo-ttft-ms:
  // NaN, which strconv.ParseFloat takes) leave them there, a range of -Inf ≤ eps, so the weight goes all to TPOT.
  test('TTFT headroom NaN everywhere (an SLO header of NaN): no TTFT range, TPOT alone decides', () => {
    expect(scores([info(NaN, -10, 1), info(NaN, -30, 1)])).toEqual([1.01, 0.01]);
  });

  // The reviewer's cases on llm-d's guide without an SLO header: every headroom is 0 − predicted.
  const guide = LLMD_GUIDE_CONFIGS['predicted-latency-slo'];
  const prompt = (i: number) => `${i} `.padEnd(4000, 'x');
  /** `n` picks (not committed) after the pods' in-flight requests were committed through the producer. */
  function picks(pods: EndpointSnapshot[], n: number): Record<string, number> {
    const scheduler = buildScheduler(parseEndpointPickerConfig(guide), { now: () => 1_000_000, random: seededRandom(12345) });
    const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
    for (const pod of pods) for (let k = 0; k < pod.activeRequests; k++) producer.preRequest(req(), { target: pod, profile: 'default', scores: new Map() });
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const name = scheduler.schedule({ ...req({}, prompt(i)), requestId: `r${i}` }, pods).target.endpoint.name;
      out[name] = (out[name] ?? 0) + 1;
    }
    return out;
  }

  test('the guide, no SLO: an idle pod (nothing dispatched there) takes every request while the faster pod has requests in flight', () => {
    const pods = [
      endpoint('busy-fast', { waitingQueueSize: 0, runningQueueSize: 3, kvCacheUsagePercent: 0.5 }, 3),
      endpoint('idle-slow', { waitingQueueSize: 4, runningQueueSize: 1, kvCacheUsagePercent: 0.5 }, 0),
    ];
    expect(picks(pods, 100)).toEqual({ 'idle-slow': 100 });
  });

  test('the guide, an infinite TTFT SLO (x-llm-d-slo-ttft-ms: inf, which ParseFloat takes): the blend is NaN, every candidate scores 0 (as amd64\'s int(NaN) clamped by enforceScoreRange) and the picks spread over all', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(guide), { now: () => 1_000_000, random: seededRandom(3) });
    const pods = [0, 1, 2].map((i) => endpoint(`p${i}`, { waitingQueueSize: 2 * i, runningQueueSize: 1, kvCacheUsagePercent: 0.5 }));
    const seen: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const result = scheduler.schedule({ ...req({ 'x-llm-d-slo-ttft-ms': 'inf' }, prompt(i)), requestId: `r${i}` }, pods);
      expect([...result.scores.values()]).toEqual([0, 0, 0]);
      seen[result.target.endpoint.name] = (seen[result.target.endpoint.name] ?? 0) + 1;
    }
    for (const pod of pods) expect(seen[pod.endpoint.name]).toBeGreaterThan(70);
  });

  test('the guide, no SLO, both pods busy: the pod predicted ~4.6× slower scores 0.01 against 1.01, about 1% of the picks (under 5% here)', () => {
    const pods = [
      endpoint('fast', { waitingQueueSize: 0, runningQueueSize: 2, kvCacheUsagePercent: 0.5 }, 2),
      endpoint('slow', { waitingQueueSize: 4, runningQueueSize: 2, kvCacheUsagePercent: 0.5 }, 2),
    ];
    expect(picks(pods, 200).slow ?? 0).toBeLessThan(10);
  });

  test('kvroute\'s latency-scorer with no producer keeps its own score (best predicted TTFT ÷ own)', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: latency-scorer\n- type: max-score-picker\n'
      + 'schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: latency-scorer\n  - pluginRef: max-score-picker\n'), { now: () => 1_000_000 });
    const pods = [endpoint('fast', { waitingQueueSize: 0, runningQueueSize: 2 }, 2), endpoint('slow', { waitingQueueSize: 4, runningQueueSize: 2 }, 2)];
    const [fast, slow] = (scheduler.plugin('latency-scorer') as LatencyScorer).score({ request: req({}, prompt(1)), state: new CycleState() }, pods);
    expect(fast).toBe(1);
    expect(slow).toBeGreaterThan(0.1);
    expect(slow).toBeLessThan(0.5);
  });
});

describe('predicted-latency-producer under the producer form', () => {
  test('prefixMatchInfoProducerName naming an approx-prefix-cache-producer names the prefix-cache-scorer that does its work', () => {
    const config = parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: approx-prefix-cache-producer
  name: approx
- type: prefix-cache-scorer
  parameters:
    prefixMatchInfoProducerName: approx
- type: predicted-latency-producer
  parameters:
    prefixMatchInfoProducerName: approx
- type: latency-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: predicted-latency-producer
  - pluginRef: prefix-cache-scorer
  - pluginRef: latency-scorer
  - pluginRef: max-score-picker
`);
    const producer = config.plugins.find((p) => p.type === 'predicted-latency-producer')!;
    const scorer = config.plugins.find((p) => p.type === 'prefix-cache-scorer')!;
    expect((producer.parameters as { prefixMatchInfoProducerName: string }).prefixMatchInfoProducerName).toBe(scorer.name);
    const scheduler = buildScheduler(config);
    expect((scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer).prefixScorer()).toBe(scheduler.plugin(scorer.name!));
  });
});

describe('prefix-cache-affinity-filter naming the predicted-latency-producer (upstream\'s latencyPredictionInfoProducerName)', () => {
  test('ttftSource latencyPredictor reads the producer\'s latency-scorer', () => {
    const guide = LLMD_GUIDE_CONFIGS['predicted-latency-slo'].replace('    affinityThreshold: 0.99\n', '    affinityThreshold: 0.99\n    ttftSource: latencyPredictor\n    latencyPredictionInfoProducerName: predicted-latency-producer\n');
    const scheduler = buildScheduler(parseEndpointPickerConfig(guide));
    expect((scheduler.plugin('strict-affinity-filter') as unknown as { latency: unknown }).latency).toBe(scheduler.plugin('latency-scorer'));
  });
});

describe('slo-headroom-tier-filter with its producer in no profile (upstream runs producers before every cycle)', () => {
  test('the filter asks the producer itself: the slow pod is dropped under an SLO', () => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: predicted-latency-producer
- type: slo-headroom-tier-filter
  parameters:
    epsilonExploreNeg: 0
- type: latency-scorer
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: slo-headroom-tier-filter
  - pluginRef: latency-scorer
    weight: 0
  - pluginRef: random-picker
`), { now: () => 1_000_000, random: seededRandom(5) });
    const pods = [endpoint('fast', { waitingQueueSize: 0 }), endpoint('slow', { waitingQueueSize: 4 })];
    const picked = new Set<string>();
    for (let i = 0; i < 20; i++) picked.add(scheduler.schedule({ ...req({ 'x-llm-d-slo-ttft-ms': '500' }, 'y'.repeat(4000)), requestId: `q${i}` }, pods).target.endpoint.name);
    expect([...picked]).toEqual(['fast']);
  });

  test('a profile listing the filter but neither the producer nor its latency-scorer is refused: the predictions would miss this EPP\'s own queued prefills', () => {
    expect(configErrorOf(() => buildScheduler(parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: predicted-latency-producer
- type: slo-headroom-tier-filter
- type: latency-scorer
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: slo-headroom-tier-filter
  - pluginRef: random-picker
`)))).toMatch(/^schedulingProfiles\[0\]\.plugins: lists "slo-headroom-tier-filter" \(slo-headroom-tier-filter\), which asks "predicted-latency-producer" for predictions made with "latency-scorer"/);
  });
});

describe('predicted-latency-producer records its profile\'s pick in the approximate prefix scorer\'s index', () => {
  const pods = [endpoint('a', { kvCacheUsagePercent: 0.5, runningQueueSize: 1 }), endpoint('b', { kvCacheUsagePercent: 0.5, runningQueueSize: 1 })];
  const prompt = 'shared '.repeat(1000);
  /** Index records over six cycles of the same prompt, under the guide edited by `edit`. */
  const records = (edit: (guide: string) => string): number => {
    const scheduler = buildScheduler(parseEndpointPickerConfig(edit(LLMD_GUIDE_CONFIGS['predicted-latency-slo'])), { now: () => 1_000_000, random: () => 0.5 });
    const index = (scheduler.plugin('prefix-cache-scorer') as unknown as { index: { record: (...args: unknown[]) => void } }).index;
    const record = index.record.bind(index);
    let n = 0;
    index.record = (...args: unknown[]) => { n++; (record as (...a: unknown[]) => void)(...args); };
    for (let i = 0; i < 6; i++) scheduler.schedule({ ...req({}, prompt), requestId: `l${i}` }, pods);
    return n;
  };

  test('the guide (no prefix scorer in its profile): each pick once', () => expect(records((g) => g)).toBe(6));

  test('predictInProduce: false still records (upstream\'s approximate producer learns every pick; the affinity filters read it)', () => {
    expect(records((g) => g.replace('    streamingMode: true\n', '    streamingMode: true\n    predictInProduce: false\n'))).toBe(6);
  });

  test('a profile listing the prefix scorer too: the scorer records, the producer does not (once per pick)', () => {
    expect(records((g) => g.replace('  - pluginRef: latency-scorer\n', '  - pluginRef: prefix-cache-scorer\n  - pluginRef: latency-scorer\n'))).toBe(6);
  });
});
