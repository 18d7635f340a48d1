/**
 * The EPP benchmarks' processes: the EPP under test (the real `kvroute-epp` binary, `dist/main.js`), the forked helper
 * servers (`metrics-servers.ts`, `floor-server.ts`) and what is read from the EPP's own `/metrics` page.
 */
import { fork, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { parsePrometheusText } from '@kvroute/protocol/prometheus';
import { EPP_NODE_ARGS } from '../src/config/runtime';
import { processState } from './proc-cpu';
import type { ScrapeMode } from '../src/datastore/datastore';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The metrics refresh period every benchmark EPP runs with (GIE's default). */
export const REFRESH_MS = 50;
/** Space-separated words of an environment variable (extra flags for a benchmark's processes); none when unset. */
export function envArgs(name: string): string[] {
  return (process.env[name] ?? '').split(' ').filter(Boolean);
}

/**
 * Node/V8 flags from `name` (space-separated, each `--…`; an empty value means none), or, when it is unset, the flags
 * the EPP is deployed with (`EPP_NODE_ARGS`), so a benchmark measures what runs.
 */
export function envNodeArgs(name: string): readonly string[] {
  if (process.env[name] === undefined) return EPP_NODE_ARGS;
  const args = envArgs(name);
  for (const a of args) if (!a.startsWith('--')) throw new Error(`${name}: each flag must start with --, got ${a}`);
  return args;
}

/** The EPP binary; `KVROUTE_EPP_MAIN` points the benchmarks at another build (e.g. a baseline checkout's). */
export const EPP_MAIN = process.env.KVROUTE_EPP_MAIN ?? path.join(__dirname, '..', 'dist', 'main.js');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface EppProcessOptions {
  /** Node/V8 flags before the script, e.g. `--cpu-prof`. @default EPP_NODE_ARGS (as deployed) */
  readonly nodeArgs?: readonly string[];
  /** After the benchmark's own flags. */
  readonly eppArgs?: readonly string[];
  /** Another build's `dist/main.js` (a baseline). @default EPP_MAIN */
  readonly binary?: string;
}

const TS_NODE = ['--require', 'ts-node/register/transpile-only'];

/** Runs a benchmark script (TypeScript, through ts-node) as a child process; `nodeArgs` go before it (V8 flags). */
export function forkTs(file: string, args: string[] = [], nodeArgs: readonly string[] = []): ChildProcess {
  return fork(path.join(__dirname, file), args, { execArgv: [...nodeArgs, ...TS_NODE], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

export function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Json) => {
      if (m.type !== type) return;
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before sending ${type}`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // A paused (SIGSTOPped) child acts on nothing but SIGCONT and SIGKILL: continue it first so it can shut down.
  if (paused.delete(child)) child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface Epp {
  readonly child: ChildProcess;
  readonly grpcPort: number;
  readonly metricsPort: number;
}

export async function startEppProcess(ports: number[], mode: ScrapeMode, options: EppProcessOptions = {}): Promise<Epp> {
  const binary = options.binary ?? EPP_MAIN;
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run npm run build first`);
  const child = spawn(process.execPath, [
    ...(options.nodeArgs ?? EPP_NODE_ARGS), binary, '--endpoints', ports.map((p) => `127.0.0.1:${p}`).join(','), '--host', '127.0.0.1',
    '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
    '--refresh-metrics-interval', `${REFRESH_MS}ms`, '--metrics-scrape-mode', mode,
    ...(options.eppArgs ?? []),
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const listening = await new Promise<Json>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line) as Json);
    });
    child.once('exit', (code) => reject(new Error(`kvroute-epp exited with ${code} before listening`)));
  });
  const epp = { child, grpcPort: listening.grpcPort as number, metricsPort: listening.metricsPort as number };
  // Ready when every pod has been scraped about twice.
  const deadline = Date.now() + 60_000;
  while ((await eppMetrics(epp)).scrapes < 2 * ports.length) {
    if (Date.now() > deadline) throw new Error('the EPP did not scrape its pods within 60 s');
    await sleep(200);
  }
  return epp;
}

export interface EppReading {
  readonly scrapes: number;
  readonly scrapeFailures: number;
  /** Cumulative scheduling-duration buckets: upper bound (s) → count. */
  readonly buckets: [number, number][];
  readonly rss: number;
  readonly heapUsed: number;
  /** Routing-loop utilization since the previous read of the page. */
  readonly elu: number;
  readonly refreshIntervalMs: number;
  /** Endpoints the saturation filter dropped from a cycle because their metrics were stale, so far. */
  readonly staleExclusions: number;
  /** Endpoints it dropped after too many failed scrapes in a row, so far. */
  readonly scrapeFailureExclusions: number;
}

