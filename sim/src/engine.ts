import { chainBlockHashes } from './block-hash';
import type { SimClock } from './clock';
import { KvCacheManager } from './kv-cache';
import { MinHeap } from './min-heap';

export interface EngineConfig {
  blockSize: number;
  kvCacheBlocks: number;
  maxNumSeqs: number;
  ttftOverheadMs: number;
  prefillMsPerToken: number;
  itlMs: number;
  /** Prefills computed at once; 0 = unlimited (each request prefills independently). */
  prefillConcurrency: number;
}

export interface SubmitParams {
  promptTokens: ArrayLike<number>;
  /** The tokens the request will generate; its length is max_tokens (≥ 1). */
  outputTokens: readonly number[];
  cacheSalt?: string;
}

export type FinishReason = 'length' | 'abort';

/** All times are simulated milliseconds on the engine clock. */
export interface RequestResult {
  id: string;
  finishReason: FinishReason;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  arrivalMs: number;
  admittedMs: number | null;
  firstTokenMs: number | null;
  finishedMs: number;
}

export interface RequestListener {
  onToken(index: number, tokenId: number, atMs: number): void;
  onFinish(result: RequestResult): void;
}

/** Hooks for metrics; called synchronously at the simulated instant of each transition. */
export interface EngineObserver {
  onAdmit?(info: { promptTokens: number; cachedTokens: number; queueMs: number }): void;
  onFirstToken?(info: { ttftMs: number }): void;
  onFinish?(result: RequestResult): void;
}

export interface RequestHandle {
  readonly id: string;
  abort(): void;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvUsage: number;
  usedBlocks: number;
  cachedBlocks: number;
  reservedBlocks: number;
  evictions: number;
}

type State = 'waiting' | 'running' | 'done';

interface Req {
  id: string;
  seq: number;
  promptLen: number;
  output: readonly number[];
  hashes: string[];
  listener: RequestListener;
  state: State;
  arrivalMs: number;
  admittedMs: number | null;
  firstTokenMs: number | null;
  cachedTokens: number;
  emitted: number;
}

interface TokenEvent {
  at: number;
  order: number;
  req: Req;
  k: number;
}

/** Event order: by time, and simultaneous events in submission order. */
function less(x: TokenEvent, y: TokenEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order);
}

/**
 * A discrete-event model of one vLLM engine, replayed against a clock.
 *
 * Every state change happens at an exact simulated instant computed from the
 * latency model, not at whatever moment a timer happened to fire, so a late
 * timer (GC, a 100 ms tokenization on the same thread) delays delivery but
 * never changes the reported TTFT, queueing or cache hits.
 *
 * Per request:
 *   arrival ─ waiting (FCFS; head blocks the queue, as in vLLM) ─ admitted when
 *   running < max_num_seqs and its blocks fit
 *   admitted + overhead → waits for a free prefill lane → prefills
 *   (prompt − cached) tokens → first token → one token every ITL
 *   → finish after max_tokens tokens (finish_reason "length").
 * Generated tokens fill blocks that are cached as they complete, so a follow-up
 * turn reuses them.
 */
export class Engine {
  readonly kv: KvCacheManager;
  private readonly heap = new MinHeap<TokenEvent>(less);
  private readonly waiting: Req[] = [];
  private running = 0;
  private readonly laneFreeAt: number[];
  private readonly blockReadyAt: Float64Array;
  private nextSeq = 0;
  private order = 0;
  private cancelTimer: (() => void) | null = null;
  private timerAt = Infinity;
  private pumping = false;
  private closed = false;

  constructor(
    readonly config: EngineConfig,
    private readonly clock: SimClock,
    private readonly observer: EngineObserver = {},
  ) {
    this.kv = new KvCacheManager(config.kvCacheBlocks, config.blockSize);
    this.laneFreeAt = new Array<number>(config.prefillConcurrency).fill(-Infinity);
    this.blockReadyAt = new Float64Array(config.kvCacheBlocks).fill(-Infinity);
  }

  stats(): EngineStats {
    return {
      running: this.running,
      waiting: this.waiting.length,
      kvUsage: this.kv.usage,
      usedBlocks: this.kv.numUsedBlocks,
      cachedBlocks: this.kv.numCachedBlocks,
      reservedBlocks: this.kv.reservedBlocks,
      evictions: this.kv.evictions,
    };
  }

  /** The largest prompt + max_tokens this engine can ever admit. */
  get maxSequenceTokens(): number {
    // +1: the last generated token never needs a KV slot.
    return this.config.kvCacheBlocks * this.config.blockSize + 1;
  }

  submit(params: SubmitParams, listener: RequestListener): RequestHandle {
    if (this.closed) throw new Error('engine is closed');
    const promptLen = params.promptTokens.length;
    const maxTokens = params.outputTokens.length;
    if (promptLen < 1) throw new RangeError('prompt must have at least one token');
    if (maxTokens < 1) throw new RangeError('max_tokens must be at least 1');
    if (promptLen + maxTokens > this.maxSequenceTokens) {
      throw new RangeError(`prompt + max_tokens = ${promptLen + maxTokens} exceeds the KV cache (${this.maxSequenceTokens - 1} slots)`);
    }
    this.pump();
    const seq = this.nextSeq++;
    const all = concatTokens(params.promptTokens, params.outputTokens);
    const req: Req = {
      id: `seq-${seq}`,
      seq,
      promptLen,
      output: params.outputTokens,
      // Only tokens that get a KV slot (all but the last generated one) can complete a block.
      hashes: chainBlockHashes(all, this.config.blockSize, params.cacheSalt, promptLen + maxTokens - 1),
      listener,
      state: 'waiting',
      arrivalMs: this.clock.now(),
      admittedMs: null,
      firstTokenMs: null,
      cachedTokens: 0,
      emitted: 0,
    };
    this.waiting.push(req);
    this.admit(req.arrivalMs);
    this.arm();
    return {
      id: req.id,
      abort: () => this.abort(req),
    };
  }

