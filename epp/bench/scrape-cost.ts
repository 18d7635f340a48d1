/**
 * `npm run bench:scrape-cost -w epp -- [--pods 64] [--seconds 3] [--rounds 4]`: what one scrape costs the thread that
 * runs it, by HTTP client, against the benchmark's metrics servers (`metrics-servers.ts`, another process, so this
 * process's CPU is the scraper's alone). Each variant fetches every pod's page in turn, one request in flight per pod
 * as the scrapers do, over keep-alive connections, for `--seconds` per slice, variants alternating over `--rounds` so a
 * shared machine's load falls on all alike; reported: CPU µs (user + system, `process.cpuUsage`) per page fetched.
 * Then the page readers on one fixed page in a loop (no I/O): CPU µs per page; and on changed pages (16 of the
 * benchmark's pages with differing queue, KV and counter values, read in turn, so no read reuses the previous one),
 * beside the same reader of the build `KVROUTE_EPP_BASELINE` names (`<checkout>/epp/dist/main.js`), when set.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { renderVllmMetrics } from '@kvroute/testkit';
import * as os from 'node:os';
import { Client, type Dispatcher } from 'undici';
import { forkTs, nextMessage, stopChild } from './processes';
import { VllmPageReader } from '../src/datastore/vllm-metrics';

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

type Fetch = (i: number) => Promise<Buffer>;

function nodeHttp(ports: number[]): { fetch: Fetch; close: () => void } {
  const agent = new http.Agent({ keepAlive: true });
  const urls = ports.map((p) => `http://127.0.0.1:${p}/metrics`);
  return {
    fetch: (i) =>
      new Promise<Buffer>((resolve, reject) => {
        const req = http.get(urls[i]!, { agent, headers: { accept: 'text/plain' } }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            chunks.push(c);
          });
          res.on('end', () => resolve(Buffer.concat(chunks, size)));
          res.on('error', reject);
        });
        req.on('error', reject);
      }),
    close: () => agent.destroy(),
  };
}

function undiciRequest(ports: number[]): { fetch: Fetch; close: () => void } {
  const clients = ports.map((p) => new Client(`http://127.0.0.1:${p}`, { pipelining: 1 }));
  return {
    fetch: async (i) => {
      const { body } = await clients[i]!.request({ path: '/metrics', method: 'GET', headers: { accept: 'text/plain' } });
      return Buffer.from(await body.arrayBuffer());
    },
    close: () => void Promise.all(clients.map((c) => c.close())),
  };
}

function undiciDispatch(ports: number[]): { fetch: Fetch; close: () => void } {
  const clients = ports.map((p) => new Client(`http://127.0.0.1:${p}`, { pipelining: 1 }));
  const opts: Dispatcher.DispatchOptions = { path: '/metrics', method: 'GET', headers: { accept: 'text/plain' } };
  return {
    fetch: (i) =>
      new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        clients[i]!.dispatch(opts, {
          onRequestStart() {},
          onResponseStart() {},
          onResponseData(_c, chunk: Buffer) {
            size += chunk.length;
            chunks.push(chunk);
          },
          onResponseEnd() {
            resolve(Buffer.concat(chunks, size));
          },
          onResponseError(_c, err: Error) {
            reject(err);
          },
        } as Dispatcher.DispatchHandler);
      }),
    close: () => void Promise.all(clients.map((c) => c.close())),
  };
}

async function slice(f: Fetch, pods: number, ms: number): Promise<{ pages: number; cpuUs: number }> {
  let pages = 0;
  const c0 = process.cpuUsage();
  const deadline = performance.now() + ms;
  await Promise.all(Array.from({ length: pods }, async (_, i) => {
    while (performance.now() < deadline) {
      await f(i);
      pages++;
    }
  }));
  const c = process.cpuUsage(c0);
  return { pages, cpuUs: c.user + c.system };
}

async function main(): Promise<void> {
  const pods = Number(flag('pods', '64'));
  const seconds = Number(flag('seconds', '3'));
  const rounds = Number(flag('rounds', '4'));
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const servers = forkTs('metrics-servers.ts', [String(pods)]);
  try {
    const { ports } = await nextMessage<{ ports: number[] }>(servers, 'ports');
    const variants = { 'node:http Agent': nodeHttp(ports), 'undici Client.request': undiciRequest(ports), 'undici Client.dispatch': undiciDispatch(ports) };
    const acc = new Map<string, { pages: number; cpuUs: number }>();
    for (const [, v] of Object.entries(variants)) await slice(v.fetch, pods, 500); // warm-up, connections open
    for (let r = 0; r < rounds; r++) {
      for (const [name, v] of Object.entries(variants)) {
        const s = await slice(v.fetch, pods, (seconds * 1000) / rounds);
        const a = acc.get(name) ?? { pages: 0, cpuUs: 0 };
        acc.set(name, { pages: a.pages + s.pages, cpuUs: a.cpuUs + s.cpuUs });
      }
    }
    console.log(`\n| HTTP client (${pods} pods, keep-alive) | pages | CPU µs per page |\n|---|---:|---:|`);
    for (const [name, a] of acc) console.log(`| ${name} | ${a.pages} | ${(a.cpuUs / a.pages).toFixed(1)} |`);
    const page = await variants['node:http Agent'].fetch(0);
    for (const v of Object.values(variants)) v.close();
    const readers: Record<string, (b: Buffer) => unknown> = {};
    {
      const r = new VllmPageReader();
      readers['decode + read (string)'] = (b) => r.read(b.toString('utf8'));
    }
    {
      const r = new VllmPageReader();
      readers['read bytes (readBytes)'] = (b) => r.readBytes(b);
    }
    console.log(`\n| page reader (${page.length} bytes, unchanged page) | CPU µs per page |\n|---|---:|`);
    for (const [name, read] of Object.entries(readers)) {
      for (let i = 0; i < 2000; i++) read(page);
      const c0 = process.cpuUsage();
      const n = 20000;
      for (let i = 0; i < n; i++) read(page);
      const c = process.cpuUsage(c0);
      console.log(`| ${name} | ${((c.user + c.system) / n).toFixed(2)} |`);
    }
    const changed = Array.from({ length: 16 }, (_, i) =>
      Buffer.from(renderVllmMetrics({ modelName: 'Qwen/Qwen3-0.6B', engines: [{ waiting: i % 5, running: 3 + i, kvUsage: 0.2 + i / 100, numGpuBlocks: 27153 }], blockSize: 16 })),
    );
    type Reader = { readBytes(b: Buffer): unknown; reused: number };
    const changedReaders: Record<string, () => Reader> = { 'readBytes, this build': () => new VllmPageReader() };
    const baseline = process.env.KVROUTE_EPP_BASELINE;
    if (baseline) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(path.join(path.dirname(path.resolve(baseline)), 'datastore', 'vllm-metrics.js')) as { VllmPageReader: new () => Reader };
      changedReaders[`readBytes, baseline (${baseline})`] = () => new mod.VllmPageReader();
    }
    console.log(`\n| page reader (${changed[0]!.length} bytes, every page changed) | CPU µs per page, rounds alternating |\n|---|---:|`);
    const changedAcc = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const [name, make] of Object.entries(changedReaders)) {
        const r = make();
        for (let i = 0; i < 2000; i++) r.readBytes(changed[i % 16]!);
        const c0 = process.cpuUsage();
        const n = 20000;
        for (let i = 0; i < n; i++) r.readBytes(changed[i % 16]!);
        const c = process.cpuUsage(c0);
        if (r.reused !== 0) throw new Error(`${name}: a changed page reused a reading`);
        changedAcc.set(name, [...(changedAcc.get(name) ?? []), (c.user + c.system) / n]);
      }
    }
    for (const [name, us] of changedAcc) console.log(`| ${name} | ${us.map((u) => u.toFixed(2)).join(' / ')} |`);
  } finally {
    servers.disconnect();
    await stopChild(servers);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
