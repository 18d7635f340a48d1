/**
 * One local copy of the request path: N simulated vLLM pods, optionally the EPP, and the gateway in front, each a
 * separate process listening on 127.0.0.1 only (free ports unless the gateway's is given), wired exactly as the
 * manifests wire them (the gateway plays the Envoy of the demo profile's Istio with our EnvoyFilter's ext_proc
 * settings and timeouts, `GATEWAY_ENVOY_FLAGS`; without the EPP it is Envoy's fallback policy alone).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import {
  defaultEndpointPickerConfig,
  parseEndpointPickerConfig,
  preciseEndpointPickerConfig,
  renderEndpointPickerConfig,
  withMaxNumSeqs,
  type EndpointPickerConfig,
} from '@kvroute/epp/config';
import { parsePrometheusText } from '@kvroute/protocol/prometheus';
import type { RequestDirector } from '@kvroute/epp/extproc';
import { startExtProcServer, type ExtProcServer } from '@kvroute/epp/extproc';
import { EXT_PROC_MEMBERS_PATH } from '@kvroute/gateway';
import { ENTRY, startProcess, type Started } from './processes';
import { startRedisServer, type RedisProcess } from './redis-process';

/**
 * The gateway plays the Envoy the demo cluster profile runs and is configured as the manifests configure it:
 * - Envoy 1.35.0 semantics: the profile's Istio is 1.27.0 (`lib/clusters.ts`), whose proxy pins release/v1.35 before
 *   the revert of #39740;
 * - the ext_proc filter of `lib/ext-proc.ts` (`ExtProcRouting` defaults): request body BUFFERED with trailers SKIP,
 *   response headers SEND, body NONE, trailers SEND, failure_mode_allow, message_timeout 1s, max_message_timeout 30s
 *   (with the EPP's matching `--ext-proc-max-message-timeout`, so a flow-control wait is the EPP's, not a fail-open),
 *   the listener's per_connection_buffer_limit_bytes 8 MiB;
 * - the gateway EnvoyFilter and HTTPRoute of `lib/gateway.ts` (`InferenceGateway` defaults): HCM request_timeout 60s,
 *   HCM stream_idle_timeout 300s, route timeout 0s.
 * `messageTimeoutMs` stays an option of the stack (`--message-timeout-ms` is appended after these).
 */
export const GATEWAY_ENVOY_FLAGS: readonly string[] = [
  '--envoy-semantics', '1.35.0',
  '--processing-mode', 'buffered', '--request-trailer-mode', 'skip',
  '--response-header-mode', 'send', '--response-body-mode', 'none', '--response-trailer-mode', 'send',
  '--request-body-buffer-limit-bytes', String(8 * 1024 * 1024), '--max-message-timeout-ms', '30000',
  '--request-receive-timeout-ms', '60000', '--idle-timeout-ms', '300000', '--request-timeout-ms', '0',
];

/**
 * The EPP config with the pods' `--max-num-seqs` told to its latency scorer, as an operator who configured both would
 * (the cdk8s app passes `DecodePool.maxNumSeqs` the same way): `config` when the stack built one, else the policy's
 * text or the built-in default. Unchanged (`config` as given) for a policy with `podLimitUnknown` and for a config
 * without a latency scorer, whose text then reaches the EPP as written.
 */
export function toldPodLimit(policy: Extract<RoutingPolicy, { kind: 'epp' }>, config: EndpointPickerConfig | undefined, sim: SimulatorSettings): EndpointPickerConfig | undefined {
  if (policy.podLimitUnknown === true) return config;
  const told = config ?? (policy.configText ? parseEndpointPickerConfig(policy.configText) : defaultEndpointPickerConfig());
  return told.plugins.some((p) => p.type === 'latency-scorer') ? withMaxNumSeqs(told, sim.maxNumSeqs) : config;
}

/** Builds a director for the pods of one stack (`127.0.0.1:port` each, in order). */
export type DirectorFactory = (endpoints: readonly string[]) => RequestDirector;

/**
 * How requests are routed: kvroute (the EPP), a gateway-only baseline, or a `RequestDirector` served from this
 * process by the EPP's own ext_proc server (`startExtProcServer`), so it sits on the same protocol path as the EPP.
 */
