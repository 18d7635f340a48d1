import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { budgetedInterval, DEFAULT_ADAPTIVE_MAX_INTERVAL_MS, DEFAULT_SCRAPE_BUDGET_PER_SECOND, nextAdaptiveInterval } from './adaptive-interval';
import { SinceScrapeLedger } from './since-scrape-ledger';
import { endpointKey } from './endpoint-key';
import { ScrapeWorkerPool } from './scrape-pool';
import {
  DEFAULT_REFRESH_INTERVAL_MS,
  DEFAULT_SCRAPE_TIMEOUT_MS,
  MetricsScraper,
  metricsUrl,
  type ScrapeStatus,
} from './scraper';
import { modelServerRestarted, EMPTY_METRICS, endpointMetrics, nextWaitingPages, type Endpoint, type EndpointMetrics, type EndpointSnapshot } from './types';
import type { VllmMetricNames } from './vllm-metrics';
import { monotonicMs } from '../clock';

export interface DatastoreOptions {
  /** Per-endpoint scrape cadence (`-refreshMetricsInterval`). Default 50 ms. */
  readonly refreshIntervalMs?: number;
  /** Per-scrape timeout. Default 1000 ms. */
  readonly scrapeTimeoutMs?: number;
  /** Scrape this port instead of the endpoint's own (`-modelServerMetricsPort`; 0 or unset = the endpoint port). */
  readonly metricsPort?: number;
  /**
   * Scrape this port on every endpoint, a multi-port pod's ranks included (llm-d-router v0.10.0 `metrics-data-source`
   * `port`: `WithPortOverride`, "scrape podIP:port instead of the endpoint's MetricsHost"). Wins over `metricsPort`.
   */
  readonly metricsPortOverride?: number;
  /** Default `/metrics`. */
  readonly metricsPath?: string;
  /** Default `http`. */
  readonly metricsScheme?: 'http' | 'https';
  /** For `https` scraping: skip certificate checks (upstream's default, since pods serve self-signed certs). Default true. */
  readonly metricsInsecureSkipVerify?: boolean;
  readonly metricNames?: VllmMetricNames;
  /** Count only series of this `model_name`. */
  readonly modelName?: string;
  /**
   * false: no scrapers run and metrics change only through setMetrics(), for simulators and tests that drive the
   * signals themselves. Default true.
   */
  readonly scrape?: boolean;
  /**
   * Where scraping runs. Default `worker`.
   * - `worker`: worker threads fetch and parse every page and post compact readings; the routing thread only copies
   *   them in, so its cost no longer grows with page size and barely with pool size. The interval stays the
   *   configured one as long as the workers keep up (a worker that falls behind skips ticks, never the router).
   * - `adaptive`: scrapers run on the routing thread and the interval grows with pool size and loop load
   *   (adaptive-interval.ts), from `refreshIntervalMs` up to `adaptiveMaxIntervalMs`.
   * - `event-loop`: scrapers on the routing thread at the fixed interval (kvroute's behaviour before the worker
   *   threads; kept for comparison).
   * Why `worker` is the default: the EPP benchmark (epp/README.md, "Scraping at 256 pods") measured all three. At
   * 256 pods, idle, scraping cost the routing loop 4-6% of its time in `worker` mode, 42-60% in `adaptive` (with
   * the period already stretched to 250-400 ms) and 97-98% in `event-loop` (two runs on a shared 2-core machine);
   * under load both other modes routed 3-10× what `event-loop` did, and only the workers kept the 50 ms period.
   */
  readonly scrapeMode?: ScrapeMode;
  /**
   * `worker` mode: threads, each pod on one. Default 1: a scrape costs a worker roughly 0.1 ms of CPU (HTTP exchange,
   * decode, ~50-70 us to parse a ~21 KB page), so 256 pods at 50 ms (5,120 scrapes/s) is most of one core. Add threads,
   * with CPU for them, when `kvroute_epp_model_server_scrapes_total` falls behind pods × 1000 / interval.
   */
  readonly scrapeWorkers?: number;
  /**
   * `worker` mode: the most scrapes a second across the pool; past that every pod's period stretches (up to
   * `adaptiveMaxIntervalMs`) so scraping's CPU stops growing with the pool. 0: none. Default 1000 (see
   * DEFAULT_SCRAPE_BUDGET_PER_SECOND in adaptive-interval.ts).
   */
  readonly scrapeBudgetPerSecond?: number;
  /** The interval's ceiling in `adaptive` mode and under the `worker` mode's scrape budget. Default 400 ms. */
  readonly adaptiveMaxIntervalMs?: number;
  /** A scrape worker died and is being restarted. Default process.emitWarning. */
  readonly onScrapeWorkerError?: (err: Error) => void;
  /** Where exceptions thrown by event listeners go; they never propagate into discovery. Default process.emitWarning. */
  readonly onListenerError?: (err: unknown, event: keyof DatastoreEvents) => void;
  /**
   * How long an endpoint reported by `endpointScrapesFailing` must be scraped without a failure before
   * `endpointScrapesRecovered` is told. Default SCRAPES_RECOVERED_AFTER_MS.
   */
  readonly scrapesRecoveredAfterMs?: number;
  /**
   * The clock of discovery times and of the since-scrape ledger. Default `monotonicMs` (src/clock.ts), the clock the
   * scrapers stamp pages with; only tests that set metrics by hand (`scrape: false`) on a clock of their own change it.
   */
  readonly now?: () => number;
}

