/**
 * `npm run demo -- --replicas N [--faults]`: kvroute through N EPP replicas beside the single-replica run of the same
 * invocation (issue 10). The replicas share session bindings through a real redis-server on loopback; the gateway
 * load-balances ext_proc streams over them as Istio's Envoy does over the EPP Service (LEAST_REQUEST), with the
 * outlier detection a DestinationRule on the EPP Service would configure (`HA_OUTLIER_DETECTION`). With `--faults`
 * one replica is SIGKILLed mid-load and restarted, and the goals are checked:
 * - zero failed requests (a stream that dies with its replica fails open: failure_mode_allow, BUFFERED bodies);
 * - 100% session stickiness (no pod is killed here, so every session's pod stays healthy);
 * - a hit rate within 2 points of the single-replica run;
 * - picks on the restarted replica within 5 s of its restart (its own `kvroute_epp_picks_total`, polled).
 * The stack plays Kubernetes too: a dead replica leaves the gateway's EPP cluster, and a restarted one joins it, an EDS
 * delay (1 s) after its process exits or listens (`stack.ts`); outlier detection covers the second before.
 * Both runs also sample every pod's `vllm:num_requests_waiting`, so the in-flight question of the issue (each replica
 * counts only its own picks) is answered with numbers: load imbalance (max/mean requests per pod), queue p90, TTFT p90.
 */
import * as path from 'path';
import { parsePrometheusText } from '@kvroute/protocol/prometheus';
import { analyze, quantile, type PolicyResult } from './analysis';
import { bestHitRate } from './oracle';
import type { TargetCheck } from './report';
import { runWorkload, type FaultHook } from './run';
import { httpGet, prefixCacheCounters, startStack, type RoutingPolicy, type SimulatorSettings, type Stack } from './stack';
import { buildWorkload, type WorkloadOptions } from './workload';

/**
 * The EPP cluster's outlier detection, as a DestinationRule `trafficPolicy.outlierDetection` on the EPP Service would
 * set it (`consecutiveGatewayErrors: 1, interval: 500ms, baseEjectionTime: 6s, maxEjectionPercent: 50`): the first
 * stream failing with 502/503/504 (a dead replica's connect failure or reset) ejects it for 10 s, never more than half
 * the replicas at once; a second failure to wait for would be a new stream failing open on the dead replica (with
 * LEAST_REQUEST the dead replica, with no open streams, even attracts them). Envoy's defaults would not do: max_ejection_percent 10 never ejects one of 2 replicas.
 * The ejection outlasts a replica's restart (2-5 s here, the precise config's tokenizer load included): an ejection
 * that ends while the replica is still down costs fail-opens (new streams fail on it) and a second ejection twice as
 * long (Envoy's backoff), as a first run with 3 s showed.
 * With `consecutiveGatewayErrors: 2` a run lost a session turn to a stream that failed open on the dead replica before
 * the second failure ejected it.
 */
// The values the manifests' EPP DestinationRule sets (lib/ext-proc.ts `eppOutlierDetection` defaults), consecutive5xx
// included: its `consecutive5xxErrors: 0` turns Envoy's consecutive_5xx (default 5) off (test/stack.test.ts checks).
export const HA_OUTLIER_DETECTION = 'consecutive5xx=0,consecutiveGatewayFailure=1,intervalMs=1000,baseEjectionTimeMs=10000,maxEjectionPercent=50';

/**
 * The session store's per-call timeout in the demo: the EPP's default. (It was 50 ms while the store's deadline was
 * ioredis's commandTimeout, whose timer fired before a reply that had already arrived was read whenever the EPP's
 * event loop was busy for longer: ~10% of reads timed out at 5 ms here. The store now reads such replies first.)
 */
export const DEMO_SESSION_STORE_TIMEOUT = '5ms';

/** A killed pod's container restarts in about this long before the EPP process starts again. */
const RESTART_DELAY_MS = 1000;

