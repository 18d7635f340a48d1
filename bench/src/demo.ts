/**
 * `npm run demo`: the validator loop. Starts simulated vLLM pods, the EPP and the gateway as separate processes on
 * loopback, drives a multi-turn chat + RAG workload through kvroute and through the gateway-only baselines (round
 * robin, session hash) with fresh pods for each, and prints the seed's promises next to the baselines:
 * prefix-cache hit rate >= 85%, 100% session stickiness, about 4x lower TTFT for cached requests.
 * Exits non-zero when kvroute misses a target. `--faults` adds a run that kills a pod and stops/restarts the EPP, and a
 * run that stalls the EPP (SIGSTOP for `EPP_STALL_MS`, then SIGCONT) under load, with requests arriving meanwhile that
 * the gateway holds for it (`STALL_MESSAGE_TIMEOUT_MS`).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { analyze, type PolicyResult } from './analysis';
import { decimal, directory, integer, listOf, oneOf, parseFlags, SWITCH, type ValueParser } from './cli-args';
import { ChatClient } from './client';
import { DEMO_SESSION_STORE_TIMEOUT, HA_OUTLIER_DETECTION, queueSampler, replicaTargets, runReplicas, type ReplicaRun } from './demo-ha';
import { bestHitRate } from './oracle';
import { writeFileAtomic, writeJsonAtomic } from './out-files';
import { BENCH_DIR } from './processes';
import { htmlReport, terminalTable, type TargetCheck } from './report';
import { runWorkload, type FaultHook, type RequestRecord } from './run';
import { DEFAULT_SIM, httpGet, MIN_KV_CACHE_BLOCKS, prefixCacheCounters, startStack, type RoutingPolicy, type SimulatorSettings } from './stack';
import { MAX_KV_CACHE_BLOCKS } from '@kvroute/sim';
import { buildWorkload, DEFAULT_WORKLOAD, type WorkloadOptions } from './workload';

export interface DemoOptions {
  readonly pods: number;
  readonly concurrency: number;
  readonly workload: WorkloadOptions;
  readonly sim: SimulatorSettings;
  readonly policies: readonly string[];
  readonly faults: boolean;
  /** EPP replicas for the replica runs (`demo-ha.ts`); 1 = none. */
  readonly replicas: number;
  /**
   * How the replica runs score prefixes: `precise` (the pods' KV events, every replica subscribed to every pod, so all
   * agree) or `approximate` (kvroute's default: each replica's index learns from its own picks only, so they diverge).
   */
  readonly replicaScorer: 'precise' | 'approximate';
  readonly outDir: string;
  readonly targets: { readonly hitRate: number; readonly stickiness: number; readonly cachedSpeedup: number };
  readonly quiet: boolean;
}


export const POLICIES: Readonly<Record<string, RoutingPolicy>> = {
  kvroute: { kind: 'epp', name: 'kvroute' },
  'round-robin': { kind: 'round-robin', name: 'round-robin' },
  'session-hash': { kind: 'session-hash', name: 'session-hash', header: 'x-session-id' },
};

function progressBar(label: string, quiet: boolean): (done: number, total: number) => void {
  const tty = process.stderr.isTTY;
  let lastDecile = -1;
  return (done, total) => {
    if (quiet) return;
    const frac = total > 0 ? done / total : 1;
    if (tty) {
      const width = 30;
      const filled = Math.round(frac * width);
      process.stderr.write(`\r${label.padEnd(22)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${done === total ? '\n' : ''}`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        process.stderr.write(`${label}: ${done}/${total}\n`);
      }
    }
  };
}

/** The gateway's own counters (`/gateway/stats`) that show where picks came from and what EPP failures cost. */
interface GatewayCounters {
  readonly picksHonoured: number;
  readonly failOpens: number;
  /** Requests answered 500/504 or reset because the EPP failed (Envoy >= 1.36 with full-duplex bodies, or no fail-open). */
  readonly failClosed: number;
  /** Fail-opens that went on without body bytes the EPP held (full-duplex bodies). */
  readonly lossyFailOpens: number;
}

interface PolicyRun {
  readonly result: PolicyResult;
  readonly records: RequestRecord[];
  readonly events: Record<string, number>;
  /** Gateway counters when each fault hook had run, and at the end. */
  readonly gateway: Record<string, GatewayCounters>;
  /** The EPP's own counters at the end of a stall run (picks, refusals by code, flow-control waits by outcome). */
  readonly eppCounters: Record<string, number>;
  /** The stall run's backlog: requests sent while the EPP was stopped, and the pods' waiting queues while it was served. */
  readonly stall?: StallBacklog;
}