export type RoutingPolicy =
  | {
    readonly kind: 'epp';
    readonly name: string;
    readonly configText?: string;
    /**
     * Precise prefix scoring from the pods' KV events, wired as the `prod-precise` profile's central mode would be:
     * kvroute's default config with `precise-prefix-cache-scorer` (`preciseEndpointPickerConfig`), the EPP binding a
     * ZMQ port, every pod started with vLLM's `--kv-events-config` connecting to it under the topic
     * `kv@<pod address>@<model>`. Overrides `configText`.
     */
    readonly precise?: boolean;
    /**
     * The precise scorer's `blockSize` as a multiple of the pods' `--block-size`: 4 is llm-d's guides' `blockSize: 64`
     * over vLLM's default 16, the engine blocks gathered four to a configured block (many:1). @default 1
     */
    readonly preciseBlockFactor?: number;
    /** Applied to the config the EPP gets (precise or not) before it is rendered: a candidate's one change. */
    readonly configTransform?: (config: EndpointPickerConfig) => EndpointPickerConfig;
    /**
     * The pods' vLLM `--scheduling-policy`, for a config that needs it (`prefill-priority` sends `priority`, which
     * vLLM's default `fcfs` ignores). The policy then starts its own pods. @default the simulator's, fcfs
     */
    readonly schedulingPolicy?: 'priority';
    /**
     * The pods' vLLM `--long-prefill-token-threshold`, for a candidate measured on pods that cap a request's tokens per
     * step. The policy then starts its own pods. @default the simulator's, 0 (no cap)
     */
    readonly longPrefillTokenThreshold?: number;
    /** More EPP flags (a baseline's own settings). @default none */
    readonly eppArgs?: readonly string[];
    /**
     * Leave the latency scorer's `maxNumSeqs` at its untold default (1024, vLLM's largest) instead of the simulator's
     * `--max-num-seqs`, as a deployment that does not tell the EPP its pods' limit would. @default false (the stack tells
     * it, as the cdk8s app does)
     */
    readonly podLimitUnknown?: boolean;
  }
  | { readonly kind: 'round-robin'; readonly name: string }
  | { readonly kind: 'session-hash'; readonly name: string; readonly header: string }
  | { readonly kind: 'director'; readonly name: string; readonly director: RequestDirector | DirectorFactory };

export interface SimulatorSettings {
  readonly model: string;
  readonly kvCacheBlocks: number;
  readonly blockSize: number;
  readonly maxNumSeqs: number;
  readonly timeScale: number;
  readonly ttftOverheadMs: number;
  readonly prefillMsPerToken: number;
  readonly itlMs: number;
  readonly maxModelLen: number;
  /** vLLM's `--scheduling-policy`. @default 'fcfs' (the flag is not passed) */
  readonly schedulingPolicy?: 'fcfs' | 'priority';
  /** vLLM's `--long-prefill-token-threshold`. @default 0 (the flag is not passed) */
  readonly longPrefillTokenThreshold?: number;
  /** LoRA adapters every pod serves, with vLLM's flags (`--enable-lora --max-loras N --lora-modules name=path …`). @default none */
  readonly lora?: { readonly adapters: readonly string[]; readonly maxLoras: number };
  /**
   * A heterogeneous pool: pod i's simulated times (overhead, prefill per token, time per output token) multiplied by
   * `podSlowdown[i]`, as an older GPU generation or a throttled card would be; pods beyond the list run at 1.
   * @default every pod alike
   */
  readonly podSlowdown?: readonly number[];
}

/** Pod `i`'s settings: `s` with its times scaled by `s.podSlowdown[i]`. */
export function simForPod(s: SimulatorSettings, i: number): SimulatorSettings {
  const slowdown = s.podSlowdown?.[i] ?? 1;
  if (!(slowdown > 0) || !Number.isFinite(slowdown)) throw new RangeError(`podSlowdown[${i}] must be a positive number, got ${slowdown}`);
  if (slowdown === 1) return s;
  return { ...s, ttftOverheadMs: s.ttftOverheadMs * slowdown, prefillMsPerToken: s.prefillMsPerToken * slowdown, itlMs: s.itlMs * slowdown };
}

