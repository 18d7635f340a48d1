/**
 * The latency-scorer's model learning from a real simulated vLLM: a simulator process's HTTP server, its Prometheus
 * page scraped over HTTP and read by the EPP's own parser, requests of varied lengths, some sharing a prefix. The
 * simulator's cost is configured (0.5 ms per uncached token, 20 ms overhead) and reports TTFT in model seconds, so what
 * the model learns does not depend on this machine's speed.
 */
import { startSimulator, type Simulator } from '@kvroute/sim';
import { applyReading, EMPTY_METRICS, PodLatencyModel, parseVllmMetrics, type EndpointMetrics } from '@kvroute/epp/latency';

const MS_PER_TOKEN = 0.5;
const OVERHEAD_MS = 20;

describe('latency model × simulated vLLM (TTFT histogram and prefix-cache counters over HTTP)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ host: '127.0.0.1', port: 0, model: 'm', timeScale: 20, prefillMsPerToken: MS_PER_TOKEN, ttftOverheadMs: OVERHEAD_MS });
  });
  afterAll(async () => {
    await sim.close({ graceMs: 1000 });
  });

  test('learns the configured cost per uncached token from scrape deltas, and cached prefixes cost nothing', async () => {
    const model = new PodLatencyModel({ priorSecondsPerToken: 0.0002, priorOverheadSeconds: 0.02, priorWeight: 8, halfLifeMs: 600_000, pendingTimeoutMs: 30_000 });
    let metrics: EndpointMetrics = EMPTY_METRICS;
    let scrapes = 0;
    const scrape = async () => {
      const page = await (await fetch(`${sim.url}/metrics`)).text();
      // A distinct update time per scrape, as the EPP's scraper stamps them.
      metrics = applyReading(metrics, parseVllmMetrics(page, { modelName: 'm' }), 1_000 + ++scrapes);
      model.ingest(metrics, metrics.updateTime);
    };
    const words = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');
    const shared = words(300, 'shared');
    await scrape();
    for (let i = 0; i < 24; i++) {
      // Every third request repeats a long shared prefix: its hits must not count as work.
      const prompt = i % 3 === 0 ? `${shared} ${words(20, `q${i}x`)}` : words(40 + ((i * 37) % 400), `p${i}x`);
      const response = await fetch(`${sim.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', prompt, max_tokens: 2 }),
      });
      expect(response.status).toBe(200);
      await response.text();
      await scrape();
    }
    expect(metrics.firstTokenCount).toBe(24);
    expect(metrics.prefixCacheHitTokens).toBeGreaterThan(0);
    const stats = model.stats(metrics.updateTime);
    expect(stats.observations).toBe(24);
    expect(Math.abs(stats.estimate.slope * 1000 - MS_PER_TOKEN) / MS_PER_TOKEN).toBeLessThan(0.1);
    const predicted = model.predict(1000, metrics, metrics.updateTime).ttftSeconds;
    const actual = (OVERHEAD_MS + 1000 * MS_PER_TOKEN) / 1000;
    expect(Math.abs(predicted - actual) / actual).toBeLessThan(0.1);
  });
});