interface StallBacklog {
  /** Requests sent while the EPP was stopped (`STALL_ARRIVALS`), beside the closed loop's. */
  readonly arrivals: number;
  /** Every pod's deepest sampled `vllm:num_requests_waiting` from the resume until the backlog was served, by address. */
  readonly peakWaiting: Record<string, number>;
  readonly samples: number;
}

/** How long the stall run keeps the EPP stopped (SIGSTOP, then SIGCONT). */
export const EPP_STALL_MS = 15_000;

/**
 * The gateway's ext_proc `message_timeout` in the stall run: 1000 s, as Istio's native InferencePool filter sets it
 * (`pilot/pkg/xds/filters/filters.go` BuildInferencePoolExtProcFilter @ 1.27) and GIE's and llm-d's reference Envoy
 * configs do. Envoy then holds each request until the EPP answers, so what arrives during the stall is a backlog the
 * EPP itself releases on resuming. With the EnvoyFilter's 1 s (the other runs) every such request fails open to round
 * robin after a second, and the EPP resumes to find only streams the gateway abandoned: nothing to pace, and a pacer
 * that dumped its backlog would pass as well.
 */
export const STALL_MESSAGE_TIMEOUT_MS = 1_000_000;

/**
 * Requests that arrive while the EPP is stopped, open loop and evenly spread over the stall, beside the closed loop's
 * conversations (which wait too): more questions over the workload's documents, three times what the pods run at once
 * (4 × --max-num-seqs 16 by default).
 */
export const STALL_ARRIVALS = 192;

/**
 * How often the stall run samples every pod's `vllm:num_requests_waiting` while the backlog is served. The peaks are
 * reported, not checked: on a 2-core machine they followed the machine's load and the prefix scorer's pile-up on
 * the documents' pods more than the EPP's pacing (bench/README.md, the stall run).
 */
const STALL_QUEUE_SAMPLE_MS = 20;

/** `kill`: a pod dies, the EPP is stopped and restarted. `stall`: the EPP is frozen (SIGSTOP) and resumes (SIGCONT). */
type FaultRun = 'kill' | 'stall';