export interface DatastoreEvents {
  /** A new endpoint (a new key, or a different pod now at a known key). */
  endpointAdded: [endpoint: Endpoint];
  /** An endpoint left: drop every per-endpoint state (prefix index entries, session pins). */
  endpointRemoved: [endpoint: Endpoint];
  /** The pool became synced (health may serve) or stopped being so. */
  poolSyncChanged: [synced: boolean];
  /**
   * The model server behind a known endpoint restarted: a scrape read another process start time than the one before,
   * or, on pages without one, cumulative counters lower than the one before (`modelServerRestarted`). What the EPP learnt of the old process's cache is void; `sinceMs` is the previous reading's
   * `updateTime`, before which nothing came from the new process.
   */
  endpointRestarted: [endpoint: Endpoint, sinceMs: number];
  /**
   * An endpoint's scrapes failed SCRAPE_FAILURES_REPORTED times in a row (`error`: the last one's reason). Told once
   * until `endpointScrapesRecovered`, however long they keep failing, so a log line per event stays bounded.
   */
  endpointScrapesFailing: [endpoint: Endpoint, error: string, failures: number];
  /** An endpoint told as failing was scraped without a failure for `scrapesRecoveredAfterMs`. */
  endpointScrapesRecovered: [endpoint: Endpoint];
}

/**
 * Failed scrapes in a row that make an endpoint's scrapes failing for `endpointScrapesFailing`: the saturation filter's
 * default `maxConsecutiveScrapeFailures`, so one slow page does not make a line, and a page that cannot be read (a
 * wrong metrics port or path, HTTP 404, a refused connection) makes one within a few scrape periods.
 */
export const SCRAPE_FAILURES_REPORTED = 3;

/**
 * How long a failing endpoint must be scraped without a failure before it is told as recovered: a pod whose scrapes
 * alternate between failing and succeeding makes one pair of lines per this period, not one per flip (at the 50 ms
 * period, up to ten a second per pod).
 */
export const SCRAPES_RECOVERED_AFTER_MS = 30_000;

export type ScrapeMode = 'worker' | 'adaptive' | 'event-loop';
export const SCRAPE_MODES: readonly ScrapeMode[] = ['worker', 'adaptive', 'event-loop'];

type Listener<E extends keyof DatastoreEvents> = (...args: DatastoreEvents[E]) => void;

/** Pool-level gauges (`inference_pool_*`). */
export interface PoolStats {
  /** Endpoints in the pool (every discovered endpoint is a Ready pod). */
  readonly discoveredEndpoints: number;
  /**
   * Endpoints whose last successful scrape is at most the staleness threshold old: GIE's `inference_pool_ready_pods`
   * (`refreshPrometheusMetrics` with `podsWithFreshMetrics`, pkg/epp/datalayer/logger/logger.go @ v1.5.0 L104-122).
   */
  readonly readyEndpoints: number;
  /** Averages over the ready endpoints; undefined when none is ready (GIE then leaves its gauges as they were). */
  readonly averageKvCacheUsage: number | undefined;
  readonly averageWaitingQueue: number | undefined;
  readonly averageRunningQueue: number | undefined;
  /**
   * Sample standard deviations over the ready endpoints (n − 1, at least 1), rounded to two decimals; undefined when
   * none is ready (llm-d-router v0.10.0 `pkg/epp/datalayer/logger/logger.go` calculateSummary).
   */
  readonly stdDevKvCacheUsage: number | undefined;
  readonly stdDevWaitingQueue: number | undefined;
  readonly stdDevRunningQueue: number | undefined;
}

interface EndpointRecord {
  endpoint: Endpoint;
  metrics: EndpointMetrics;
  /** Event-loop modes: the scraper. */
  scraper?: MetricsScraper;
  /** Worker mode: the pool's handle for this record's scraper, and the status of its last scrape. */
  scrapeId?: number;
  scrapeStatus?: ScrapeStatus;
  /** This record's frozen snapshot while its endpoint, metrics and in-flight count are unchanged. */
  snap?: EndpointSnapshot;
  /** Its index in the last built snapshot array (valid while `Datastore.lastSnapshot` is set). */
  position: number;
  /** Queued in `Datastore.changedSince` for the next snapshot. */
  queued: boolean;
  /** Wall-clock ms when it was added (a refresh of the same pod keeps it). */
  discoveredTime: number;
  /** Routes and ends since its last page's request (`EndpointSnapshot.netPicksSinceScrape`). */
  sinceScrape: SinceScrapeLedger;
  /** Told as `endpointScrapesFailing`, and not yet as recovered. */
  scrapesFailingTold?: boolean;
  /** While told as failing: `performance.now()` of the first of the successful scrapes since its last failure. */
  scrapesGoodSince?: number;
}

