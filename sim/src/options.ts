import { hostname } from 'node:os';

export interface SimulatorOptions {
  host: string;
  /** 0 = an ephemeral port; the bound port is reported by startSimulator / the listening line. */
  port: number;
  /** The model being impersonated (shown in /v1/models as `root`). Tokenizer is always Qwen3's. */
  model: string;
  /** Names accepted in requests; the first one labels the metrics (vLLM's behaviour). */
  servedModelNames: string[];
  blockSize: number;
  kvCacheBlocks: number;
  maxNumSeqs: number;
  maxModelLen: number;
  ttftOverheadMs: number;
  prefillMsPerToken: number;
  itlMs: number;
  /** Prefills computed at once (FCFS); 0 = unlimited, i.e. each request's prefill is independent. */
  prefillConcurrency: number;
  /** Simulated time runs this many times faster than wall time. */
  timeScale: number;
  podName: string;
  /** max_tokens when a request gives none (capped by the room left under max-model-len). */
  defaultMaxTokens: number;
}

export const VLLM_BLOCK_SIZES = [1, 8, 16, 32, 64, 128] as const;

/**
 * Defaults resemble Qwen3-0.6B..8B on a small GPU (think L4/A10): 4000 prompt
 * tokens/s of prefill, 50 tokens/s decode per sequence. An uncached
 * 4000-token prompt then takes 20 + 1000 = 1020 ms to first token and the
 * same prompt fully cached 20 + 16 × 0.25 = 24 ms.
 */
export function defaultOptions(): SimulatorOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    model: 'Qwen/Qwen3-0.6B',
    servedModelNames: [],
    blockSize: 16,
    kvCacheBlocks: 8192,
    maxNumSeqs: 256,
    maxModelLen: 40960,
    ttftOverheadMs: 20,
    prefillMsPerToken: 0.25,
    itlMs: 20,
    prefillConcurrency: 1,
    timeScale: 1,
    podName: process.env.POD_NAME || hostname(),
    defaultMaxTokens: 16,
  };
}

export class OptionError extends Error {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(`${flag}: ${message}`);
    this.name = 'OptionError';
  }
}

/** Fills defaults and checks every value; errors name the CLI flag. */
export function resolveOptions(partial: Partial<SimulatorOptions> = {}): SimulatorOptions {
  const o: SimulatorOptions = { ...defaultOptions(), ...stripUndefined(partial) };
  if (o.servedModelNames.length === 0) o.servedModelNames = [o.model];

  const int = (flag: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new OptionError(flag, `expected an integer in [${min}, ${max}], got ${v}`);
  };
  const num = (flag: string, v: number, min: number, exclusive = false): void => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (exclusive && v === min)) {
      throw new OptionError(flag, `expected a number ${exclusive ? '>' : '>='} ${min}, got ${v}`);
    }
  };
  const str = (flag: string, v: unknown): void => {
    if (typeof v !== 'string' || v.length === 0) throw new OptionError(flag, 'expected a non-empty string');
  };

  str('--host', o.host);
  int('--port', o.port, 0, 65535);
  str('--model', o.model);
  if (!Array.isArray(o.servedModelNames)) throw new OptionError('--served-model-name', 'expected a list of names');
  for (const n of o.servedModelNames) str('--served-model-name', n);
  int('--block-size', o.blockSize, 1, 128);
  if (!(VLLM_BLOCK_SIZES as readonly number[]).includes(o.blockSize)) {
    throw new OptionError('--block-size', `must be one of ${VLLM_BLOCK_SIZES.join(', ')} (vLLM's choices), got ${o.blockSize}`);
  }
  int('--kv-cache-blocks', o.kvCacheBlocks, 1, 1 << 26);
  int('--max-num-seqs', o.maxNumSeqs, 1);
  int('--max-model-len', o.maxModelLen, 2);
  num('--ttft-overhead-ms', o.ttftOverheadMs, 0);
  num('--prefill-ms-per-token', o.prefillMsPerToken, 0);
  num('--itl-ms', o.itlMs, 0);
  int('--prefill-concurrency', o.prefillConcurrency, 0, 1024);
  num('--time-scale', o.timeScale, 0, true);
  str('--pod-name', o.podName);
  int('--default-max-tokens', o.defaultMaxTokens, 1);
  // vLLM refuses to start when one max-length sequence cannot fit in the KV
  // cache; here it would also mean a request that waits forever.
  if (o.kvCacheBlocks * o.blockSize < o.maxModelLen) {
    throw new OptionError(
      '--kv-cache-blocks',
      `${o.kvCacheBlocks} blocks × ${o.blockSize} tokens = ${o.kvCacheBlocks * o.blockSize} tokens cannot hold one sequence of --max-model-len ${o.maxModelLen}; raise --kv-cache-blocks or lower --max-model-len`,
    );
  }
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
