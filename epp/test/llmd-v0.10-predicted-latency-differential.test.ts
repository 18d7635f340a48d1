/**
 * Differential test: kvroute's predicted-latency family, built by its real config loader from llm-d-router v0.10.0's
 * config shape (the chart's `router.latencyPredictor.enabled` plugins, with random parameters), against a reference
 * model written from llm-d-router v0.10.0's source. kvroute predicts with its own online model where upstream asks
 * XGBoost sidecars (epp/README.md), so the predictor is not compared: each prediction kvroute publishes gives the raw
 * TTFT and TPOT (ms) the reference then consumes as upstream's plugins consume the sidecar's.
 *
 * The reference, file by file (all @ v0.10.0, under pkg/epp/framework/plugins/):
 * - SLO headers: requestcontrol/dataproducer/predictedlatency/plugin.go parseSLOHeaders / parseFloatHeader
 *   (metadata.GetLowerCaseHeaderValue: the current name, else the deprecated alias; strconv.ParseFloat, an error → 0),
 *   with Go's strconv.ParseFloat (src/strconv/atof.go special/readFloat/atof64, atoi.go underscoreOK): a range error
 *   (1e400) is an error, "+nan" is not a float, hex floats with a p exponent and digit-separating underscores are.
 * - the published LatencyPredictionInfo: prediction.go validatePrediction and generatePredictions' neutralization
 *   (!StreamingMode or a prefill role), dataproducer_hooks.go Produce (dispatchedRequestCount =
 *   getEndpointRunningRequestCount, plugin.go: the producer's running-request queue of the endpoint, filled in
 *   PreRequest with the primary target, requestcontrol_hooks.go, refused for a negative TPOT SLO by
 *   running_request_tpot_slo_queue.go Add, emptied at the end of the response).
 * - slo-headroom-tier-filter: scheduling/filter/sloheadroomtier/plugin.go Filter (one draw, only with both tiers).
 * - latency-scorer: scheduling/scorer/latency/plugin.go Score / scoreBucket with DefaultConfig (0.8 / 0.2, least),
 *   min/max with Go's comparisons (a NaN never replaces the ±MaxFloat64 start). A bucket whose blend is NaN (an
 *   infinite SLO: Inf − MaxFloat64 over Inf) is not compared: Go's int(NaN) is implementation-defined.
 * - latency-slo-admitter: requestcontrol/admitter/latencyslo/plugin.go Admit.
 * - the profile end to end (scheduler.schedule): the pick is in the tier the reference keeps for the same draw and,
 *   under picker/weightedrandom/picker.go's A-Res (key 0 for a score ≤ 0), never a candidate scored 0 beside a positive one.
 *
 * Not compared, by design (epp/README.md): the predictor itself; TPOT before any pod exported the inter-token histogram
 * (kvroute has no TPOT model yet and neutralizes it, with tpot 0); the latency-scorer's score without predictions
 * (`predictInProduce: false`: upstream's composite fallback, kvroute's own score). Commits carry no NaN TPOT SLO, whose
 * place in upstream's heap (container/heap with `<` on NaN) is an accident of insertion order.
 */
import { seededRandom } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointMetrics, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import type { LatencyScorer } from '../src/scheduling/plugins/latency-scorer';
import type { LatencySloAdmitter } from '../src/scheduling/plugins/latency-slo-admitter';
import { parseSloHeader, TTFT_SLO_HEADERS, type LatencyPredictionInfo, type PredictedLatencyProducer } from '../src/scheduling/plugins/predicted-latency-producer';
import type { SloHeadroomTierFilter } from '../src/scheduling/plugins/slo-headroom-tier-filter';
import { buildScheduler } from '../src/scheduling/scheduler';
import type { LLMRequest } from '../src/scheduling/types';

// ---------------------------------------------------------------------------------------------------------------
// Reference model

const MAX_FLOAT64 = Number.MAX_VALUE;

