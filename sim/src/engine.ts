import type { KvEventBatch } from '@kvroute/protocol/kv-events';
import { BlockHasher, chainBlockHashes, extendBlockHashes, generationOf, type BlockHash, type HashAlgo, type HashExtras } from './block-hash';
import type { SimClock } from './clock';
import { KvCacheManager, type CacheHit, type KvEventSchema, type KvSequence } from './kv-cache';
import { MinHeap } from './min-heap';

export interface EngineConfig {
  blockSize: number;
  /** All KV blocks including vLLM's null block (`num_gpu_blocks`). */
  kvCacheBlocks: number;
  maxNumSeqs: number;
  /** A scheduler step's token budget (`--max-num-batched-tokens`): a request's largest prefill chunk, and with prefill
   * lanes what one step's running and newly scheduled requests share. */
  maxNumBatchedTokens: number;
  ttftOverheadMs: number;
  prefillMsPerToken: number;
  itlMs: number;
  /**
   * vLLM's `--scheduling-policy` (vllm/config.py SchedulerConfig.policy @ v0.10.0): `fcfs` serves the waiting queue in
   * arrival order and preempts the last running request; `priority` serves it by (priority, arrival) and preempts
   * the running request with the largest (priority, arrival). @default 'fcfs'
   */
  schedulingPolicy?: SchedulingPolicy;
  /**
   * Prefills computed at once (lanes); 0 = unlimited (each request prefills independently, no token budget). With
   * lanes, waiting requests are scheduled only in a step that can schedule prefill and while its token budget lasts
   * (admitWaiting), as vLLM's.
   */
  prefillConcurrency: number;
  hashAlgo: HashAlgo;
  /** `PYTHONHASHSEED` as vLLM reads it; undefined = unset. */
  pythonHashSeed?: string;
  /**
   * The vLLM release whose KV events (and LoRA hash key) to reproduce: `v0.10` hashes a LoRA block with its
   * `lora_int_id`, `v0.26` with its name (#27577) and reports `lora_name`, `extra_keys`, `group_idx`. @default 'v0.10'
   */
  kvEventSchema?: KvEventSchema;
  /**
   * vLLM's `--enable-prefix-caching` (on by default for V1 generation models; `--no-enable-prefix-caching` turns it
   * off). Off, `get_computed_blocks` returns no hit before looking anything up or counting a query, and no block is
   * cached (vllm/v1/core/kv_cache_manager.py @ v0.10.0 and v0.10.2, `enable_caching`), so there are no hits, no
   * prefix-cache queries, and no BlockStored or BlockRemoved events. @default true
   */
  enablePrefixCaching?: boolean;
  /**
   * vLLM's `--max-loras` with `--enable-lora`: the LoRA adapters the running requests may use at once. A waiting request
   * for another adapter is skipped, keeping its place, while the next ones are scheduled (scheduler.py @ 6eca337ce lines
   * 319-325 and 363-370). Undefined = no LoRAConfig, no limit.
   */
  maxLoras?: number;
  /**
   * vLLM runs a step's decode tokens and prefill chunks as one batch (`EngineCore.step`: `schedule()`, `execute_model`,
   * `update_from_output`, vllm/v1/engine/core.py @ v0.10.0 L255-274; one `schedule()` serves the running requests and the
   * waiting ones, vllm/v1/core/sched/scheduler.py @ v0.10.0 L202-297 and L331-507), and every request in the step samples
   * its token when the whole step ends. On (with prefill lanes): a decoding request's next token comes at
   * max(now + itl, the end of the prefill chunks scheduled or computing), and every chunk a step schedules ends at that
   * step's end (so all first tokens of a step come together). Off: the pre-audit-23 model, decode every itl whatever
   * the prefill load, and a step's prefills one after another on the lane. Without lanes (prefillConcurrency 0) there
   * are no steps to share and this has no effect. @default true
   */
  decodePrefillInterference?: boolean;
  /**
   * vLLM's `--long-prefill-token-threshold` (SchedulerConfig `long_prefill_token_threshold`, 0 = off by default): the
   * most tokens one request computes in a step, running and waiting requests alike (`if 0 < long_prefill_token_threshold
   * < num_new_tokens: num_new_tokens = long_prefill_token_threshold`, vllm/v1/core/sched/scheduler.py @ v0.10.0, both
   * loops of `schedule()`). On, with prefill lanes, a request holds its lane one chunk at a time (each chunk queued
   * on the lane when its step schedules it), so a request scheduled beside a long prompt's chunk is computed after
   * that chunk rather than after the whole prompt. Off, a request's chunks run back to back on its lane, as they do in
   * vLLM when every chunk but the last takes the whole step budget. 0 or less: off. @default 0
   */
  longPrefillTokenThreshold?: number;
}

export type SchedulingPolicy = 'fcfs' | 'priority';
export const SCHEDULING_POLICIES: readonly SchedulingPolicy[] = ['fcfs', 'priority'];

/** The lookup a request that skips the prefix cache gets: nothing cached. */
const NO_HIT: CacheHit = { blockIds: [], tokens: 0 };

export interface SubmitParams {
  promptTokens: ArrayLike<number>;
  /** The request's `priority` (lower is served first); only the `priority` policy reads it. @default 0 */
  priority?: number;
  /** The tokens the request will generate; its length is max_tokens (≥ 1). */
  outputTokens: readonly number[];
  cacheSalt?: string;
  /** The LoRA adapter's `lora_int_id`, or null for the base model. */
  loraId?: number | null;
  /** The LoRA adapter's name (`lora_request.lora_name`), or null for the base model. */
  loraName?: string | null;
  /** How the request ends after its last output token: `length` (max_tokens) or `stop` (a stop string or token). */
  finishReason?: 'length' | 'stop';
  /** The request's effective `max_tokens` (SamplingParams.max_tokens), reported to the metrics. */
  maxTokensParam?: number;
  /** `n` of the request this one is a child of (vLLM's ParentRequest); 1 or absent = a request of its own. */
  parentN?: number;
  /**
   * The request asks for prompt logprobs: vLLM V1 then skips the prefix-cache lookup, uncounted, and prefills the whole
   * prompt (`get_computed_blocks`, vllm/v1/core/kv_cache_manager.py @ v0.10.0); its blocks are still cached. @default false
   */
  skipPrefixCache?: boolean;
}

export type FinishReason = 'length' | 'stop' | 'abort';

/** All times are simulated milliseconds on the engine clock. */
export interface RequestResult {
  id: string;
  finishReason: FinishReason;
  promptTokens: number;
  /** vLLM's `num_cached_tokens`: the prefix-cache hit when the request was first scheduled (0 if never). */
  cachedTokens: number;
  completionTokens: number;
  arrivalMs: number;
  /**
   * When the scheduler took the request in: the first step boundary at or after its arrival (vLLM's QUEUED event,
   * recorded by `Scheduler.add_request` between forward passes; null if it never got there).
   */
  queuedMs: number | null;
  /** First scheduling. */
  admittedMs: number | null;
  firstTokenMs: number | null;
  finishedMs: number;
  /** Times the request was preempted. */
  preemptions: number;
  /** SubmitParams.maxTokensParam, or the number of output tokens asked for. */
  maxTokensParam: number;
  /** SubmitParams.parentN, or 1. */
  parentN: number;
}

export interface RequestListener {
  onToken(index: number, tokenId: number, atMs: number): void;
  onFinish(result: RequestResult): void;
}

