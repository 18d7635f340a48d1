import { Client, type Dispatcher } from 'undici';
import { EMPTY_METRICS, endpointMetrics, type EndpointMetrics } from './types';
import { applyReading, hasLoadSignal, VllmPageReader, type VllmMetricNames } from './vllm-metrics';
import { monotonicMs } from '../clock';

export interface MetricsScraperOptions {
  /** Time between scrape starts. A tick that finds the previous scrape still running is skipped. Default 50 ms. */
  readonly intervalMs?: number;
  /** Give up on one scrape after this long. Default 1000 ms (see DEFAULT_SCRAPE_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** `https` only: accept any certificate (self-signed, as a pod's usually is). Default false. */
  readonly insecureSkipVerify?: boolean;
  /** Pages larger than this fail the scrape rather than buffering without bound. Default 8 MiB. */
  readonly maxBodyBytes?: number;
  readonly names?: VllmMetricNames;
  readonly modelName?: string;
  /** Starting values, e.g. an endpoint's last metrics when its scraper is replaced. */
  readonly initial?: EndpointMetrics;
  /** Called after every finished scrape, success or failure, with the new metrics. Never after stop(). */
  readonly onUpdate?: (metrics: EndpointMetrics, status: ScrapeStatus) => void;
}

/** Bookkeeping about the scrapes themselves, for logs and debugging (the routing signals are in EndpointMetrics). */
export interface ScrapeStatus {
  /** Wall-clock ms when the last finished scrape started; 0 before the first. */
  readonly lastAttemptTime: number;
  /** Why the last scrape failed; undefined after a success. */
  readonly lastError?: string;
  /** Lines of wanted families skipped as malformed by the last successful scrape. */
  readonly lastIssues: number;
  readonly scrapes: number;
  readonly failures: number;
  /** Ticks skipped because the previous scrape had not finished. */
  readonly skippedTicks: number;
  /**
   * Milliseconds the last scrape held its thread synchronously after the page arrived (decoding, parsing, applying):
   * what one scrape costs the event loop it runs on, as the adaptive interval budgets it.
   */
  readonly lastCostMs: number;
}

export const DEFAULT_REFRESH_INTERVAL_MS = 50;
/**
 * Upstream waits 5 s. At a 50 ms cadence, metrics older than 200 ms already make the saturation filter drop the pod, so
 * a long timeout buys nothing but a late consecutiveFailures count; 1 s still tolerates a busy Python event loop. A
 * timeout is counted apart from a fast failure (`timedOutFailures`): an EPP starved of CPU times its own scrapes out.
 */