async function runPolicy(policy: RoutingPolicy, options: DemoOptions, faults: FaultRun | false): Promise<PolicyRun> {
  const workload = buildWorkload(options.workload);
  const stack = await startStack({
    pods: options.pods, sim: options.sim, policy, logDir: path.join(options.outDir, 'logs'),
    ...(faults === 'stall' ? { messageTimeoutMs: STALL_MESSAGE_TIMEOUT_MS } : {}),
  });
  try {
    // Counters of a pod that is killed mid-run die with it: keep the last reading of every pod.
    const lastCounters = new Map<string, { hits: number; queries: number }>();
    const readCounters = async () => {
      for (const address of stack.podAddresses) {
        const c = await prefixCacheCounters([address]);
        if (c.queries > 0 || !lastCounters.has(address)) lastCounters.set(address, c);
      }
    };
    const gateway: Record<string, GatewayCounters> = {};
    let killedAtEpochMs: number | undefined;
    let killExitedAtEpochMs: number | undefined;
    let stallEndedAtEpochMs: number | undefined;
    const eppCounters: Record<string, number> = {};
    const gatewayCounters = async (label: string) => {
      const stats = JSON.parse(await httpGet(`${stack.gatewayUrl}/gateway/stats`)) as GatewayCounters;
      gateway[label] = { picksHonoured: stats.picksHonoured, failOpens: stats.failOpens, failClosed: stats.failClosed, lossyFailOpens: stats.lossyFailOpens };
    };
    const hooks: FaultHook[] = [];
    // The stall's own arrivals, with times since the epoch (the run's start is known only at its end).
    const stallRecords: RequestRecord[] = [];
    let stall: StallBacklog | undefined;
    if (faults === 'stall') {
      // More questions over the same documents: the workload built with more RAG requests draws the same documents
      // and the same first requests (the generator draws the documents first), so the extra ones are its tail.
      const extra = buildWorkload({ ...options.workload, ragRequests: options.workload.ragRequests + STALL_ARRIVALS }).rag.slice(options.workload.ragRequests);
      // Early in the run, so that traffic goes on for a while after the EPP resumes with the backlog the gateway held
      // for it while it was frozen (message timeout 1000 s: nothing fails open).
      hooks.push({
        atFraction: 0.15,
        name: 'EPP stalled',
        action: async () => {
          stack.epp?.pause();
          const stalledAt = Date.now();
          await gatewayCounters('EPP stalled');
          const client = new ChatClient(stack.gatewayUrl, options.sim.model);
          const sent = extra.map(async (plan, i) => {
            const wait = stalledAt + (i * EPP_STALL_MS) / extra.length - Date.now();
            if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
            const startedMs = Date.now();
            const result = await client.chat(plan.messages, options.workload.maxTokens, { ...(plan.headers ?? {}) });
            stallRecords.push({ kind: 'rag', document: plan.document, messages: plan.messages, headers: { ...(plan.headers ?? {}) }, startedMs, endedMs: Date.now(), result });
          });
          await new Promise((resolve) => setTimeout(resolve, stalledAt + EPP_STALL_MS - Date.now()));
          await gatewayCounters('before EPP resumed');
          const sampler = queueSampler(stack, STALL_QUEUE_SAMPLE_MS);
          stallEndedAtEpochMs = Date.now();
          stack.epp?.resume();
          await Promise.all(sent);
          client.close();
          const samples = await sampler.stop();
          stall = {
            arrivals: extra.length,
            peakWaiting: Object.fromEntries([...samples].map(([address, v]) => [address, v.length > 0 ? Math.max(...v) : 0])),
            samples: [...samples.values()].reduce((n, v) => n + v.length, 0),
          };
        },
      });
    }
    if (faults === 'kill') {
      hooks.push({
        atFraction: 0.3,
        name: 'pod decode-1 killed',
        action: async () => {
          await readCounters();
          killedAtEpochMs = Date.now();
          await stack.pods[1].kill();
          // SIGKILL is not instant: until the process is gone its listening socket still completes handshakes, and a
          // request that connects in that window is in flight on the dying pod.
          killExitedAtEpochMs = Date.now();
        },
      });
      hooks.push({ atFraction: 0.5, name: 'EPP stopped', action: async () => { await stack.epp?.kill(); await gatewayCounters('EPP stopped'); } });
      hooks.push({ atFraction: 0.7, name: 'EPP restarted', action: async () => { await gatewayCounters('before EPP restart'); await stack.restartEpp(); } });
    }
    const name = faults === 'stall' ? `${policy.name} + EPP stall` : faults ? `${policy.name} + faults` : policy.name;
    const run = await runWorkload(workload, {
      gatewayUrl: stack.gatewayUrl,
      model: options.sim.model,
      concurrency: options.concurrency,
      hooks,
      onProgress: progressBar(name, options.quiet),
    });
    const outcome = stallRecords.length === 0 ? run : {
      ...run,
      records: [...run.records, ...stallRecords.map((r) => ({ ...r, startedMs: r.startedMs - run.startedAtMs, endedMs: r.endedMs - run.startedAtMs }))],
    };
    await readCounters();
    await gatewayCounters('end');
    if (faults === 'stall' && stack.epp) {
      // What the EPP did with the streams it found on resuming: picks it made (honoured by the gateway or not) and
      // the requests it refused, by code.
      const text = await httpGet(`http://127.0.0.1:${stack.epp.info.metricsPort as number}/metrics`);
      for (const line of text.split('\n')) {
        const m = /^(kvroute_epp_picks_total|inference_objective_request_error_total|kvroute_epp_scheduling_failures_total|kvroute_epp_flow_control_\w+_total|kvroute_epp_flow_control_wait_seconds_count)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!m) continue;
        const label = /(?:error_code|reason|outcome)="([^"]*)"/.exec(m[2] ?? '')?.[1];
        const key = label ? `${m[1]}{${label}}` : m[1]!;
        eppCounters[key] = (eppCounters[key] ?? 0) + Number(m[3]);
      }
    }
    const totals = [...lastCounters.values()].reduce((a, c) => ({ hits: a.hits + c.hits, queries: a.queries + c.queries }), { hits: 0, queries: 0 });
    const best = await bestHitRate(outcome.records, options.sim, options.workload.maxTokens, path.join(options.outDir, 'logs', `${policy.name}-oracle.log`));
    const result = analyze(name, outcome.records, totals, outcome.wallSeconds, best, options.sim.timeScale);
    const events: Record<string, number> = { ...outcome.hookTimes };
    // The hook fires when enough requests are done; the kill itself comes after a last scrape of the counters.
    if (killedAtEpochMs !== undefined) events['pod decode-1 killed'] = killedAtEpochMs - outcome.startedAtMs;
    if (killExitedAtEpochMs !== undefined) events['pod decode-1 exited'] = killExitedAtEpochMs - outcome.startedAtMs;
    if (stallEndedAtEpochMs !== undefined) events['EPP resumed'] = stallEndedAtEpochMs - outcome.startedAtMs;
    return { result, records: outcome.records, events, gateway, eppCounters, ...(stall ? { stall } : {}) };
  } finally {
    await stack.stop();
  }
}