/** atoi.go underscoreOK. */
function underscoreOK(s0: string): boolean {
  let s = s0;
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === '0' && 'box'.includes(s[1]!.toLowerCase())) {
    i = 2;
    saw = '0';
    hex = s[1]!.toLowerCase() === 'x';
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if ((c >= '0' && c <= '9') || (hex && c.toLowerCase() >= 'a' && c.toLowerCase() <= 'f')) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

/** strconv.ParseFloat(s, 64): the value, or undefined for an error (syntax or range). */
function goParseFloat(s: string): number | undefined {
  // special: [+-]inf, [+-]infinity, nan (no sign: a sign falls through to the infinity case), case-insensitive.
  const lower = s.toLowerCase();
  {
    let sign = 1;
    let rest = lower;
    let nsign = 0;
    if (rest[0] === '+' || rest[0] === '-') {
      sign = rest[0] === '-' ? -1 : 1;
      rest = rest.slice(1);
      nsign = 1;
    }
    if (nsign === 1 || rest[0] === 'i') {
      let n = 0;
      while (n < Math.min(8, rest.length) && rest[n] === 'infinity'[n]) n++;
      if (n > 3 && n < 8) n = 3;
      if (n === 3 || n === 8) return nsign + n === s.length ? sign * Infinity : undefined;
    } else if (rest.startsWith('nan')) {
      return s.length === 3 ? NaN : undefined;
    }
  }
  // readFloat
  let i = 0;
  let neg = false;
  if (s[i] === '+') i++;
  else if (s[i] === '-') { i++; neg = true; }
  let hex = false;
  if (i + 2 < s.length && s[i] === '0' && s[i + 1]!.toLowerCase() === 'x') { hex = true; i += 2; }
  let sawdot = false;
  let sawdigits = false;
  let underscores = false;
  let mantissa = '';
  let fracDigits = 0;
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (c === '_') { underscores = true; continue; }
    if (c === '.') { if (sawdot) break; sawdot = true; continue; }
    if ((c >= '0' && c <= '9') || (hex && c.toLowerCase() >= 'a' && c.toLowerCase() <= 'f')) {
      sawdigits = true;
      mantissa += c;
      if (sawdot) fracDigits++;
      continue;
    }
    break;
  }
  if (!sawdigits) return undefined;
  let exp = 0;
  const expChar = hex ? 'p' : 'e';
  if (i < s.length && s[i]!.toLowerCase() === expChar) {
    i++;
    if (i >= s.length) return undefined;
    let esign = 1;
    if (s[i] === '+') i++;
    else if (s[i] === '-') { i++; esign = -1; }
    if (i >= s.length || s[i]! < '0' || s[i]! > '9') return undefined;
    let e = 0;
    for (; i < s.length && ((s[i]! >= '0' && s[i]! <= '9') || s[i] === '_'); i++) {
      if (s[i] === '_') { underscores = true; continue; }
      if (e < 10000) e = e * 10 + Number(s[i]);
    }
    exp = e * esign;
  } else if (hex) {
    return undefined; // a hex mantissa must have a p exponent
  }
  if (underscores && !underscoreOK(s.slice(0, i))) return undefined;
  if (i !== s.length) return undefined; // ParseFloat: the whole string
  let value: number;
  if (hex) {
    const m = Number(BigInt(`0x${mantissa}`));
    let e2 = exp - 4 * fracDigits;
    value = m;
    // Scale in steps so that 2^e2 itself never overflows or underflows first.
    while (e2 > 0 && Number.isFinite(value) && value !== 0) { const step = Math.min(e2, 1000); value *= 2 ** step; e2 -= step; }
    while (e2 < 0 && value !== 0) { const step = Math.min(-e2, 1000); value /= 2 ** step; e2 += step; }
  } else {
    value = Number(`${mantissa.slice(0, mantissa.length - fracDigits) || '0'}.${mantissa.slice(mantissa.length - fracDigits) || '0'}e${exp}`);
  }
  if (!Number.isFinite(value)) return undefined; // ErrRange
  return neg ? -value : value;
}

/** parseFloatHeader over GetLowerCaseHeaderValue's names. */
function refHeader(headers: Readonly<Record<string, string>>, names: readonly string[]): number {
  for (const name of names) {
    const v = headers[name];
    if (v === undefined) continue;
    return goParseFloat(v) ?? 0;
  }
  return 0;
}
const refSlo = (headers: Readonly<Record<string, string>>) => ({
  ttft: refHeader(headers, ['x-llm-d-slo-ttft-ms', 'x-slo-ttft-ms']),
  tpot: refHeader(headers, ['x-llm-d-slo-tpot-ms', 'x-slo-tpot-ms']),
});

