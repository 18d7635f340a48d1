import { parseDuration } from '../../config/duration';
import { ConfigError } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { Endpoint, EndpointSnapshot } from '../../datastore/types';
import { DEFAULT_MAX_NUM_SEQS, LatencyModel, type PodLatencyModel, type TtftPrediction } from '../../latency/pod-latency-model';
import { DEFAULT_TPOT_PRIOR, TpotModel } from '../../latency/pod-tpot-model';
import type { PostResponse, PreRequest, ResponseComplete, ResponseInfo } from '../../requestcontrol/hooks';
import { scoresFromInto, stateKey, type CycleContext, type CycleState, type PluginHandle, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';
import { PREFIX_MATCH, producerMatch, resolvePrefixProducer, uncachedPromptTokens, uncachedTokensOf, type PrefixMatchEstimate, type PrefixMatchRatios } from '../prefix-match';
import { headroomScoresInto } from './headroom-score';
import { DEFAULT_PREDICTION_PRODUCER, PredictedLatencyProducer, resolvePredictionProducer } from './predicted-latency-producer';
import { sessionHeaderValue } from './session-affinity-filter';
import { UPSTREAM_PREFILL_PROFILE, type LLMRequest, type SchedulingResult } from '../types';

export interface LatencyScorerParameters {
  /**
   * Prefill milliseconds per uncached prompt token a pod is assumed to cost before any pod's data arrives (once some
   * pod was observed in the last `halfLife`/6, the pool's median line takes the prior's place). 0.2 ms ≈
   * 5,000 prefill tokens/s, a mid-size model on one GPU; kvroute's simulator defaults to 0.25.
   * @default 0.2
   */
  priorPrefillMsPerToken?: number;
  /** Fixed milliseconds per request before data arrives (scheduling, first decode step). @default 20 */
  priorOverheadMs?: number;
  /** How many requests' worth of evidence the prior is: more makes a pod's first observations move it less. @default 8 */
  priorWeight?: number;
  /**
   * Observations lose half their weight every `halfLife`, so the model follows a pod that slows down; a pod with no
   * first token for `halfLife`/6 is pulled toward the pool's line, halving the distance every `halfLife`/6, so a pod
   * avoided while slow is tried again (`src/latency/pod-latency-model.ts`, "A pod not observed for a while").
   * @default "60s"
   */
  halfLife?: string;
  /**
   * The longest a picked request counts as queued prefill work on its pod without its first token being seen
   * (normally it leaves at the next scrape that counts its first token, or at a non-streaming response's headers).
   * @default "30s"
   */
  pendingTimeout?: string;
  /**
   * Characters per token, to turn the approximate prefix index's characters (and, without any prefix scorer, the
   * prompt's length) into tokens: GIE's `averageCharactersPerToken` (pkg/epp/scheduling/framework/plugins/multi/prefix
   * /plugin.go), the usual figure for English text with a ~150k BPE vocabulary. Unused with the precise scorer.
   * @default 4
   */
  charactersPerToken?: number;
  /**
   * Requests each pod runs at once: the pods' vLLM `--max-num-seqs`. A pod with this many in flight (this EPP's own
   * count, or the last scrape's running + waiting) makes a new request wait for one of them to finish before its
   * prefill starts; the scorer adds that wait from the pod's mean `vllm:request_inference_time_seconds`
   * (`src/latency/pod-latency-model.ts`, "Waiting for a sequence slot"). A pod seen running more counts as having one
   * slot more than the most it ran. Per engine: a pod whose one port fronts several data-parallel engines has this many on each. The default is
   * vLLM 0.10's largest default (1024 on H100, H200, MI300x; 256 on smaller GPUs and the A100), so an EPP not told its
   * pods' limit never predicts a wait they do not have; set it to the pods' value (the cdk8s app does, from
   * `DecodePool.maxNumSeqs`).
   * @default 1024
   */
  maxNumSeqs?: number;
  /**
   * Which requests the slot wait is added for. `sessions` (the default): requests that carry a session id (one of
   * `sessionHeaders`), whose placement every later turn follows under hard session affinity, so a pod whose slots are
   * full keeps costing the session a wait; a request without one is placed as before (queued prefill, own prefill,
   * overhead). `all`: every request. Measured (bench/README.md, session 30): for new sessions the wait stops a burst
   * from herding onto the pod holding their prompt (later turns' TTFT p90 less than half); for one-off requests on
   * llm-d's ramp it moved requests off the pods holding their group's prefix and doubled TTFT p90 in one run.
   * `imbalanced` (kvroute's configs in session 55): as `sessions`, and for every other request while some
   * candidate's slots are all taken and another has at least half of its own free (one hot prompt without session ids
   * piled onto its holders' full slots while a pod stood idle: bench/README.md, "Session 55"). Once every pod is past
   * half full the wait stops counting for one-off requests however full the holders are. `avoidable` (kvroute's configs
   * in session 56): as `imbalanced`, and besides, for every other request, on each full candidate for which another
   * candidate holding at least as much of the prompt (no more uncached tokens) predicts a shorter slot wait: avoiding
   * that wait costs no recomputed prefix, so it is priced however full the pool is (one hot prompt at 83% of the slots'
   * capacity: every pod past half full, requests waited on one holder while another had free slots;
   * bench/README.md, "Session 56"). `hot-prefixes` (kvroute's configs since session 57): as `avoidable`, and besides,
   * for a one-off request whose prefix is hot and whose holders are the busier pods, a replication: the requests in
   * flight that shared a leading part of its prompt at least half as long as the longest any candidate holds (counted
   * per prefix index key: `hotPrefixDepths`) would take at least half of `maxNumSeqs`, and the least occupied
   * candidate holding that part has at least a quarter of its slots more taken than the least occupied one without it,
   * which has a free slot. The wait is then priced everywhere, and the score charges each candidate lacking the part
   * that has a free slot and is at least that much less occupied than that holder as if it held the part, and the
   * holders as if they had to compute it, so the request goes to a pod with room,
   * which then holds the prefix too (two hot system prompts at 16 req/s: each prompt's holders queued requests while
   * the other pods had free slots; bench/README.md, "Session 57" and "Session 58"). Likewise where the slots do not
   * bind (vLLM's default 256 or more of them): with at least 8 of the part's requests in flight for each candidate
   * holding it, while its least loaded holder spent at least 0.35 of the last seconds prefilling this EPP's picks and a
   * candidate without it, at most half of its slots taken, 0.25 less (`PodLatencyModel.laneLoad`), the request replicates
   * it onto those candidates (one hot prompt at 20 req/s on 256-slot pods: its two holders' prefills took about three
   * quarters of their time while two pods stood idle; bench/README.md, "Session 59"). A prefix shared by a few requests
   * at a time (llm-d's shared-prefix groups, a conversation's history) never takes half of them, so its
   * requests stay with their holders as under `avoidable`. Preble (Srivatsa et al., "Preble: Efficient Distributed
   * Prompt Scheduling for LLM Serving", ICLR 2025) replicates a prefix whose load exceeds its GPUs the same way. Before
   * this EPP has learnt any pod's mean request time, the wait counts twice the age of the oldest request it runs on the
   * pod as that mean (`src/latency/pod-latency-model.ts`).
   * @default "sessions"
   */
  slotWait?: SlotWaitMode;
  /** Request headers that carry a session id, as the session-affinity filter's `headers`. @default ["x-session-id", "x-session-token"] */
  sessionHeaders?: string[];
  /**
   * How many times the score counts the candidate's own uncached prefill: 1 scores the request's own predicted time to
   * first token; above 1 it also charges the wait that prefill adds for the requests that queue behind it on that pod,
   * so a pod that would recompute a prefix another holds must be predicted faster by more than the recomputation. A
   * candidate whose learned line prefills the prompt clearly faster than the line of the one holding most of it
   * (`fasterPodRatio`) is charged once. A request no candidate holds more of than another (a cold one) is charged
   * `ownPrefillWeight` times everywhere, but on candidates faster than the fastest line, i.e. none: the charge then
   * multiplies the slow pods' disadvantage too (this is how it was measured). The predictions themselves (the pre-request hook's, `predictTtftSeconds`, the predicted-latency producer's) stay the
   * request's own.
   * @default 1
   */
  ownPrefillWeight?: number;
  /**
   * With `ownPrefillWeight` above 1 (no effect otherwise): a candidate whose learned line (fixed seconds + seconds per
   * token) predicts the prompt's prefill (the most tokens any candidate would prefill: the whole prompt when some
   * candidate holds none of it), with nothing queued, in under this fraction of the time the line of the candidate with the
   * fewest uncached tokens (the prompt's best holder) predicts is charged its own prefill once, not `ownPrefillWeight`
   * times. A faster GPU's gain lasts, while an equal pod's shorter queue is a passing gain that the recomputed prefix's
   * wait for the requests behind it can cost more than it saves; without the exemption (0) the charge kept groups on
   * slow pods (bench/README.md, "Session 55").
   * @default 0.8
   */
  fasterPodRatio?: number;
  /**
   * Whether a one-off request (one without a session id: `sessionHeaders`) stays with the candidate holding the most of
   * its prompt as far as this score goes: a candidate that would prefill more of the prompt is predicted no faster than
   * that holder, unless its learned line prefills the prompt in under half the holder line's time (a faster GPU's gain
   * lasts) or the approximate prefix index has room for it (it holds less for the pod than the pod's KV cache can: a
   * prefill there evicts little or nothing; the precise index cannot tell, and every cache counts as full there:
   * `PrefixMatchEstimate.cacheFull`). The load scorers beside it in the profile still weigh the pods' queues against
   * the prefix.
   * While a hot prefix is replicated (`slotWait: hot-prefixes`) the holder is as the replication charges it: its
   * replica targets count as holders and the pods already holding it as recomputing it, so the replica is still taken.
   * Why: each move off the holder prefills the whole prompt on a pod whose cache then evicts other prompts, and on
   * llm-d's ramp with KV tight, the moves, each worth seconds to its own request by the prediction, cost the pool 20 hit
   * points and its throughput (bench/README.md, "Session 61"). A request carrying a session id is not held: a session's first request
   * is placed for every later turn (`session-load-scorer`), where spreading conversations sharing a system prompt is the
   * point, and a later turn goes where its session is bound (under soft stickiness, where the latency scorer says).
   * @default false
   */
  keepOneOffOnHolder?: boolean;
  /**
   * llm-d-router v0.10.0's field (`scorer/latency/plugin.go` Config): the `predicted-latency-producer` whose predictions
   * this scorer scores as upstream's does (`LatencyPredictionInfoDataKey.WithNonEmptyProducerName`), whichever
   * `latency-scorer` that producer predicts with. "" (the default): the producer predicting with this scorer; when the
   * config has several producers and one does, the one named `predicted-latency-producer` (the data key's default
   * producer name, which upstream reads), else a config error naming them; with no producer predicting with it, this
   * scorer's own score (kvroute's configs). Not rendered unless set.
   * @default ""
   */
  latencyPredictionInfoProducerName?: string;
  /**
   * llm-d-router v0.10.0's field: the prefix scorer (`prefix-cache-scorer` or `precise-prefix-cache-scorer`; an llm-d
   * producer merged into a scorer is named by that scorer) whose match this scorer's own prediction reads, where
   * upstream's composite fallback (the score without predictions) reads that producer's `PrefixCacheMatchInfo`. ""
   * (the default): the match its profile published (the precise scorer's when a profile lists both). A producer's
   * predictions, when scored, use that producer's own `prefixMatchInfoProducerName`. Not rendered unless set.
   * @default ""
   */
  prefixMatchInfoProducerName?: string;
}

/** Which requests, and on which candidates, the latency scorer adds the wait for a free sequence slot (`slotWait`). */
export type SlotWaitMode = 'sessions' | 'all' | 'imbalanced' | 'avoidable' | 'hot-prefixes';

/**
 * The parameters resolved: every default filled but `ownPrefillWeight`, `fasterPodRatio`, `keepOneOffOnHolder` and the
 * two producer names, kept only when given so configs render unchanged.
 */
export type ResolvedLatencyScorerParameters = Omit<Required<LatencyScorerParameters>, OptionalLatencyScorerParameter> & {
  readonly ownPrefillWeight?: number;
  readonly fasterPodRatio?: number;
  readonly keepOneOffOnHolder?: boolean;
  readonly latencyPredictionInfoProducerName?: string;
  readonly prefixMatchInfoProducerName?: string;
};

type OptionalLatencyScorerParameter = 'ownPrefillWeight' | 'fasterPodRatio' | 'keepOneOffOnHolder' | 'latencyPredictionInfoProducerName' | 'prefixMatchInfoProducerName';

/**
 * `slotWait: imbalanced`: a candidate with at most this share of its slots taken has room the full ones lack. A quarter
 * fixed the hot-prompt case as well (p90 393 / 426 ms against 371 / 415) and on llm-d's ramp still cost p90 in its
 * overloaded stages (session 55; bench/README.md); a half is the one measured on every workload there.
 */
const ROOMY_SLOT_SHARE = 0.5;

/**
 * `slotWait: hot-prefixes`: the most leading parts whose requests in flight are counted at once. A request in flight is
 * counted under at most two keys a doubling of its longest match (`hotPrefixDepths`: 13 for 100 blocks) and an entry
 * leaves with its last request, so this binds only a pool with ~20,000 requests in flight (beyond it, new leading parts
 * go uncounted and are never hot: their requests are placed as under `avoidable`).
 */
const MAX_COUNTED_PREFIXES = 1 << 18;

/**
 * `slotWait: hot-prefixes`: a leading part is hot once its requests in flight would take at least this share of
 * `maxNumSeqs` (one engine's sequence slots): a replica of it is used by requests enough to be worth a recomputed
 * prefix.
 */
const HOT_SLOT_SHARE = 0.5;

/**
 * `slotWait: hot-prefixes`: a hot leading part is replicated while its least occupied holder has at least this share of
 * its slots taken beyond the least occupied candidate without it (4 of 16 slots): its demand then runs on the busier
 * pods while a pod without it has room.
 */
const REPLICATE_SLOT_GAP = 0.25;

/**
 * `slotWait: hot-prefixes`, the lane rule: a leading part is hot for it once it has at least this many requests in
 * flight for each candidate holding it (as the slot rule's half of 16 slots: a replica would carry several of its
 * requests at once). Counted over all its holders, not per prefix: at 4 in all, long documents on tight KV (a few of
 * each document's requests at a time, the holders busy with other documents' cold prefills) were replicated and lost
 * hit points; at 8 for each holder they were not once (bench/README.md, "Session 59").
 */
const LANE_HOT_IN_FLIGHT = 8;

/**
 * `slotWait: hot-prefixes`, the lane rule: a hot leading part is replicated while its least loaded holder's prefill lane
 * is busy at least this share of the time (`PodLatencyModel.laneLoad`)…
 */
const HOT_LANE_LOAD = 0.35;

/**
 * …and a candidate without it that has at most half of its slots taken (`ROOMY_SLOT_SHARE`) is busy at least this share
 * of the time less (one hot prompt on 256-slot pods at 20 req/s: its two holders' lanes busy about 0.75 of the time, two
 * pods idle; bench/README.md, "Session 59").
 */
const REPLICATE_LANE_GAP = 0.25;

/**
 * `slotWait: hot-prefixes`: a commit still counted this long after it was made stops counting, whether or not its
 * request ended. Every commit's end should uncount it (`responseComplete`), but a commit whose end never comes (request
 * control re-routing a request after an internal error) would otherwise count forever and, at `MAX_COUNTED_PREFIXES`,
 * end the counting of new prefixes. Longer than any generation at a usual pace (32,768 tokens at 18 ms a token), and a
 * request running past it only makes its prefix look less hot, never more.
 */
const COUNTED_COMMIT_TTL_MS = 10 * 60_000;

/**
 * `keepOneOffOnHolder`: a candidate whose learned line prefills the prompt in under this share of the time the holder's
 * line takes may still outscore the holder: a GPU twice as fast stays so (the heterogeneous pool's slow pods are 2.5×
 * slower). At `fasterPodRatio`'s 0.8, identical pods' lines learnt under load let most moves through: llm-d's ramp read
 * 76.4% hits, against 86.0% with no exemption and 83.6% with this one (bench/README.md, "Session 61").
 */
const KEEP_ON_HOLDER_FASTER_LINE = 0.5;

/** After a power of two p (past 2), 3p/2; after 3p/2, 2p: 1, 2, 3, 4, 6, 8, 12, … */
function nextHotPrefixDepth(depth: number): number {
  if (depth <= 2) return depth + 1;
  return (depth & (depth - 1)) === 0 ? depth + depth / 2 : depth + depth / 3;
}

/**
 * `slotWait: hot-prefixes`: the depths, in blocks, at which a request's leading parts are counted, up to `longest`:
 * 1, 2, 3, 4, 6, 8, 12, 16, 24, … (two a doubling, so a few increments a request however long the prompt). The
 * deepest is at least two thirds of `longest`, and a longest match that runs a block or two past a shared system
 * prompt by chance (two questions starting alike) still counts at the depths within the prompt.
 */
function hotPrefixDepths(longest: number, out: number[]): number[] {
  out.length = 0;
  for (let depth = 1; depth <= longest; depth = nextHotPrefixDepth(depth)) out.push(depth);
  return out;
}

/**
 * The candidates whose slot wait a request's predictions count: every one (`true`), none (`false`), or those marked 1
 * (a one-off request under `slotWait: avoidable` or `hot-prefixes`: `LatencyScorer.avoidableSlotWaits`).
 */
type SlotWaitScope = boolean | Uint8Array;

function slotWaitAt(scope: SlotWaitScope, i: number): boolean {
  return typeof scope === 'boolean' ? scope : scope[i] === 1;
}

/**
 * What the last cycle's predictions were made from, kept with the request: the pre-request hook recomputes the pick's
 * prediction from it (one pod), `predictions()` every candidate's (logs and tests). The cycle itself writes only the
 * scores: at 256 pods a prediction object per candidate per request was most of the scorer's cost.
 */
interface CycleInputs {
  readonly candidates: readonly EndpointSnapshot[];
  readonly match: PrefixMatchEstimate | undefined;
  readonly nowMs: number;
  /** Where the slot wait was added for this request (`slotWait`): every candidate, none, or the marked ones. */
  readonly slotWait: SlotWaitScope;
  /** The profile that scored (`CycleContext.profile`), and the cycle: the same scorer may score in several profiles. */
  readonly profile: string | undefined;
  readonly state: CycleState;
  /** The inputs of the profile this scorer scored before, in the same cycle (P/D: the decode profile's); else undefined. */
  readonly previous: CycleInputs | undefined;
}

/** The inputs in `head`'s chain that profile `profile` scored (the newest first), or undefined. */
function inputsOfProfile(head: CycleInputs, profile: string): CycleInputs | undefined {
  for (let inputs: CycleInputs | undefined = head; inputs !== undefined; inputs = inputs.previous) {
    if (inputs.profile === profile) return inputs;
  }
  return undefined;
}

/**
 * Where `pick` stands among `candidates`: normally one of the scored snapshots itself (an identity scan, no closure: a
 * keyed search over 256 candidates was a third of the pre-request hook's cost); by key when a profile handler handed
 * back another snapshot; -1 when it was not scored.
 */
function indexOfPick(candidates: readonly EndpointSnapshot[], pick: EndpointSnapshot): number {
  const i = candidates.indexOf(pick);
  if (i >= 0) return i;
  const key = pick.endpoint.key;
  return candidates.findIndex((c) => c.endpoint.key === key);
}

/** A pick of another profile than the primary one (P/D: the prefill pod), tracked in that pod's model until it ends. */
interface StagePick {
  readonly endpointKey: string;
  readonly tracked: string;
  /** Picked by the profile named `prefill`: ends at the response's start rather than the request's end. */
  readonly early: boolean;
  ended: boolean;
}

/**
 * `latency-scorer`: predicts each candidate's time to first token for this request — queued prefill work ahead of it,
 * the wait for a free sequence slot when the pod already runs `maxNumSeqs` requests, its own uncached prefill and a
 * fixed overhead, from a per-pod model learned online (`epp/src/latency/`) — and scores
 * it as `best predicted TTFT ÷ this candidate's predicted TTFT`: 1 for the fastest candidate, 0.5 for one predicted to
 * take twice as long. The ratio keeps the score in (0, 1] whatever the absolute latencies, so it composes with the
 * other weighted scorers: at weight `w` a candidate twice as slow loses `w/2` points, ten times as slow `0.9·w`.
 * When a `predicted-latency-producer` predicts with it (llm-d's predicted-latency configs), or one is named by
 * `latencyPredictionInfoProducerName`, it scores that producer's predictions as llm-d-router v0.10.0's own
 * `latency-scorer` does instead (`resolveReferences`, `headroom-score.ts`).
 *
 * Uncached tokens per candidate come from the prefix scorer of the same profile (`prefix-match.ts`): the precise
 * scorer's tokens, or the approximate scorer's characters ÷ `charactersPerToken`. List this scorer after the prefix
 * scorer in the profile; without a prefix match every candidate is charged the whole prompt, and only queues differ.
 *
 * Request hooks: at the commit (pre-request) the pick's uncached tokens join the pod's queued work, so the next
 * request sees them at once rather than at the next scrape (equal scores spread instead of herding); a non-streaming
 * response's headers (post-response) end the request's queued work, since they follow the whole generation. A
 * streaming response's headers say nothing: vLLM sends them before the request reaches its engine queue.
 *
 * Relation to upstream: GIE's predicted-latency plugin (type `slo-aware-routing`, later `predicted-latency-scorer`,
 * kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/multi/slo_aware_router/, used
 * by llm-d's "predicted latency based scheduling" guide) asks sidecar services for p90 TTFT/TPOT predictions from
 * XGBoost models trained on samples the EPP collects from streamed responses, and scores headroom against the
 * request's `x-slo-ttft-ms`/`x-slo-tpot-ms` headers; llm-d-inference-scheduler's `pd-slo-aware-scorer`
 * (pkg/plugins/scorer/pd_slo_aware_scorer.go, late 2025) wraps that router, with the same predictor sidecars
 * (`sidecars/latencypredictorasync`), for prefill/decode pairs. This plugin needs no sidecar and no response bodies: a
 * two-parameter linear model per pod fitted from the engine's own TTFT histogram and prefix-cache counters; it
 * predicts the mean TTFT, not p90, and reads no SLO headers itself: llm-d-router v0.10.0's `predicted-latency-producer`
 * (`predicted-latency-producer.ts`) publishes SLO headroom from this model's `predictTtftSeconds` and from the TPOT
 * model this scorer feeds from the same scrapes (`tpotModel`, `predictTpotSeconds`), for the `slo-headroom-tier-filter`
 * and `latency-slo-admitter`.
 */
export class LatencyScorer implements Scorer, PreRequest, PostResponse, ResponseComplete {
  readonly type = 'latency-scorer';
  readonly model: LatencyModel;
  /**
   * Each pod's time per output token (`src/latency/pod-tpot-model.ts`), learned from the same scrapes as `model` (each
   * new snapshot feeds both once a producer asked for it: `wantTpot`), for the `predicted-latency-producer`'s TPOT; it does not enter this scorer's score.
   */
  readonly tpotModel: TpotModel;
  /** The `predicted-latency-producer`s predicting with this scorer (`servePredictions`). */
  private readonly producers: PredictedLatencyProducer[] = [];
  /**
   * The producer whose predictions this scorer scores, once references are resolved (`resolveReferences`:
   * `latencyPredictionInfoProducerName`, else the one predicting with it); undefined: its own score.
   */
  private source: PredictedLatencyProducer | undefined;
  private sourceResolved = false;
  /** The prefix scorer `prefixMatchInfoProducerName` names, whose match this scorer's own prediction reads; undefined: the profile's. */
  private prefixSource: PrefixMatchRatios | undefined;
  /** Whether a `predicted-latency-producer` reads `tpotModel` (`wantTpot`): until then scoring does not feed it. */
  private tpotWanted = false;
  private readonly inputsKey = stateKey<CycleInputs>('latency-scorer inputs');
  /**
   * The name the pod model tracks a routed request under, unique per commit: `x-request-id` is the client's when it sent
   * one, and a retry or a hedged copy may carry the same id while the first is in flight (each is its own slot).
   */
  private readonly trackedKey = stateKey<string>('latency-scorer tracked request');
  /** The request's picks by its other profiles (`StagePick`), each ended once (`endStages`). */
  private readonly stagesKey = stateKey<readonly StagePick[]>('latency-scorer other profiles\' picks');
  private committed = 0;
  /**
   * Per candidate position, the snapshot scored there last and its pod's model. Positions rarely move between requests
   * (the datastore keeps them until a pod joins or leaves), and a snapshot is replaced whenever its metrics change, so
   * an identical snapshot needs neither the model lookup nor the scrape check: at 256 pods those two were most of the
   * scorer's remaining cost per candidate. Cleared when a pod is removed.
   */
  private slotSnapshots: (EndpointSnapshot | undefined)[] = [];
  private slotModels: PodLatencyModel[] = [];
  /**
   * Per candidate position, scratch for one cycle's slot-wait decision (`slotsImbalanced` fills `shares`,
   * `avoidableSlotWaits` the rest): grown, never shrunk, so a request allocates only the marks of the candidates it
   * prices (`avoidableSlotWaits`).
   */
  private shares = new Float64Array(0);
  private uncachedScratch = new Float64Array(0);
  /** Per candidate, the uncached tokens the last prediction pass charged it (`chargedTokens`), which `keepOnHolder` reads. */
  private chargedScratch = new Float64Array(0);
  private waitScratch = new Float64Array(0);
  private fullScratch: number[] = [];
  /**
   * `slotWait: hot-prefixes`: per prefix index key (`PrefixMatchEstimate.heldBlocks`, at the depths `hotPrefixDepths`
   * gives for the request's longest match when it was scored), the requests committed sharing that leading part and not
   * yet ended (`preRequest` to `responseComplete`); an entry leaves at 0.
   */
  private readonly inFlightByPrefix = new Map<number, number>();
  /**
   * Per commit (`trackedKey`'s name), the keys it is counted under in `inFlightByPrefix` and when it was made, in
   * commit order: uncounted at the request's end, or past `COUNTED_COMMIT_TTL_MS` (`expireCountedCommits`).
   */
  private readonly countedCommits = new Map<string, { readonly keys: readonly number[]; readonly atMs: number }>();
  private depthScratch: number[] = [];
  /**
   * `slotWait: hot-prefixes`, for the request being scored: the length (in the prefix match's units) of its prompt's hot
   * leading part when its prefix is to be replicated (`prefixHot`), else 0; its tokens (`hotTokens`); and per candidate
   * (`replicaMarks`) 1 where a candidate without that part is to take the replica (it has a free slot and is
   * `REPLICATE_SLOT_GAP` less occupied than the least occupied holder, or under the lane rule at most half full and
   * `REPLICATE_LANE_GAP` less busy than the least loaded holder: `laneReplicates`), 2 where it holds the part. The
   * score charges the first as if they held the part and the second as if they had to compute it (`chargedTokens`).
   */
  private hotLength = 0;
  private hotTokens = 0;
  private replicaMarks = new Uint8Array(0);

  constructor(
    readonly name: string,
    private readonly parameters: ResolvedLatencyScorerParameters,
    private readonly handle: PluginHandle,
  ) {
    this.model = new LatencyModel({
      priorSecondsPerToken: parameters.priorPrefillMsPerToken / 1000,
      priorOverheadSeconds: parameters.priorOverheadMs / 1000,
      priorWeight: parameters.priorWeight,
      halfLifeMs: parseDuration(parameters.halfLife),
      pendingTimeoutMs: parseDuration(parameters.pendingTimeout),
      maxNumSeqs: parameters.maxNumSeqs,
    });
    this.tpotModel = new TpotModel({ ...DEFAULT_TPOT_PRIOR, halfLifeMs: parseDuration(parameters.halfLife) });
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const now = this.handle.now();
    // The named producer's match, not whichever the profile published (the precise one's when it lists both).
    const match = this.prefixSource !== undefined ? producerMatch(cycle, this.prefixSource, candidates) : cycle.state.get(PREFIX_MATCH);
    const slotWait = this.slotWaitFor(cycle.request, match, candidates, now);
    // Set by slotWaitFor for this request alone: the uncached tokens of a candidate holding the hot part (-1: none).
    const replicated = this.hotLength > 0 ? uncachedTokensOf(match!, this.hotLength, this.parameters.charactersPerToken) : -1;
    this.hotTokens = replicated >= 0 ? uncachedTokensOf(match!, 0, this.parameters.charactersPerToken) - replicated : 0;
    const n = candidates.length;
    const ownPrefillWeight = this.parameters.ownPrefillWeight ?? 1;
    if (ownPrefillWeight === 1) this.predictInto(cycle.request, match, candidates, out, now, slotWait, 1, replicated);
    else this.predictChargedInto(cycle.request, match, candidates, out, now, slotWait, ownPrefillWeight, this.parameters.fasterPodRatio ?? 0.8, replicated);
    if (this.parameters.keepOneOffOnHolder === true && match !== undefined && sessionHeaderValue(cycle.request, this.parameters.sessionHeaders) === undefined) {
      this.keepOnHolder(match, candidates, out, now);
    }
    let best = Infinity;
    for (let i = 0; i < n; i++) if (out[i]! < best) best = out[i]!;
    const attributes = cycle.request.attributes;
    if (attributes !== undefined) {
      // A scorer listed in several profiles scores once in each: each profile's inputs are kept, the newest first.
      const earlier = attributes.get(this.inputsKey);
      const previous = earlier !== undefined && earlier.state === cycle.state ? earlier : undefined;
      attributes.set(this.inputsKey, { candidates, match, nowMs: now, slotWait, profile: cycle.profile, state: cycle.state, previous });
    }
    // Unresolved (a scorer built outside a scheduler): the first producer predicting with it.
    const source = this.sourceResolved ? this.source : this.producers[0];
    const predictions = source === undefined ? undefined : cycle.state.get(source.predictionsKey) ?? source.predict(cycle.request, candidates);
    if (predictions !== undefined) {
      headroomScoresInto(candidates.map((c) => predictions.get(c.endpoint.key)), out);
      return;
    }
    for (let i = 0; i < n; i++) out[i] = out[i]! <= 0 ? 1 : best / out[i]!;
  }

  /**
   * A `predicted-latency-producer` predicts with this scorer (it calls this when it resolves its references): unless
   * `latencyPredictionInfoProducerName` names another, this scorer then scores as llm-d-router v0.10.0's `latency-scorer`
   * does, from that producer's predictions (`headroom-score.ts`), which is what llm-d's predicted-latency configs list
   * it for. kvroute's own configs list no producer, and score as before.
   */
  servePredictions(producer: PredictedLatencyProducer): void {
    if (!this.producers.includes(producer)) this.producers.push(producer);
  }

  /**
   * The producers named by `latencyPredictionInfoProducerName` and `prefixMatchInfoProducerName`, as llm-d-router
   * v0.10.0's scorer keys them (`scorer/latency/plugin.go` Factory: `WithNonEmptyProducerName` on
   * `LatencyPredictionInfoDataKey` and `PrefixCacheMatchInfoDataKey`). Upstream's loader fails a key no plugin produces
   * (`datalayer/data_graph.go` CreateMissingDataProducers: no default producer for a named key); here the name must be a
   * plugin of the right type.
   */
  resolveReferences(): void {
    if (this.sourceResolved) return;
    const prefixName = this.parameters.prefixMatchInfoProducerName ?? '';
    if (prefixName !== '') {
      const prefix = resolvePrefixProducer(this.handle, `${this.name}.parameters.prefixMatchInfoProducerName`, prefixName)!;
      // The approximate index learns only from the picks of the profiles listing it (or of a producer recording them).
      if (prefix.type === 'prefix-cache-scorer') {
        const recorders = [...(this.handle.plugins?.() ?? [])].filter((x) => x instanceof PredictedLatencyProducer && x.prefixScorer() === prefix).map((x) => x.name);
        this.requireInMyProfiles(prefix.name, recorders, `reads the prefix match of ${JSON.stringify(prefix.name)}, which learns where prompts went only from the picks of the profiles that list it`,
          `{pluginRef: ${prefix.name}, weight: 0} learns without scoring`);
      }
      this.prefixSource = prefix;
    }
    const source = this.predictionSource();
    if (source !== undefined) {
      const latency = source.latencyScorer();
      // Another scorer's model: its commits are what count each pod's queued prefill in the predictions scored here.
      if (latency !== this) {
        this.requireInMyProfiles(latency.name, [source.name], `scores the predictions of ${JSON.stringify(source.name)}, made with ${JSON.stringify(latency.name)}, `
          + `and ${JSON.stringify(latency.name)} counts the prefill queued on each pod only from the picks of the profiles that list it`, `{pluginRef: ${latency.name}, weight: 0} predicts without scoring`);
      }
    }
    this.source = source;
    this.sourceResolved = true;
  }

  /**
   * `latencyPredictionInfoProducerName`'s producer; unnamed, none unless a producer predicts with this scorer, then the
   * config's one, or among several the one named `predicted-latency-producer`: upstream's unnamed key is
   * `LatencyPredictionInfoDataKey/predicted-latency-producer` (`attribute/latency/data_types.go`), which only the
   * producer of that name publishes (each publishes under its own name: `predictedlatency/plugin.go`
   * NewPredictedLatency). Without one of that name upstream's loader would add a default-configured producer of that
   * name for the scorer (CreateMissingDataProducers); kvroute refuses instead.
   */
  private predictionSource(): PredictedLatencyProducer | undefined {
    const named = this.parameters.latencyPredictionInfoProducerName ?? '';
    if (named !== '') return resolvePredictionProducer(this.handle, this.name, named);
    const producers = [...(this.handle.plugins?.() ?? [])].filter((x): x is PredictedLatencyProducer => x instanceof PredictedLatencyProducer);
    // Each producer tells its latency-scorer when it resolves its references (servePredictions): asked here, whatever the config's order.
    if (!producers.some((p) => p.latencyScorer() === this)) return undefined;
    if (producers.length === 1) return producers[0];
    const byDefault = producers.find((p) => p.name === DEFAULT_PREDICTION_PRODUCER);
    if (byDefault !== undefined) return byDefault;
    throw new ConfigError(`${this.name}.parameters.latencyPredictionInfoProducerName`, `the config has several predicted-latency-producers (${producers.map((p) => p.name).join(', ')}) `
      + `and none named ${JSON.stringify(DEFAULT_PREDICTION_PRODUCER)}, the one llm-d-router v0.10.0's latency-scorer reads when it names none `
      + '(upstream would add a default-configured one of that name): name the one to score');
  }

  /** Every profile that lists this scorer must list `required` or one of `alternatives`, which do its work there. */
  private requireInMyProfiles(required: string, alternatives: readonly string[], because: string, weightZero: string): void {
    (this.handle.profiles?.() ?? []).forEach((profile, i) => {
      const refs = profile.plugins.map((r) => r.pluginRef);
      if (!refs.includes(this.name) || refs.includes(required) || alternatives.some((p) => refs.includes(p))) return;
      throw new ConfigError(`schedulingProfiles[${i}].plugins`, `lists ${JSON.stringify(this.name)} (latency-scorer), which ${because}: `
        + `list ${JSON.stringify(required)} in profile ${JSON.stringify(profile.name)} too (${weightZero})`);
    });
  }

  /**
   * Each candidate's predicted seconds to first token for `request`, with `match` the prefix match over these
   * candidates (undefined: the whole prompt everywhere), as this scorer's own scoring predicts them (its own uncached
   * tokens: a replication's charges, `chargedTokens`, are the score's alone), but without keeping them for the
   * commit: for a plugin that reads the predictions before the scorer runs
   * (`prefix-cache-affinity-filter`'s `latencyPredictor` load gate).
   */
  predictTtftSeconds(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[]): Float64Array {
    const out = new Float64Array(candidates.length);
    const now = this.handle.now();
    this.predictInto(request, match, candidates, out, now, this.slotWaitFor(request, match, candidates, now), 1);
    return out;
  }

  /**
   * Each candidate's predicted seconds from now to the end of the response, for the `predicted-latency-producer` in its
   * non-streaming mode (upstream trains its "TTFT" at the end of the response there: the request's end-to-end latency):
   * `predictTtftSeconds` plus the rest of the request's run on the pod, the pod's mean
   * `vllm:request_inference_time_seconds` (a finished request's seconds RUNNING, its prefill and decode; the pool's mean
   * for a pod with no finished request yet) less this request's own predicted prefill, which the time to first token
   * already counts, at least 0. Before any pod finished a request there is no run time to add: the time to first token.
   */
  predictEndToEndSeconds(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[]): Float64Array {
    const out = this.predictTtftSeconds(request, match, candidates);
    const now = this.handle.now();
    // The uncached tokens predictTtftSeconds charged each candidate.
    const charged = this.chargedScratch;
    for (let i = 0; i < candidates.length; i++) {
      const pod = this.podAt(i, candidates[i]!, now);
      const running = pod.inferenceSeconds();
      if (running === undefined) continue;
      out[i] = out[i]! + Math.max(0, running - pod.secondsPerToken(now) * charged[i]!);
    }
    return out;
  }

  /**
   * Each candidate's predicted seconds into `out`, each charged the uncached tokens `chargedTokens` gives (kept in
   * `chargedScratch`).
   */
  private predictInto(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[], out: Float64Array, now: number, slotWait: SlotWaitScope, ownPrefillWeight: number, replicated = -1): void {
    const n = candidates.length;
    if (this.chargedScratch.length < n) this.growScratch(n);
    const charged = this.chargedScratch;
    for (let i = 0; i < n; i++) {
      const candidate = candidates[i]!;
      const pod = this.podAt(i, candidate, now);
      charged[i] = this.chargedTokens(this.uncachedAt(request, match, candidates, i), i, replicated);
      out[i] = pod.predictSeconds(charged[i]!, candidate.metrics, now, candidate.activeRequests, slotWaitAt(slotWait, i), ownPrefillWeight);
    }
  }

  /**
   * `predictInto` with each candidate's own prefill counted `ownPrefillWeight` times, but once for a candidate whose line
   * prefills the prompt in under `fasterPodRatio` of the time the line of the prompt's best holder takes
   * (`ownPrefillWeight`, `fasterPodRatio`).
   */
  private predictChargedInto(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[], out: Float64Array, now: number, slotWait: SlotWaitScope, ownPrefillWeight: number, fasterPodRatio: number, replicated = -1): void {
    const n = candidates.length;
    // The most tokens any candidate would prefill, in the units the prefix match counts: the whole prompt when some
    // candidate holds none of it, less when every candidate holds part.
    let promptTokens = 0;
    for (let i = 0; i < n; i++) {
      const uncached = this.uncachedAt(request, match, candidates, i);
      out[i] = uncached;
      if (uncached > promptTokens) promptTokens = uncached;
    }
    let holderSeconds = Infinity;
    let holderUncached = Infinity;
    for (let i = 0; i < n; i++) {
      const seconds = this.podAt(i, candidates[i]!, now).lineSeconds(promptTokens, now);
      // The fewest uncached tokens; among equals the fastest line.
      if (out[i]! < holderUncached || (out[i] === holderUncached && seconds < holderSeconds)) {
        holderUncached = out[i]!;
        holderSeconds = seconds;
      }
    }
    const faster = fasterPodRatio * holderSeconds;
    if (this.chargedScratch.length < n) this.growScratch(n);
    const charged = this.chargedScratch;
    for (let i = 0; i < n; i++) {
      const candidate = candidates[i]!;
      const pod = this.podAt(i, candidate, now);
      const weight = pod.lineSeconds(promptTokens, now) < faster ? 1 : ownPrefillWeight;
      // The holder and the line it is compared with are the real ones; only the charge is the replication's.
      charged[i] = this.chargedTokens(out[i]!, i, replicated);
      out[i] = pod.predictSeconds(charged[i]!, candidate.metrics, now, candidate.activeRequests, slotWaitAt(slotWait, i), weight);
    }
  }

  /**
   * `keepOneOffOnHolder`: each candidate charged more uncached tokens than the fewest any candidate is charged
   * (`chargedTokens`: a hot prefix's replica counts as a holder) gets at least the prediction in `out` of the candidate
   * charged the fewest (among equals, the one predicted fastest), unless the prefix scorer's index has room for it
   * (`PrefixMatchEstimate.cacheFull`; the precise scorer cannot tell, and every cache counts as full) or its line
   * prefills the prompt in under `KEEP_ON_HOLDER_FASTER_LINE` of that holder line's time. The holder's own prediction
   * is untouched. Reads the charges the prediction pass just made (`chargedScratch`).
   */
  private keepOnHolder(match: PrefixMatchEstimate, candidates: readonly EndpointSnapshot[], out: Float64Array, now: number): void {
    const n = candidates.length;
    const charged = this.chargedScratch;
    let holder = -1;
    let most = 0;
    for (let i = 0; i < n; i++) {
      const tokens = charged[i]!;
      if (tokens > most) most = tokens;
      if (holder < 0 || tokens < charged[holder]! || (tokens === charged[holder] && out[i]! < out[holder]!)) holder = i;
    }
    // A prompt every candidate holds as much of (a cold one, or one cached everywhere) has no holder to keep it on.
    if (holder < 0 || !(charged[holder]! < most)) return;
    const floor = out[holder]!;
    const faster = KEEP_ON_HOLDER_FASTER_LINE * this.podAt(holder, candidates[holder]!, now).lineSeconds(most, now);
    const { cacheFull } = match;
    for (let i = 0; i < n; i++) {
      if (!(charged[i]! > charged[holder]! && out[i]! < floor)) continue;
      // A cache with room evicts little or nothing to take the prompt: the move costs about its own prefill, which the
      // score has.
      if (cacheFull !== undefined && !cacheFull(candidates[i]!.endpoint.key)) continue;
      if (this.podAt(i, candidates[i]!, now).lineSeconds(most, now) < faster) continue;
      out[i] = floor;
    }
  }

  /**
   * The uncached tokens the score charges candidate `i` with `uncached` of its own: those, unless the request replicates
   * a hot prefix (`replicated`, a holder's uncached tokens, at 0 or more: `hotLength`), where a candidate marked to
   * take the replica is charged as a holder and a holder as if the part were not cached (`replicaMarks`). The
   * choice is between queueing the prefix's demand on its busier holders and computing it once more on a pod with
   * room, which then holds it for the requests after this one; the prediction kept for the commit stays the request's
   * own (`predictionAt`).
   */
  private chargedTokens(uncached: number, i: number, replicated: number): number {
    if (replicated < 0) return uncached;
    const mark = this.replicaMarks[i];
    return mark === 1 ? Math.min(uncached, replicated) : mark === 2 ? uncached + this.hotTokens : uncached;
  }

  /**
   * The model of the pod scored at position `i`, having learned from `candidate`'s metrics once per snapshot (see
   * `slotSnapshots`).
   */
  private podAt(i: number, candidate: EndpointSnapshot, now: number): PodLatencyModel {
    if (this.slotSnapshots[i] === candidate) return this.slotModels[i]!;
    const pod = this.model.pod(candidate.endpoint.key);
    pod.ingest(candidate.metrics, now);
    if (this.tpotWanted) this.tpotModel.ingest(candidate.endpoint.key, candidate.metrics, now);
    this.slotSnapshots[i] = candidate;
    this.slotModels[i] = pod;
    return pod;
  }

  /**
   * A reader of `tpotModel` is configured: from now on every scrape this scorer learns from feeds the TPOT model too
   * (the `predicted-latency-producer` calls this when it resolves its references). Without one, as in the default
   * config, the TPOT model is never fed and costs nothing.
   */
  wantTpot(): void {
    this.tpotWanted = true;
  }

  /**
   * Each candidate's predicted seconds per output token (`tpotModel`: its batch with this request), undefined while no
   * pod has reported the inter-token histogram. Learns from each candidate's scrape first, as scoring does.
   */
  predictTpotSeconds(candidates: readonly EndpointSnapshot[]): Float64Array | undefined {
    this.tpotWanted = true;
    const now = this.handle.now();
    for (const c of candidates) this.tpotModel.ingest(c.endpoint.key, c.metrics, now);
    if (!this.tpotModel.reported) return undefined;
    const out = new Float64Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      out[i] = this.tpotModel.predictSeconds(c.endpoint.key, c.metrics, c.activeRequests, now)!;
    }
    return out;
  }

  /**
   * `uncachedTokens` for `candidates[i]`, read by position from the prefix scorer's `byCandidate` when it scored these
   * very candidates (a keyed lookup would build its lazy Map: 256 entries a request at 256 pods).
   */
  private uncachedAt(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[], i: number): number {
    const byCandidate = match?.byCandidate;
    if (match === undefined || byCandidate?.candidates !== candidates) return this.uncachedTokens(request, match, candidates[i]!.endpoint.key);
    return uncachedTokensOf(match, byCandidate.cachedLength[i]!, this.parameters.charactersPerToken);
  }

  /** The request's prompt tokens the endpoint would have to prefill. */
  uncachedTokens(request: LLMRequest, match: PrefixMatchEstimate | undefined, endpointKey: string): number {
    return uncachedPromptTokens(request, match, endpointKey, this.parameters.charactersPerToken);
  }

  /** The predictions of the request's last scoring, by endpoint key (for logs and tests). */
  predictions(request: LLMRequest): ReadonlyMap<string, TtftPrediction> | undefined {
    const inputs = request.attributes?.get(this.inputsKey);
    if (inputs === undefined) return undefined;
    return new Map(inputs.candidates.map((c, i) => [c.endpoint.key, this.predictionAt(request, inputs, i)]));
  }

  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const head = request.attributes?.get(this.inputsKey);
    if (head === undefined) return;
    // The primary profile's own inputs (P/D: the decode profile's, which the prefill profile's scoring came after);
    // none when this scorer is not in that profile. A cycle a caller built without profiles has the one it scored.
    const inputs = inputsOfProfile(head, result.profile) ?? (head.profile === undefined ? head : undefined);
    const i = inputs === undefined ? -1 : indexOfPick(inputs.candidates, result.target);
    if (i < 0 && result.profileTargets === undefined) return;
    const now = this.handle.now();
    // A request committed again (its earlier commit's end will not come under that name) stops counting there first.
    const earlier = request.attributes!.get(this.trackedKey);
    if (earlier !== undefined) this.uncount(earlier);
    this.endStages(request, now);
    const tracked = `${request.requestId}#${++this.committed}`;
    request.attributes!.set(this.trackedKey, tracked);
    if (i >= 0) this.trackPick(request, result.target.endpoint.key, inputs!, i, tracked, now);
    if (result.profileTargets !== undefined) this.trackStages(request, result, head, tracked, now);
  }

  /** The primary profile's pick, the `i`th of `inputs.candidates`, counted on its pod under `tracked` until its response ends. */
  private trackPick(request: LLMRequest, key: string, inputs: CycleInputs, i: number, tracked: string, now: number): void {
    const { uncachedTokens, ttftSeconds, queuedTokens } = this.predictionAt(request, inputs, i);
    const pod = this.model.pod(key);
    pod.addPending(tracked, uncachedTokens, ttftSeconds, now, queuedTokens);
    const held = inputs.match?.heldBlocks;
    if (this.parameters.slotWait === 'hot-prefixes') {
      this.expireCountedCommits(now);
      if (held !== undefined) {
        const counted: number[] = [];
        for (const depth of hotPrefixDepths(held.longest, this.depthScratch)) {
          const key = held.keys[depth - 1]!;
          const count = this.inFlightByPrefix.get(key);
          if (count === undefined && this.inFlightByPrefix.size >= MAX_COUNTED_PREFIXES) continue;
          this.inFlightByPrefix.set(key, (count ?? 0) + 1);
          counted.push(key);
        }
        this.countedCommits.set(tracked, { keys: counted, atMs: now });
      }
    }
    // It starts running once a slot frees (whether or not its own score counted the wait: `slotWait`).
    const candidate = inputs.candidates[i]!;
    pod.started(tracked, now + 1000 * pod.slotWaitSeconds(candidate.metrics, candidate.activeRequests, now));
  }

  /**
   * The picks of the request's other profiles that this scorer scored (P/D: the prefill pod), each counted on its pod
   * as that profile predicted it: queued prefill work and a running request from the commit to the response's start
   * for the profile named `prefill`, to the request's end for any other (`endStages`), as llm-d-router v0.10.0's
   * in-flight load producer holds them (`pkg/epp/framework/plugins/requestcontrol/dataproducer/inflightload/producer.go`)
   * and request control's in-flight counts do. Without it the prefill profile's next picks saw none of this one's work
   * until the pod's next page, and a burst herded onto one pod.
   */
  private trackStages(request: LLMRequest, result: SchedulingResult, head: CycleInputs, tracked: string, now: number): void {
    let stages: StagePick[] | undefined;
    for (const [profile, target] of result.profileTargets!) {
      if (profile === result.profile) continue;
      const inputs = inputsOfProfile(head, profile);
      if (inputs === undefined) continue;
      const i = indexOfPick(inputs.candidates, target);
      if (i < 0) continue;
      const { uncachedTokens, ttftSeconds, queuedTokens } = this.predictionAt(request, inputs, i);
      const endpointKey = target.endpoint.key;
      const stage = `${tracked}@${profile}`;
      const pod = this.model.pod(endpointKey);
      pod.addPending(stage, uncachedTokens, ttftSeconds, now, queuedTokens);
      const candidate = inputs.candidates[i]!;
      pod.started(stage, now + 1000 * pod.slotWaitSeconds(candidate.metrics, candidate.activeRequests, now));
      (stages ??= []).push({ endpointKey, tracked: stage, early: profile === UPSTREAM_PREFILL_PROFILE, ended: false });
    }
    if (stages !== undefined) request.attributes!.set(this.stagesKey, stages);
  }

  /**
   * A P/D request's response started (request control's moment for releasing its `prefill` pick in flight): its
   * prefill is over, with llm-d's routing sidecar's default connector, which sends the decode request once the prefill
   * pod has answered.
   */
  responseStarted(request: LLMRequest): void {
    this.endStages(request, this.handle.now(), true);
  }

  /**
   * The request's other profiles' picks (`trackStages`) end on their pods: the `prefill` profile's (`onlyEarly`) at the
   * response's start, every one still counted at the request's end or a new commit.
   */
  private endStages(request: LLMRequest, now: number, onlyEarly = false): void {
    const stages = request.attributes?.get(this.stagesKey);
    if (stages === undefined) return;
    for (const stage of stages) {
      if (stage.ended || (onlyEarly && !stage.early)) continue;
      stage.ended = true;
      this.model.get(stage.endpointKey)?.ended(stage.tracked, now);
    }
  }

  /**
   * The request's response ended (completed, failed, or abandoned by its client): it no longer holds a sequence slot on
   * its pod, nor, if its first token was never counted, queued prefill work there (`PodLatencyModel.ended`).
   */
  responseComplete(request: LLMRequest, target: Endpoint): void {
    this.endStages(request, this.handle.now());
    const tracked = request.attributes?.get(this.trackedKey);
    // get, not pod: a pod that left the pool while this request ran has no model to end it in (pod() would recreate
    // one that nothing removes again: one per pod ever removed with requests in flight, which is every drained pod).
    if (tracked === undefined) return;
    this.model.get(target.key)?.ended(tracked, this.handle.now());
    this.uncount(tracked);
  }

  /** `slotWait: hot-prefixes`: the commit named `tracked` stops counting in `inFlightByPrefix` (once; no-op after). */
  private uncount(tracked: string): void {
    const commit = this.countedCommits.get(tracked);
    if (commit === undefined) return;
    this.countedCommits.delete(tracked);
    for (const key of commit.keys) {
      const count = this.inFlightByPrefix.get(key) ?? 0;
      if (count <= 1) this.inFlightByPrefix.delete(key);
      else this.inFlightByPrefix.set(key, count - 1);
    }
  }

  /** Uncounts the commits older than `COUNTED_COMMIT_TTL_MS`: the oldest first, in commit order, so only those expiring are visited. */
  private expireCountedCommits(now: number): void {
    for (const [tracked, commit] of this.countedCommits) {
      if (now - commit.atMs < COUNTED_COMMIT_TTL_MS) return;
      this.uncount(tracked);
    }
  }

  /** `slotWait: hot-prefixes`: the requests in flight counted under prefix index key `key` (tests and logs). */
  inFlightForPrefix(key: number): number {
    return this.inFlightByPrefix.get(key) ?? 0;
  }

  /** Candidate `i`'s prediction from the cycle's inputs, as the cycle scored it. */
  private predictionAt(request: LLMRequest, inputs: CycleInputs, i: number): TtftPrediction {
    const candidate = inputs.candidates[i]!;
    return this.model.pod(candidate.endpoint.key).predict(this.uncachedAt(request, inputs.match, inputs.candidates, i), candidate.metrics, inputs.nowMs, candidate.activeRequests, slotWaitAt(inputs.slotWait, i));
  }

  /**
   * Where the slot wait counts for `request` over `candidates` (`slotWait`): everywhere for every request, or for those
   * carrying a session id; under `hot-prefixes`, everywhere for any other request whose prefix is hot (`prefixHot`);
   * under `imbalanced`, `avoidable` and `hot-prefixes`, everywhere for any other request too while the candidates'
   * slots are clearly imbalanced (`slotsImbalanced`); under the last two, otherwise on each candidate whose
   * wait a pod holding as much of the prompt would spare it (`avoidableSlotWaits`).
   */
  private slotWaitFor(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[], now: number): SlotWaitScope {
    const mode = this.parameters.slotWait;
    // Every request decides anew whether it replicates (a session's request never does: hard affinity keeps it).
    this.hotLength = 0;
    if (mode === 'all' || sessionHeaderValue(request, this.parameters.sessionHeaders) !== undefined) return true;
    if (mode === 'sessions') return false;
    if (mode === 'hot-prefixes' && this.prefixHot(match, candidates, now)) return true;
    const avoidable = mode === 'avoidable' || mode === 'hot-prefixes';
    if (this.slotsImbalanced(candidates, now, avoidable)) return true;
    return avoidable && this.avoidableSlotWaits(request, match, candidates, now);
  }

  /**
   * `slotWait: hot-prefixes`: at some counted depth (`hotPrefixDepths`) at least half the longest match, the requests in
   * flight that shared that leading part of this prompt would take at least half of `maxNumSeqs` (one engine's slots;
   * `HOT_SLOT_SHARE`: a replica is used enough to be worth its recomputed prefix), and the least occupied candidate
   * holding it has at least `REPLICATE_SLOT_GAP` of its slots more taken than the least occupied candidate without it
   * that has a free slot: the prefix's demand runs on the busier pods. Then the request replicates it onto the
   * candidates without it that have a free slot and are at least that much less occupied than that holder
   * (`chargedTokens`; `hotLength`, `replicaMarks`). Session 57's rule waited until the part's requests took all its
   * holders' slots: each hot prompt queued on its first holders while other pods had room (two hot prompts at 16 req/s, p90 200 / 238 / 703 ms over
   * three seeds with this rule against 384 / 226 / 809; bench/README.md, "Session 58"). Not with every candidate
   * holding it (no pod to replicate to), nor with every other candidate full (llm-d's ramp past 80% of its top rate:
   * replicating there recomputed the prefix behind another queue, 1.1 hit points and p90 +21% in one run of session
   * 57's). A leading part with fewer requests in flight than half `maxNumSeqs` (and than `LANE_HOT_IN_FLIGHT`) is never
   * hot and costs no walk over the candidates. The count is this EPP's own and covers the prefix's requests on every
   * pod: with several EPP replicas each counts only its own share, so the prefix must be about that many times hotter
   * to count.
   *
   * Where the slots do not bind (session 59), the same question is asked of the pods' prefill time (`laneReplicates`):
   * at least `LANE_HOT_IN_FLIGHT` of the part's requests in flight for each candidate holding it, the part's least
   * loaded holder busy at least `HOT_LANE_LOAD` of the time with this EPP's prefills, and a candidate without it with at
   * most half its slots taken (`ROOMY_SLOT_SHARE`: on pods whose slots bind, not one nearly full) at least
   * `REPLICATE_LANE_GAP` less. With 256 slots or more the slot rule needs 128 of the part's requests in flight; one hot
   * prompt at 20 req/s had about 50, its two holders' prefills took about three quarters of their time, and two pods
   * stood idle, since a request's wait on a holder (a few of its short prefills) stays below a cold prefill of the
   * whole prompt elsewhere: each request's own cheapest pod, never the pool's.
   */
  private prefixHot(match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[], now: number): boolean {
    const held = match?.heldBlocks;
    if (held === undefined) return false;
    const byCandidate = match!.byCandidate?.candidates === candidates ? match!.byCandidate.cachedLength : undefined;
    const depths = hotPrefixDepths(held.longest, this.depthScratch);
    const n = candidates.length;
    // Each candidate's slot share, read at the first depth hot enough to look (the same at every depth).
    let shares: Float64Array | undefined;
    for (let k = depths.length - 1; k >= 0 && 2 * depths[k]! >= held.longest; k--) {
      const depth = depths[k]!;
      const inFlight = this.inFlightByPrefix.get(held.keys[depth - 1]!);
      if (inFlight === undefined || inFlight < Math.min(LANE_HOT_IN_FLIGHT, HOT_SLOT_SHARE * this.parameters.maxNumSeqs)) continue;
      const bySlots = inFlight >= HOT_SLOT_SHARE * this.parameters.maxNumSeqs;
      const length = held.lengthOf(depth);
      if (this.replicaMarks.length < n) this.replicaMarks = new Uint8Array(Math.max(n, 2 * this.replicaMarks.length));
      const marks = this.replicaMarks;
      shares ??= this.slotShares(candidates, now);
      // The least occupied holder and the least occupied candidate without the part that has a free slot.
      let holder = Infinity;
      let other = Infinity;
      let holders = 0;
      for (let i = 0; i < n; i++) {
        const cached = byCandidate !== undefined ? byCandidate[i]! : (match!.cachedLength.get(candidates[i]!.endpoint.key) ?? 0);
        const share = shares[i]!;
        if (cached >= length) {
          marks[i] = 2;
          holders++;
          if (share < holder) holder = share;
        } else {
          marks[i] = 0;
          if (share < 1 && share < other) other = share;
        }
      }
      // Defensive: the longest match's holder holds every counted depth, so a holder is always among the candidates.
      if (holder === Infinity || other === Infinity) continue;
      // The most a pod without the part may have taken to take the replica; with a tolerance, as shares are fractions
      // of the slot count (7/20 − 2/20 falls just short of 0.25).
      const roomier = holder - REPLICATE_SLOT_GAP + 1e-9;
      if (bySlots && other <= roomier) {
        // Onto the pods without it that are that much roomier than the least occupied holder, not onto every pod with
        // a free slot (one nearly full would recompute the prefix behind its own queue).
        for (let i = 0; i < n; i++) if (marks[i] === 0 && shares[i]! < 1 && shares[i]! <= roomier) marks[i] = 1;
        this.hotLength = length;
        return true;
      }
      if (inFlight >= LANE_HOT_IN_FLIGHT * holders && this.laneReplicates(candidates, shares, now)) {
        this.hotLength = length;
        return true;
      }
    }
    return false;
  }

  /**
   * The lane rule of `prefixHot`, with `replicaMarks` at 2 on the candidates holding the part and 0 elsewhere: the least
   * loaded holder's prefill lane (`PodLatencyModel.laneLoad`) is busy at least `HOT_LANE_LOAD` of the time, and a
   * candidate without the part that has at most half its slots taken (`ROOMY_SLOT_SHARE`) at least `REPLICATE_LANE_GAP`
   * less; each such candidate is marked 1. The holders are read first: while one of them has time to spare (the usual
   * case), no other pod is looked at. A load that is not a number (a broken clock or line) never replicates.
   */
  private laneReplicates(candidates: readonly EndpointSnapshot[], shares: Float64Array, now: number): boolean {
    const marks = this.replicaMarks;
    const n = candidates.length;
    let holder = Infinity;
    for (let i = 0; i < n; i++) {
      if (marks[i] !== 2) continue;
      const load = this.podAt(i, candidates[i]!, now).laneLoad(now);
      if (!(load >= HOT_LANE_LOAD)) return false;
      if (load < holder) holder = load;
    }
    // With a tolerance: loads decayed over different intervals differ in their last bits.
    const idler = holder - REPLICATE_LANE_GAP + 1e-9;
    let marked = false;
    for (let i = 0; i < n; i++) {
      if (marks[i] !== 0 || !(shares[i]! <= ROOMY_SLOT_SHARE)) continue;
      if (!(this.podAt(i, candidates[i]!, now).laneLoad(now) <= idler)) continue;
      marks[i] = 1;
      marked = true;
    }
    return marked;
  }

  /**
   * Some candidate's sequence slots are all taken while another has at least half of its own free: a one-off request
   * sent to the full one waits for a slot that the other would give it at once. Only then is the wait priced on every
   * candidate for a request without a session id under `slotWait: imbalanced`, even where avoiding it recomputes a
   * prefix; with every pod about as full the waits are alike, and pricing them moved one-off requests off their
   * prefix's holders (session 30's ramp, session 51). With `fillShares` it leaves each candidate's `slotShare` in
   * `shares` (for `avoidableSlotWaits`); without, it stops at the first full and roomy pair.
   */
  private slotsImbalanced(candidates: readonly EndpointSnapshot[], now: number, fillShares: boolean): boolean {
    const n = candidates.length;
    const shares = this.shareScratch(n);
    let full = false;
    let roomy = false;
    for (let i = 0; i < n; i++) {
      const candidate = candidates[i]!;
      const share = this.podAt(i, candidate, now).slotShare(candidate.metrics, candidate.activeRequests);
      shares[i] = share;
      if (share >= 1) full = true;
      else if (share <= ROOMY_SLOT_SHARE) roomy = true;
      if (full && roomy && !fillShares) return true;
    }
    return full && roomy;
  }

  /**
   * `slotWait: avoidable`, when the slots are not clearly imbalanced: the full candidates (a new request waits there)
   * for which another candidate holds at least as much of the prompt (no more uncached tokens) and predicts a shorter
   * slot wait (a candidate with a free slot predicts none). Going there instead costs no recomputed prefix and waits
   * less, so the wait is priced on them whatever the other candidates' fill; where avoiding it means recomputing a
   * prefix elsewhere it stays unpriced, as under `imbalanced`. False when none is marked (no candidate full, or each full
   * one the best-placed of the candidates holding as much). "As much" is exact: a candidate holding one block less
   * than a full one does not spare it, however long its wait (the comparison stays free of the line's per-token
   * cost). Without a prefix match (no prefix scorer in the profile) every candidate prefills the whole prompt, so
   * every full candidate is priced whenever another has a free slot or a shorter wait. Reads `shares` as
   * `slotsImbalanced` left them.
   */
  private avoidableSlotWaits(request: LLMRequest, match: PrefixMatchEstimate | undefined, candidates: readonly EndpointSnapshot[], now: number): SlotWaitScope {
    const n = candidates.length;
    const { shares, uncachedScratch: uncached, waitScratch: waits } = this;
    const full = this.fullScratch;
    full.length = 0;
    for (let i = 0; i < n; i++) if (shares[i]! >= 1) full.push(i);
    if (full.length === 0) return false;
    // The fewest uncached tokens among candidates with a free slot (no wait).
    let roomiest = Infinity;
    for (let i = 0; i < n; i++) {
      uncached[i] = this.uncachedAt(request, match, candidates, i);
      if (shares[i]! < 1 && uncached[i]! < roomiest) roomiest = uncached[i]!;
    }
    for (const i of full) {
      const candidate = candidates[i]!;
      waits[i] = this.podAt(i, candidate, now).slotWaitSeconds(candidate.metrics, candidate.activeRequests, now);
    }
    // The full candidates by uncached tokens, so that each run of equals sees the shortest wait among every full
    // candidate holding at least as much.
    full.sort((a, b) => uncached[a]! - uncached[b]!);
    let marked: Uint8Array | undefined;
    let shortest = Infinity;
    for (let start = 0; start < full.length;) {
      const tokens = uncached[full[start]!]!;
      // At least one per run, so a NaN count (which equals nothing) cannot stall the walk.
      shortest = Math.min(shortest, waits[full[start]!]!);
      let end = start + 1;
      for (; end < full.length && uncached[full[end]!] === tokens; end++) shortest = Math.min(shortest, waits[full[end]!]!);
      const spared = roomiest <= tokens ? 0 : shortest;
      for (let k = start; k < end; k++) {
        const i = full[k]!;
        if (spared < waits[i]!) (marked ??= new Uint8Array(n))[i] = 1;
      }
      start = end;
    }
    return marked ?? false;
  }

  /** `shares` with room for `n` candidates. */
  private shareScratch(n: number): Float64Array {
    if (this.shares.length < n) this.growScratch(n);
    return this.shares;
  }

  /** Each candidate's `slotShare` in `shares` (for `prefixHot`, which runs before `slotsImbalanced` refills it). */
  private slotShares(candidates: readonly EndpointSnapshot[], now: number): Float64Array {
    const shares = this.shareScratch(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]!;
      shares[i] = this.podAt(i, candidate, now).slotShare(candidate.metrics, candidate.activeRequests);
    }
    return shares;
  }

  private growScratch(n: number): void {
    const size = Math.max(n, 2 * this.shares.length);
    this.shares = new Float64Array(size);
    this.uncachedScratch = new Float64Array(size);
    this.chargedScratch = new Float64Array(size);
    this.waitScratch = new Float64Array(size);
  }

  postResponse(request: LLMRequest, response: ResponseInfo, target: Endpoint): undefined {
    // Streaming (SSE) headers precede the prefill; any other response's headers follow the whole generation (or an error).
    const contentType = response.headers['content-type'] ?? '';
    const tracked = request.attributes?.get(this.trackedKey);
    if (tracked === undefined || contentType.toLowerCase().startsWith('text/event-stream')) return undefined;
    const pod = this.model.get(target.key);
    // A success's first token was produced before its headers, but a short generation's is often counted only by a
    // later scrape: released, its entry keeps its FCFS place until then and takes that count, where leaving at once let
    // it retire a request still queued (vLLM records the first token in its API server's output handler,
    // vllm/v1/engine/async_llm.py output_handler @ v0.10.0, before the non-streaming response is built; a pooling
    // response, which has no first token, holds its place for that scrape too). An error has as a rule produced no token
    // (vLLM validates a request before its engine sees it): it leaves at once.
    const status = Number(response.headers[':status'] ?? '200');
    if (status >= 200 && status < 300) pod?.release(tracked, this.handle.now());
    else pod?.finish(tracked);
    return undefined;
  }

  /** The pod's model server restarted: the prefills queued on the old process stop counting (`PodLatencyModel.restarted`). */
  endpointRestarted(endpointKey: string, sinceMs: number): void {
    this.model.get(endpointKey)?.restarted(sinceMs);
  }

  removeEndpoint(endpointKey: string): void {
    this.model.remove(endpointKey);
    this.tpotModel.remove(endpointKey);
    this.slotSnapshots = [];
    this.slotModels = [];
  }
}