/**
 * The simulated pods of the demo and the routing benchmark: a small GPU (20 ms overhead, 0.25 ms per uncached prompt
 * token, 20 ms per output token) in real time. A time scale above 1 would multiply the gateway's, the router's and the
 * client's own costs along with the simulated times.
 */
export const DEFAULT_SIM: SimulatorSettings = {
  model: 'Qwen/Qwen3-0.6B',
  // Ample for the default workload's working set (about 6,000 blocks across 4 pods).
  kvCacheBlocks: 4096,
  blockSize: 16,
  maxNumSeqs: 16,
  timeScale: 1,
  ttftOverheadMs: 20,
  prefillMsPerToken: 0.25,
  itlMs: 20,
  maxModelLen: 16384,
};

/** The fewest KV blocks a pod with `DEFAULT_SIM` starts with: like vLLM, the simulator refuses a cache that cannot hold one longest sequence. */
export const MIN_KV_CACHE_BLOCKS = Math.ceil(DEFAULT_SIM.maxModelLen / DEFAULT_SIM.blockSize);

export interface StackOptions {
  readonly pods: number;
  readonly sim: SimulatorSettings;
  readonly policy: RoutingPolicy;
  /** Folder for each process's stderr. */
  readonly logDir: string;
  /** Gateway: how long it waits for each EPP answer before failing open. @default 1000 (the EnvoyFilter's 1s) */
  readonly messageTimeoutMs?: number;
  /** The gateway's port. @default 0, any free port */
  readonly gatewayPort?: number;
  /** Use these running pods instead of starting `pods` new ones; `stop()` leaves them running. */
  readonly existingPods?: readonly Started[];
  /**
   * EPP replicas (an `epp` policy only), each its own process with the same config; the gateway load-balances ext_proc
   * streams over them as Envoy does over the EPP Service's endpoints. With more than one, a precise policy subscribes
   * per pod (every replica dials every pod's publisher, so all build the same index). @default 1
   */
  readonly eppReplicas?: number;
  /**
   * Where session bindings live: each replica's memory, or one real redis-server on loopback started with the stack
   * (the config's `sessionStore`). @default 'redis' with more than one replica, else 'memory'
   */
  readonly sessionStore?: 'memory' | 'redis';
  /** The store's per-call timeout (`sessionStore.timeout`, e.g. `50ms`); default the EPP's. */
  readonly sessionStoreTimeout?: string;
  /** Gateway flags appended after the stack's own (e.g. `--ext-proc-outlier-detection`). */
  readonly gatewayArgs?: readonly string[];
}

export interface Stack {
  readonly gatewayUrl: string;
  readonly pods: Started[];
  /** `127.0.0.1:port` of each pod, in order. */
  readonly podAddresses: string[];
  /** The first EPP replica (`epps[0]`). */
  epp?: Started;
  readonly eppPort?: number;
  /** Every EPP replica, in order; a killed and restarted replica is replaced in place. */
  readonly epps: Started[];
  /** Each replica's gRPC and metrics ports (kept across restarts, as a restarted pod keeps its Service's ports). */
  readonly eppPorts: readonly { readonly grpc: number; readonly metrics: number }[];
  /** The shared session store, when the stack runs one. */
  readonly redis?: RedisProcess;
  /** The in-process ext_proc server of a `director` policy, and its director. */
  readonly extProc?: ExtProcServer;
  readonly director?: RequestDirector;
  readonly gateway: Started;
  /**
   * Restarts a stopped EPP on the ports it had: the gRPC port the gateway calls and the metrics port a Prometheus
   * scrapes, as a restarted pod keeps its Service's ports.
   */
  restartEpp(): Promise<void>;
  /**
   * Restarts replica `i` (killed or stopped before) on its ports; with several replicas it joins the gateway's EPP
   * cluster an EDS delay after it listens. Resolves with the epoch ms it was listening at.
   */
  restartEppReplica(i: number): Promise<number>;
  stop(): Promise<void>;
}