interface RefInfo {
  ttftValid: boolean;
  tpotValid: boolean;
  ttftHeadroom: number;
  tpotHeadroom: number;
  dispatchedRequestCount: number;
}

interface ProducerConfig { streamingMode: boolean; sloBufferFactor: number; endpointRoleLabel: string }

/** The producer's running-request queues (running_request_tpot_slo_queue.go): endpoint → request id → TPOT SLO. */
type RefQueues = Map<string, Map<string, number>>;

/** validatePrediction + generatePredictions' neutralization + Produce's NewLatencyPredictionInfo. */
function refInfo(cfg: ProducerConfig, slo: { ttft: number; tpot: number }, pod: EndpointSnapshot, ttft: number, tpot: number, tpotModel: boolean, queues: RefQueues): RefInfo {
  const queue = queues.get(pod.endpoint.key);
  // getEndpointMinTPOTSLO: the heap's minimum, 0 for an empty queue.
  const podMin = queue === undefined || queue.size === 0 ? 0 : Math.min(...queue.values());
  const ttftValid = ttft < slo.ttft;
  const ttftHeadroom = slo.ttft - ttft;
  let tpotValid = true;
  let tpotHeadroom = 0;
  if (cfg.streamingMode) {
    let buffered = slo.tpot * cfg.sloBufferFactor;
    if (podMin > 0) buffered = Math.min(buffered, podMin * cfg.sloBufferFactor);
    tpotValid = tpot < buffered;
    tpotHeadroom = buffered - tpot;
  }
  const prefill = cfg.endpointRoleLabel !== '' && pod.endpoint.labels[cfg.endpointRoleLabel] === 'prefill';
  // kvroute without a TPOT model neutralizes TPOT in every mode (documented; not upstream's, not compared otherwise).
  if (!cfg.streamingMode || prefill || !tpotModel) {
    tpotValid = true;
    tpotHeadroom = 0;
  }
  return { ttftValid, tpotValid, ttftHeadroom, tpotHeadroom, dispatchedRequestCount: queue?.size ?? 0 };
}

/** sloheadroomtier Filter: the kept candidates' indexes and whether a draw was taken. */
function refTier(epsilon: number, infos: readonly (RefInfo | undefined)[], draw: number): { kept: number[]; drew: boolean } {
  const all = infos.map((_, i) => i);
  if (infos.length <= 1) return { kept: all, drew: false };
  const positive: number[] = [];
  const negative: number[] = [];
  const none: number[] = [];
  infos.forEach((info, i) => {
    if (info === undefined) none.push(i);
    else if (info.ttftHeadroom >= 0 && info.tpotHeadroom >= 0) positive.push(i);
    else negative.push(i);
  });
  if (positive.length === 0 && negative.length === 0) return { kept: all, drew: false };
  negative.push(...none);
  if (positive.length > 0 && negative.length > 0) return { kept: draw < epsilon ? negative : positive, drew: true };
  return { kept: positive.length > 0 ? positive : negative, drew: false };
}

/**
 * scorer/latency Score with DefaultConfig; undefined where Go's int(NaN) decides, and for every candidate when none has
 * a prediction (upstream's composite fallback, kvroute's own score: not compared).
 */
