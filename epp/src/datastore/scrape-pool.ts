/**
 * Scraping off the routing thread: a few worker threads run the endpoints' MetricsScrapers (fetch, decode, parse) and
 * post each finished scrape back as a compact record, batched. The main thread, which also answers Envoy, only copies
 * those records into the datastore: at 256 pods every 50 ms that is ~5,000 small records a second instead of ~110 MB
 * of pages to decode and parse (see the EPP benchmark in epp/README.md for both modes measured).
 *
 * Failure handling: a worker that dies (an uncaught exception, an OOM, a terminate) is reported to `onError` with
 * its error and restarted with its endpoints, carrying their last metrics over so nothing looks fresher than it is;
 * repeated crashes back off up to 5 s. Until it is back its pods' metrics age, and the saturation filter's staleness
 * bound takes them out of routing, as for a pod that stops answering.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ScrapeWorkerConfig, ToMain, ToWorker } from './scrape-protocol';
import { clockAnchorMs } from '../clock';
import type { ScrapeStatus } from './scraper';
import { endpointMetrics, type EndpointMetrics } from './types';

export interface ScrapePoolOptions extends Omit<ScrapeWorkerConfig, 'batchMs' | 'clockAnchorMs'> {
  /** Worker threads. Default 1; each pod stays on one worker. */
  readonly workers?: number;
  /** Longest a finished scrape waits in its worker before being posted. Default 5 ms. */
  readonly batchMs?: number;
  /** Every finished scrape, in the order its worker finished them. */
  readonly onReading: (id: number, metrics: EndpointMetrics, status: ScrapeStatus) => void;
  /** A worker died (it is being restarted). */
  readonly onError: (err: Error) => void;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  readonly ids: Set<number>;
  /** Crashes since the worker last delivered a reading; drives the restart backoff. */
  crashes: number;
  restartTimer: NodeJS.Timeout | undefined;
  lastError: Error | undefined;
}

interface Entry {
  readonly slot: Slot;
  readonly url: string;
  last: EndpointMetrics;
}

const MAX_RESTART_DELAY_MS = 5000;
const STOP_GRACE_MS = 5000;

export class ScrapeWorkerPool {
  private readonly slots: Slot[];
  private readonly entries = new Map<number, Entry>();
  private readonly config: Omit<ScrapeWorkerConfig, 'clockAnchorMs'>;
  private stopping = false;
  private restarts = 0;
  private intervalMs: number;