const ADAPT_WINDOW_MS = 1000;

/**
 * The pool as the EPP knows it: endpoints by `address:port`, what their `/metrics` last said, and how many requests the
 * EPP itself has in flight to each. Discovery writes endpoints; scrapers write metrics; request control counts; the
 * scheduler reads one snapshot per request.
 */
export class Datastore {
  private readonly records = new Map<string, EndpointRecord>();
  /**
   * Kept apart from the records: a response that ends after its pod left must not drive a later pod at the same
   * address negative, and a pod that comes back while requests to it are still running still has them.
   */
  private readonly inFlight = new Map<string, number>();
  private readonly listeners: { [E in keyof DatastoreEvents]: Set<Listener<E>> } = {
    endpointAdded: new Set(),
    endpointRemoved: new Set(),
    endpointRestarted: new Set(),
    poolSyncChanged: new Set(),
    endpointScrapesFailing: new Set(),
    endpointScrapesRecovered: new Set(),
  };
  /** `event-loop` and `adaptive` modes: the scrapers run on this thread. */
  private readonly scrapesOnLoop: boolean;
  /** Worker mode: created with the first endpoint, so a store that never scrapes starts no threads. */
  private pool: ScrapeWorkerPool | undefined;
  private stopPromise: Promise<void> | undefined;
  /** Worker mode: scrape handle → record. */
  private readonly byScrapeId = new Map<number, EndpointRecord>();
  private nextScrapeId = 1;
  private readonly mode: ScrapeMode | 'off';
  private intervalMs: number;
  private adaptTimer: NodeJS.Timeout | undefined;
  private adaptWindow = { scrapes: 0, costMs: 0 };
  private adaptElu: EventLoopUtilization | undefined;
  private readonly scrapeTotals = { success: 0, failure: 0 };
  private synced = false;
  private stopped = false;
  /** A scrape-budget interval change is waiting to be posted to the workers. */
  private budgetPosting = false;
  private readonly pendingStops = new Set<Promise<void>>();
  /**
   * The last `snapshot()`, reused until a record changes: at 256 pods a request would otherwise freeze 256 new
   * objects while, between two scrape batches, only the in-flight counts of the pods it and its neighbours picked
   * changed. Each record keeps its own snapshot too, so a rebuild allocates only for the records that changed.
   */
  private snapshotCache: readonly EndpointSnapshot[] | undefined;
  /**
   * The last snapshot built, and the records changed since (each once): the next snapshot is a copy of it with those
   * records' positions replaced, instead of a walk over every record with an in-flight lookup each (at 256 pods every
   * request changes one or two records, its pick's in-flight count and a scrape's metrics). Cleared when an endpoint
   * joins or leaves, which moves positions: the next snapshot is then built from the records.
   */
  private lastSnapshot: EndpointSnapshot[] | undefined;
  private readonly changedSince: EndpointRecord[] = [];
  private readonly now: () => number;

  constructor(private readonly options: DatastoreOptions = {}) {
    this.now = options.now ?? monotonicMs;
    if (options.metricsPort !== undefined && options.metricsPort !== 0 && !isPort(options.metricsPort)) {
      throw new Error(`metricsPort must be 1-65535, got ${options.metricsPort}`);
    }
    const mode = options.scrapeMode ?? 'worker';
    if (!SCRAPE_MODES.includes(mode)) throw new Error(`scrapeMode must be one of ${SCRAPE_MODES.join(', ')}, got ${String(mode)}`);
    this.mode = (options.scrape ?? true) ? mode : 'off';
    this.intervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
    if (!(this.intervalMs > 0)) throw new Error(`refreshIntervalMs must be positive, got ${this.intervalMs}`);
    budgetedInterval(0, this.intervalMs, options.scrapeBudgetPerSecond ?? DEFAULT_SCRAPE_BUDGET_PER_SECOND); // validates
    if (this.mode !== 'worker' && options.scrapeBudgetPerSecond !== undefined) {
      throw new Error(`scrapeBudgetPerSecond applies to scrapeMode worker only (scrapeMode is ${this.mode})`);
    }
    if (this.mode !== 'worker' && options.scrapeWorkers !== undefined) {
      throw new Error(`scrapeWorkers applies to scrapeMode worker only (scrapeMode is ${this.mode})`);
    }
    this.scrapesOnLoop = this.mode !== 'worker' && this.mode !== 'off';
    if (this.scrapesOnLoop) {
      if (this.mode === 'adaptive') {
        this.adaptElu = performance.eventLoopUtilization();
        this.adaptTimer = setInterval(() => this.adapt(), ADAPT_WINDOW_MS);
        this.adaptTimer.unref();
      }
    }
  }