function refScores(infos: readonly (RefInfo | undefined)[]): (number | undefined)[] {
  if (infos.every((info) => info === undefined)) return infos.map(() => undefined);
  const scores: (number | undefined)[] = infos.map(() => 0);
  const data = infos.map((info, i) => ({ i, info, ttft: info?.ttftHeadroom ?? 0, tpot: info?.tpotHeadroom ?? 0 }));
  type D = (typeof data)[number];
  const bucket = (ds: readonly D[]) => {
    let alpha = 0.8 / (0.8 + 0.2);
    let beta = 0.2 / (0.8 + 0.2);
    let minTTFT = MAX_FLOAT64; let maxTTFT = -MAX_FLOAT64; let minTPOT = MAX_FLOAT64; let maxTPOT = -MAX_FLOAT64;
    for (const d of ds) {
      let h = Math.abs(d.ttft);
      if (h < minTTFT) minTTFT = h;
      if (h > maxTTFT) maxTTFT = h;
      h = Math.abs(d.tpot);
      if (h < minTPOT) minTPOT = h;
      if (h > maxTPOT) maxTPOT = h;
    }
    const ttftRange = maxTTFT - minTTFT;
    const tpotRange = maxTPOT - minTPOT;
    const eps = 1e-9;
    if (ttftRange <= eps && tpotRange > eps) { alpha = 0; beta = 1; } else if (tpotRange <= eps && ttftRange > eps) { alpha = 1; beta = 0; }
    for (const d of ds) {
      const nTTFT = ttftRange > eps ? (Math.abs(d.ttft) - minTTFT) / ttftRange : 0.5;
      const nTPOT = tpotRange > eps ? (Math.abs(d.tpot) - minTPOT) / tpotRange : 0.5;
      const combined = alpha * nTTFT + beta * nTPOT;
      scores[d.i] = Number.isNaN(combined) ? undefined : (Math.trunc((1 - combined) * 100) + 1) / 100;
    }
  };
  const positive = data.filter((d) => !(d.info !== undefined && (d.ttft < 0 || d.tpot < 0)));
  const negative = data.filter((d) => d.info !== undefined && (d.ttft < 0 || d.tpot < 0));
  if (positive.length > 0) { bucket(positive); return scores; }
  const idle = negative.filter((d) => d.info!.dispatchedRequestCount === 0);
  if (idle.length > 0) { bucket(idle); return scores; }
  const tpotOnly = negative.filter((d) => d.ttft >= 0 && d.tpot < 0);
  const ttftOnly = negative.filter((d) => d.ttft < 0 && !(d.tpot < 0));
  const both = negative.filter((d) => (d.ttft < 0 && d.tpot < 0) || !(d.ttft < 0 || d.tpot < 0));
  for (const b of [tpotOnly, ttftOnly, both]) if (b.length > 0) { bucket(b); return scores; }
  bucket(negative);
  return scores;
}