export const DEFAULT_SCRAPE_TIMEOUT_MS = 1000;
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
const REQUEST_HEADERS = { accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1' };

class ScrapeError extends Error {}

/** The scrape timeout's abort reason, which tells a timed-out scrape from a stopped one. */
class ScrapeTimeout extends ScrapeError {}

/**
 * Polls one endpoint's `/metrics`. Failures keep the previous values and lengthen `consecutiveFailures` (and, for a
 * timeout, `timedOutFailures`); `updateTime`
 * only moves on success, so a pod that stops answering ages out of the saturation filter by itself and comes back on
 * its first good scrape.
 */
export class MetricsScraper {
  readonly url: string;
  private intervalMs: number;
  private readonly timeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly origin: string;
  private readonly path: string;
  private readonly connect: { readonly rejectUnauthorized: boolean } | undefined;
  /** The pod's one kept-alive connection; replaced after an abort (a timed-out exchange's socket is not reused). */
  private client: Client | undefined;
  /** Whether `client` has completed an exchange, i.e. the next one may meet a kept-alive socket the pod closed. */
  private clientUsed = false;
  private current: EndpointMetrics;
  private stat: ScrapeStatus = { lastAttemptTime: 0, lastIssues: 0, scrapes: 0, failures: 0, skippedTicks: 0, lastCostMs: 0 };
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<boolean> | undefined;
  private inFlightAbort: AbortController | undefined;
  private stopped = false;
  /** Reuses the last reading when the page's wanted lines did not change. */
  private readonly reader: VllmPageReader;

  constructor(url: string, private readonly options: MetricsScraperOptions = {}) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`unsupported metrics URL ${url}`);
    this.url = parsed.toString();
    this.origin = parsed.origin;
    this.path = `${parsed.pathname}${parsed.search}`;
    this.connect = parsed.protocol === 'https:' ? { rejectUnauthorized: !(options.insecureSkipVerify ?? false) } : undefined;
    this.intervalMs = positive(options.intervalMs, DEFAULT_REFRESH_INTERVAL_MS, 'intervalMs');
    this.timeoutMs = positive(options.timeoutMs, DEFAULT_SCRAPE_TIMEOUT_MS, 'timeoutMs');
    this.maxBodyBytes = positive(options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES, 'maxBodyBytes');
    this.current = options.initial ?? EMPTY_METRICS;
    this.reader = new VllmPageReader({ names: options.names, modelName: options.modelName });
  }

  /** Pages read so far, and how many of them had the previous page's wanted lines (their parse was skipped). */
  get pageReads(): { readonly pages: number; readonly reused: number } {
    return { pages: this.reader.pages, reused: this.reader.reused };
  }

  get metrics(): EndpointMetrics {
    return this.current;
  }

  get status(): ScrapeStatus {
    return this.stat;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Scrapes now, then every interval until stop(). */
  start(): void {
    if (this.stopped) throw new Error('scraper was stopped');
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.tick();
  }

  get interval(): number {
    return this.intervalMs;
  }

  /**
   * Changes the time between scrape starts (the adaptive interval does this). A running scraper keeps its phase: the
   * next scrape starts one new interval after the change, never at once, so a pool of retuned scrapers stays spread.
   */
  setIntervalMs(ms: number): void {
    const next = positive(ms, this.intervalMs, 'intervalMs');
    if (next === this.intervalMs) return;
    this.intervalMs = next;
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(), this.intervalMs);
    }
  }

  /** Clears the timer and aborts a scrape in progress; resolves once nothing of this scraper is pending. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.inFlightAbort?.abort();
    await this.inFlight?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.destroy().catch(() => undefined);
  }

  /**
   * One scrape, unless one is already running (then that one's promise). Resolves to whether it succeeded; never
   * rejects.
   */
  scrapeOnce(): Promise<boolean> {
    if (this.inFlight) return this.inFlight;
    const p = this.scrape().finally(() => {
      this.inFlight = undefined;
      this.inFlightAbort = undefined;
    });
    this.inFlight = p;
    return p;
  }

  private tick(): void {
    if (this.inFlight) {
      this.stat = { ...this.stat, skippedTicks: this.stat.skippedTicks + 1 };
      return;
    }
    void this.scrapeOnce();
  }

  private async scrape(): Promise<boolean> {
    const started = monotonicMs();
    const abort = new AbortController();
    this.inFlightAbort = abort;
    let ok = false;
    let error: string | undefined;
    let issues = 0;
    let next = this.current;
    let cost = 0;
    try {
      const { body, sentAt } = await this.fetchWithRetry(abort);
      const t0 = performance.now();
      const reading = this.reader.readBytes(body);
      if (!hasLoadSignal(reading)) {
        throw new ScrapeError(
          reading.issues.length > 0
            ? `no readable model-server metrics (${reading.issues.length} malformed lines, first: line ${reading.issues[0]?.line} ${reading.issues[0]?.message})`
            : 'no model-server metrics in the page',
        );
      }
      issues = reading.issues.length;
      // A malformed line of a family read here refuses the page, as upstream's parse error does (llm-d-router v0.10.0
      // source/metrics/datasource.go parseMetrics returns expfmt's error, source/http/datasource.go Poll/Dispatch then
      // runs no extractor): applying the rest kept the malformed family's old value beside a fresh updateTime.
      const first = reading.issues[0];
      if (first !== undefined) throw new ScrapeError(`malformed metrics page (${issues} malformed lines, first: line ${first.line} ${first.message})`);
      next = applyReading(this.current, reading, monotonicMs(), sentAt);
      cost = performance.now() - t0;
      ok = true;
    } catch (err) {
      error = describe(err, abort, this.timeoutMs);
      const timedOut = abort.signal.reason instanceof ScrapeTimeout;
      next = endpointMetrics({
        ...this.current,
        consecutiveFailures: this.current.consecutiveFailures + 1,
        timedOutFailures: (this.current.timedOutFailures ?? 0) + (timedOut ? 1 : 0),
      });
    }
    if (this.stopped) return ok;
    this.current = next;
    this.stat = {
      lastAttemptTime: started,
      lastError: error,
      lastIssues: issues,
      scrapes: this.stat.scrapes + 1,
      failures: this.stat.failures + (ok ? 0 : 1),
      skippedTicks: this.stat.skippedTicks,
      lastCostMs: cost,
    };
    this.options.onUpdate?.(this.current, this.stat);
    return ok;
  }

  /** The page, and when the request that brought it went out (a retry on a fresh connection sends it again). */
  private async fetchWithRetry(abort: AbortController): Promise<{ body: Buffer; sentAt: number }> {
    const timer = setTimeout(() => abort.abort(new ScrapeTimeout(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    const send = async () => {
      const sentAt = monotonicMs();
      return { body: await this.fetchOnce(abort.signal), sentAt };
    };
    try {
      const reused = this.clientUsed;
      try {
        return await send();
      } catch (err) {
        // A kept-alive socket the pod closed between scrapes fails the exchange; that is not the pod's fault.
        if (!(reused && isSocketError(err) && !abort.signal.aborted)) throw err;
        return await send();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One GET of the page over the pod's kept-alive connection, through undici's dispatcher interface: no stream, no
   * IncomingMessage, the body's chunks handed straight to the handler. Measured against node:http's keep-alive Agent
   * (`npm run bench:scrape-cost -w epp`), it costs the scraping thread well under half the CPU per page; see
   * epp/README.md, "Where the CPU goes", fourth round.
   */
  private fetchOnce(signal: AbortSignal): Promise<Buffer> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const client = (this.client ??= new Client(this.origin, { pipelining: 1, ...(this.connect ? { connect: this.connect } : {}) }));
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      let status = 0;
      let size = 0;
      const chunks: Buffer[] = [];
      const settle = (err: unknown, body?: Buffer): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve(body as Buffer);
        else reject(err);
      };
      // An abort (timeout or stop) drops the connection, as node:http's did: a hung pod's socket is not reused. The
      // exchange may not have reached the socket yet (still connecting), so the client goes, not just the request.
      const onAbort = (): void => {
        if (this.client === client) {
          this.client = undefined;
          this.clientUsed = false;
        }
        client.destroy(signal.reason instanceof Error ? signal.reason : new ScrapeError('aborted')).catch(() => undefined);
        settle(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const handler: Dispatcher.DispatchHandler = {
        // undici takes a handler for its current interface only when it defines this one (else it is read as the old one).
        onRequestStart: () => undefined,
        onResponseStart: (_controller, statusCode) => {
          status = statusCode;
        },
        onResponseData: (controller, chunk) => {
          if (status !== 200) return; // drained, so the connection stays usable
          size += chunk.length;
          if (size > this.maxBodyBytes) {
            controller.abort(new ScrapeError(`page larger than ${this.maxBodyBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        },
        onResponseEnd: () => {
          if (this.client === client) this.clientUsed = true;
          if (status !== 200) settle(new ScrapeError(`HTTP ${status} from ${this.url}`));
          else settle(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
        },
        onResponseError: (_controller, err) => {
          if (this.client === client) this.clientUsed = false;
          settle(err);
        },
      };
      client.dispatch({ path: this.path, method: 'GET', headers: REQUEST_HEADERS }, handler);
    });
  }
}

/** A connection-level failure (reset, closed by the peer), as opposed to an HTTP answer or a timeout. */
function isSocketError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

function describe(err: unknown, abort: AbortController, timeoutMs: number): string {
  if (abort.signal.aborted) {
    const reason: unknown = abort.signal.reason;
    if (reason instanceof ScrapeError) return reason.message;
    return `aborted (timeout ${timeoutMs} ms or stop)`;
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return v;
}

/** Builds the metrics URL for an endpoint, bracketing IPv6 hosts. */
export function metricsUrl(address: string, port: number, options: { scheme?: 'http' | 'https'; path?: string } = {}): string {
  const host = address.includes(':') ? `[${address}]` : address;
  const path = options.path ?? '/metrics';
  return `${options.scheme ?? 'http'}://${host}:${port}${path.startsWith('/') ? path : `/${path}`}`;
}