export interface ReplicaRunOptions {
  readonly pods: number;
  readonly concurrency: number;
  readonly workload: WorkloadOptions;
  readonly sim: SimulatorSettings;
  readonly outDir: string;
  /**
   * Precise prefix scoring from the pods' KV events (per-pod subscriptions with several replicas, so every replica
   * indexes every pod) instead of kvroute's default approximate scorer, whose index each replica learns from its own
   * picks only.
   */
  readonly precise?: boolean;
  /** `sessionStore.timeout` for the replicas. @default DEMO_SESSION_STORE_TIMEOUT */
  readonly sessionStoreTimeout?: string;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Load as the pods saw it: requests per pod over their mean, and the waiting queue sampled while the run went on. */
export interface LoadSpread {
  /** max/mean of requests served per pod. */
  readonly imbalance: number;
  /** p90 of every pod's `vllm:num_requests_waiting` samples, pooled. */
  readonly queueP90: number | null;
  /** The largest per-pod p90 of the same samples. */
  readonly worstPodQueueP90: number | null;
  readonly samples: number;
}

export interface ReplicaRun {
  readonly result: PolicyResult;
  readonly load: LoadSpread;
  /** The replicas' session counters at the end (a restarted replica's since its restart). */
  readonly sessions: Record<string, number>;
  /** Fault timeline (ms since the run's start) and what it measured; absent without faults. */
  readonly fault?: {
    readonly killedAtMs: number;
    readonly restartedAtMs: number;
    /** From the restart (the process listening) to its first pick seen in its metrics; null if none within the run. */
    readonly firstPickAfterRestartMs: number | null;
    /** Chat turns in flight when the replica was killed (started before, ended after), and how many left their session's pod. */
    readonly inFlightAtKill: number;
    readonly inFlightOffHome: number;
    /** Session stickiness over the turns not in flight at the kill. */
    readonly stickinessNotInFlight: number;
    /** The gateway's EPP-cluster counters at the end. */
    readonly gateway: { readonly failOpens: number; readonly failClosed: number; readonly lossyFailOpens: number; readonly cluster: unknown };
  };
}

/** Every sample of the counters `names`, summed over the replicas by name and labels (`name{k="v",...}`). */
async function eppCounters(stack: Stack, names: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of stack.eppPorts) {
    let text: string;
    try {
      text = await httpGet(`http://127.0.0.1:${p.metrics}/metrics`, 2000);
    } catch {
      continue;
    }
    for (const family of parsePrometheusText(text).families.values()) {
      for (const s of family.samples) {
        if (!names.includes(s.name)) continue;
        const key = `${s.name}{${Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
        out[key] = (out[key] ?? 0) + s.value;
      }
    }
  }
  return out;
}

function sumSamples(text: string, name: string): number {
  let total = 0;
  for (const family of parsePrometheusText(text).families.values()) {
    for (const s of family.samples) if (s.name === name) total += s.value;
  }
  return total;
}

/** Polls every pod's waiting queue until stopped (a failed scrape is skipped). */
export function queueSampler(stack: Stack, everyMs = 200): { stop(): Promise<Map<string, number[]>> } {
  const samples = new Map<string, number[]>(stack.podAddresses.map((a) => [a, []]));
  let running = true;
  const loop = (async () => {
    while (running) {
      await Promise.all(stack.podAddresses.map(async (address) => {
        try {
          samples.get(address)!.push(sumSamples(await httpGet(`http://${address}/metrics`, 2000), 'vllm:num_requests_waiting'));
        } catch {
          // a pod busy past the scrape timeout leaves a gap, not a zero
        }
      }));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

function loadSpread(result: PolicyResult, pods: number, samples: Map<string, number[]>): LoadSpread {
  const counts = Object.values(result.perEndpoint);
  const mean = result.succeeded / pods;
  const all = [...samples.values()].flat();
  const perPod = [...samples.values()].map((v) => quantile(v, 0.9)).filter((v): v is number => v !== null);
  return {
    imbalance: mean > 0 ? Math.max(0, ...counts) / mean : 0,
    queueP90: quantile(all, 0.9),
    worstPodQueueP90: perPod.length > 0 ? Math.max(...perPod) : null,
    samples: all.length,
  };
}