/** latencyslo Admit: whether it denies. */
function refAdmitDenies(priority: number, slo: { ttft: number; tpot: number }, pods: readonly EndpointSnapshot[], infos: readonly (RefInfo | undefined)[] | undefined): boolean {
  if (priority >= 0) return false;
  if (!(slo.ttft > 0 || slo.tpot > 0)) return false;
  let hasValid = false; let hasCold = false; let hasIdle = false; let hasPredictions = false;
  pods.forEach((pod, i) => {
    if (pod.metrics.kvCacheUsagePercent < 0.02) hasCold = true;
    if (pod.metrics.runningQueueSize === 0) hasIdle = true;
    const info = infos?.[i];
    if (info !== undefined) {
      hasPredictions = true;
      if (info.ttftValid && info.tpotValid) hasValid = true;
    }
  });
  if (!hasPredictions) return false;
  return !hasValid && !hasIdle && !hasCold;
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded cases

/** Header values besides SLOs near the predictions: negative, zero, not floats, Go-only forms, out of range. */
const HEADER_VALUES: readonly string[] = [
  '0', '-5', '-0', 'abc', '', ' 5', '5 ', '1e', '.', '5.', '.5e3', '1e3', '+200', '1_000', '1_0.5_0', '1__0',
  '_1', '1_', '0x1p10', '0x1.8p+9', '0x10', '0X_1P10', 'nan', 'NaN', '+nan', '-nan', 'inf', '+Inf', '-inf', 'Infinity', 'infinit',
  '1e400', '-1e400', '1e-400', '0x1p2000', '1.5.3', '0b101', '١٢',
];

function headerValue(random: () => number, predictions: readonly number[]): string | undefined {
  if (random() < 0.25) return undefined;
  if (random() < 0.45) return HEADER_VALUES[Math.floor(random() * HEADER_VALUES.length)]!;
  const one = predictions[Math.floor(random() * predictions.length)]!;
  // Exactly one candidate's prediction now and then (its headroom 0: positive for the tier filter, invalid for the
  // admitter), else around the mean.
  if (random() < 0.2) return String(one);
  const mean = predictions.reduce((a, b) => a + b, 0) / predictions.length;
  return String(Math.max(1, Math.round((random() < 0.3 ? one : mean) * (0.3 + 1.5 * random()))));
}

function sloHeaders(random: () => number, ttfts: readonly number[], tpots: readonly number[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const set = (current: string, old: string, predictions: readonly number[]) => {
    const a = headerValue(random, predictions);
    if (a !== undefined) headers[current] = a;
    if (random() < 0.3) { const b = headerValue(random, predictions); if (b !== undefined) headers[old] = b; }
  };
  set('x-llm-d-slo-ttft-ms', 'x-slo-ttft-ms', ttfts);
  set('x-llm-d-slo-tpot-ms', 'x-slo-tpot-ms', tpots);
  return headers;
}

const ROLE = 'llm-d.ai/role';

/**
 * `split`: each pod either short of prefill work and running a large batch (TTFT within an SLO between the two groups,
 * TPOT past it) or the reverse, so that an all-negative busy pool has both deficit buckets.
 */
function pool(random: () => number, size: number, tpotModel: boolean, split: boolean): EndpointSnapshot[] {
  const int = (n: number) => Math.floor(random() * n);
  const pods: EndpointSnapshot[] = [];
  for (let i = 0; i < size; i++) {
    let metrics: EndpointMetrics;
    if (i > 0 && random() < 0.3) {
      metrics = pods[int(i)]!.metrics; // the same page as another pod: equal predictions, zero ranges
    } else {
      metrics = {
        ...EMPTY_METRICS,
        updateTime: 1,
        ...(split
          ? (random() < 0.5 ? { waitingQueueSize: 0, runningQueueSize: 60 + int(20) } : { waitingQueueSize: 3 + int(3), runningQueueSize: 1 + int(3) })
          : { waitingQueueSize: random() < 0.4 ? 0 : int(6), runningQueueSize: random() < 0.3 ? 0 : random() < 0.3 ? 1 : int(40) }),
        kvCacheUsagePercent: random() < 0.2 ? random() * 0.02 : random() < 0.1 ? 0.02 : 0.02 + random() * 0.9,
        ...(tpotModel ? { interTokenCount: 0, interTokenSecondsSum: 0 } : {}),
      };
    }
    const labels: Record<string, string> = random() < 0.3 ? { [ROLE]: random() < 0.5 ? 'prefill' : 'decode' } : {};
    pods.push({
      endpoint: { key: `10.0.0.${i}:8000`, name: `p${i}`, namespace: 'default', address: `10.0.0.${i}`, port: 8000, labels },
      metrics,
      activeRequests: 0,
    });
  }
  return pods;
}

function config(cfg: ProducerConfig & { epsilon: number; predictInProduce: boolean }): string {
  return [
    'apiVersion: llm-d.ai/v1alpha1',
    'kind: EndpointPickerConfig',
    'plugins:',
    '- type: prefix-cache-scorer',
    '- type: predicted-latency-producer',
    '  parameters:',
    `    streamingMode: ${cfg.streamingMode}`,
    `    sloBufferFactor: ${cfg.sloBufferFactor}`,
    ...(cfg.endpointRoleLabel !== '' ? [`    endpointRoleLabel: ${cfg.endpointRoleLabel}`] : []),
    ...(cfg.predictInProduce ? [] : ['    predictInProduce: false']),
    '- type: latency-scorer',
    '- type: weighted-random-picker',
    '- type: slo-headroom-tier-filter',
    '  parameters:',
    `    epsilonExploreNeg: ${cfg.epsilon}`,
    '- type: latency-slo-admitter',
    'schedulingProfiles:',
    '- name: default',
    '  plugins:',
    '  - pluginRef: predicted-latency-producer',
    '  - pluginRef: slo-headroom-tier-filter',
    '  - pluginRef: latency-scorer',
    '  - pluginRef: weighted-random-picker',
    '',
  ].join('\n');
}

const NOW = 1_000_000;

describe('predicted-latency-producer, slo-headroom-tier-filter, latency-scorer and latency-slo-admitter against a reference model of llm-d-router v0.10.0', () => {
  it('reads an SLO header as the port of strconv.ParseFloat does, over seeded random strings of float syntax', () => {
    const alphabet = ['0', '1', '5', '9', '.', '_', 'e', 'E', 'p', 'P', 'x', 'X', '+', '-', 'a', 'f', 'i', 'n', 'N', 'I', 'inf', 'nan', 'infinity', '0x', ' '];
    const random = seededRandom(77);
    let floats = 0;
    const differ: string[] = [];
    for (let k = 0; k < 20_000; k++) {
      let value = '';
      const length = 1 + Math.floor(random() * 8);
      for (let j = 0; j < length; j++) value += alphabet[Math.floor(random() * alphabet.length)];
      const expected = goParseFloat(value) ?? 0;
      if (goParseFloat(value) !== undefined) floats++;
      if (!Object.is(parseSloHeader({ 'x-llm-d-slo-ttft-ms': value }, TTFT_SLO_HEADERS), expected)) differ.push(value);
    }
    expect(differ).toEqual([]);
    expect(floats).toBeGreaterThan(700);
  });

  it('agree on every published prediction (validity, headroom, dispatched count), tier, score and admission over seeded cases', () => {
    const counts = { requests: 0, bothTiers: 0, allNegative: 0, idleBucket: 0, deficitBuckets: 0, denied: 0, missing: 0, nanBlend: 0, invalidHeader: 0 };
    for (let seed = 1; seed <= 100; seed++) {
      const random = seededRandom(seed);
      const cfg = {
        streamingMode: random() < 0.6,
        sloBufferFactor: [1, 0.5, 1.25][Math.floor(random() * 3)]!,
        endpointRoleLabel: random() < 0.4 ? ROLE : '',
        epsilon: [0.01, 0, 0.5, 1][Math.floor(random() * 4)]!,
        predictInProduce: random() < 0.9,
      };
      const tpotModel = random() < 0.8;
      // The scheduler's random source: a value the test queues for the tier filter's draw, else seeded.
      const queued: number[] = [];
      const fallback = seededRandom(seed * 7919);
      const scheduler = buildScheduler(parseEndpointPickerConfig(config(cfg)), { now: () => NOW, random: () => queued.shift() ?? fallback() });
      const producer = scheduler.plugin('predicted-latency-producer') as PredictedLatencyProducer;
      const tier = scheduler.plugin('slo-headroom-tier-filter') as SloHeadroomTierFilter;
      const scorer = scheduler.plugin('latency-scorer') as LatencyScorer;
      const admitter = scheduler.plugin('latency-slo-admitter') as LatencySloAdmitter;

      const split = random() < 0.3;
      let pods = pool(random, 1 + Math.floor(random() * 7), tpotModel, split);
      const queues: RefQueues = new Map();
      /** Commits in flight: what request control counts on each pod (activeRequests), every commit alike. */
      const inFlight: { request: LLMRequest; pod: number }[] = [];
      const withActive = () => { pods = pods.map((p, i) => ({ ...p, activeRequests: inFlight.filter((c) => c.pod === i).length })); };
      /** PreRequest of a request whose primary target is `pod`, with a TPOT SLO header among valid, none, 0, negative, not a float. */
      const commit = (pod: number, id: string, nearTpot: number) => {
        const commitHeaders: Record<string, string> = {};
        const tpotHeader = [undefined, '-5', '0', 'abc', '30', '15', '60', String(Math.round(nearTpot * 1.1))][Math.floor(random() * 8)];
        if (tpotHeader !== undefined) commitHeaders[random() < 0.8 ? 'x-llm-d-slo-tpot-ms' : 'x-slo-tpot-ms'] = tpotHeader;
        const committed: LLMRequest = { requestId: id, model: 'm', prompt: 'c', headers: commitHeaders, attributes: new CycleState() };
        producer.preRequest(committed, { target: pods[pod]!, profile: 'default', scores: new Map() });
        inFlight.push({ request: committed, pod });
        // requestPriorityQueue.Add refuses a negative TPOT SLO.
        const tpot = refSlo(commitHeaders).tpot;
        if (tpot >= 0) {
          const key = pods[pod]!.endpoint.key;
          if (!queues.has(key)) queues.set(key, new Map());
          queues.get(key)!.set(id, tpot);
        }
      };
      // A busy pool now and then: every pod with requests queued by the producer (no idle pod: the deficit buckets).
      if (random() < 0.5) pods.forEach((_, i) => commit(i, `s${seed}busy${i}`, 20 + 0.2 * pods[i]!.metrics.runningQueueSize));
      withActive();

      for (let r = 0; r < 6; r++) {
        const prompt = 'x'.repeat(40 + Math.floor(random() * 3000));
        // The raw predictions, to place SLO values around them.
        const probe = producer.predict({ requestId: 'probe', model: 'm', prompt, headers: {}, attributes: new CycleState() }, pods);
        const ttfts = probe === undefined ? [100] : pods.map((p) => probe.get(p.endpoint.key)!.ttft);
        const tpots = probe === undefined ? [20] : pods.map((p) => probe.get(p.endpoint.key)!.tpot);
        const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
        // A split pool's mean TTFT and TPOT: each pod past one of the two SLOs.
        const headers = split && random() < 0.6
          ? { 'x-llm-d-slo-ttft-ms': String(mean(ttfts)), 'x-llm-d-slo-tpot-ms': String(mean(tpots)) }
          : sloHeaders(random, ttfts, tpots.map((t) => (t > 0 ? t : 20)));
        const request: LLMRequest = { requestId: `s${seed}r${r}`, model: 'm', prompt, headers, attributes: new CycleState() };
        const priority = [-1, 0, 1, -3][Math.floor(random() * 4)]!;
        const slo = refSlo(headers);
        const where = `seed ${seed} request ${r} ${JSON.stringify({ cfg, tpotModel, headers, priority })}`;
        counts.requests++;
        if (Object.values(headers).some((v) => goParseFloat(v) === undefined)) counts.invalidHeader++;

        // The producer's predictions; now and then it predicts only some candidates (a missing prediction).
        const predicted = random() < 0.15 && pods.length > 1 ? pods.filter(() => random() < 0.6) : pods;
        if (predicted.length < pods.length) counts.missing++;
        const state = new CycleState();
        const cycle = { request, state, profile: 'default' };
        producer.filter(cycle, predicted);
        const infos = producer.predict(request, pods);
        const refs: (RefInfo | undefined)[] = pods.map((pod) => {
          if (!cfg.predictInProduce || !predicted.includes(pod)) return undefined;
          const info = infos!.get(pod.endpoint.key)!;
          return refInfo(cfg, slo, pod, info.ttft, info.tpot, tpotModel, queues);
        });
        if (!cfg.predictInProduce) expect([where, infos]).toEqual([where, undefined]);
        pods.forEach((pod, i) => {
          if (refs[i] === undefined) return;
          const got = infos!.get(pod.endpoint.key)! as LatencyPredictionInfo;
          const { ttftValid, tpotValid, ttftHeadroom, tpotHeadroom, dispatchedRequestCount } = got;
          expect([where, pod.endpoint.name, { ttftValid, tpotValid, ttftHeadroom, tpotHeadroom, dispatchedRequestCount }]).toEqual([where, pod.endpoint.name, refs[i]]);
        });

        // The tier filter, with a draw the reference takes too.
        // Now and then exactly epsilonExploreNeg (the positive tier: rand.Float64() < epsilon is false).
        const draw = random() < 0.15 ? cfg.epsilon : random();
        queued.length = 0;
        queued.push(draw);
        const kept = tier.filter(cycle, pods);
        const expectedTier = refTier(cfg.epsilon, refs, draw);
        expect([where, 'tier', kept.map((p) => p.endpoint.name), queued.length === 0]).toEqual([where, 'tier', expectedTier.kept.map((i) => pods[i]!.endpoint.name), expectedTier.drew]);
        if (expectedTier.drew) counts.bothTiers++;
        queued.length = 0;

        // The scorer over what the filter kept.
        if (cfg.predictInProduce) {
          const keptRefs = expectedTier.kept.map((i) => refs[i]);
          const expectedScores = refScores(keptRefs);
          const got = scorer.score(cycle, kept);
          if (keptRefs.every((x) => x !== undefined && (x.ttftHeadroom < 0 || x.tpotHeadroom < 0))) {
            counts.allNegative++;
            if (keptRefs.some((x) => x!.dispatchedRequestCount === 0)) counts.idleBucket++;
            else if (keptRefs.some((x) => x!.ttftHeadroom < 0 && !(x!.tpotHeadroom < 0)) && keptRefs.some((x) => !(x!.ttftHeadroom < 0) && x!.tpotHeadroom < 0)) counts.deficitBuckets++;
          }
          expectedScores.forEach((s, k) => {
            if (s === undefined) { counts.nanBlend++; return; }
            expect([where, 'score', kept[k]!.endpoint.name, got[k]]).toEqual([where, 'score', kept[k]!.endpoint.name, expect.closeTo(s, 9)]);
          });
        }

        // The admitter, on every candidate (it asks the producer itself).
        const denied = admitter.admit(request, priority, pods);
        const allRefs = pods.map((pod) => (cfg.predictInProduce ? refInfo(cfg, slo, pod, infos!.get(pod.endpoint.key)!.ttft, infos!.get(pod.endpoint.key)!.tpot, tpotModel, queues) : undefined));
        const expectDenied = refAdmitDenies(priority, slo, pods, cfg.predictInProduce ? allRefs : undefined);
        expect([where, 'admit', denied]).toEqual([where, 'admit', expectDenied ? 'no valid endpoint available to serve the request' : undefined]);
        if (expectDenied) counts.denied++;

        // The whole profile (producer, tier filter, scorer, weighted-random-picker) picks within the tier the reference
        // keeps for the same draw, never a candidate the reference scores 0 while another scores more (A-Res: key 0).
        if (cfg.predictInProduce) {
          // A stream of its own, so that the cases above stay those of the per-plugin comparisons.
          const pickRandom = seededRandom(seed * 1009 + r);
          const tierDraw = pickRandom() < 0.15 ? cfg.epsilon : pickRandom();
          queued.length = 0;
          queued.push(tierDraw);
          const picked = pods.indexOf(scheduler.schedule(request, pods).target);
          queued.length = 0;
          const expectedKept = refTier(cfg.epsilon, allRefs, tierDraw).kept;
          expect([where, 'pick in tier', expectedKept.includes(picked)]).toEqual([where, 'pick in tier', true]);
          const keptScores = refScores(expectedKept.map((i) => allRefs[i]));
          const own = keptScores[expectedKept.indexOf(picked)];
          if (own !== undefined && keptScores.some((x) => x !== undefined && x > 0)) expect([where, 'pick scored', own > 0]).toEqual([where, 'pick scored', true]);
        }

        // Commit the request to a random pod now and then (PreRequest: its primary target), and end some earlier ones.
        if (random() < 0.7) {
          const pod = Math.floor(random() * pods.length);
          commit(pod, `c${seed}-${r}`, tpots[pod]! > 0 ? tpots[pod]! : 20);
        }
        while (inFlight.length > 0 && random() < 0.3) {
          const [ended] = inFlight.splice(Math.floor(random() * inFlight.length), 1);
          producer.responseComplete(ended!.request, pods[ended!.pod]!.endpoint);
          const queue = queues.get(pods[ended!.pod]!.endpoint.key);
          queue?.delete(ended!.request.requestId);
          if (queue?.size === 0) queues.delete(pods[ended!.pod]!.endpoint.key);
        }
        withActive();
      }
    }
    // The cases reach every branch worth comparing.
    expect(counts.bothTiers).toBeGreaterThan(20);
    expect(counts.allNegative).toBeGreaterThan(50);
    expect(counts.idleBucket).toBeGreaterThan(20);
    expect(counts.deficitBuckets).toBeGreaterThan(3);
    expect(counts.denied).toBeGreaterThan(5);
    expect(counts.missing).toBeGreaterThan(20);
    expect(counts.invalidHeader).toBeGreaterThan(50);
  });
});