function positive(fields: FieldReader, key: string, defaultValue: number): number {
  const value = fields.number(key, defaultValue, 0);
  if (value === 0) throw new ConfigError(fields.fieldPath(key), 'must be a number > 0, got 0');
  return value;
}

/**
 * The parameters of GIE v1.5.0's own `latency-scorer` (predicted-latency headroom against SLO headers, fed by its
 * `predicted-latency-producer` sidecars; `pkg/epp/framework/plugins/scheduling/scorer/latency/plugin.go` Config), a
 * different plugin under the same type name: a config written for it is refused with a message that says so, rather
 * than with a bare "unknown field".
 */
const GIE_LATENCY_SCORER_FIELDS = ['ttftWeight', 'tpotWeight', 'headroomSelectionStrategy', 'compositeKVWeight', 'compositeQueueWeight', 'compositePrefixWeight'];

function slotWaitOf(fields: FieldReader): SlotWaitMode {
  return fields.oneOf('slotWait', ['sessions', 'all', 'imbalanced', 'avoidable', 'hot-prefixes'], 'sessions');
}

export const latencyScorer = definePlugin({
  type: 'latency-scorer',
  kinds: ['scorer', 'pre-request', 'post-response', 'response-complete'],
  cycleState: { reads: ['prefix-match'] },
  parameters: parameters<LatencyScorerParameters>((fields) => {
    const gie = GIE_LATENCY_SCORER_FIELDS.find((key) => fields.has(key));
    if (gie !== undefined) {
      throw new ConfigError(fields.fieldPath(gie), "is a parameter of GIE v1.5.0's latency-scorer (predicted-latency headroom from "
        + "its predicted-latency-producer), which kvroute does not implement; kvroute's latency-scorer learns each pod's "
        + 'time to first token online and takes priorPrefillMsPerToken, priorOverheadMs, priorWeight, halfLife, pendingTimeout, charactersPerToken, maxNumSeqs, slotWait, sessionHeaders, ownPrefillWeight, fasterPodRatio, keepOneOffOnHolder, '
        + "and llm-d-router v0.10.0's latencyPredictionInfoProducerName and prefixMatchInfoProducerName");
    }
    const resolved = {
    priorPrefillMsPerToken: fields.number('priorPrefillMsPerToken', 0.2, 0),
    priorOverheadMs: fields.number('priorOverheadMs', 20, 0),
    priorWeight: positive(fields, 'priorWeight', 8),
    halfLife: fields.duration('halfLife', '60s'),
    pendingTimeout: fields.duration('pendingTimeout', '30s'),
    charactersPerToken: positive(fields, 'charactersPerToken', 4),
    maxNumSeqs: fields.integer('maxNumSeqs', DEFAULT_MAX_NUM_SEQS, 1),
    slotWait: slotWaitOf(fields),
    // Lower-cased because request headers reach plugins with lower-case names.
    sessionHeaders: fields.stringList('sessionHeaders', ['x-session-id', 'x-session-token'], { minLength: 1 }).map((h) => h.toLowerCase()),
    };
    // Read whether or not given, so an unknown field's error lists it; kept only when given, so configs render unchanged.
    const ownPrefillWeight = fields.number('ownPrefillWeight', 1, 1);
    const fasterPodRatio = fields.number('fasterPodRatio', 0.8, 0, 1);
    const keepOneOffOnHolder = fields.boolean('keepOneOffOnHolder', false);
    // llm-d-router v0.10.0's Config fields (strings; "" is no name, as WithNonEmptyProducerName keeps the default).
    const latencyPredictionInfoProducerName = fields.goString('latencyPredictionInfoProducerName', 'a plugin name');
    const prefixMatchInfoProducerName = fields.goString('prefixMatchInfoProducerName', 'a plugin name');
    return {
      ...resolved,
      ...(fields.has('ownPrefillWeight') ? { ownPrefillWeight } : {}),
      ...(fields.has('fasterPodRatio') ? { fasterPodRatio } : {}),
      ...(fields.has('keepOneOffOnHolder') ? { keepOneOffOnHolder } : {}),
      ...(fields.has('latencyPredictionInfoProducerName') ? { latencyPredictionInfoProducerName } : {}),
      ...(fields.has('prefixMatchInfoProducerName') ? { prefixMatchInfoProducerName } : {}),
    } as Required<LatencyScorerParameters>;
  }),
  create: (name, resolved, handle) => new LatencyScorer(name, resolved, handle),
});