  private scrapePool(): ScrapeWorkerPool {
    const options = this.options;
    this.pool ??= new ScrapeWorkerPool({
      workers: options.scrapeWorkers,
      intervalMs: this.intervalMs,
      timeoutMs: options.scrapeTimeoutMs ?? DEFAULT_SCRAPE_TIMEOUT_MS,
      insecureSkipVerify: options.metricsInsecureSkipVerify ?? true,
      names: options.metricNames,
      modelName: options.modelName,
      onReading: (id, metrics, status) => {
        const rec = this.byScrapeId.get(id);
        if (!rec) return;
        rec.scrapeStatus = status;
        this.applyMetrics(rec, metrics, 'scrape');
        this.countScrape(status);
        this.trackScrapeHealth(rec, metrics, status);
      },
      onError: options.onScrapeWorkerError ?? ((err) => process.emitWarning(err.message)),
    });
    return this.pool;
  }

  /** Where scraping runs (`off` for `scrape: false`). */
  get scrapeMode(): ScrapeMode | 'off' {
    return this.mode;
  }

  /** The interval scrapers run at now: the configured one, except as the adaptive mode or the scrape budget lengthened it. */
  get effectiveRefreshIntervalMs(): number {
    return this.intervalMs;
  }

  /** Scrapes finished since the store started, by outcome (for the EPP's own counters). */
  get scrapeCounts(): Readonly<{ success: number; failure: number }> {
    return { ...this.scrapeTotals };
  }

  private countScrape(status: ScrapeStatus): void {
    if (status.lastError === undefined) this.scrapeTotals.success++;
    else this.scrapeTotals.failure++;
  }

  /**
   * Tells when an endpoint's scrapes start failing and when they have succeeded again for a while, once each: failed
   * scrapes are otherwise only counted (`kvroute_epp_model_server_scrapes_total`, no endpoint label), and a pool whose
   * every page is unreadable answers every request 503 with nothing in the log to say why.
   */
  private trackScrapeHealth(rec: EndpointRecord, metrics: EndpointMetrics, status: ScrapeStatus): void {
    if (status.lastError !== undefined) {
      rec.scrapesGoodSince = undefined;
      if (rec.scrapesFailingTold !== true && metrics.consecutiveFailures >= SCRAPE_FAILURES_REPORTED) {
        rec.scrapesFailingTold = true;
        this.emit('endpointScrapesFailing', rec.endpoint, status.lastError, metrics.consecutiveFailures);
      }
      return;
    }
    if (rec.scrapesFailingTold !== true) return;
    // Monotonic: a wall-clock step must neither cut the period short nor stretch it.
    const now = performance.now();
    rec.scrapesGoodSince ??= now;
    if (now - rec.scrapesGoodSince < (this.options.scrapesRecoveredAfterMs ?? SCRAPES_RECOVERED_AFTER_MS)) return;
    rec.scrapesFailingTold = false;
    rec.scrapesGoodSince = undefined;
    this.emit('endpointScrapesRecovered', rec.endpoint);
  }

  /** Worker mode: worker threads restarted after crashes. */
  get scrapeWorkerRestarts(): number {
    return this.pool?.restartCount ?? 0;
  }

  /** Test hook (worker mode): make scrape worker `index` crash. */
  crashScrapeWorker(index = 0): void {
    if (!this.pool) throw new Error(`no scrape workers running (scrape mode ${this.mode})`);
    this.pool.crashWorker(index);
  }

  /** Worker mode: the period that keeps the pool within the scrape budget, applied to every worker when it changes. */
  private applyScrapeBudget(): void {
    const next = budgetedInterval(
      this.byScrapeId.size,
      this.options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS,
      this.options.scrapeBudgetPerSecond ?? DEFAULT_SCRAPE_BUDGET_PER_SECOND,
      this.options.adaptiveMaxIntervalMs ?? DEFAULT_ADAPTIVE_MAX_INTERVAL_MS,
    );
    if (next === this.intervalMs) return;
    this.intervalMs = next;
    // A discovery resync adds pods one by one; tell the workers once, after the burst, not once per pod (each
    // message restarts every scraper's timer). The pool, created at the first add, starts at the current interval.
    if (this.budgetPosting) return;
    this.budgetPosting = true;
    setImmediate(() => {
      this.budgetPosting = false;
      if (!this.stopped) this.pool?.setIntervalMs(this.intervalMs);
    });
  }

  private adapt(): void {
    const elu = performance.eventLoopUtilization(this.adaptElu);
    this.adaptElu = performance.eventLoopUtilization();
    const window = this.adaptWindow;
    this.adaptWindow = { scrapes: 0, costMs: 0 };
    const next = nextAdaptiveInterval(
      this.intervalMs,
      { endpoints: this.records.size, scrapes: window.scrapes, scrapeCostMs: window.costMs, utilization: elu.utilization },
      { baseMs: this.options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS, maxMs: this.options.adaptiveMaxIntervalMs ?? DEFAULT_ADAPTIVE_MAX_INTERVAL_MS },
    );
    if (next === this.intervalMs) return;
    this.intervalMs = next;
    for (const rec of this.records.values()) rec.scraper?.setIntervalMs(next);
  }