/** Hooks for metrics; called synchronously at the simulated instant of each transition. */
export interface EngineObserver {
  /** A request reached the engine (the output processor's add_request): its LoRA adapter's name, or null. */
  onSubmit?(info: { id: string; loraName: string | null }): void;
  /** One `get_computed_blocks` lookup, in tokens: every scheduling attempt of a waiting request counts. */
  onPrefixQuery?(info: { queries: number; hits: number }): void;
  /** First scheduling of a request. */
  onAdmit?(info: { promptTokens: number; cachedTokens: number; queueMs: number }): void;
  /**
   * A preemption as vLLM 0.10.0's frontend counts it: with the preempted request's next token (in the step that sampled
   * it), never for a request aborted while preempted (see Req.pendingPreemptions).
   */
  onPreempt?(): void;
  onFirstToken?(info: { ttftMs: number }): void;
  /** Every output token as it is sampled (`index` from 0), for counters vLLM advances per engine step. */
  onToken?(info: { id: string; index: number; atMs: number; promptTokens: number }): void;
  /**
   * Once per step that sampled tokens, after they were delivered: the step's `IterationStats` (vllm/v1/metrics/stats.py
   * @ v0.10.0), i.e. every request's whole prompt at its first token plus one generation token per request.
   */
  onIterationTokens?(info: { promptTokens: number; generationTokens: number }): void;
  /**
   * The scheduler's stats as a step that sampled tokens returns them (`make_stats` at the end of `update_from_output`,
   * which vLLM 0.10.0 calls only when the step has request outputs: vllm/v1/core/sched/scheduler.py @ 6eca337ce lines
   * 909-912), after its finished requests left: what the engine's gauges show until the next such step.
   */
  onSchedulerStats?(stats: EngineStats): void;
  onFinish?(result: RequestResult): void;
}

/** Receives one batch per scheduler step that produced KV events. */
export type KvEventSink = (batch: KvEventBatch) => void;

export interface RequestHandle {
  readonly id: string;
  abort(): void;
}

export interface EngineStats {
  running: number;
  /** Requests in the scheduler's waiting queue: taken in at a step boundary and not scheduled yet (vLLM's gauge). */
  waiting: number;
  /** Requests that arrived while a step was in flight, not yet taken in (vLLM's engine-core input queue). */
  inputQueue: number;
  kvUsage: number;
  /** Blocks in use, the null block included. */
  usedBlocks: number;
  /** Physical blocks carrying a cached hash (duplicates counted). */
  cachedBlocks: number;
  evictions: number;
  preemptions: number;
  steps: number;
}

type State = 'waiting' | 'running' | 'done';

interface Req extends KvSequence {
  readonly id: string;
  readonly promptLen: number;
  readonly output: readonly number[];
  readonly tokens: Uint32Array;
  readonly hashes: BlockHash[];
  readonly extras: HashExtras;
  readonly loraId: number | null;
  readonly loraName: string | null;
  readonly endReason: 'length' | 'stop';
  readonly maxTokensParam: number;
  readonly parentN: number;
  readonly skipPrefixCache: boolean;
  readonly priority: number;
  /** Submission order: breaks ties between equal (priority, arrival), which vLLM's heap leaves to its tuple order. */
  readonly seq: number;
  readonly listener: RequestListener;
  state: State;
  arrivalMs: number;
  /** RequestResult.queuedMs. */
  queuedMs: number | null;
  admittedMs: number | null;
  firstTokenMs: number | null;
  /** num_cached_tokens; -1 until first scheduled (vllm/v1/request.py @ v0.10.0). */
  cachedTokens: number;
  /** Output tokens delivered so far. */
  emitted: number;
  numComputedTokens: number;
  numTokens: number;
  /** Bumped at preemption, so events scheduled before it are ignored. */
  epoch: number;
  preemptions: number;
  /**
   * Preemptions not yet reported to the observer. vLLM records PREEMPTED on the request (scheduler.py @ 6eca337ce
   * (v0.10.0) L267-269) and those events leave the engine only inside the request's next EngineCoreOutput, which is built
   * only when it has new tokens (L855-868, `events=request.take_events()`); the frontend then counts them in that step's
   * IterationStats (vllm/v1/metrics/stats.py @ v0.10.0 L146-147, loggers.py L522-523). So they are reported with the
   * request's next token, and dropped if it is aborted first.
   */
  pendingPreemptions: number;
  /** Current prefill: where it starts computing, from which token, and when its first token may come. */
  prefillStart: number;
  /** The prefill lane this request's current prefill holds (-1: none) and until when, so an abort or a preemption
   *  hands it back: vLLM stops spending budget on a request the step it leaves. */
  lane: number;
  laneUntil: number;
  prefillFrom: number;
  firstOutAt: number;
  /** Under a long-prefill threshold: the step that scheduled its current chunk (its next chunk's step is still to come). */
  chunkAt: number;
  /** What the request asks of the next step: another prefill chunk or the slot of the token it just sampled. */
  need: 'none' | 'chunk' | 'decode';
}

interface TimedEvent {
  at: number;
  order: number;
  req: Req;
  epoch: number;
  /** `wake`: a step with nothing due but scheduling: a prefill lane frees (less the overhead), or running requests a
   * self-preempting request left unserved, at the end of the step. */
  kind: 'chunk' | 'token' | 'wake';
  /** For tokens: the output index. */
  k: number;
}

/** Event order: by time, and simultaneous events in the order they were scheduled. */
function less(x: TimedEvent, y: TimedEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order);
}

/**
 * A discrete-event model of one vLLM v1 engine core (vllm-project/vllm: vllm/v1/core/sched/scheduler.py @ v0.10.0,
 * `Scheduler.schedule`), replayed against a clock.
 *
 * **Steps.** vLLM runs scheduler steps back to back while it has requests. Here a step is every simulated instant at
 * which something happens: a request arrives or is aborted, a prefill chunk is due, or tokens are sampled (all
 * requests whose token falls on the same instant share the step). Each step does what `schedule()` does:
 * 1. running requests, in the order they were scheduled, get the slots they need (the token sampled last, or the
 *    next prefill chunk, at most what the step's token budget has left) while the budget lasts; when the pool
 *    cannot cover one, the **last** running request is preempted (fcfs; under the priority policy the one with the
 *    largest (priority, arrival)), its blocks freed with their hashes kept,
 *    `num_computed_tokens = 0`, and it goes to the front of the waiting queue (its place by priority under the
 *    priority policy), until the allocation succeeds or the request preempted itself;
 * 2. only if nothing was preempted: waiting requests in FCFS order (by priority, then arrival, under the priority
 *    policy) while fewer than max-num-seqs run and the step's token budget lasts, in a step that can schedule prefill
 *    (a lane free and no step holding decode tokens in flight by the time the step's overhead is paid, or a running
 *    request's next chunk scheduled; see admitWaiting). vLLM leaves a request in WAITING, holding no blocks and not
 *    yet looked up, while a step is in flight or the running requests' tokens and chunks spend the budget
 *    (scheduler.py, `while self.waiting and token_budget > 0`). Each attempt looks the prefix cache up and is counted
 *    in the prefix-cache metrics, even when the head then cannot get its blocks and blocks the queue (so a head
 *    waiting for KV counts again every step);
 * 3. the step's KV events go out as one batch, if there are any.
 *
 * **Time.** Every state change happens at an exact simulated instant computed from the latency model, so a late
 * timer (GC, a 100 ms tokenization on the same thread) delays delivery but never changes the reported times or hits.
 *   waits (WAITING) until a step with budget left (see admitWaiting) → admitted + overhead, then its lane's queue →
 *   prefills (tokens − hit) tokens, scheduling a chunk per step (each at most what the step's budget has left when
 *   its turn comes; blocks are cached as each chunk is scheduled) →
 *   first token (not before the hit blocks' own prefill is done) → one token every ITL → finish after max_tokens
 *   tokens.
 * A preempted request is prefilled again (prompt + outputs so far, less what it hits) when it is scheduled again.
 */