/**
 * Requests that failed although they were not in flight when a pod was killed: in flight means started before the
 * pod's process was gone (`exitedAtMs`; the signal's time when unknown) and not ended before the signal was sent.
 */
export function unexpectedFailures(records: readonly RequestRecord[], killedAtMs: number | undefined, exitedAtMs = killedAtMs): RequestRecord[] {
  return records.filter((r) => !r.result.ok && !(killedAtMs !== undefined && r.startedMs <= (exitedAtMs ?? killedAtMs) && r.endedMs >= killedAtMs));
}

export async function runDemo(options: DemoOptions): Promise<{ results: PolicyResult[]; targets: TargetCheck[]; passed: boolean }> {
  fs.mkdirSync(options.outDir, { recursive: true });
  const runs: PolicyRun[] = [];
  for (const name of options.policies) {
    const policy = POLICIES[name];
    if (!policy) throw new Error(`unknown policy "${name}"; known: ${Object.keys(POLICIES).join(', ')}`);
    runs.push(await runPolicy(policy, options, false));
  }
  let faultRun: PolicyRun | undefined;
  let stallRun: PolicyRun | undefined;
  // With replicas, --faults kills a replica in the replica run (below) instead of the single-EPP fault runs.
  if (options.faults && options.replicas === 1) {
    faultRun = await runPolicy(POLICIES.kvroute, options, 'kill');
    stallRun = await runPolicy(POLICIES.kvroute, options, 'stall');
  }
  const replicaRuns: ReplicaRun[] = [];
  if (options.replicas > 1) {
    const base = { pods: options.pods, concurrency: options.concurrency, workload: options.workload, sim: options.sim, outDir: options.outDir, precise: options.replicaScorer === 'precise' };
    // The single replica, the replicas undisturbed (what diverging indexes and per-replica in-flight counts cost), and
    // with --faults the replicas with one killed and restarted.
    const plan: [number, boolean][] = [[1, false], [options.replicas, false], ...(options.faults ? [[options.replicas, true] as [number, boolean]] : [])];
    for (const [n, faulty] of plan) {
      replicaRuns.push(await runReplicas(n, faulty, { ...base, onProgress: progressBar(`kvroute × ${n} EPP${faulty ? ' + kill' : ''}`, options.quiet) }));
    }
  }

  const results = [...runs, ...(faultRun ? [faultRun] : []), ...(stallRun ? [stallRun] : [])].map((r) => r.result).concat(replicaRuns.map((r) => r.result));
  const kv = runs.find((r) => r.result.policy === 'kvroute')?.result;
  const best = kv?.bestHitRate ?? null;
  const targets: TargetCheck[] = [];
  if (kv) {
    targets.push({ name: 'kvroute prefix-cache hit rate', target: `>= ${options.targets.hitRate * 100}%`, actual: `${(kv.hitRate * 100).toFixed(1)}%`, met: kv.hitRate >= options.targets.hitRate });
    targets.push({ name: 'kvroute session stickiness', target: `${options.targets.stickiness * 100}% of turns on the session's pod`, actual: `${(kv.requestStickiness * 100).toFixed(1)}%`, met: kv.requestStickiness >= options.targets.stickiness });
    targets.push({ name: 'cached vs uncached TTFT (kvroute)', target: `>= ${options.targets.cachedSpeedup}x lower`, actual: kv.cachedSpeedup ? `${kv.cachedSpeedup.toFixed(1)}x` : 'no cached/uncached pair', met: (kv.cachedSpeedup ?? 0) >= options.targets.cachedSpeedup });
    targets.push({ name: 'kvroute success rate', target: '100%', actual: `${kv.succeeded}/${kv.requests}`, met: kv.successRate === 1 });
  }
  if (faultRun) {
    const killedAt = faultRun.events['pod decode-1 killed'];
    const bad = unexpectedFailures(faultRun.records, killedAt, faultRun.events['pod decode-1 exited']);
    const lost = faultRun.records.filter((r) => !r.result.ok).length;
    targets.push({ name: 'faults: only requests in flight on the killed pod fail', target: '0 other failures', actual: `${lost} failed, ${bad.length} of them not in flight at the kill`, met: bad.length === 0 });
    const g = faultRun.gateway;
    const failOpens = (g['before EPP restart']?.failOpens ?? 0) - (g['EPP stopped']?.failOpens ?? 0);
    targets.push({ name: 'faults: with the EPP down the gateway fails open', target: 'fail-opens while it is down', actual: `${failOpens} requests routed by the fallback`, met: failOpens > 0 });
    const resumed = (g.end?.picksHonoured ?? 0) - (g['before EPP restart']?.picksHonoured ?? 0);
    targets.push({ name: 'faults: routing resumes when the EPP is back', target: 'EPP picks after the restart', actual: `${resumed} picks honoured`, met: resumed > 0 });
    // BUFFERED request bodies and response bodies NONE: Envoy fails open with the whole request on every release, and a
    // response streaming when the EPP dies goes on untouched; nothing is answered 500 or cut short.
    const failClosed = g.end?.failClosed ?? 0;
    const lossy = g.end?.lossyFailOpens ?? 0;
    targets.push({ name: 'faults: the EPP\'s failures cost no request (buffered bodies fail open intact)', target: '0 failed closed, 0 lossy fail-opens', actual: `${failClosed} failed closed, ${lossy} lossy fail-opens`, met: failClosed === 0 && lossy === 0 });
  }
  if (stallRun) {
    // Issue 9: a backlog released after a stall is paced, never dumped: no request is refused for the burst.
    const stalledAt = stallRun.events['EPP stalled'] ?? 0;
    const refused = stallRun.records.filter((r) => r.result.status === 429 && r.endedMs >= stalledAt);
    const after = stallRun.records.filter((r) => r.startedMs >= (stallRun.events['EPP resumed'] ?? Infinity)).length;
    targets.push({ name: 'faults: after an EPP stall (SIGSTOP 15 s, SIGCONT) no request is refused', target: '0 answered 429', actual: `${refused.length} answered 429 (${after} requests sent after it resumed)`, met: refused.length === 0 && after > 0 });
    // The backlog is real: the gateway held the requests that arrived during the stall for the EPP (nothing failed
    // open), and the EPP's picks routed them once it resumed.
    const g = stallRun.gateway;
    const backlog = stallRun.stall?.arrivals ?? 0;
    const failOpens = g.end?.failOpens ?? 0;
    const picksAfter = (g.end?.picksHonoured ?? 0) - (g['before EPP resumed']?.picksHonoured ?? 0);
    const released = stallRun.eppCounters['kvroute_epp_flow_control_wait_seconds_count{dispatched}'] ?? 0;
    targets.push({
      name: 'faults: the stall\'s backlog waits for the EPP and is routed by its picks',
      target: `0 fail-opens, >= ${backlog} picks honoured after the resume`,
      actual: `${failOpens} fail-opens, ${picksAfter} picks honoured after the resume (${backlog} requests arrived during the stall; ${released} released from the EPP's flow-control queue)`,
      met: backlog > 0 && failOpens === 0 && picksAfter >= backlog,
    });
    const failed = stallRun.records.filter((r) => !r.result.ok);
    const byStatus = Object.entries(failed.reduce<Record<string, number>>((a, r) => ({ ...a, [r.result.status]: (a[r.result.status] ?? 0) + 1 }), {}))
      .map(([status, n]) => `${n} × ${status}`).join(', ');
    targets.push({ name: 'faults: the EPP stall costs no request', target: '0 failed', actual: `${failed.length} failed${byStatus ? ` (${byStatus})` : ''}`, met: failed.length === 0 });
  }
  if (replicaRuns.length > 1) targets.push(...replicaTargets(replicaRuns[0]!.result, replicaRuns[replicaRuns.length - 1]!, options.replicas));
  const passed = targets.every((t) => t.met);

  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}`;
  const w = options.workload;
  const subtitle = `${options.pods} simulated vLLM pods (Qwen3 tokenizer, ${options.sim.kvCacheBlocks} KV blocks of ${options.sim.blockSize} tokens each, `
    + `time scale ${options.sim.timeScale}×); ${w.sessions} chat sessions × ${w.turnsPerSession} turns over ${w.systemPrompts} system prompts, `
    + `${w.ragRequests} RAG requests over ${w.documents} documents; concurrency ${options.concurrency}. Machine: ${machine}.`;
  const notes = [
    'Hit rate: vLLM\'s own counters (vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total, in tokens) scraped from the pods. '
      + 'Best: the same requests replayed in order against one pod that never evicts. Stickiness: x-gateway-destination-endpoint-served per turn. '
      + 'TTFT: first streamed token as the client saw it, multiplied by the time scale to read as simulated-GPU time.',
    'The gateway plays the Envoy of the demo profile\'s Istio 1.27.0 (--envoy-semantics 1.35.0) with the EnvoyFilter\'s ext_proc modes '
      + '(request body BUFFERED, response headers SEND, body NONE, trailers SEND, failure_mode_allow, message timeout 1 s '
      + `(${STALL_MESSAGE_TIMEOUT_MS / 1000} s in the EPP stall run, as Istio's native InferencePool filter sets it), 8 MiB buffer) `
      + 'and timeouts (request receive 60 s, idle 300 s).',
    ...(replicaRuns.length > 0 ? [`EPP replica runs (kvroute's ${options.replicaScorer === 'precise' ? 'precise config, KV events subscribed per pod' : 'default config (approximate prefix index per replica)'}; ${options.replicas} replicas share sessions through a redis-server on loopback, store timeout ${DEMO_SESSION_STORE_TIMEOUT}; `
      + `gateway EPP cluster LEAST_REQUEST with outlier detection ${HA_OUTLIER_DETECTION}): `
      + replicaRuns.map((r) => `${r.result.policy}: load imbalance (max/mean requests per pod) ${r.load.imbalance.toFixed(2)}, `
        + `queue p90 ${r.load.queueP90 ?? 'n/a'} (worst pod ${r.load.worstPodQueueP90 ?? 'n/a'}, ${r.load.samples} samples), TTFT p90 ${r.result.ttft.p90 === null ? 'n/a' : (r.result.ttft.p90 * 1000).toFixed(0)} ms; EPP session counters ${JSON.stringify(r.sessions)}`
        + (r.fault ? `; killed at ${r.fault.killedAtMs} ms, restarted at ${r.fault.restartedAtMs} ms, first pick ${r.fault.firstPickAfterRestartMs ?? 'none'} ms after; `
          + `gateway ${JSON.stringify(r.fault.gateway)}` : '')).join('. ')] : []),
    ...(faultRun ? [`Fault run events (ms from start): ${JSON.stringify(faultRun.events)}; gateway counters at those points: ${JSON.stringify(faultRun.gateway)}. `
      + 'Counters of the killed pod are its last reading before the kill.'] : []),
    ...(stallRun ? [`EPP stall run events (ms from start): ${JSON.stringify(stallRun.events)}; gateway counters at those points: ${JSON.stringify(stallRun.gateway)}; `
      + `the EPP's counters at the end: ${JSON.stringify(stallRun.eppCounters)}; gateway message timeout ${STALL_MESSAGE_TIMEOUT_MS / 1000} s; `
      + `backlog: ${JSON.stringify(stallRun.stall ?? null)}.`] : []),
  ];
  const report = { title: 'kvroute validator loop', subtitle, results, bestHitRate: best, targets, notes };
  writeJsonAtomic(path.join(options.outDir, 'results.json'),
    { date: new Date().toISOString(), machine, options, ...report, ...(replicaRuns.length > 0 ? { replicaRuns } : {}), passed });
  writeFileAtomic(path.join(options.outDir, 'report.html'), htmlReport(report));
  if (!options.quiet) {
    process.stdout.write(`\n${terminalTable(results, best)}\n\n`);
    for (const t of targets) process.stdout.write(`${t.met ? 'PASS' : 'MISS'}  ${t.name}: wanted ${t.target}, got ${t.actual}\n`);
    process.stdout.write(`\nwritten ${path.relative(process.cwd(), path.join(options.outDir, 'results.json'))} and report.html\n`);
  }
  return { results, targets, passed };
}

