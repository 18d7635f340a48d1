/**
 * The body of one scrape worker thread (see scrape-pool.ts). It runs ordinary MetricsScrapers, the same class the
 * event-loop mode runs, so fetching, the timeout, the stale-socket retry and parsing are one implementation; what
 * leaves the thread is one compact record per finished scrape (the endpoint's new metrics and scrape status, a few
 * numbers), batched, never the page.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { adoptClockAnchor } from '../clock';
import { MetricsScraper } from './scraper';
import type { ScrapeWorkerConfig, ToMain, ToWorker, WorkerReading } from './scrape-protocol';

function run(config: ScrapeWorkerConfig): void {
  const port = parentPort;
  if (!port) throw new Error('scrape-worker must run in a worker thread');
  const scrapers = new Map<number, MetricsScraper>();
  let intervalMs = config.intervalMs;
  let batch: WorkerReading[] = [];
  let flushTimer: NodeJS.Timeout | undefined;
  let stopping = false;

  const post = (msg: ToMain): void => port.postMessage(msg);
  // One message per batch rather than per scrape: at 256 pods every 50 ms that is 5,120 scrapes a second, and each
  // message costs the main thread a task of its own. A batch waits at most batchMs, far below any staleness bound.
  const flush = (): void => {
    flushTimer = undefined;
    if (batch.length === 0) return;
    const out = batch;
    batch = [];
    post({ type: 'readings', readings: out });
  };

  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'add': {
        scrapers.get(msg.id)?.stop().catch(() => undefined);
        const scraper = new MetricsScraper(msg.url, {
          intervalMs,
          timeoutMs: config.timeoutMs,
          maxBodyBytes: config.maxBodyBytes,
          insecureSkipVerify: config.insecureSkipVerify,
          names: config.names,
          modelName: config.modelName,
          initial: msg.initial,
          onUpdate: (metrics, status) => {
            if (stopping || scrapers.get(msg.id) !== scraper) return;
            batch.push({ id: msg.id, metrics, status });
            flushTimer ??= setTimeout(flush, config.batchMs);
          },
        });
        scrapers.set(msg.id, scraper);
        scraper.start();
        return;
      }
      case 'interval': {
        intervalMs = msg.ms;
        for (const scraper of scrapers.values()) scraper.setIntervalMs(msg.ms);
        return;
      }
      case 'remove': {
        const scraper = scrapers.get(msg.id);
        scrapers.delete(msg.id);
        void scraper?.stop();
        return;
      }
      case 'crash':
        // Test hook: an uncaught exception, as a bug in this thread would raise, to prove the pool surfaces it.
        setImmediate(() => {
          throw new Error(msg.message);
        });
        return;
      case 'stop': {
        stopping = true;
        if (flushTimer) clearTimeout(flushTimer);
        flushTimer = undefined;
        void Promise.all([...scrapers.values()].map((s) => s.stop())).then(() => {
          scrapers.clear();
          post({ type: 'stopped' });
          port.close();
        });
        return;
      }
    }
  });
  post({ type: 'ready' });
}

adoptClockAnchor((workerData as ScrapeWorkerConfig).clockAnchorMs);
run(workerData as ScrapeWorkerConfig);