/**
 * Runs kvroute's default config through `replicas` EPP replicas (1 = the ordinary single-EPP stack, in-memory
 * sessions) on fresh pods. With `faults`, replica 1 is SIGKILLed at 40% of the requests and restarted a second later.
 */
export async function runReplicas(replicas: number, faults: boolean, o: ReplicaRunOptions): Promise<ReplicaRun> {
  const name = `kvroute${o.precise ? '-precise' : ''} × ${replicas} EPP${replicas > 1 ? 's' : ''}${faults ? ' + replica killed' : ''}`;
  const scorer = o.precise ? 'precise' : 'approx';
  const policy: RoutingPolicy = { kind: 'epp', name: `kvroute-${scorer}-${replicas}epp${faults ? '-faults' : ''}`, precise: o.precise === true };
  const stack = await startStack({
    pods: o.pods, sim: o.sim, policy, logDir: path.join(o.outDir, 'logs'), eppReplicas: replicas,
    ...(replicas > 1 ? { sessionStoreTimeout: o.sessionStoreTimeout ?? DEMO_SESSION_STORE_TIMEOUT } : {}),
    gatewayArgs: replicas > 1 ? ['--ext-proc-outlier-detection', HA_OUTLIER_DETECTION] : [],
  });
  try {
    const workload = buildWorkload(o.workload);
    let killedAt = 0;
    let restartedAt = 0;
    let firstPickAt: number | null = null;
    let watching: Promise<void> = Promise.resolve();
    const hooks: FaultHook[] = [];
    if (faults) {
      if (replicas < 2) throw new Error('a replica fault needs at least 2 replicas');
      hooks.push({
        atFraction: 0.4,
        name: 'EPP replica 1 killed (SIGKILL)',
        action: async () => {
          killedAt = Date.now();
          await stack.epps[1]!.kill();
          await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
          restartedAt = await stack.restartEppReplica(1);
          const metricsPort = stack.eppPorts[1]!.metrics;
          // Its first pick, from its own counter (a fresh process starts at 0), polled until the end of the run.
          watching = (async () => {
            const deadline = Date.now() + 120_000;
            while (firstPickAt === null && Date.now() < deadline) {
              try {
                if (sumSamples(await httpGet(`http://127.0.0.1:${metricsPort}/metrics`, 2000), 'kvroute_epp_picks_total') > 0) firstPickAt = Date.now();
              } catch {
                // not answering yet
              }
              if (firstPickAt === null) await new Promise((r) => setTimeout(r, 25));
            }
          })();
        },
      });
    }
    const sampler = queueSampler(stack);
    const outcome = await runWorkload(workload, { gatewayUrl: stack.gatewayUrl, model: o.sim.model, concurrency: o.concurrency, hooks, onProgress: o.onProgress });
    const samples = await sampler.stop();
    // The restarted replica may see its first pick only near the end of a short run: wait for the watcher to decide.
    await Promise.race([watching, new Promise((r) => setTimeout(r, 10_000))]);
    const totals = await prefixCacheCounters(stack.podAddresses);
    const best = await bestHitRate(outcome.records, o.sim, o.workload.maxTokens, path.join(o.outDir, 'logs', `${policy.name}-oracle.log`));
    const result = analyze(name, outcome.records, totals, outcome.wallSeconds, best, o.sim.timeScale);
    const sessions = await eppCounters(stack, ['kvroute_epp_session_affinity_total', 'kvroute_epp_session_store_operations_total']);
    const run: ReplicaRun = { result, load: loadSpread(result, o.pods, samples), sessions };
    if (!faults) return run;
    const stats = JSON.parse(await httpGet(`${stack.gatewayUrl}/gateway/stats`)) as
      { failOpens: number; failClosed: number; lossyFailOpens: number; extProc: { cluster: unknown } };
    const killedAtMs = killedAt - outcome.startedAtMs;
    const home = new Map<string, string | undefined>();
    for (const r of [...outcome.records].sort((a, b) => (a.turn ?? 0) - (b.turn ?? 0))) {
      if (r.kind === 'chat' && r.turn === 0) home.set(r.sessionId!, r.result.servedBy);
    }
    const chats = outcome.records.filter((r) => r.kind === 'chat' && r.result.ok);
    const caught = (r: (typeof chats)[number]) => r.startedMs <= killedAtMs && r.endedMs >= killedAtMs;
    const rest = chats.filter((r) => !caught(r));
    return {
      ...run,
      fault: {
        inFlightAtKill: chats.filter(caught).length,
        inFlightOffHome: chats.filter((r) => caught(r) && r.result.servedBy !== home.get(r.sessionId!)).length,
        stickinessNotInFlight: rest.length === 0 ? 1 : rest.filter((r) => r.result.servedBy === home.get(r.sessionId!)).length / rest.length,
        killedAtMs,
        restartedAtMs: restartedAt - outcome.startedAtMs,
        firstPickAfterRestartMs: firstPickAt === null ? null : firstPickAt - restartedAt,
        gateway: { failOpens: stats.failOpens, failClosed: stats.failClosed, lossyFailOpens: stats.lossyFailOpens, cluster: stats.extProc.cluster },
      },
    };
  } finally {
    await stack.stop();
  }
}

