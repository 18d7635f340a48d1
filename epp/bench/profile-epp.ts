/**
 * `npm run bench:profile -w epp -- [--endpoints 256] [--prompt 16384] [--seconds 10] [--mode worker] [--top 25]`:
 * where the EPP's routing thread spends its CPU per request. Starts the metrics servers and the real EPP binary under
 * `node --cpu-prof` (as `epp-bench.ts` does, same flags), drives it with the benchmark's client at 16 in flight for
 * `--seconds` (after a warm-up), stops it (the profile is written at exit) and prints, from the routing thread's
 * samples taken under load (start-up excluded), the top functions by self time and the CPU per request split by where
 * the code lives (grpc-js, protobufjs, prom-client, the EPP's own folders, GC). Needs `npm run build`;
 * `KVROUTE_EPP_MAIN=<other checkout>/epp/dist/main.js` profiles another build (a baseline) with the same client; the EPP
 * runs with the Node flags it is deployed with (`EPP_NODE_ARGS`) unless BENCH_NODE_ARGS replaces them.
 * Profiling slows what it measures, and a shared machine more so: read shares and before/after pairs, not absolutes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { driveConcurrent, ExtProcClient, workload } from './extproc-client';
import { envNodeArgs, eppMetrics, forkTs, nextMessage, startEppProcess, stopChild } from './processes';
import type { ScrapeMode } from '../src/datastore/datastore';

interface CpuProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly CpuProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

/** Where a frame's code lives, coarsely: the library or the EPP folder. */
export function area(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const lib = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (lib) return lib[1]!;
  const own = /epp\/dist\/([^/]+)(?:\/([^/.]+))?/.exec(url);
  if (own) return own[2] ? `epp/${own[1]}/${own[2]}` : `epp/${own[1]}`;
  const pkg = /\/(protocol|tokenizer)\/dist\//.exec(url);
  if (pkg) return `@kvroute/${pkg[1]}`;
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  return url;
}

/**
 * Self time (ms) per function and per area, and the profile's non-idle total, counting only samples taken within
 * `window` (µs on the monotonic clock V8's profiler and `process.hrtime` share on Linux) when given.
 */
export function summarize(profile: CpuProfile, window?: { startUs: number; endUs: number }): { totalMs: number; windowMs: number; byFunction: Map<string, number>; byArea: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.startUs || at > window.endUs)) continue;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const windowMs = window ? (window.endUs - window.startUs) / 1000 : (profile.endTime - profile.startTime) / 1000;
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let totalMs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    const ms = us / 1000;
    totalMs += ms;
    const key = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*node_modules\//, '').replace(/^.*\/(epp|protocol|tokenizer)\/dist\//, '$1/')}:${lineNumber + 1}` : ''}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + ms);
  }
  return { totalMs, windowMs, byFunction, byArea };
}

async function main(): Promise<void> {
  const n = Number(flag('endpoints', '256'));
  const bytes = Number(flag('prompt', String(16 * 1024)));
  const seconds = Number(flag('seconds', '10'));
  const mode = flag('mode', 'worker') as ScrapeMode;
  const top = Number(flag('top', '25'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-epp-prof-'));
  const metricsServers = forkTs('metrics-servers.ts', [String(n)]);
  let requests = 0;
  let rejected = 0;
  let window: { startUs: number; endUs: number } | undefined;
  let scrapesInWindow = 0;
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  try {
    const { ports } = await nextMessage<{ ports: number[] }>(metricsServers, 'ports');
    const epp = await startEppProcess(ports, mode, { nodeArgs: [...envNodeArgs('BENCH_NODE_ARGS'), '--cpu-prof', '--cpu-prof-dir', dir] });
    const client = new ExtProcClient(epp.grpcPort);
    const bodies = workload(bytes, 256);
    try {
      // Warm-up outside the window: connections, JIT, the prefix index.
      for (let i = 0; i < 200; i++) await client.exchange(bodies[i % bodies.length]!).catch(() => undefined);
      const scrapes0 = (await eppMetrics(epp)).scrapes;
      const startUs = nowUs();
      const answered: number[] = [];
      await driveConcurrent(client, bodies, seconds * 1000, 16, answered, () => { rejected++; });
      requests = answered.length;
      window = { startUs, endUs: nowUs() };
      scrapesInWindow = (await eppMetrics(epp)).scrapes - scrapes0;
    } finally {
      client.close();
      await stopChild(epp.child);
    }
  } finally {
    metricsServers.disconnect();
    await stopChild(metricsServers);
  }
  // The routing thread's profile is the one with thread id 0 (worker threads write their own).
  const file = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).find((f) => /\.0\.\d+\.cpuprofile$/.test(f));
  if (file === undefined) throw new Error(`no main-thread profile in ${dir}: ${fs.readdirSync(dir).join(', ')}`);
  const profile = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
  let summary = summarize(profile, window);
  if (summary.totalMs === 0) {
    console.warn('no samples within the load window (clocks differ here?): counting the whole profile, start-up included');
    summary = summarize(profile);
  }
  const { totalMs, windowMs: wallMs, byFunction, byArea } = summary;
  console.log(`${n} endpoints, ${(bytes / 1024).toFixed(0)} KB prompts, ${mode} mode, 16 in flight for ${seconds} s: ${requests} requests (${rejected} rejected), ${(requests / seconds).toFixed(0)} req/s`);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`routing thread: ${totalMs.toFixed(0)} ms busy of the ${wallMs.toFixed(0)} ms under load; ${(totalMs / Math.max(1, requests) * 1000).toFixed(0)} µs busy per request\n`);
  const rows = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
  console.log('| self time by area | ms | share | µs / request |\n|---|---:|---:|---:|');
  for (const [a, ms] of rows(byArea, 20)) console.log(`| ${a} | ${ms.toFixed(0)} | ${(100 * ms / totalMs).toFixed(1)}% | ${(ms / Math.max(1, requests) * 1000).toFixed(1)} |`);
  console.log(`\n| top ${top} functions by self time | ms | share |\n|---|---:|---:|`);
  for (const [f, ms] of rows(byFunction, top)) console.log(`| \`${f}\` | ${ms.toFixed(0)} | ${(100 * ms / totalMs).toFixed(1)}% |`);
  console.log(`\nprofile: ${path.join(dir, file)}`);
  // The scrape worker threads' profiles (thread ids 1, 2, ...): their CPU per scrape in the same window.
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.cpuprofile') && x !== file)) {
    const w = summarize(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CpuProfile, window);
    if (w.totalMs === 0) continue;
    console.log(`\nthread ${f}: ${w.totalMs.toFixed(0)} ms busy of ${w.windowMs.toFixed(0)} ms; ${scrapesInWindow} scrapes (all workers): ${(w.totalMs / Math.max(1, scrapesInWindow) * 1000).toFixed(0)} µs per scrape`);
    console.log('| self time by area | ms | share |\n|---|---:|---:|');
    for (const [a, ms] of rows(w.byArea, 12)) console.log(`| ${a} | ${ms.toFixed(0)} | ${(100 * ms / w.totalMs).toFixed(1)}% |`);
    console.log(`| top ${top} functions | ms | share |\n|---|---:|---:|`);
    for (const [fn, ms] of rows(w.byFunction, top)) console.log(`| \`${fn}\` | ${ms.toFixed(0)} | ${(100 * ms / w.totalMs).toFixed(1)}% |`);
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