export class Engine {
  readonly kv: KvCacheManager;
  readonly hasher: BlockHasher;
  private readonly heap = new MinHeap<TimedEvent>(less);
  private readonly waiting: Req[] = [];
  private readonly running: Req[] = [];
  private readonly laneFreeAt: number[];
  /** `longPrefillTokenThreshold` when on, else Infinity: the most tokens a request computes in one step. */
  private readonly chunkCap: number;
  /** Lanes held chunk by chunk (a long-prefill threshold is on), rather than for a request's whole prefill. */
  private readonly lanePerChunk: boolean;
  private readonly blockReadyAt: Float64Array;
  private nextSeq = 0;
  /** The last instant whose step could schedule prefill, and the token budget it left (admitWaiting). */
  private openStepAt = -Infinity;
  private openStepBudget = 0;
  private order = 0;
  private preemptions = 0;
  private steps = 0;
  private cancelTimer: (() => void) | null = null;
  private timerAt = Infinity;
  private pumping = false;
  private stepping = false;
  private closed = false;
  /**
   * Releases from vLLM #25875 (Oct 2025, v0.11.1; so every map-encoded one) take a step's KV events in
   * `update_from_output`, after the step's forward pass, not at the end of `schedule()` (vllm/v1/core/sched/
   * scheduler.py @ 111faf111): a step's BlockStored goes out when its work is computed. Batches wait here, in order.
   */
  private readonly eventsAfterStep: boolean;
  private readonly pendingBatches: { at: number; events: KvEventBatch['events'] }[] = [];
  private cancelPublish: (() => void) | null = null;
  /** When the work this step scheduled is computed: its prefill chunks' ends and, with a decode, the step's ITL. */
  private stepDoneAt = -Infinity;
  /** decodePrefillInterference with lanes. */
  private readonly interference: boolean;
  /** The end of the last step that scheduled prefill chunks: a decode token cannot come before the chunks in flight. */
  private busyUntil = -Infinity;
  /**
   * With interference: the instants of the last two steps that scheduled decode tokens. Such a step is a forward
   * pass in flight until its instant + itl, even when no prefill lane is busy (decodeStepInFlightUntil).
   */
  private decodeStepAt = -Infinity;
  private prevDecodeStepAt = -Infinity;
  /** With interference: what this step scheduled, timed at the step's end once the whole step is known (flushStep). */
  private readonly stepChunks: { r: Req; epoch: number; fresh: readonly number[] }[] = [];
  private readonly stepDecodes: { r: Req; epoch: number; fresh: readonly number[] }[] = [];
  /** The chunk and token events flushStep timed for them: a step joined at its instant (admitWaiting) times them again. */
  private readonly stepEvents: TimedEvent[] = [];

  constructor(
    readonly config: EngineConfig,
    private readonly clock: SimClock,
    private readonly observer: EngineObserver = {},
    private readonly kvEventSink?: KvEventSink,
  ) {
    if (!Number.isInteger(config.maxNumBatchedTokens) || config.maxNumBatchedTokens < 1) throw new RangeError('maxNumBatchedTokens must be a positive integer');
    // vLLM refuses this configuration (SchedulerConfig._verify_args, vllm/config.py @ v0.10.0), as options.ts does for
    // the CLI. The step model relies on it: each running request whose token is not due still takes one token of the
    // step's budget, and with fewer tokens than requests those tokens could spend the whole budget before a request
    // that needs its slot, whose wake-up then comes at the same instant again and again, spinning forever.
    if (config.maxNumBatchedTokens < config.maxNumSeqs) {
      throw new RangeError(`max_num_batched_tokens (${config.maxNumBatchedTokens}) must be greater than or equal to max_num_seqs (${config.maxNumSeqs}).`);
    }
    // The hash algorithm picks the simulated release (block-hash.ts, generationOf); 0.10.2 changed get_usage.
    this.kv = new KvCacheManager(
      config.kvCacheBlocks,
      config.blockSize,
      kvEventSink !== undefined,
      config.kvEventSchema ?? 'v0.10',
      generationOf(config.hashAlgo) === '0.10.2',
      config.enablePrefixCaching ?? true,
    );
    this.hasher = new BlockHasher(config.hashAlgo, config.pythonHashSeed);
    this.eventsAfterStep = (config.kvEventSchema ?? 'v0.10') === 'v0.26';
    this.laneFreeAt = new Array<number>(config.prefillConcurrency).fill(-Infinity);
    const threshold = config.longPrefillTokenThreshold ?? 0;
    if (!Number.isInteger(threshold)) throw new RangeError('longPrefillTokenThreshold must be an integer');
    this.chunkCap = threshold > 0 ? threshold : Infinity;
    this.lanePerChunk = threshold > 0 && config.prefillConcurrency > 0;
    this.interference = (config.decodePrefillInterference ?? true) && config.prefillConcurrency > 0;
    this.blockReadyAt = new Float64Array(config.kvCacheBlocks).fill(-Infinity);
  }

  /** The waiting requests the scheduler holds (`len(self.waiting)`): those taken in at a step boundary. */
  private queuedWaiting(): number {
    let n = 0;
    for (const r of this.waiting) if (r.queuedMs !== null) n++;
    return n;
  }

  stats(): EngineStats {
    const queued = this.queuedWaiting();
    return {
      running: this.running.length,
      waiting: queued,
      inputQueue: this.waiting.length - queued,
      kvUsage: this.kv.usage,
      usedBlocks: this.kv.numUsedBlocks,
      cachedBlocks: this.kv.numCachedBlocks,
      evictions: this.kv.evictions,
      preemptions: this.preemptions,
      steps: this.steps,
    };
  }

  /** The largest prompt + max_tokens this engine can ever run: the last generated token never needs a KV slot. */
  get maxSequenceTokens(): number {
    return (this.config.kvCacheBlocks - 1) * this.config.blockSize + 1;
  }

  submit(params: SubmitParams, listener: RequestListener): RequestHandle {
    return this.submitAll([{ params, listener }])[0];
  }

  /**
   * Several requests that arrive at one instant: the children of an n > 1 request (and the prompts of a batch). vLLM
   * stamps a request's `arrival_time` once, in `Processor.process_inputs` (`time.time()`, vllm/v1/engine/processor.py
   * @ 6eca337ce lines 245-246), and `AsyncLLM.add_request` then adds `copy(request)` per child (async_llm.py @ 6eca337ce
   * lines 237-253), so every child has the parent's arrival and its TTFT and e2e are measured from it. Here the clock is
   * read once for all of them and they are queued before one scheduler step runs, so their model times do not depend on
   * how long the first one's step took on the CPU (times --time-scale). All are checked before any is queued.
   */
  submitAll(items: readonly { params: SubmitParams; listener: RequestListener }[]): RequestHandle[] {
    if (this.closed) throw new Error('engine is closed');
    for (const { params } of items) this.check(params);
    this.pump();
    const now = this.clock.now();
    const reqs = items.map(({ params, listener }) => this.makeReq(params, listener, now));
    for (const r of reqs) this.observer.onSubmit?.({ id: r.id, loraName: r.loraName });
    for (const req of reqs) this.enqueue(req);
    // Submitted from a listener inside a step: that step's admission phase takes them.
    if (!this.stepping && reqs.length > 0) this.step(now, []);
    this.arm();
    return reqs.map((req) => ({ id: req.id, abort: () => this.abort(req) }));
  }