  // ---- events ----

  on<E extends keyof DatastoreEvents>(event: E, listener: Listener<E>): this {
    this.listeners[event].add(listener);
    return this;
  }

  off<E extends keyof DatastoreEvents>(event: E, listener: Listener<E>): this {
    this.listeners[event].delete(listener);
    return this;
  }

  private emit<E extends keyof DatastoreEvents>(event: E, ...args: DatastoreEvents[E]): void {
    for (const l of [...this.listeners[event]]) {
      try {
        l(...args);
      } catch (err) {
        (this.options.onListenerError ?? defaultListenerError)(err, event);
      }
    }
  }

  // ---- endpoints (written by discovery) ----

  /**
   * Adds an endpoint or refreshes one. Returns true when it counts as added: a new key, or a different pod (name or
   * namespace) at a known key, which is announced as removal plus addition since its caches are not the old pod's.
   */
  upsertEndpoint(endpoint: Endpoint): boolean {
    this.assertOpen();
    const ep = freezeEndpoint(endpoint);
    const existing = this.records.get(ep.key);
    if (existing) {
      // A changed metrics port (the pool gained or lost target ports) is re-added too: the scrape URL is set at add.
      if (existing.endpoint.name === ep.name && existing.endpoint.namespace === ep.namespace && existing.endpoint.metricsPort === ep.metricsPort) {
        existing.endpoint = ep;
        this.changed(existing);
        return false;
      }
      this.removeEndpoint(ep.key);
    }
    const rec: EndpointRecord = { endpoint: ep, metrics: EMPTY_METRICS, snap: undefined, position: -1, queued: false, discoveredTime: this.now(), sinceScrape: new SinceScrapeLedger() };
    this.records.set(ep.key, rec);
    this.poolChanged();
    const url = metricsUrl(ep.address, this.options.metricsPortOverride ?? ep.metricsPort ?? (this.options.metricsPort || ep.port), {
      scheme: this.options.metricsScheme,
      path: this.options.metricsPath,
    });
    if (this.mode === 'worker') {
      const id = this.nextScrapeId++;
      rec.scrapeId = id;
      this.byScrapeId.set(id, rec);
      this.applyScrapeBudget();
      this.scrapePool().add(id, url, rec.metrics);
    } else if (this.scrapesOnLoop) {
      const scraper = new MetricsScraper(url, {
        intervalMs: this.intervalMs,
        timeoutMs: this.options.scrapeTimeoutMs ?? DEFAULT_SCRAPE_TIMEOUT_MS,
        insecureSkipVerify: this.options.metricsInsecureSkipVerify ?? true,
        names: this.options.metricNames,
        modelName: this.options.modelName,
        onUpdate: (m, status) => {
          if (this.records.get(ep.key) !== rec) return;
          this.adaptWindow.scrapes++;
          this.adaptWindow.costMs += status.lastCostMs;
          this.countScrape(status);
          this.applyMetrics(rec, m, 'scrape');
          this.trackScrapeHealth(rec, m, status);
        },
      });
      rec.scraper = scraper;
      scraper.start();
    }
    this.emit('endpointAdded', ep);
    return true;
  }

  /** Removes an endpoint and stops its scraper. Returns false when the key was unknown. */
  removeEndpoint(key: string): boolean {
    const rec = this.records.get(key);
    if (!rec) return false;
    this.records.delete(key);
    this.poolChanged();
    if (rec.scraper) this.track(rec.scraper.stop());
    if (rec.scrapeId !== undefined) {
      this.byScrapeId.delete(rec.scrapeId);
      this.pool?.remove(rec.scrapeId);
      this.applyScrapeBudget();
    }
    this.emit('endpointRemoved', rec.endpoint);
    return true;
  }

  /** Makes the endpoint set exactly `endpoints` (a discovery resync). */
  replaceEndpoints(endpoints: Iterable<Endpoint>): { added: string[]; removed: string[] } {
    this.assertOpen();
    const desired = new Map<string, Endpoint>();
    for (const ep of endpoints) desired.set(ep.key, ep);
    const removed: string[] = [];
    const added: string[] = [];
    for (const key of [...this.records.keys()]) {
      if (!desired.has(key)) {
        this.removeEndpoint(key);
        removed.push(key);
      }
    }
    for (const ep of desired.values()) if (this.upsertEndpoint(ep)) added.push(ep.key);
    return { added, removed };
  }

  clear(): void {
    for (const key of [...this.records.keys()]) this.removeEndpoint(key);
  }

  has(key: string): boolean {
    return this.records.has(key);
  }