/** Where a pod publishes its KV events (vLLM's `--kv-events-config`), and the port it must listen on to match the topic. */
export interface PodKvEvents {
  readonly port: number;
  /** The pod's own address (per-pod mode on one machine); default 127.0.0.1. */
  readonly host?: string;
  /** vLLM's `replay_endpoint`: the ROUTER socket a (re)started subscriber asks for the batches it missed. */
  readonly replayEndpoint?: string;
  /** The EPP's ZMQ endpoint, e.g. `tcp://127.0.0.1:5557`. */
  readonly endpoint: string;
}

/** The simulator's command-line flags for these settings. */
export function simArgs(s: SimulatorSettings, podName: string, kvEvents?: PodKvEvents): string[] {
  const events = kvEvents === undefined ? [] : [
    // vLLM's own flag, as lib/decode-pool.ts sets it for central mode: publish to the EPP, the topic naming this pod.
    '--kv-events-config', JSON.stringify({
      enable_kv_cache_events: true, publisher: 'zmq', endpoint: kvEvents.endpoint, topic: `kv@${kvEvents.host ?? '127.0.0.1'}:${kvEvents.port}@${s.model}`,
      ...(kvEvents.replayEndpoint !== undefined ? { replay_endpoint: kvEvents.replayEndpoint } : {}),
    }),
  ];
  return [
    // The simulator's CLI binds every interface (it is made for containers); here nothing is meant for the network.
    '--host', kvEvents?.host ?? '127.0.0.1', '--port', String(kvEvents?.port ?? 0), ...events, '--model', s.model, '--served-model-name', s.model, '--pod-name', podName,
    '--block-size', String(s.blockSize), '--kv-cache-blocks', String(s.kvCacheBlocks), '--max-num-seqs', String(s.maxNumSeqs),
    '--max-model-len', String(s.maxModelLen), '--time-scale', String(s.timeScale), '--ttft-overhead-ms', String(s.ttftOverheadMs),
    '--prefill-ms-per-token', String(s.prefillMsPerToken), '--itl-ms', String(s.itlMs),
    ...(s.schedulingPolicy !== undefined ? ['--scheduling-policy', s.schedulingPolicy] : []),
    ...(s.longPrefillTokenThreshold !== undefined ? ['--long-prefill-token-threshold', String(s.longPrefillTokenThreshold)] : []),
    // As lib/decode-pool.ts writes them for a pool with adapters: vLLM's nargs='+' name=path items, last on the line.
    ...(s.lora !== undefined && s.lora.adapters.length > 0
      ? ['--enable-lora', '--max-loras', String(s.lora.maxLoras), '--lora-modules', ...s.lora.adapters.map((a) => `${a}=/adapters/${a}`)]
      : []),
    // Like vLLM 0.10, the simulator leaves usage.prompt_tokens_details out unless this is set
    // (vllm/entrypoints/openai/serving_chat.py @ v0.10.0), and the cached/uncached TTFT split reads cached_tokens from
    // usage (analysis.ts). The manifests pass the same flag to vLLM (lib/decode-pool.ts). Hit rates never depend on it:
    // they come from the pods' vllm:prefix_cache_* counters (prefixCacheCounters below).
    '--enable-prompt-tokens-details',
  ];
}

