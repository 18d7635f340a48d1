/** The messages between the scrape pool (main thread) and its worker threads. Structured-clone data only. */
import type { ScrapeStatus } from './scraper';
import type { EndpointMetrics } from './types';
import type { VllmMetricNames } from './vllm-metrics';

export interface ScrapeWorkerConfig {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly maxBodyBytes?: number;
  /** `https` pods: accept any certificate. The scheme itself is each pod's URL's. */
  readonly insecureSkipVerify: boolean;
  readonly names?: VllmMetricNames;
  readonly modelName?: string;
  /** Longest a finished scrape waits in the worker before its batch is posted. */
  readonly batchMs: number;
  /** The main thread's `clockAnchorMs()`: the worker's scrape times then read on the scheduler's clock (src/clock.ts). */
  readonly clockAnchorMs: number;
}

/** One finished scrape: `id` is the pool's handle for the endpoint's scraper (a key can be re-added later). */
export interface WorkerReading {
  readonly id: number;
  readonly metrics: EndpointMetrics;
  readonly status: ScrapeStatus;
}

export type ToWorker =
  | { readonly type: 'add'; readonly id: number; readonly url: string; readonly initial: EndpointMetrics }
  | { readonly type: 'remove'; readonly id: number }
  /** Every scraper of the worker, and those added later, run at `ms` from now on (the pool's scrape budget). */
  | { readonly type: 'interval'; readonly ms: number }
  | { readonly type: 'crash'; readonly message: string }
  | { readonly type: 'stop' };

export type ToMain =
  | { readonly type: 'ready' }
  | { readonly type: 'readings'; readonly readings: readonly WorkerReading[] }
  | { readonly type: 'stopped' };