  get(key: string): Endpoint | undefined {
    return this.records.get(key)?.endpoint;
  }

  endpoints(): Endpoint[] {
    return [...this.records.values()].map((r) => r.endpoint);
  }

  /** Endpoints in the pool; every discovered endpoint is a Ready pod. */
  get readyCount(): number {
    return this.records.size;
  }

  // ---- metrics (written by scrapers) ----

  metrics(key: string): EndpointMetrics | undefined {
    return this.records.get(key)?.metrics;
  }

  scrapeStatus(key: string): ScrapeStatus | undefined {
    const rec = this.records.get(key);
    return rec?.scraper?.status ?? rec?.scrapeStatus;
  }

  /**
   * Overwrites an endpoint's metrics (fields not given are kept). Meant for `scrape: false` stores; with scrapers
   * running the next scrape overwrites it.
   */
  setMetrics(key: string, metrics: Partial<EndpointMetrics>): void {
    const rec = this.records.get(key);
    if (!rec) throw new Error(`unknown endpoint ${key}`);
    // With its `requestTime` the reading is a page like a scraper's: what was routed after that time is not in it.
    const merged = { ...rec.metrics, ...metrics };
    // A new reading counts as a page in `waitingPages`, as the scrapers count it (`applyReading`).
    const waitingPages = metrics.waitingPages ?? (merged.updateTime !== rec.metrics.updateTime && merged.updateTime > 0 ? nextWaitingPages(rec.metrics, merged.waitingQueueSize) : rec.metrics.waitingPages);
    this.applyMetrics(rec, endpointMetrics({ ...merged, waitingPages }), metrics.requestTime !== undefined ? 'scrape' : 'set');
  }

  /** A record's new reading: stored, and `endpointRestarted` told (after storing) when its server restarted. */
  private applyMetrics(rec: EndpointRecord, metrics: EndpointMetrics, source: 'scrape' | 'set'): void {
    const previous = rec.metrics;
    rec.metrics = metrics;
    // A new page counts what was routed and ended before its request went out (a failed scrape keeps the old page and
    // its time); a reading set by hand stands for the server as of now.
    if (metrics.updateTime !== previous.updateTime) {
      if (source === 'set') rec.sinceScrape.clear();
      else rec.sinceScrape.pageRequestedAt(metrics.requestTime ?? metrics.updateTime);
    }
    this.changed(rec);
    if (modelServerRestarted(previous, metrics)) this.emit('endpointRestarted', rec.endpoint, previous.updateTime);
  }

  // ---- in-flight requests (written by request control) ----

  /**
   * Counts a request routed to `key` until release(key). Returns the route's event in the pod's unseen-queue ledger
   * (for a release whose end is seen late), undefined for an endpoint not in the pool.
   */
  acquire(key: string): number | undefined {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    const rec = this.records.get(key);
    if (rec === undefined) return undefined;
    const routeId = rec.sinceScrape.routed(this.now());
    this.changed(rec);
    return routeId;
  }

  /**
   * Ends a request counted by acquire(key). Extra releases are ignored. `lateEndOf`: the request's end on the pod is
   * seen late (it happened at some moment after its route, the event acquire returned), so a page that counted the
   * route may already show it (`SinceScrapeLedger.endedSince`).
   */
  release(key: string, lateEndOf?: number): void {
    const n = this.inFlight.get(key) ?? 0;
    if (n <= 1) this.inFlight.delete(key);
    else this.inFlight.set(key, n - 1);
    if (n === 0) return;
    const rec = this.records.get(key);
    if (rec !== undefined) {
      if (lateEndOf === undefined) rec.sinceScrape.ended(this.now());
      else rec.sinceScrape.endedSince(lateEndOf, this.now());
      this.changed(rec);
    }
  }

  activeRequests(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }

  /** Requests routed to `key` less those ended on it since its last page (`EndpointSnapshot.netPicksSinceScrape`); 0 for an unknown key. */
  netPicksSinceScrape(key: string): number {
    return this.records.get(key)?.sinceScrape.net ?? 0;
  }

  /** Wall-clock ms when the endpoint at `key` was added; undefined for an unknown key. */
  discoveredTime(key: string): number | undefined {
    return this.records.get(key)?.discoveredTime;
  }

  // ---- reads for scheduling and metrics ----