function storeTimeouts(run: ReplicaRun): number {
  return run.sessions['kvroute_epp_session_store_operations_total{operation="read",outcome="timeout"}'] ?? 0;
}

/** The issue's goals for the replica fault run, against the single-replica run of the same invocation. */
export function replicaTargets(single: PolicyResult, ha: ReplicaRun, replicas: number): TargetCheck[] {
  const r = ha.result;
  const what = `${replicas} EPP replicas${ha.fault ? ', one killed' : ''}`;
  const targets: TargetCheck[] = [
    { name: `${what}: failed requests`, target: '0', actual: `${r.requests - r.succeeded} of ${r.requests}`, met: r.succeeded === r.requests },
    ha.fault
      ? {
        // A turn whose ext_proc stream was on the replica when it died, before its pick, fails open to the fallback
        // policy (failure_mode_allow; Envoy does not retry the stream on another replica): it is not the pod's fault.
        name: `${what}: session stickiness (every session's pod stayed healthy), turns not in flight at the kill`,
        target: '100% of turns on the session\'s pod',
        actual: `${(ha.fault.stickinessNotInFlight * 100).toFixed(1)}% (all turns ${(r.requestStickiness * 100).toFixed(1)}%; `
          + `${ha.fault.inFlightOffHome} of ${ha.fault.inFlightAtKill} turns in flight at the kill failed open elsewhere; `
          + `${storeTimeouts(ha)} session-store reads timed out, each a pick from the replica's local table)`,
        met: ha.fault.stickinessNotInFlight >= 1,
      }
      : {
        name: `${what}: session stickiness`,
        target: '100% of turns on the session\'s pod', actual: `${(r.requestStickiness * 100).toFixed(1)}%`, met: r.requestStickiness >= 1,
      },
    {
      name: `${what}: hit rate vs 1 replica`,
      target: 'within 2 points', actual: `${(r.hitRate * 100).toFixed(1)}% vs ${(single.hitRate * 100).toFixed(1)}%`,
      met: r.hitRate >= single.hitRate - 0.02,
    },
  ];
  if (ha.fault) {
    const t = ha.fault.firstPickAfterRestartMs;
    targets.push({
      name: `${replicas} EPP replicas: picks resume on the restarted replica`, target: '<= 5 s after its restart',
      actual: t === null ? 'no pick before the run ended' : `${(t / 1000).toFixed(2)} s`, met: t !== null && t <= 5000,
    });
  }
  return targets;
}