  /** Blocks a prompt would hit right now (no state change); for /tokenize-style probes and tests. */
  peekCachedTokens(promptTokens: ArrayLike<number>, cacheSalt?: string): number {
    const hashes = chainBlockHashes(promptTokens, this.config.blockSize, cacheSalt);
    return this.kv.peekHit(hashes, promptTokens.length) * this.config.blockSize;
  }

  /** Aborts everything; no callbacks fire after this returns except the aborts' own onFinish. */
  close(): void {
    if (this.closed) return;
    this.pump();
    this.closed = true;
    const now = this.clock.now();
    for (const r of this.waiting.splice(0)) this.finish(r, 'abort', now, false);
    // Running requests are only reachable through the heap.
    const live = new Set<Req>();
    for (let e = this.heap.pop(); e; e = this.heap.pop()) if (e.req.state === 'running') live.add(e.req);
    for (const r of live) this.finish(r, 'abort', now, true);
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  private abort(req: Req): void {
    if (req.state === 'done') return;
    this.pump();
    // pump() may have finished it meanwhile (TS cannot see that mutation).
    if ((req.state as State) === 'done') return;
    const now = this.clock.now();
    if (req.state === 'waiting') {
      this.waiting.splice(this.waiting.indexOf(req), 1);
      this.finish(req, 'abort', now, false);
    } else {
      this.finish(req, 'abort', now, true);
    }
    this.arm();
  }

  /** Processes every event due by now, each at its own simulated instant. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const now = this.clock.now();
      for (let e = this.heap.peek(); e && e.at <= now; e = this.heap.peek()) {
        this.heap.pop();
        if (e.req.state === 'running') this.emit(e.req, e.k, e.at);
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

  private admit(at: number): void {
    const { maxNumSeqs } = this.config;
    while (this.waiting.length > 0 && this.running < maxNumSeqs) {
      const r = this.waiting[0];
      const alloc = this.kv.allocate(r.id, r.hashes, r.promptLen, r.promptLen + r.output.length - 1);
      // FCFS like vLLM's default policy: a head that does not fit blocks the queue.
      if (!alloc) break;
      this.waiting.shift();
      this.start(r, at, alloc.hitTokens, alloc.hitBlockIds);
    }
  }

  private start(r: Req, at: number, hitTokens: number, hitBlockIds: readonly number[]): void {
    const c = this.config;
    r.state = 'running';
    r.admittedMs = at;
    r.cachedTokens = hitTokens;
    this.running++;

    const prefillMs = (r.promptLen - hitTokens) * c.prefillMsPerToken;
    const ready = at + c.ttftOverheadMs;
    let prefillEnd: number;
    if (this.laneFreeAt.length === 0) {
      prefillEnd = ready + prefillMs;
    } else {
      let lane = 0;
      for (let i = 1; i < this.laneFreeAt.length; i++) if (this.laneFreeAt[i] < this.laneFreeAt[lane]) lane = i;
      prefillEnd = Math.max(ready, this.laneFreeAt[lane]) + prefillMs;
      this.laneFreeAt[lane] = prefillEnd;
    }
    // A hit on blocks another request is still prefilling cannot finish before they do.
    let firstToken = prefillEnd;
    for (const b of hitBlockIds) firstToken = Math.max(firstToken, this.blockReadyAt[b]);
    r.firstTokenMs = firstToken;
    for (const b of this.kv.commit(r.id, r.promptLen)) this.blockReadyAt[b] = firstToken;

    this.observer.onAdmit?.({ promptTokens: r.promptLen, cachedTokens: hitTokens, queueMs: at - r.arrivalMs });
    this.heap.push({ at: firstToken, order: this.order++, req: r, k: 0 });
  }

  private emit(r: Req, k: number, at: number): void {
    r.emitted = k + 1;
    if (k === 0) this.observer.onFirstToken?.({ ttftMs: at - r.arrivalMs });
    r.listener.onToken(k, r.output[k], at);
    if (r.state !== 'running') return; // the listener aborted it
    const last = r.output.length - 1;
    if (k < last) {
      // Token k is fed back in the step that samples k+1: it needs a slot and
      // may complete a block, which becomes hittable right away.
      const computed = r.promptLen + k + 1;
      this.kv.grow(r.id, computed);
      for (const b of this.kv.commit(r.id, computed)) this.blockReadyAt[b] = at + this.config.itlMs;
      this.heap.push({ at: (r.firstTokenMs as number) + (k + 1) * this.config.itlMs, order: this.order++, req: r, k: k + 1 });
    } else {
      this.finish(r, 'length', at, true);
    }
  }

  private finish(r: Req, reason: FinishReason, at: number, wasRunning: boolean): void {
    if (wasRunning) {
      this.kv.free(r.id);
      this.running--;
    }
    r.state = 'done';
    const result: RequestResult = {
      id: r.id,
      finishReason: reason,
      promptTokens: r.promptLen,
      cachedTokens: r.cachedTokens,
      completionTokens: r.emitted,
      arrivalMs: r.arrivalMs,
      admittedMs: r.admittedMs,
      firstTokenMs: r.emitted > 0 ? r.firstTokenMs : null,
      finishedMs: at,
    };
    this.observer.onFinish?.(result);
    r.listener.onFinish(result);
    // Freed blocks or a removed queue head may let the next waiting request in.
    if (!this.closed) this.admit(at);
  }
}

function concatTokens(a: ArrayLike<number>, b: readonly number[]): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i];
  out.set(b, a.length);
  return out;
}