export async function startStack(options: StackOptions): Promise<Stack> {
  fs.mkdirSync(options.logDir, { recursive: true });
  const log = (name: string) => path.join(options.logDir, `${options.policy.name}-${name}.log`);
  const started: Started[] = [];
  let extProc: ExtProcServer | undefined;
  /** In-process servers, closed after the processes have stopped. */
  const closers: (() => Promise<void>)[] = [];
  const stopEverything = async () => {
    await Promise.all(started.map((p) => p.stop()));
    await Promise.all(closers.map((c) => c()));
  };
  try {
    const policy = options.policy;
    const precise = policy.kind === 'epp' && policy.precise === true;
    const replicas = policy.kind === 'epp' ? options.eppReplicas ?? 1 : 1;
    if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`eppReplicas must be a positive integer, got ${replicas}`);
    if (replicas > 1 && policy.kind !== 'epp') throw new Error('eppReplicas: only an epp policy runs EPP replicas');
    // Several replicas cannot share central mode's one bound socket: each dials every pod's publisher (llm-d's per-pod
    // mode), so every replica gets every pod's events.
    const perPod = precise && replicas > 1;
    if (precise && options.existingPods) throw new Error('a precise policy starts its own pods: they must publish KV events to its EPP');
    const scheduling = options.policy.kind === 'epp' ? options.policy.schedulingPolicy : undefined;
    if (scheduling !== undefined && options.existingPods) throw new Error(`policy ${options.policy.name} starts its own pods: they must run --scheduling-policy ${scheduling}`);
    const threshold = options.policy.kind === 'epp' ? options.policy.longPrefillTokenThreshold : undefined;
    if (threshold !== undefined && options.existingPods) throw new Error(`policy ${options.policy.name} starts its own pods: they must run --long-prefill-token-threshold ${threshold}`);
    const podSim = {
      ...options.sim,
      ...(scheduling !== undefined ? { schedulingPolicy: scheduling } : {}),
      ...(threshold !== undefined ? { longPrefillTokenThreshold: threshold } : {}),
    };
    // Every pod's settings checked before any process starts (a bad factor must not leave pods running).
    for (let i = 0; i < options.pods; i++) simForPod(podSim, i);
    // A pod's topic names its address, so precise pods get their ports before they start.
    const zmqPort = precise ? await reservePort() : undefined;
    // Per pod, every pod also serves replays, so a replica that (re)starts while the pods run warms its index from them.
    const replayPort = perPod ? await reservePort() : undefined;
    const podPorts = precise ? await reservePorts(options.pods) : undefined;
    const pods = options.existingPods ? [...options.existingPods] : await Promise.all(Array.from({ length: options.pods }, (_, i) => {
      if (perPod) {
        const ip = perPodAddress(i);
        return startProcess(`sim-${i}`, ENTRY.sim, simArgs(simForPod(podSim, i), `decode-${i}`, { port: podPorts![i]!, endpoint: perPodEndpoint(ip, zmqPort!), host: ip, replayEndpoint: perPodEndpoint(ip, replayPort!) }),
          { logFile: log(`sim-${i}`) });
      }
      return startProcess(`sim-${i}`, ENTRY.sim, simArgs(simForPod(podSim, i), `decode-${i}`, podPorts && { port: podPorts[i]!, endpoint: `tcp://127.0.0.1:${zmqPort}` }),
        { logFile: log(`sim-${i}`) });
    }));
    if (!options.existingPods) started.push(...pods);
    const podAddresses = pods.map((p, i) => `${perPod ? perPodAddress(i) : '127.0.0.1'}:${p.info.port as number}`);
    const store = options.sessionStore ?? (replicas > 1 ? 'redis' : 'memory');
    let redis: RedisProcess | undefined;
    if (policy.kind === 'epp' && store === 'redis') {
      redis = await startRedisServer(await reservePort(), log('redis'));
      const r = redis;
      closers.push(() => r.stop());
    }

    const epps: Started[] = [];
    const eppPorts: { grpc: number; metrics: number }[] = [];
    let eppArgs: string[] = [];
    const eppName = (i: number) => (replicas === 1 ? 'epp' : `epp-${i}`);
    if (policy.kind === 'epp') {
      const blockSize = options.sim.blockSize * (policy.preciseBlockFactor ?? 1);
      let config = precise
        ? preciseEndpointPickerConfig(perPod
          ? { mode: 'per-pod', socketPort: zmqPort!, replayPort: replayPort!, blockSize, modelName: options.sim.model }
          : { mode: 'central', zmqEndpoint: `tcp://127.0.0.1:${zmqPort}`, blockSize, modelName: options.sim.model })
        : undefined;
      if (redis) config = withSessionStore(config ?? (policy.configText ? parseEndpointPickerConfig(policy.configText) : defaultEndpointPickerConfig()),
        redis.url, options.sessionStoreTimeout);
      if (policy.configTransform) {
        config = policy.configTransform(config ?? (policy.configText ? parseEndpointPickerConfig(policy.configText) : defaultEndpointPickerConfig()));
      }
      config = toldPodLimit(policy, config, options.sim);
      const configText = config ? renderEndpointPickerConfig(config) : policy.configText;
      eppArgs = ['--endpoints', podAddresses.join(','), '--host', '127.0.0.1', '--grpc-health-port', '0', '--ext-proc-max-message-timeout', '30s',
        ...(configText ? ['--config-text', configText] : []), ...(policy.eppArgs ?? [])];
      // In parallel: each replica loads the tokenizer and warms up on its own, as pods of a Deployment do.
      const first = await Promise.all(Array.from({ length: replicas }, (_, i) =>
        startProcess(eppName(i), ENTRY.epp, [...eppArgs, '--grpc-port', '0', '--metrics-port', '0'], { logFile: log(eppName(i)) })));
      for (const e of first) {
        epps.push(e);
        started.push(e);
        eppPorts.push({ grpc: e.info.grpcPort as number, metrics: e.info.metricsPort as number });
      }
    }
    const epp = epps[0];
    let director: RequestDirector | undefined;
    if (policy.kind === 'director') {
      director = typeof policy.director === 'function' ? policy.director(podAddresses) : policy.director;
      const logFile = fs.createWriteStream(log('ext-proc'), { flags: 'a' });
      const write = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
        logFile.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`);
      extProc = await startExtProcServer({
        director,
        host: '127.0.0.1',
        port: 0,
        // Only used if the gateway sent no protocol_config (it always does); the same modes as the gateway's.
        defaultRequestBodyMode: 'BUFFERED',
        defaultResponseBodyMode: 'NONE',
        logger: { debug: () => undefined, warn: write('warn') },
      });
      extProc.setServing(true);
      const server = extProc;
      closers.push(async () => {
        await server.stop(0);
        await new Promise<void>((resolve) => logFile.end(() => resolve()));
      });
    }
    const eppPort = eppPorts[0]?.grpc ?? extProc?.port;
    const gatewayArgs = ['--host', '127.0.0.1', '--port', String(options.gatewayPort ?? 0), '--endpoints', podAddresses.join(','),
      ...GATEWAY_ENVOY_FLAGS, '--message-timeout-ms', String(options.messageTimeoutMs ?? 1000)];
    const extProcTargets = eppPorts.length > 0 ? eppPorts.map((p) => `127.0.0.1:${p.grpc}`) : eppPort !== undefined ? [`127.0.0.1:${eppPort}`] : [];
    if (extProcTargets.length > 0) gatewayArgs.push('--ext-proc', extProcTargets.join(','), '--failure-mode-allow');
    if (policy.kind === 'session-hash') gatewayArgs.push('--hash-header', policy.header);
    gatewayArgs.push(...(options.gatewayArgs ?? []));
    const gateway = await startProcess('gateway', ENTRY.gateway, gatewayArgs, { logFile: log('gateway') });
    started.push(gateway);
    const gatewayUrl = `http://127.0.0.1:${gateway.info.port as number}`;

    // Kubernetes' part with several replicas: a replica whose process dies leaves the EPP Service's ready endpoints,
    // and one that listens again joins them; Istio pushes each change to the gateway's EPP cluster (EDS).
    const members = new Set(extProcTargets);
    let stopping = false;
    const pushMembers = () => httpPut(`${gatewayUrl}${EXT_PROC_MEMBERS_PATH}`, JSON.stringify({ members: [...members] })).catch(() => undefined);
    const watchReplica = (i: number, e: Started) => {
      if (replicas < 2) return;
      e.child.once('exit', () => {
        if (stopping) return;
        setTimeout(() => {
          if (stopping || epps[i] !== e) return;
          members.delete(extProcTargets[i]!);
          void pushMembers();
        }, EDS_UPDATE_DELAY_MS).unref();
      });
    };
    epps.forEach((e, i) => watchReplica(i, e));

    const stack: Stack = {
      gatewayUrl,
      pods,
      podAddresses,
      epp,
      eppPort,
      epps,
      eppPorts,
      redis,
      extProc,
      director,
      gateway,
      async restartEpp() {
        await stack.restartEppReplica(0);
      },
      async restartEppReplica(i: number) {
        const ports = eppPorts[i];
        if (ports === undefined || policy.kind !== 'epp') throw new Error(`this stack runs no EPP replica ${i}`);
        const e = await startProcess(eppName(i), ENTRY.epp, [...eppArgs, '--grpc-port', String(ports.grpc), '--metrics-port', String(ports.metrics)],
          { logFile: log(eppName(i)) });
        const listeningAt = Date.now();
        epps[i] = e;
        if (i === 0) stack.epp = e;
        started.push(e);
        watchReplica(i, e);
        if (replicas > 1) {
          // Ready once it listens (its readiness probe), one probe period and an EDS push later.
          await new Promise((r) => setTimeout(r, EDS_UPDATE_DELAY_MS));
          members.add(extProcTargets[i]!);
          await pushMembers();
        }
        return listeningAt;
      },
      stop: async () => {
        stopping = true;
        await stopEverything();
      },
    };
    return stack;
  } catch (e) {
    await stopEverything();
    throw e;
  }
}