  /**
   * One frozen record per endpoint, for one scheduling cycle. Endpoint and metrics objects are immutable and replaced
   * (never mutated) on change, so sharing them is safe; later updates do not show through.
   *
   * The array itself is readonly by type only, not frozen: V8 (Node 20's 11.3) iterates a frozen array's elements
   * about 5x slower than a plain one's (for-of and indexed loops alike, and for-of then allocates an iterator result
   * per element), and every filter and scorer walks this array once per request: at 256 pods that was a measurable
   * share of the scheduling cycle and of its garbage.
   */
  snapshot(): readonly EndpointSnapshot[] {
    if (this.snapshotCache !== undefined) return this.snapshotCache;
    const last = this.lastSnapshot;
    let out: EndpointSnapshot[];
    if (last !== undefined) {
      // Never the handed-out array itself: a cycle or its result may still hold it.
      out = last.slice();
      for (const rec of this.changedSince) {
        rec.queued = false;
        out[rec.position] = this.recordSnapshot(rec);
      }
    } else {
      // Pushed, not preallocated: a packed array (its copies too), which V8 reads without hole checks.
      out = [];
      for (const rec of this.records.values()) {
        rec.queued = false;
        rec.position = out.length;
        out.push(this.recordSnapshot(rec));
      }
    }
    this.changedSince.length = 0;
    this.lastSnapshot = out;
    this.snapshotCache = out;
    return out;
  }

  private recordSnapshot(rec: EndpointRecord): EndpointSnapshot {
    if (rec.snap === undefined) {
      const activeRequests = this.inFlight.get(rec.endpoint.key) ?? 0;
      const metrics = activeRequests === 0 ? withoutStuckGauges(rec.metrics) : rec.metrics;
      rec.snap = Object.freeze({ endpoint: rec.endpoint, metrics, activeRequests, discoveredTime: rec.discoveredTime, netPicksSinceScrape: rec.sinceScrape.net });
    }
    return rec.snap;
  }

  /** A record's endpoint, metrics or in-flight count changed: its snapshot and the pool's are out of date. */
  private changed(rec: EndpointRecord): void {
    rec.snap = undefined;
    this.snapshotCache = undefined;
    if (this.lastSnapshot !== undefined && !rec.queued) {
      rec.queued = true;
      this.changedSince.push(rec);
    }
  }

  /** An endpoint joined or left: positions moved, so the next snapshot is built from the records. */
  private poolChanged(): void {
    this.snapshotCache = undefined;
    this.lastSnapshot = undefined;
    for (const rec of this.changedSince) rec.queued = false;
    this.changedSince.length = 0;
  }

  /**
   * The pool gauges' inputs at `nowMs`: endpoints count as ready, and enter the averages, when their last successful
   * scrape is at most `stalenessMs` old (GIE's `--metrics-staleness-threshold`); a pod never scraped, hung or
   * unreachable is not ready.
   */
  poolStats(nowMs: number = this.now(), stalenessMs: number = Infinity): PoolStats {
    let ready = 0;
    let kv = 0;
    let waiting = 0;
    let running = 0;
    let kvSquares = 0;
    let waitingSquares = 0;
    let runningSquares = 0;
    for (const rec of this.records.values()) {
      const updated = rec.metrics.updateTime;
      if (updated === 0 || nowMs - updated > stalenessMs) continue;
      ready++;
      const m = rec.metrics;
      kv += m.kvCacheUsagePercent;
      waiting += m.waitingQueueSize;
      running += m.runningQueueSize;
      kvSquares += m.kvCacheUsagePercent * m.kvCacheUsagePercent;
      waitingSquares += m.waitingQueueSize * m.waitingQueueSize;
      runningSquares += m.runningQueueSize * m.runningQueueSize;
    }
    const avg = (x: number): number | undefined => (ready === 0 ? undefined : x / ready);
    // Σ(x − mean)² = Σx² − n·mean², clamped at 0 against rounding.
    const stdDev = (sum: number, squares: number): number | undefined =>
      ready === 0 ? undefined : Math.round(Math.sqrt(Math.max(0, squares - (sum * sum) / ready) / Math.max(1, ready - 1)) * 100) / 100;
    return {
      discoveredEndpoints: this.records.size,
      readyEndpoints: ready,
      averageKvCacheUsage: avg(kv),
      averageWaitingQueue: avg(waiting),
      averageRunningQueue: avg(running),
      stdDevKvCacheUsage: stdDev(kv, kvSquares),
      stdDevWaitingQueue: stdDev(waiting, waitingSquares),
      stdDevRunningQueue: stdDev(running, runningSquares),
    };
  }

  // ---- pool sync (written by discovery, read by health) ----

  get poolSynced(): boolean {
    return this.synced;
  }

  setPoolSynced(synced: boolean): void {
    if (this.synced === synced) return;
    this.synced = synced;
    this.emit('poolSyncChanged', synced);
  }

  /** Stops every scraper and closes kept-alive connections. Endpoints stay readable; no removal events are sent. */
  stop(): Promise<void> {
    this.stopPromise ??= this.stopNow();
    return this.stopPromise;
  }

  private async stopNow(): Promise<void> {
    this.stopped = true;
    if (this.adaptTimer) clearInterval(this.adaptTimer);
    this.adaptTimer = undefined;
    for (const rec of this.records.values()) if (rec.scraper) this.track(rec.scraper.stop());
    if (this.pool) this.track(this.pool.stop());
    this.byScrapeId.clear();
    while (this.pendingStops.size > 0) await Promise.all([...this.pendingStops]);
  }