export async function eppMetrics(epp: Epp): Promise<EppReading> {
  const text = await (await fetch(`http://127.0.0.1:${epp.metricsPort}/metrics`)).text();
  const families = parsePrometheusText(text, { strict: false }).families;
  const samples = (name: string) => families.get(name)?.samples ?? [];
  const one = (name: string) => samples(name)[0]?.value ?? NaN;
  const scrapes = samples('kvroute_epp_model_server_scrapes_total');
  const buckets = samples('inference_extension_scheduler_e2e_duration_seconds')
    .filter((s) => s.name.endsWith('_bucket'))
    .map((s): [number, number] => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value])
    .sort((a, b) => a[0] - b[0]);
  const exclusions = samples('kvroute_epp_saturation_exclusions_total');
  return {
    scrapes: scrapes.find((s) => s.labels.outcome === 'success')?.value ?? 0,
    scrapeFailures: scrapes.find((s) => s.labels.outcome === 'failure')?.value ?? 0,
    buckets,
    rss: one('process_resident_memory_bytes'),
    heapUsed: one('nodejs_heap_size_used_bytes'),
    elu: one('kvroute_epp_event_loop_utilization'),
    refreshIntervalMs: one('kvroute_epp_metrics_refresh_interval_seconds') * 1000,
    staleExclusions: exclusions.find((s) => s.labels.reason === 'stale_metrics')?.value ?? 0,
    scrapeFailureExclusions: exclusions.find((s) => s.labels.reason === 'scrape_failures')?.value ?? 0,
  };
}

// ---- pausing an EPP that is not being driven ----------------------------------------------------------------------

/** Children stopped with SIGSTOP and not yet continued; killed if this process exits first (a stopped orphan lingers). */
const paused = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of paused) child.kill('SIGKILL');
});

/**
 * Stops the EPP process, every thread of it (routing, scrape worker, V8's helpers): while the benchmark drives another
 * EPP this one must not scrape, or its scraping loads the other's slices (a real 8-pod EPP does not share its machine
 * with a 256-pod one). Its metrics age meanwhile; `resumeEpp` waits until they are fresh again.
 */
export async function pauseEpp(epp: Epp): Promise<void> {
  if (paused.has(epp.child)) return;
  if (!epp.child.kill('SIGSTOP')) throw new Error(`could not SIGSTOP the EPP (pid ${epp.child.pid})`);
  paused.add(epp.child);
  // A signal is delivered asynchronously: until the kernel shows the process stopped it may still run (and would run
  // into the next slice, or be charged CPU after the caller read it). Where there is no /proc, trust the signal.
  const pid = epp.child.pid!;
  const deadline = Date.now() + 10_000;
  for (let state = processState(pid); state !== undefined && state !== 'T' && state !== 't'; state = processState(pid)) {
    if (Date.now() > deadline) throw new Error(`the EPP (pid ${pid}) was sent SIGSTOP but is still in state ${state} after 10 s`);
    await sleep(1);
  }
}

export function isPaused(epp: Epp): boolean {
  return paused.has(epp.child);
}

/** The least time `resumeEpp` waits after SIGCONT, however fast the scrapes come back. */
export const SETTLE_MIN_MS = 250;
/** Scrapes per pod that must succeed after SIGCONT before the EPP counts as settled. */
export const SETTLE_SCRAPES_PER_POD = 2;

export interface Settle {
  /** Wall time from SIGCONT to settled, ms. */
  readonly ms: number;
  /** Successful scrapes counted meanwhile (after the first read of the page). */
  readonly scrapes: number;
}

/**
 * SIGCONT, then the settle time, not measured, until the EPP routes as one that never stopped. After a pause every
 * pod's metrics are as old as the pause, and the saturation filter (`scheduling/plugins/saturation-filter.ts`) drops a
 * pod whose last successful scrape is older than `metricsStalenessThreshold` (1 s in the default config) or that failed
 * `maxConsecutiveScrapeFailures` (3) scrapes in a row; a scrape in flight when it stopped may time out on resume (one
 * failure at most). So: at least SETTLE_SCRAPES_PER_POD × `pods` successful scrapes after SIGCONT (each pod scraped, at
 * any scrape mode's interval or budget: the scrapers all fire at once on resume), at least two of the EPP's current
 * refresh intervals and SETTLE_MIN_MS. Request control's grace after a stall of its own (RESUME_GRACE_MS in
 * `requestcontrol/request-control.ts`: a request finding no fresh pod waits instead of a 503) then never applies,
 * since every pod is fresh; the benchmark checks it, counting `kvroute_epp_saturation_exclusions_total` over every
 * measured slice (it must stay 0).
 */
export async function resumeEpp(epp: Epp, pods: number, timeoutMs = 60_000): Promise<Settle> {
  const t0 = performance.now();
  if (paused.delete(epp.child) && !epp.child.kill('SIGCONT')) throw new Error(`could not SIGCONT the EPP (pid ${epp.child.pid})`);
  const first = await eppMetrics(epp);
  for (;;) {
    const now = await eppMetrics(epp);
    const scrapes = now.scrapes - first.scrapes;
    const ms = performance.now() - t0;
    const minMs = Math.max(SETTLE_MIN_MS, 2 * (Number.isFinite(now.refreshIntervalMs) ? now.refreshIntervalMs : REFRESH_MS));
    if (scrapes >= SETTLE_SCRAPES_PER_POD * pods && ms >= minMs) return { ms, scrapes };
    if (ms > timeoutMs) throw new Error(`the EPP (pid ${epp.child.pid}, ${pods} pods) scraped ${scrapes} pages in ${Math.round(ms)} ms after SIGCONT, fewer than the ${SETTLE_SCRAPES_PER_POD * pods} it needs to settle`);
    await sleep(25);
  }
}

/** Quantile of the observations between two readings of a cumulative histogram, linear within a bucket. */
