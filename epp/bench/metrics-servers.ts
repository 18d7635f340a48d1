/**
 * The benchmark's model servers, as far as the EPP's scrapers see them: `count` real HTTP servers on loopback in this
 * one process, each serving a vLLM 0.10 `/metrics` page (the testkit's rendering of prometheus_client's output: the
 * Python process and HTTP-instrumentator families, then vLLM's gauges, counters and histograms; about 21 KB, like the
 * simulator's 22 KB page). Each pod's page has its own queue and KV values and changes every second, as a live pod's
 * would. Run as a child process (fork): it sends `{ ports }` once listening and answers `stats` with requests served.
 * A second argument changes each page every that many milliseconds instead, rendered when scraped
 * (`bench:cpu-budget --page-change-ms`: busy pods, whose queue and counters move between most scrapes); the benchmark
 * itself keeps the 1 s.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderVllmMetrics } from '@kvroute/testkit';

const count = Number(process.argv[2] ?? 256);
if (!Number.isInteger(count) || count < 1) throw new Error(`metrics-servers: endpoint count must be a positive integer, got ${process.argv[2]}`);
const busy = process.argv[3] !== undefined;
const changeMs = Number(process.argv[3] ?? 1000);
if (!Number.isInteger(changeMs) || changeMs < 1) throw new Error(`metrics-servers: page change period must be a positive integer of milliseconds, got ${process.argv[3]}`);

let served = 0;
const pages: Buffer[] = []; // encoded once per change, not per request
const renderedTick: number[] = [];
function render(i: number, tick: number): Buffer {
  const x = (i * 7 + tick * 3) % 17;
  return Buffer.from(renderVllmMetrics({
    modelName: 'Qwen/Qwen3-0.6B',
    blockSize: 16,
    engines: [{ waiting: x % 4, running: 4 + (x % 12), kvUsage: (x % 10) / 12.5, numGpuBlocks: 8192 }],
  }));
}

async function main(): Promise<void> {
  const servers: http.Server[] = [];
  for (let i = 0; i < count; i++) {
    pages.push(render(i, 0));
    const server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      served++;
      if (busy) {
        // Busy pods: rendered when asked for and the period has turned, so a short period costs renders only of the
        // pages scraped (rendering all 256 every 50 ms would take this process a core).
        const tick = Math.floor(performance.now() / changeMs);
        if (renderedTick[i] !== tick) {
          renderedTick[i] = tick;
          pages[i] = render(i, tick);
        }
      }
      const page = pages[i]!;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': page.length }).end(page);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    servers.push(server);
  }
  let tick = 0;
  if (!busy) {
    setInterval(() => {
      tick++;
      for (let i = 0; i < count; i++) pages[i] = render(i, tick);
    }, 1000).unref();
  }
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats') process.send?.({ type: 'stats', served });
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ports', ports: servers.map((s) => (s.address() as AddressInfo).port), pageBytes: pages[0]?.length ?? 0 });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