  private track(p: Promise<void>): void {
    this.pendingStops.add(p);
    void p.finally(() => this.pendingStops.delete(p));
  }

  private assertOpen(): void {
    if (this.stopped) throw new Error('datastore is stopped');
  }
}

/**
 * How long a pod's load gauges may stand still, showing work, while this EPP has nothing in flight there, before they
 * are read as stuck. vLLM 0.10.0 returns the scheduler's stats only from an engine step that samples a token
 * (`make_stats` in `update_from_output`, vllm/v1/core/sched/scheduler.py @ 6eca337ce lines 909-912), so when aborted
 * requests (clients that gave up) empty an engine its running and waiting gauges, and the KV usage of their blocks,
 * keep their last values until a new request's first token; vLLM 0.10.2 fixed it (#22995, "Fix stuck stats/metrics
 * after requests are aborted"). A pod stuck at waiting 6 stays "saturated" to every router that reads the gauge, gets
 * no request that would refresh it, and a pool whose pods all stuck so after a burst of timeouts holds every request
 * to its deadline. 10 s: far longer than any step (the gauges move with each token) and than most lone prefills.
 */
export const STUCK_GAUGES_MS = 10_000;

/**
 * `m` with its load gauges (running, waiting, KV usage, LoRA adapters running and waiting) read as idle when they are
 * stuck: showing work, and seen unchanged by successful scrapes for STUCK_GAUGES_MS. Only for a pod this EPP has
 * nothing in flight to (the caller's check): with its own requests there, the gauges move or are right.
 */
export function withoutStuckGauges(m: EndpointMetrics): EndpointMetrics {
  // Blocks in use without a request running or waiting are not a stuck reading (idle usage is 1/N in 0.10.0).
  if (m.waitingQueueSize <= 0 && m.runningQueueSize <= 0) return m;
  // Seen standing still by successful scrapes across the whole span, and still scraped: a pod that stopped answering
  // (or a stalled scraper) is not read as idle; its staleness and failures are the filters' to judge.
  if (m.changedTime === undefined || m.consecutiveFailures > 0 || m.updateTime - m.changedTime < STUCK_GAUGES_MS) return m;
  // The adapters it lists as running or waiting are the same stuck requests' (vllm:lora_requests_info is set in the
  // same `record` call as the gauges, loggers.py @ 6eca337ce, and sticks with them): their slots are free.
  const lora = m.lora === undefined ? undefined : { running: [], waiting: [], maxLora: m.lora.maxLora };
  return endpointMetrics({ ...m, waitingQueueSize: 0, runningQueueSize: 0, kvCacheUsagePercent: 0, ...(lora !== undefined ? { lora } : {}) });
}

/** Age of an endpoint's metrics in ms; Infinity when it was never scraped. */
export function metricsAgeMs(metrics: EndpointMetrics, now: number = monotonicMs()): number {
  return metrics.updateTime === 0 ? Infinity : Math.max(0, now - metrics.updateTime);
}

/**
 * Whether an endpoint's metrics are recent enough to route on (upstream's saturation detector uses 200 ms). A pod
 * whose scrapes keep failing stops passing once its last success is older than the threshold, and passes again on
 * its next good scrape; a pod never scraped does not pass.
 */
export function metricsFresh(metrics: EndpointMetrics, stalenessMs: number, now: number = monotonicMs()): boolean {
  return metricsAgeMs(metrics, now) <= stalenessMs;
}

function freezeEndpoint(ep: Endpoint): Endpoint {
  if (typeof ep.address !== 'string' || ep.address === '') throw new Error('endpoint address is empty');
  if (!isPort(ep.port)) throw new Error(`endpoint ${ep.address} has invalid port ${ep.port}`);
  const key = endpointKey(ep.address, ep.port);
  if (ep.key !== key) throw new Error(`endpoint key "${ep.key}" does not match its address and port (expected "${key}")`);
  if (ep.metricsPort !== undefined && !isPort(ep.metricsPort)) throw new Error(`endpoint ${key} has invalid metrics port ${ep.metricsPort}`);
  if (ep.rank !== undefined && !(Number.isInteger(ep.rank) && ep.rank >= 0)) throw new Error(`endpoint ${key} has invalid rank ${ep.rank}`);
  if (Object.isFrozen(ep) && Object.isFrozen(ep.labels)) return ep;
  return Object.freeze({
    key,
    name: ep.name,
    namespace: ep.namespace,
    address: ep.address,
    port: ep.port,
    labels: Object.freeze({ ...ep.labels }),
    ...(ep.podName !== undefined ? { podName: ep.podName } : {}),
    ...(ep.rank !== undefined ? { rank: ep.rank } : {}),
    ...(ep.metricsPort !== undefined ? { metricsPort: ep.metricsPort } : {}),
  });
}

function isPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= 65535;
}

function defaultListenerError(err: unknown, event: string): void {
  process.emitWarning(`datastore ${event} listener threw: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
}