// --------------------------------------------------------------------------------------------------------------------
// CLI

/** The workload's sizes, each an integer flag (`--seed` may be 0). */
const WORKLOAD_FLAGS = {
  sessions: 'sessions', turns: 'turnsPerSession', 'system-prompts': 'systemPrompts', 'system-words': 'systemPromptWords',
  'user-words': 'userWords', 'max-tokens': 'maxTokens', documents: 'documents', 'document-words': 'documentWords',
  rag: 'ragRequests', 'question-words': 'questionWords', seed: 'seed',
} as const satisfies Record<string, keyof WorkloadOptions>;

const DEMO_FLAGS = {
  pods: integer(2),
  concurrency: integer(1),
  policies: listOf(Object.keys(POLICIES)),
  faults: SWITCH,
  replicas: integer(1, 8),
  'replica-scorer': oneOf(['precise', 'approximate'] as const),
  // At most the simulator's own bound (MAX_KV_CACHE_BLOCKS), as `stack` has it: above it every pod
  // refused to start mid-run, after the command had started its processes.
  'kv-cache-blocks': integer(MIN_KV_CACHE_BLOCKS, MAX_KV_CACHE_BLOCKS),
  'time-scale': decimal(0, Infinity, { aboveMin: true }),
  out: directory,
  quiet: SWITCH,
  ...Object.fromEntries(Object.keys(WORKLOAD_FLAGS).map((flag) => [flag, integer(flag === 'seed' ? 0 : 1)])) as Record<keyof typeof WORKLOAD_FLAGS, ValueParser<number>>,
};