  private check(params: SubmitParams): void {
    const promptLen = params.promptTokens.length;
    const maxTokens = params.outputTokens.length;
    if (promptLen < 1) throw new RangeError('prompt must have at least one token');
    if (maxTokens < 1) throw new RangeError('max_tokens must be at least 1');
    if (promptLen + maxTokens > this.maxSequenceTokens) {
      throw new RangeError(`prompt + max_tokens = ${promptLen + maxTokens} exceeds the KV cache (${this.maxSequenceTokens - 1} slots)`);
    }
  }

  private makeReq(params: SubmitParams, listener: RequestListener, now: number): Req {
    const promptLen = params.promptTokens.length;
    const maxTokens = params.outputTokens.length;
    const seq = this.nextSeq++;
    return {
      id: `seq-${seq}`,
      promptLen,
      output: params.outputTokens,
      tokens: concatTokens(params.promptTokens, params.outputTokens),
      hashes: [],
      // vLLM keys a LoRA block with its lora_int_id up to v0.10.x, with its name from #27577 on.
      extras: (this.config.kvEventSchema ?? 'v0.10') === 'v0.26'
        ? { cacheSalt: params.cacheSalt, loraName: params.loraName ?? null }
        : { cacheSalt: params.cacheSalt, loraId: params.loraId ?? null },
      loraId: params.loraId ?? null,
      loraName: params.loraName ?? null,
      listener,
      endReason: params.finishReason ?? 'length',
      maxTokensParam: params.maxTokensParam ?? maxTokens,
      parentN: params.parentN ?? 1,
      skipPrefixCache: params.skipPrefixCache === true,
      priority: params.priority ?? 0,
      seq,
      state: 'waiting',
      arrivalMs: now,
      queuedMs: null,
      admittedMs: null,
      firstTokenMs: null,
      cachedTokens: -1,
      emitted: 0,
      numComputedTokens: 0,
      numTokens: promptLen,
      epoch: 0,
      preemptions: 0,
      pendingPreemptions: 0,
      prefillStart: 0,
      lane: -1,
      laneUntil: 0,
      prefillFrom: 0,
      firstOutAt: 0,
      chunkAt: 0,
      need: 'none',
    };
  }

  /** Tokens a prompt would hit right now (no state change, not counted); for probes and tests. */
  peekCachedTokens(promptTokens: ArrayLike<number>, extras: HashExtras = {}): number {
    const hashes = chainBlockHashes(this.hasher, promptTokens, this.config.blockSize, extras);
    return this.kv.findLongestCacheHit(hashes, promptTokens.length - 1).tokens;
  }

  /**
   * `reset_prefix_cache`: succeeds only when no block but the null block is in use. Its `AllBlocksCleared` goes out
   * with the next step's batch, as vLLM drains KV events only in `schedule()` (vllm/v1/core/sched/scheduler.py @ v0.10.0).
   */
  resetPrefixCache(): boolean {
    this.pump();
    return this.kv.resetPrefixCache();
  }

  /** Closed (`close`): every submission is refused from then on. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Aborts everything; no callbacks fire after this returns except the aborts' own onFinish. */
  close(): void {
    if (this.closed) return;
    this.pump();
    this.closed = true;
    const now = this.clock.now();
    for (const r of this.waiting.splice(0)) this.finish(r, 'abort', now);
    for (const r of [...this.running]) this.finish(r, 'abort', now);
    this.cancelTimer?.();
    this.cancelTimer = null;
    // A stopped engine runs no more steps: what waits for its step's end is never published.
    this.cancelPublish?.();
    this.cancelPublish = null;
    this.pendingBatches.length = 0;
  }

  private abort(req: Req): void {
    if (req.state === 'done') return;
    this.pump();
    // pump() may have finished it meanwhile (TS cannot see that mutation).
    if ((req.state as State) === 'done') return;
    const now = this.clock.now();
    this.finish(req, 'abort', now);
    // vLLM frees an aborted request's blocks and schedules the next step with them once the step in flight ends. Its
    // lane is kept until then (releaseLane); its blocks are freed now (sim/README.md, "Latency model limits"), which
    // only another lane's admission or a decode slot can use before that step ends.
    if (!this.closed && !this.stepping) this.step(now, []);
    this.arm();
  }

  /** Runs every step due by now, each at its own simulated instant. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const now = this.clock.now();
      for (let e = this.heap.peek(); e && e.at <= now; e = this.heap.peek()) {
        const at = e.at;
        const due: TimedEvent[] = [];
        while (this.heap.peek()?.at === at) due.push(this.heap.pop() as TimedEvent);
        this.step(at, due);
      }
    } finally {
      this.pumping = false;
    }
  }

  private arm(): void {
    if (this.closed) return;
    const next = this.heap.peek();
    const at = next ? next.at : Infinity;
    if (at === this.timerAt) return;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.timerAt = at;
    if (at === Infinity) return;
    this.cancelTimer = this.clock.setTimer(at, () => {
      this.cancelTimer = null;
      this.timerAt = Infinity;
      this.pump();
      this.arm();
    });
  }

  /** One scheduler step at simulated instant `at` (see the class comment). */
  private step(at: number, due: readonly TimedEvent[]): void {
    this.stepping = true;
    try {
      this.runStep(at, due);
    } finally {
      this.stepping = false;
    }
  }