/**
 * Per-pod KV events on one machine: every pod's vLLM binds the same publisher port (`socketPort`, as in the
 * manifests), so each pod gets its own loopback address (Linux routes all of 127.0.0.0/8 to `lo`).
 */
export function perPodAddress(i: number): string {
  return `127.0.0.${11 + i}`;
}

/**
 * The publisher endpoint a per-pod vLLM binds. vLLM binds only an endpoint with `*`, `::`, `ipc://` or `inproc://`
 * (`ZmqEventPublisher._socket_setup`, vllm/distributed/kv_events.py @ v0.10.0) and connects to any other; `tcp://*:P`
 * would take P on every address, so the pod binds its own address in IPv4-mapped form, which ZMQ binds as the IPv4
 * socket `ip:P`.
 */
export function perPodEndpoint(ip: string, port: number): string {
  return `tcp://[::ffff:${ip}]:${port}`;
}

/**
 * The config with the session-affinity filter's bindings shared through the store at `address`; with precise prefix
 * scoring, sessions the store cannot place while down are left to the scorers, as the cdk8s app's `withSessionStore`
 * configures it.
 */
export function withSessionStore(config: EndpointPickerConfig, address: string, timeout?: string): EndpointPickerConfig {
  let found = false;
  const precise = config.plugins.some((p) => p.type === 'precise-prefix-cache-scorer');
  const plugins = config.plugins.map((p) => {
    if (p.type !== 'session-affinity-filter') return p;
    found = true;
    const store = { address, ...(timeout !== undefined ? { timeout } : {}), ...(precise ? { unavailablePlacement: 'scorers' } : {}) };
    return { ...p, parameters: { ...(p.parameters ?? {}), sessionStore: store } };
  });
  // A config without session affinity (upstream GIE's approximate-prefix config) keeps no bindings to share: its
  // replicas run as configured.
  if (!found) return config;
  return { ...config, plugins } as EndpointPickerConfig;
}