export const DEMO_USAGE = `Usage: npm run demo -- [flags]
  --pods N             simulated vLLM pods (default 4)
  --concurrency N      conversations in flight (default 8)
  --policies a,b       of ${Object.keys(POLICIES).join(', ')} (default all)
  --faults             also run kvroute while killing a pod and stopping/restarting the EPP, and while the EPP
                       stalls (with --replicas: kill one EPP replica mid-load and restart it instead)
  --replicas N         also run kvroute through N EPP replicas sharing sessions through a redis-server on
                       loopback, beside a single-replica run (default 1 = no replica runs; needs redis-server)
  --replica-scorer S   precise (default: the replica runs score prefixes from the pods' KV events, every
                       replica subscribed to every pod) or approximate (each replica's own index, which diverge)
  --kv-cache-blocks N  KV-cache blocks per pod (default ${DEFAULT_SIM.kvCacheBlocks}, ${MIN_KV_CACHE_BLOCKS} to ${MAX_KV_CACHE_BLOCKS})
  --time-scale X       simulated time runs X times faster than real time (default ${DEFAULT_SIM.timeScale})
  --out DIR            where results.json, report.html and logs/ go (default bench/out)
  --quiet              no progress or table
  workload: ${Object.keys(WORKLOAD_FLAGS).map((flag) => `--${flag}`).join(' ')} N`;