  constructor(private readonly options: ScrapePoolOptions) {
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
      throw new Error(`scrape workers must be an integer from 1 to 64, got ${workers}`);
    }
    const { onReading: _r, onError: _e, workers: _w, ...rest } = options;
    this.config = { ...rest, batchMs: options.batchMs ?? 5 };
    this.intervalMs = this.config.intervalMs;
    this.slots = Array.from({ length: workers }, (_, index) => ({
      index,
      worker: undefined,
      ids: new Set<number>(),
      crashes: 0,
      restartTimer: undefined,
      lastError: undefined,
    }));
    for (const slot of this.slots) this.spawn(slot);
  }

  /** Worker restarts so far (after crashes). */
  get restartCount(): number {
    return this.restarts;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Starts scraping `url` for the handle `id` (unique per endpoint record) on the least-loaded worker. */
  add(id: number, url: string, initial: EndpointMetrics): void {
    if (this.stopping) throw new Error('scrape pool is stopped');
    // Checked here, where the caller can see the error; in the worker it would only crash the thread.
    const protocol = new URL(url).protocol;
    if (protocol !== 'http:' && protocol !== 'https:') throw new Error(`unsupported metrics URL ${url}`);
    if (this.entries.has(id)) this.remove(id);
    let slot = this.slots[0] as Slot;
    for (const s of this.slots) if (s.ids.size < slot.ids.size) slot = s;
    this.entries.set(id, { slot, url, last: initial });
    slot.ids.add(id);
    this.send(slot, { type: 'add', id, url, initial });
  }

  remove(id: number): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    entry.slot.ids.delete(id);
    this.send(entry.slot, { type: 'remove', id });
  }

  /** The interval every scraper runs at from now on, on every worker (a restarted worker starts at it too). */
  setIntervalMs(ms: number): void {
    if (!(ms > 0)) throw new Error(`scrape interval must be positive, got ${ms}`);
    if (ms === this.intervalMs) return;
    this.intervalMs = ms;
    for (const slot of this.slots) this.send(slot, { type: 'interval', ms });
  }

  /** Test hook: makes worker `index` throw an uncaught exception, as a bug in it would. */
  crashWorker(index: number, message = 'scrape worker crash requested'): void {
    const slot = this.slots[index];
    if (!slot) throw new Error(`no scrape worker ${index}; the pool has ${this.slots.length}`);
    this.send(slot, { type: 'crash', message });
  }

  /** Stops every scraper, then the threads; resolves when all threads have exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((slot) => this.stopSlot(slot)));
  }

  private async stopSlot(slot: Slot): Promise<void> {
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    slot.restartTimer = undefined;
    const worker = slot.worker;
    slot.worker = undefined;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      // The worker closes its port after stopping its scrapers and agent, and then exits by itself; terminate() is
      // the fallback for one that does not get there.
      const timer = setTimeout(() => void worker.terminate(), STOP_GRACE_MS);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      worker.postMessage({ type: 'stop' } satisfies ToWorker);
    });
  }

  private send(slot: Slot, msg: ToWorker): void {
    // While a worker is down its messages are dropped: the restart replays every endpoint it owns.
    slot.worker?.postMessage(msg);
  }

  private spawn(slot: Slot): void {
    const entry = workerEntry();
    const worker = new Worker(entry.file, { workerData: { ...this.config, intervalMs: this.intervalMs, clockAnchorMs: clockAnchorMs() } satisfies ScrapeWorkerConfig, execArgv: entry.execArgv, name: `scrape-${slot.index}` });
    slot.worker = worker;
    slot.lastError = undefined;
    worker.on('message', (msg: ToMain) => {
      if (msg.type !== 'readings' || slot.worker !== worker) return;
      slot.crashes = 0;
      for (const r of msg.readings) {
        const e = this.entries.get(r.id);
        if (!e || e.slot !== slot) continue; // removed (or moved) since the worker finished it
        const metrics = endpointMetrics(r.metrics);
        e.last = metrics;
        this.options.onReading(r.id, metrics, Object.freeze({ ...r.status }));
      }
    });
    worker.on('error', (err) => {
      slot.lastError = err;
    });
    worker.on('exit', (code) => {
      if (slot.worker !== worker || this.stopping) return;
      slot.worker = undefined;
      const err = slot.lastError ?? new Error(`exited with code ${code}`);
      const error = new Error(`scrape worker ${slot.index} (${slot.ids.size} endpoints) died: ${err.message}; restarting it`);
      error.cause = err;
      try {
        this.options.onError(error);
      } catch {
        // a failing error sink must not stop the restart
      }
      const delay = slot.crashes === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (slot.crashes - 1));
      slot.crashes++;
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = undefined;
        if (this.stopping) return;
        this.restarts++;
        this.spawn(slot);
        for (const id of slot.ids) {
          const e = this.entries.get(id);
          if (e) this.send(slot, { type: 'add', id, url: e.url, initial: e.last });
        }
      }, delay);
    });
  }
}

/**
 * The worker's entry file: the compiled `scrape-worker.js` beside this module, or, when this module runs from its
 * TypeScript source (jest, ts-node benchmarks), the `.ts` file through ts-node's transpiler.
 */
function workerEntry(): { file: string; execArgv?: string[] } {
  const js = path.join(__dirname, 'scrape-worker.js');
  if (fs.existsSync(js)) return { file: js };
  return { file: path.join(__dirname, 'scrape-worker.ts'), execArgv: ['--require', 'ts-node/register/transpile-only'] };
}