/**
 * How long a replica's change of readiness takes to reach the gateway: the kubelet's status update or a readiness probe
 * period, the EndpointSlice controller and istiod's EDS push, about a second together.
 */
export const EDS_UPDATE_DELAY_MS = 1000;

function httpPut(url: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${url}: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`PUT ${url}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A port free on 127.0.0.1 now (the kernel's pick); whoever binds it next gets it, barring a race with another process. */
export function reservePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports (held open together, so the kernel cannot hand out one twice). */
async function reservePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export function httpGet(url: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { data += c; });
      res.on('end', () => (res.statusCode === 200 ? resolve(data) : reject(new Error(`GET ${url}: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/** Prefix-cache counters (tokens) summed over the given pods, read from their Prometheus /metrics like vLLM's. */
export async function prefixCacheCounters(podAddresses: readonly string[]): Promise<{ hits: number; queries: number }> {
  let hits = 0;
  let queries = 0;
  for (const address of podAddresses) {
    let text: string;
    try {
      text = await httpGet(`http://${address}/metrics`);
    } catch {
      continue; // a killed pod's counters died with it; the totals cover the pods that answer
    }
    // Match samples by name: prometheus_client (vLLM) names the counter family without `_total`, prom-client with it.
    for (const family of parsePrometheusText(text).families.values()) {
      for (const sample of family.samples) {
        if (sample.name === 'vllm:prefix_cache_hits_total') hits += sample.value;
        else if (sample.name === 'vllm:prefix_cache_queries_total') queries += sample.value;
      }
    }
  }
  return { hits, queries };
}