/** Parses the flags; undefined means `--help`. Throws a UsageError naming the flag on anything invalid. */
export function parseDemoArgs(argv: readonly string[]): DemoOptions | undefined {
  const f = parseFlags(argv, DEMO_FLAGS);
  if (!f) return undefined;
  const workload: Record<string, number> = { ...DEFAULT_WORKLOAD };
  for (const [flag, key] of Object.entries(WORKLOAD_FLAGS)) workload[key] = f[flag as keyof typeof WORKLOAD_FLAGS] ?? workload[key];
  return {
    pods: f.pods ?? 4,
    concurrency: f.concurrency ?? 8,
    policies: f.policies ?? Object.keys(POLICIES),
    faults: f.faults ?? false,
    replicas: f.replicas ?? 1,
    replicaScorer: f['replica-scorer'] ?? 'precise',
    quiet: f.quiet ?? false,
    outDir: f.out ?? path.join(BENCH_DIR, 'out'),
    workload: workload as unknown as WorkloadOptions,
    sim: { ...DEFAULT_SIM, kvCacheBlocks: f['kv-cache-blocks'] ?? DEFAULT_SIM.kvCacheBlocks, timeScale: f['time-scale'] ?? DEFAULT_SIM.timeScale },
    targets: { hitRate: 0.85, stickiness: 1, cachedSpeedup: 3.5 },
  };
}

/** `kvroute-bench demo`: parses the flags, runs, and returns the exit status. */
export async function demoCommand(argv: readonly string[]): Promise<number> {
  const options = parseDemoArgs(argv);
  if (!options) {
    process.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  const { passed } = await runDemo(options);
  return passed ? 0 : 1;
}