  private runStep(at: number, due: readonly TimedEvent[]): void {
    this.steps++;
    // The outputs of the step that ended now: sampled tokens reach their listeners, finished requests free blocks.
    // The tokens sampled in this step form one EngineCoreOutputs, hence one IterationStats (vllm/v1/engine/async_llm.py
    // @ v0.10.0, output_handler: `IterationStats() if (log_stats and num_outputs)`): a step with no sampled token records none.
    let iterationPrompt = 0;
    let iterationGenerated = 0;
    for (const e of this.inRunningOrder(due)) {
      if (e.kind === 'wake') continue; // only wakes the step: its running and admission phases
      const r = e.req;
      if (r.state !== 'running' || e.epoch !== r.epoch) continue;
      if (e.kind === 'chunk') r.need = 'chunk';
      else {
        if (e.k === 0) iterationPrompt += r.promptLen;
        iterationGenerated++;
        this.emit(r, e.k, at);
      }
    }
    if (iterationGenerated > 0) {
      this.observer.onIterationTokens?.({ promptTokens: iterationPrompt, generationTokens: iterationGenerated });
      this.observer.onSchedulerStats?.(this.stats());
    }
    // After #25875 the outputs' frees (finished requests) are taken with the step that just ended, now.
    if (this.eventsAfterStep && this.kvEventSink) this.publishAt(at, this.kv.takeEvents());
    // A step at the instant of one that could schedule prefill and is still computing is that step: vLLM reads new
    // requests before schedule() (`run_busy_loop`, vllm/v1/engine/core.py @ v0.10.0), so a request submitted or a
    // request aborted at that instant is in the same schedule(), and what it adds is computed in the same forward pass
    // (flushStep). A step that ended at its own instant (no cost) is over: the next one is a step of its own.
    const lanes = this.laneFreeAt.length > 0;
    const joined = lanes && at === this.openStepAt && this.stepDoneAt > at;
    if (!joined) {
      this.stepDoneAt = at;
      this.stepChunks.length = 0;
      this.stepDecodes.length = 0;
      this.stepEvents.length = 0;
    }

    // RUNNING requests, in the order they were scheduled, each taking its tokens out of the step's budget in turn, as
    // vLLM's running loop does (scheduler.py @ v0.10.0: `while req_index < len(self.running) and token_budget > 0`,
    // the threshold cap, then `num_new_tokens = min(num_new_tokens, token_budget)` and `token_budget -= num_new_tokens`
    // for decode tokens and chunks alike): a chunk gets what the requests before it left, and the requests the
    // budget does not reach wait for the next step. The budget starts whole, or from what the open step at this instant
    // left (a request joining it, admitWaiting); without lanes there is no step budget, only the per-request chunk.
    let budget = !lanes ? Infinity : joined ? this.openStepBudget : this.config.maxNumBatchedTokens;
    let preempted = false;
    let selfPreempted = false;
    let chunkScheduled = false;
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const r = this.running[i];
      if (r.need === 'none') {
        // A decoding request whose token is not due at this instant is in vLLM's step all the same (every running
        // request is), with its one token; the open step a request joins has counted it already.
        if (!joined && r.firstOutAt <= at) budget--;
        continue;
      }
      const numNew = r.need === 'decode' ? 1 : Math.min(this.config.maxNumBatchedTokens, this.chunkCap, r.numTokens - r.numComputedTokens, budget);
      if (this.kv.enableCaching) this.ensureHashes(r, r.numComputedTokens + numNew);
      let fresh: number[] | null;
      for (;;) {
        fresh = this.kv.allocateSlots(r, numNew);
        if (fresh) break;
        const v = this.victimIndex();
        const victim = this.running.splice(v, 1)[0] as Req;
        // r moved down one place. vLLM v0.10.0 removes a priority victim without this (`self.running.remove`), so the
        // request after r goes unserved for that step; later vLLM tracks the victim's index as here. A deliberate
        // divergence: the simulator serves every running request a step.
        if (v < i) i--;
        this.preempt(victim, at);
        preempted = true;
        if (victim === r) break;
      }
      if (!fresh) {
        // It preempted itself. Under fcfs it was the last running request; under priority requests after it may still
        // need their slot or chunk: vLLM ends this step's running loop there and serves them in its next step (woken
        // below, with the requests the budget did not reach).
        selfPreempted = true;
        break;
      }
      r.numComputedTokens += numNew;
      budget -= numNew;
      if (r.need === 'decode') {
        this.stepDoneAt = Math.max(this.stepDoneAt, at + this.config.itlMs);
        if (this.interference && this.decodeStepAt < at) {
          this.prevDecodeStepAt = this.decodeStepAt;
          this.decodeStepAt = at;
        }
        r.need = 'none';
        if (this.interference) this.stepDecodes.push({ r, epoch: r.epoch, fresh });
        else {
          for (const b of fresh) this.blockReadyAt[b] = at + this.config.itlMs;
          this.schedule(r, 'token', at + this.config.itlMs, r.emitted);
        }
      } else {
        r.need = 'none';
        chunkScheduled = true;
        if (this.lanePerChunk) this.holdLaneForChunk(r, at, numNew);
        this.afterChunk(r, fresh);
      }
    }

    // vLLM's engine core takes new requests in between forward passes (`run_busy_loop`: `_process_input_queue()` then
    // `_process_engine_step()`, vllm/v1/engine/core.py @ v0.10.0; `Scheduler.add_request` records QUEUED): a request
    // that arrived during a step in flight is neither waiting nor queued until that step ends. With prefill lanes a
    // boundary is an instant a step can schedule prefill (admitWaiting's test below); without, every step is one.
    if (!lanes || chunkScheduled || joined || this.canSchedulePrefill(at)) {
      for (const r of this.waiting) if (r.queuedMs === null) r.queuedMs = at;
    }
    // A request that arrived during a decode step in flight is taken in the overhead before that step ends, as at a
    // lane's end (canSchedulePrefill); nothing else need happen then, so that instant gets a step of its own.
    const decodeBoundary = this.decodeStepInFlightUntil(at) - this.config.ttftOverheadMs;
    const arrived = decodeBoundary > at ? this.waiting.find((r) => r.queuedMs === null) : undefined;
    if (arrived) this.heap.push({ at: decodeBoundary, order: this.order++, req: arrived, epoch: arrived.epoch, kind: 'wake', k: 0 });
    // WAITING requests, only if nothing was preempted in this step, with the budget the running ones left.
    if (!preempted) this.admitWaiting(at, joined || chunkScheduled, budget);
    if (this.interference) this.flushStep();
    // Running requests the budget did not reach, or that came after a request that preempted itself, are served in
    // vLLM's next step, which follows this one's end: the next `schedule()` runs after this step's forward pass (the
    // engine loops while it has requests; vllm/v1/engine/core.py @ v0.10.0 `step`), not at this instant, where a step
    // of its own would serve them, and admit waiting requests, ahead of the tokens this step computes.
    const starved = budget <= 0 || selfPreempted ? this.running.find((q) => q.need !== 'none') : undefined;
    if (starved) this.heap.push({ at: Math.max(this.stepDoneAt, at), order: this.order++, req: starved, epoch: starved.epoch, kind: 'wake', k: 0 });

    if (this.kvEventSink) {
      const events = this.kv.takeEvents();
      // A batch per step that has events, stamped with wall-clock seconds as vLLM's `time.time()`: at the end of
      // `schedule()` up to v0.11.0, when the step's work is computed from #25875 on.
      if (this.eventsAfterStep) this.publishAt(this.stepDoneAt, events);
      else if (events.length > 0) this.kvEventSink({ ts: Date.now() / 1000, events, dataParallelRank: 0 });
    }
  }

  /**
   * A step's outputs in the order vLLM processes them: `update_from_output` walks `scheduler_output.num_scheduled_tokens`
   * (vllm/v1/core/sched/scheduler.py @ v0.10.0, since vLLM #20739; `self.running` before it), which `schedule()` fills
   * with its running loop, in running order, and then with the requests its waiting loop appends to `running`: running
   * order either way. Each request that stops there is freed (`_free_request`) in turn, so requests finishing in one
   * step join the free queue in running order, which decides whose blocks are evicted first. The heap's order is not
   * that: a step's prefill chunks are timed before its decodes (flushStep), so a request scheduled after a decoding one
   * would be freed before it.
   */
  private inRunningOrder(due: readonly TimedEvent[]): readonly TimedEvent[] {
    if (due.length < 2) return due;
    const rank = new Map<Req, number>();
    this.running.forEach((r, i) => rank.set(r, i));
    const at = (e: TimedEvent): number => rank.get(e.req) ?? this.running.length;
    // Array.prototype.sort is stable: events of one request, and of requests no longer running, keep their order.
    return [...due].sort((x, y) => at(x) - at(y));
  }

  /** Publishes `events` as one batch at simulated instant `at`, never before a batch queued earlier. */
  private publishAt(at: number, events: KvEventBatch['events']): void {
    if (events.length === 0) return;
    const last = this.pendingBatches[this.pendingBatches.length - 1];
    this.pendingBatches.push({ at: Math.max(at, last?.at ?? -Infinity), events });
    this.drainBatches();
  }

  private drainBatches(): void {
    const now = this.clock.now();
    while (this.pendingBatches.length > 0 && this.pendingBatches[0]!.at <= now) {
      const { events } = this.pendingBatches.shift()!;
      this.kvEventSink!({ ts: Date.now() / 1000, events, dataParallelRank: 0 });
    }
    if (this.pendingBatches.length === 0 || this.cancelPublish !== null) return;
    this.cancelPublish = this.clock.setTimer(this.pendingBatches[0]!.at, () => {
      this.cancelPublish = null;
      this.drainBatches();
    });
  }

  /**
   * Whether a step at `at` can schedule prefill: no forward pass is in flight once the step's overhead is paid, that
   * of a step holding decode tokens (decodeStepInFlightUntil) nor a lane's prefill (laneCanStart). vLLM runs no
   * `schedule()` while a step executes, whatever its batch holds (vllm/v1/engine/core.py @ v0.10.0: `run_busy_loop`
   * reads new requests only between `_process_engine_step()` calls, and `EngineCore.step` is one `schedule()`, one
   * `execute_model()` and one `update_from_output()`, decode-only batches included). The overhead may overlap the
   * step in flight, as it does a lane's prefill, so with --ttft-overhead-ms ≥ --itl-ms (the defaults) a decode never
   * holds a request back.
   */
  private canSchedulePrefill(at: number): boolean {
    return this.decodeStepInFlightUntil(at) - this.config.ttftOverheadMs <= at && this.laneCanStart(at);
  }

  /**
   * With interference, the end (instant + itl) of the last step before `at` that scheduled decode tokens; a step at
   * `at` itself is the one scheduling now, not one in flight. Its chunks, if any, are the lanes' (laneCanStart).
   */
  private decodeStepInFlightUntil(at: number): number {
    return (this.decodeStepAt < at ? this.decodeStepAt : this.prevDecodeStepAt) + this.config.itlMs;
  }

  /**
   * Whether a step at `at` can schedule prefill on a lane: the freest lane is free once the step's overhead is paid.
   * Under a long-prefill threshold a lane that a running request will take its next chunk on is not free before that
   * chunk's step (openLane): vLLM takes a request arriving during a step at the step's end, beside that chunk.
   */
  private laneCanStart(at: number): boolean {
    if (this.lanePerChunk) return this.openLane(at) >= 0;
    return this.laneFreeAt[this.freeLane()] - this.config.ttftOverheadMs <= at;
  }

  /**
   * Under a long-prefill threshold: the freest lane free once a step's overhead is paid at `at` and not between two
   * chunks of a running request's prefill (whose next step is the lane's next boundary, not its end less the
   * overhead), or -1.
   */
  private openLane(at: number): number {
    return this.freestLane(this.lanesMidPrefill(), at);
  }

  /**
   * Under a long-prefill threshold: the lanes a running request is between two chunks of its prefill on; with
   * `scheduledBefore`, only those whose current chunk was scheduled before that step (its next chunk still to come).
   */
  private lanesMidPrefill(scheduledBefore = Infinity): boolean[] {
    const mid = new Array<boolean>(this.laneFreeAt.length).fill(false);
    for (const q of this.running) {
      if (q.lane >= 0 && q.need !== 'decode' && q.numComputedTokens < q.numTokens && q.chunkAt < scheduledBefore) mid[q.lane] = true;
    }
    return mid;
  }

  /** The lane that frees first among those not `skip`ped (and, with `openAt`, free once a step's overhead is paid then), or -1. */
  private freestLane(skip: readonly boolean[], openAt?: number): number {
    let lane = -1;
    for (let i = 0; i < this.laneFreeAt.length; i++) {
      if (skip[i] || (openAt !== undefined && this.laneFreeAt[i] - this.config.ttftOverheadMs > openAt)) continue;
      if (lane < 0 || this.laneFreeAt[i] < this.laneFreeAt[lane]) lane = i;
    }
    return lane;
  }

  /**
   * The waiting phase of a step. With prefill lanes, a step that can schedule prefill is one where a lane is free,
   * and a step holding decode tokens is over, by the time the step's overhead is paid (canSchedulePrefill), or one
   * where a running request's next prefill chunk was scheduled (the lane is between two of vLLM's steps then);
   * between those instants the lane's prefill or the decode step is a step in flight, and vLLM runs no `schedule()`
   * while a step executes. In such a step, waiting requests are scheduled FCFS while the step's token budget lasts,
   * as vLLM's `while self.waiting and token_budget > 0` (vllm/v1/core/sched/scheduler.py @ v0.10.0, `schedule()`,
   * lines 192-214 and 333-494): max-num-batched-tokens, less the chunks the running requests took in this step and
   * one token per decoding request, less each scheduled request's first chunk. A request
   * scheduled behind another on the same lane counts as running, holds its first chunk's blocks and is looked up now;
   * its prefill starts when the lane reaches it. With several lanes, each lane that frees opens a step with a whole
   * budget, so the budget is in effect per lane; with none (prefill-concurrency 0) there is no budget. Until session
   * 16 (2026-11-30) a step scheduled one waiting request per free lane, so a burst of short prompts showed as waiting
   * requests that vLLM schedules together.
   */
  private admitWaiting(at: number, stepOpen: boolean, budget: number): void {
    // Nothing to schedule and no new prefill step to record (a decode-only step, most of them).
    if (this.waiting.length === 0 && !stepOpen) return;
    const c = this.config;
    const lanes = this.laneFreeAt.length > 0;
    // With LoRA on, the adapters of the running requests, each of which is in every one of vLLM's steps
    // (`scheduled_loras`, scheduler.py @ 6eca337ce lines 319-325).
    const loras = c.maxLoras === undefined ? null : new Set<number>();
    if (loras) for (const q of this.running) if (q.loraId !== null) loras.add(q.loraId);
    let i = 0;
    while (i < this.waiting.length) {
      // Checked before the cache lookup, so a request held back by max-num-seqs is not counted.
      if (this.running.length >= c.maxNumSeqs) break;
      // Also before the lookup: a step in flight (on every lane, or holding decodes), or no token budget left, keeps
      // the request WAITING.
      if (lanes) {
        if (!stepOpen && !this.canSchedulePrefill(at)) break;
        if (budget <= 0) break;
      }
      const r = this.waiting[i]!;
      // A request for one adapter more than --max-loras allows is skipped before its lookup and keeps its place at the
      // front; the requests behind it are still scheduled (scheduler.py @ 6eca337ce lines 363-370, skipped_waiting_requests).
      if (loras && r.loraId !== null && !loras.has(r.loraId) && loras.size >= (c.maxLoras as number)) {
        i++;
        continue;
      }
      // get_computed_blocks (vllm/v1/core/kv_cache_manager.py @ v0.10.0): the hit stops before the last token; with
      // prefix caching disabled, or for a request that wants prompt logprobs, there is no lookup at all and none is
      // counted (`if not self.enable_caching or ...prompt_logprobs...: return empty, 0`, before the stats).
      // The hashes also serve caching the blocks this admission fills, prompt-logprobs requests' included.
      if (this.kv.enableCaching) this.ensureHashes(r, r.numTokens);
      const lookUp = this.kv.enableCaching && !r.skipPrefixCache;
      const hit = lookUp ? this.kv.findLongestCacheHit(r.hashes, r.numTokens - 1) : NO_HIT;
      if (lookUp) this.observer.onPrefixQuery?.({ queries: r.numTokens, hits: hit.tokens });
      // The first chunk: what the step's budget has left (vLLM's `min(num_new_tokens, token_budget)`, scheduler.py
      // @ v0.10.0 line 426), so the last request a step takes may start with part of its prompt.
      const numNew = Math.min(r.numTokens - hit.tokens, c.maxNumBatchedTokens, this.chunkCap, budget);
      const fresh = this.kv.allocateSlots(r, numNew, hit);
      // Under either policy a head that does not fit blocks the queue.
      if (!fresh) break;
      this.waiting.splice(i, 1);
      this.running.push(r);
      if (loras && r.loraId !== null) loras.add(r.loraId);
      this.start(r, at, hit, numNew, fresh);
      budget -= numNew;
      stepOpen = true;
    }
    if (stepOpen) {
      this.openStepAt = at;
      this.openStepBudget = budget;
    }
  }

  private start(r: Req, at: number, hit: CacheHit, numNew: number, fresh: readonly number[]): void {
    const c = this.config;
    r.state = 'running';
    r.numComputedTokens = hit.tokens + numNew;
    if (r.cachedTokens < 0) {
      r.admittedMs = at;
      r.cachedTokens = hit.tokens;
      this.observer.onAdmit?.({ promptTokens: r.promptLen, cachedTokens: hit.tokens, queueMs: at - (r.queuedMs ?? at) });
    }
    const prefillMs = (r.numTokens - hit.tokens) * c.prefillMsPerToken;
    const ready = at + c.ttftOverheadMs;
    let start = ready;
    if (this.laneFreeAt.length > 0) {
      // Under a long-prefill threshold, not a lane between two of another request's chunks (admissionLane).
      const lane = this.lanePerChunk ? this.admissionLane(at) : this.freeLane();
      start = Math.max(ready, this.laneFreeAt[lane]);
      // Held chunk by chunk under a long-prefill threshold (holdLaneForChunk), else for the whole prefill.
      this.laneFreeAt[lane] = start + (this.lanePerChunk ? numNew * c.prefillMsPerToken : prefillMs);
      r.lane = lane;
      r.laneUntil = this.laneFreeAt[lane];
      // The step in which the next waiting request can be scheduled on this lane (admitWaiting's test).
      const wake = this.laneFreeAt[lane] - c.ttftOverheadMs;
      if (wake > at) this.heap.push({ at: wake, order: this.order++, req: r, epoch: r.epoch, kind: 'wake', k: 0 });
    }
    r.prefillStart = start;
    r.prefillFrom = hit.tokens;
    r.chunkAt = at;
    // A hit on blocks another request is still prefilling cannot yield a token before they are done.
    let firstOut = start + prefillMs;
    for (const b of hit.blockIds) firstOut = Math.max(firstOut, this.blockReadyAt[b]);
    r.firstOutAt = firstOut;
    this.afterChunk(r, fresh);
  }

  /**
   * With decodePrefillInterference, at the end of a step's scheduling: the step is one batch (vllm/v1/engine/core.py @
   * v0.10.0 L255-274, `schedule()` → `execute_model` → `update_from_output`), so everything it scheduled is computed
   * when its last part is. Its end is the latest of its prefill chunks' ends (each still charged per token on its lane,
   * the cost model unchanged) and, with a decode, now + itl. Each chunk's blocks are ready, and its next chunk or its
   * first token due, at that end: the requests scheduled in one step get their first tokens at one instant. A decode
   * token comes then too, and not before the chunks of an earlier step still computing (`busyUntil`): vLLM samples a
   * running request's token in the step that also computes those chunks. A step joined at its instant is flushed
   * again with what the joining request added: everything the step scheduled moves to its new end.
   */
  private flushStep(): void {
    for (const e of this.stepEvents) this.heap.remove(e);
    this.stepEvents.length = 0;
    const end = this.stepDoneAt;
    if (this.stepChunks.length > 0) this.busyUntil = Math.max(this.busyUntil, end);
    for (const { r, epoch, fresh } of this.stepChunks) {
      if (r.epoch !== epoch || r.state !== 'running') continue;
      for (const b of fresh) this.blockReadyAt[b] = end;
      if (r.numComputedTokens < r.numTokens) this.stepEvents.push(this.schedule(r, 'chunk', end, 0));
      else {
        r.firstOutAt = Math.max(r.firstOutAt, end);
        this.stepEvents.push(this.schedule(r, 'token', r.firstOutAt, r.emitted));
      }
    }
    const tokenAt = Math.max(end, this.busyUntil);
    for (const { r, epoch, fresh } of this.stepDecodes) {
      if (r.epoch !== epoch || r.state !== 'running') continue;
      for (const b of fresh) this.blockReadyAt[b] = tokenAt;
      this.stepEvents.push(this.schedule(r, 'token', tokenAt, r.emitted));
    }
    if (this.stepDecodes.length > 0) this.stepDoneAt = Math.max(this.stepDoneAt, tokenAt);
  }

  /** After a prefill chunk was scheduled: its blocks' KV is ready when the chunk is computed; then the next chunk or the first token. */
  private afterChunk(r: Req, fresh: readonly number[]): void {
    const done = r.prefillStart + (r.numComputedTokens - r.prefillFrom) * this.config.prefillMsPerToken;
    this.stepDoneAt = Math.max(this.stepDoneAt, done);
    if (this.interference) {
      this.stepChunks.push({ r, epoch: r.epoch, fresh });
      return;
    }
    for (const b of fresh) this.blockReadyAt[b] = done;
    if (r.numComputedTokens < r.numTokens) this.schedule(r, 'chunk', done, 0);
    else {
      // Chunks held one at a time can end later than a prefill run back to back from its start.
      r.firstOutAt = Math.max(r.firstOutAt, done);
      this.schedule(r, 'token', r.firstOutAt, r.emitted);
    }
  }

  /** A new or preempted request's place in the priority policy's queue: vLLM's heap order (request_queue.py @ v0.10.0). */
  private before(a: Req, b: Req): boolean {
    return a.priority < b.priority || (a.priority === b.priority && (a.arrivalMs < b.arrivalMs || (a.arrivalMs === b.arrivalMs && a.seq < b.seq)));
  }

  /** A new request: at the back (fcfs), or in (priority, arrival) order (priority). */
  private enqueue(r: Req): void {
    if (this.config.schedulingPolicy !== 'priority') {
      this.waiting.push(r);
      return;
    }
    let i = this.waiting.length;
    while (i > 0 && this.before(r, this.waiting[i - 1])) i--;
    this.waiting.splice(i, 0, r);
  }

  /**
   * Whom to preempt (scheduler.py @ v0.10.0, running loop): the last running request (fcfs), or under priority
   * `max(self.running, key=lambda r: (r.priority, r.arrival_time))`, the first of equal keys.
   */
  private victimIndex(): number {
    if (this.config.schedulingPolicy !== 'priority') return this.running.length - 1;
    let v = 0;
    for (let i = 1; i < this.running.length; i++) {
      const a = this.running[i]!;
      const b = this.running[v]!;
      if (a.priority > b.priority || (a.priority === b.priority && a.arrivalMs > b.arrivalMs)) v = i;
    }
    return v;
  }

  /**
   * A request leaving before its prefill ends gives its lane time back (unless a later prefill was queued behind it):
   * from now, or from when its own prefill would have started if requests ahead of it still prefill. An abort gives
   * back only the chunks not yet scheduled (`chunkInFlight`): vLLM reads an abort between forward passes
   * (`EngineCore.run_busy_loop`: `_process_input_queue()`, then `_process_engine_step()`, vllm/v1/engine/core.py @
   * v0.10.0), so the step in flight computes the aborted request's chunk all the same, and the request is finished
   * (`Scheduler.finish_requests`) only at its end. A preemption happens while a step is scheduled, after the chunks
   * of earlier steps were computed.
   */
  private releaseLane(r: Req, at: number, chunkInFlight = false): void {
    if (r.lane >= 0 && this.laneFreeAt[r.lane] === r.laneUntil && r.laneUntil > at) {
      // Not before its own prefill would have started: the requests ahead of it on the lane still prefill until then.
      const from = chunkInFlight ? r.prefillStart + (r.numComputedTokens - r.prefillFrom) * this.config.prefillMsPerToken : r.prefillStart;
      this.laneFreeAt[r.lane] = Math.max(at, from);
      // The step that can schedule prefill on the lane then (admitWaiting's test), as start() arms it.
      const wake = this.laneFreeAt[r.lane] - this.config.ttftOverheadMs;
      if (wake > at) this.heap.push({ at: wake, order: this.order++, req: r, epoch: r.epoch, kind: 'wake', k: 0 });
    }
    r.lane = -1;
  }

  /**
   * A running request's next chunk under a long-prefill threshold: queued on its lane behind whatever the lane already
   * holds (chunks scheduled earlier, in this step or before), and tracked as the request's current prefill so
   * afterChunk and releaseLane read this chunk's start.
   */
  private holdLaneForChunk(r: Req, at: number, numNew: number): void {
    if (r.lane < 0) return;
    const chunkStart = Math.max(at, this.laneFreeAt[r.lane]);
    this.laneFreeAt[r.lane] = chunkStart + numNew * this.config.prefillMsPerToken;
    r.laneUntil = this.laneFreeAt[r.lane];
    r.prefillStart = chunkStart;
    r.prefillFrom = r.numComputedTokens - numNew;
    r.chunkAt = at;
    // Its prefill ends no earlier than this chunk and the rest back to back: a request whose chunks wait behind others
    // is not yet decoding (runStep's budget counts a request past firstOutAt as one decode token).
    r.firstOutAt = Math.max(r.firstOutAt, r.laneUntil + (r.numTokens - r.numComputedTokens) * this.config.prefillMsPerToken);
    // Its last chunk: the lane frees when it is computed, and the step that can schedule prefill on it then comes
    // the overhead before (admitWaiting's test), as start() arms it for a prefill held whole.
    if (r.numComputedTokens >= r.numTokens) {
      const wake = this.laneFreeAt[r.lane] - this.config.ttftOverheadMs;
      if (wake > at) this.heap.push({ at: wake, order: this.order++, req: r, epoch: r.epoch, kind: 'wake', k: 0 });
    }
  }

  /**
   * Under a long-prefill threshold, the lane a request scheduled at `at` is queued on: an open one (openLane), else the
   * one that frees first among those no running request is between two chunks on, unless its next chunk was
   * scheduled in this step (the step is that lane's boundary and the new request follows that chunk): a request put
   * on a lane whose next chunk is still to be scheduled would be computed ahead of it, idling the lane until then.
   */
  private admissionLane(at: number): number {
    const open = this.openLane(at);
    if (open >= 0) return open;
    const lane = this.freestLane(this.lanesMidPrefill(at));
    return lane >= 0 ? lane : this.freeLane();
  }

  /** The prefill lane that frees first. */
  private freeLane(): number {
    let lane = 0;
    for (let i = 1; i < this.laneFreeAt.length; i++) if (this.laneFreeAt[i] < this.laneFreeAt[lane]) lane = i;
    return lane;
  }

  private schedule(r: Req, kind: 'chunk' | 'token', at: number, k: number): TimedEvent {
    const e: TimedEvent = { at, order: this.order++, req: r, epoch: r.epoch, kind, k };
    this.heap.push(e);
    return e;
  }

  private emit(r: Req, k: number, at: number): void {
    r.emitted = k + 1;
    r.numTokens = r.promptLen + r.emitted;
    if (r.firstTokenMs === null) {
      r.firstTokenMs = at;
      this.observer.onFirstToken?.({ ttftMs: at - r.arrivalMs });
    }
    // The PREEMPTED events this output carries (see Req.pendingPreemptions).
    for (; r.pendingPreemptions > 0; r.pendingPreemptions--) this.observer.onPreempt?.();
    this.observer.onToken?.({ id: r.id, index: k, atMs: at, promptTokens: r.promptLen });
    r.listener.onToken(k, r.output[k], at);
    if (r.state !== 'running') return; // the listener aborted it
    if (k === r.output.length - 1) this.finish(r, r.endReason, at);
    else r.need = 'decode'; // the sampled token needs a KV slot in the next step
  }

  /** vLLM's recompute preemption (scheduler.py @ v0.10.0, running loop): free, forget computed tokens, wait at the front. */
  private preempt(r: Req, at: number): void {
    this.kv.free(r.id);
    this.releaseLane(r, at);
    r.state = 'waiting';
    r.numComputedTokens = 0;
    r.need = 'none';
    r.epoch++;
    r.preemptions++;
    r.pendingPreemptions++; // reported with its next token (emit), never if it is aborted first
    this.preemptions++;
    // prepend_request: the front under fcfs; the priority policy's heap places it by (priority, arrival) instead.
    if (this.config.schedulingPolicy === 'priority') this.enqueue(r);
    else this.waiting.unshift(r);
  }

  private finish(r: Req, reason: FinishReason, at: number): void {
    if (r.state === 'running') {
      this.kv.free(r.id);
      this.releaseLane(r, at, reason === 'abort');
      this.running.splice(this.running.indexOf(r), 1);
    } else if (r.state === 'waiting') {
      const i = this.waiting.indexOf(r);
      if (i >= 0) this.waiting.splice(i, 1);
      // A preempted request still holds no blocks.
    }
    r.state = 'done';
    r.need = 'none';
    r.pendingPreemptions = 0; // an aborted preempted request's PREEMPTED events never reach the frontend
    const result: RequestResult = {
      id: r.id,
      finishReason: reason,
      promptTokens: r.promptLen,
      cachedTokens: Math.max(0, r.cachedTokens),
      completionTokens: r.emitted,
      arrivalMs: r.arrivalMs,
      queuedMs: r.queuedMs,
      admittedMs: r.admittedMs,
      firstTokenMs: r.firstTokenMs,
      finishedMs: at,
      preemptions: r.preemptions,
      maxTokensParam: r.maxTokensParam,
      parentN: r.parentN,
    };
    this.observer.onFinish?.(result);
    r.listener.onFinish(result);
  }

  /** Hashes of every full block of the first `numTokens` tokens (`hash_request_tokens`, then `cache_full_blocks`). */
  private ensureHashes(r: Req, numTokens: number): void {
    extendBlockHashes(this.hasher, r.hashes, r.tokens, this.config.blockSize, r.extras, Math.min(numTokens, r.numTokens));
  }
}

function concatTokens(a: ArrayLike<number>, b: readonly number[]): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i];
  out.set(b, a.length);
  return out;
}
