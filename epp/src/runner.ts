/**
 * Wires the EPP together: config → scheduler, discovery → datastore (+ scrapers), director → ext_proc server, and the
 * health and metrics servers. `startEpp` is what `main.ts` runs and what integration tests start in-process.
 */
import { applyDeprecatedSaturationEnv } from './config/deprecated-saturation-env';
import { applyDeprecatedEnvFeatureGates } from './config/deprecated-env-feature-gates';
import * as dns from 'dns';
import * as fs from 'fs';
import * as http from 'http';
import * as util from 'util';
import { performance } from 'perf_hooks';
import type { AddressInfo } from 'net';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, type EndpointPickerConfig } from './config';
import { parseDuration } from './config/duration';
import { endpointPickerConfigNotes, featureGateEnabled, isAddedByLoader, scrapesModelServerMetrics } from './config/loader';
import { DEFAULT_ADAPTIVE_MAX_INTERVAL_MS } from './datastore/adaptive-interval';
import { LORA_INFO_METRIC, VLLM_METRIC_NAMES } from './datastore/vllm-metrics';
import { Datastore, type ScrapeMode } from './datastore/datastore';
import { KubernetesDiscovery } from './datastore/kubernetes-discovery';
import { StaticDiscovery, type Discovery } from './datastore/static-discovery';
import { FileDiscovery } from './datastore/file-discovery';
import { allAddresses, hostPort, startExtProcServer, type ExtProcServer } from './extproc/server';
import { CertificatePairError } from './extproc/cert-reloader';
import { streamResetLimitWarning } from './extproc/stream-reset-limit';
import { unservableCipherSuites } from './extproc/tls-policy';
import type { ExtProcLogger } from './extproc/stream';
import { createEppMetrics, type EppMetrics } from './metrics';
import { RequestControl } from './requestcontrol/request-control';
import { FlowControlQueue, type BandOptions } from './requestcontrol/flow-control';
import { LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION, type PriorityBandConfig } from './config/types';
import { FLOW_CONTROL_DEFAULTS } from './config/flow-control-defaults';
import { buildScheduler, type Scheduler } from './scheduling/scheduler';
import { UsageError, type EppOptions, type FlowControlFlags } from './cli';
import { monotonicMs } from './clock';

export interface Logger extends ExtProcLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** JSON lines on stderr; `verbosity` 0 keeps warnings, errors and start-up, higher adds info and debug. */
export function jsonLogger(verbosity: number, out: NodeJS.WritableStream = process.stderr): Logger {
  const write = (level: string, msg: string, fields?: Record<string, unknown>) =>
    out.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`);
  return {
    debug: (msg, fields) => { if (verbosity >= 2) write('debug', msg, fields); },
    info: (msg, fields) => { if (verbosity >= 1) write('info', msg, fields); },
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  };
}

/**
 * grpc-js's own log lines (its default logger writes `E <text>` to stderr: a bind that fails, a GRPC_TRACE line) as
 * records of `logger`, so the binary's stderr stays JSON lines whatever grpc-js reports; the EPP's main installs it
 * with grpc.setLogger, which is process-wide.
 */
export function grpcJsLogger(logger: Logger): Partial<Console> {
  const text = (message: unknown, params: unknown[]) => util.format(message, ...params);
  return {
    error: (message?: unknown, ...params: unknown[]) => logger.error(text(message, params), { logger: 'grpc-js' }),
    info: (message?: unknown, ...params: unknown[]) => logger.info(text(message, params), { logger: 'grpc-js' }),
    debug: (message?: unknown, ...params: unknown[]) => logger.debug(text(message, params), { logger: 'grpc-js' }),
  };
}

export interface RunningEpp {
  readonly grpcPort: number;
  readonly grpcHealthPort: number;
  readonly metricsPort: number;
  readonly config: EndpointPickerConfig;
  /** Flow control as resolved from flags and config (`enabled: false`: saturated pools answer 429 at once). */
  readonly flowControl: FlowControlSettings;
  readonly datastore: Datastore;
  readonly scheduler: Scheduler;
  readonly metrics: EppMetrics;
  /** Ready to route: the pool synced and at least one endpoint is known. */
  readonly serving: boolean;
  /** What discovery last failed at (a missing pool, an endpoints file that did not reload); undefined while healthy. */
  readonly discoveryError: Error | undefined;
  stop(): Promise<void>;
}

/** Reads and validates the scheduling config named by the options (the built-in default when none). */
export function loadConfig(options: Pick<EppOptions, 'configFile' | 'configText'>): EndpointPickerConfig {
  if (options.configText !== undefined) return parseEndpointPickerConfig(options.configText);
  if (options.configFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(options.configFile, 'utf8');
    } catch (e) {
      throw new Error(`--config-file ${options.configFile}: ${(e as Error).message}`);
    }
    try {
      return parseEndpointPickerConfig(text);
    } catch (e) {
      throw new Error(`--config-file ${options.configFile}: ${(e as Error).message}`);
    }
  }
  return defaultEndpointPickerConfig();
}

/**
 * Warnings for saturation filters and detectors whose staleness bound a healthy pod could exceed between two scrapes:
 * the longest scrape period (the configured one, or the ceiling the adaptive mode or the worker mode's scrape budget
 * stretches it to) must fit twice into `metricsStalenessThreshold`, or a pod is dropped as stale merely because its
 * next scrape is not due yet. Each warning says from which pool size the period grows that long and which plugin's
 * parameter to set; for the `utilization-detector` GIE's loader adds to a config that names none
 * (`ensureSaturationDetector`), it says how to declare one.
 */
export function stalenessWarnings(config: EndpointPickerConfig, mode: ScrapeMode, refreshIntervalMs: number, scrapeBudget = 0): string[] {
  const budgeted = mode === 'worker' && scrapeBudget > 0;
  // A period at or above the ceiling is never stretched.
  const stretches = (mode === 'adaptive' || budgeted) && refreshIntervalMs < DEFAULT_ADAPTIVE_MAX_INTERVAL_MS;
  const period = stretches ? DEFAULT_ADAPTIVE_MAX_INTERVAL_MS : refreshIntervalMs;
  const out: string[] = [];
  for (const p of config.plugins) {
    // Both read metricsStalenessThreshold the same way (200ms by default, GIE's with its 50 ms period).
    if (p.type !== 'saturation-filter' && p.type !== 'utilization-detector') continue;
    const raw = p.parameters?.metricsStalenessThreshold ?? '200ms';
    const threshold = parseDuration(raw);
    if (threshold >= 2 * period) continue;
    // When: from the start, or (with the budget) once the stretched period passes half the threshold: the pool size
    // at which every pod's period, pods × 1000 / budget ms, reaches threshold / 2.
    const when = !stretches || threshold < 2 * refreshIntervalMs
      ? `the scrape period (${stretches ? `${refreshIntervalMs} ms, up to ${period}` : period} ms)`
      : budgeted
        ? `the longest scrape period (${period} ms; the scrape budget of ${scrapeBudget} scrapes a second stretches every pod's ${refreshIntervalMs} ms period past ${Math.floor(threshold / 2)} ms once the pool passes ${Math.floor((scrapeBudget * threshold) / 2000)} pods)`
        : `the longest scrape period (${period} ms; adaptive mode lengthens the ${refreshIntervalMs} ms period as parsing loads the routing thread)`;
    const added = isAddedByLoader(p);
    // Named by the plugin's name: a position in the normalized config need not be one in the user's file.
    const fix = added
      ? `; the config names no saturation detector, so GIE's default one was added: declare \`- type: utilization-detector\` with \`parameters: {metricsStalenessThreshold: ${2 * period}ms}\` to set it`
      : ` (the parameters of plugin "${p.name ?? p.type}")`;
    out.push(`${p.type} ${p.name ?? ''} metricsStalenessThreshold ${String(raw)}${added ? ' (its default)' : ''} is under twice ${when}, so pods would be dropped as stale between scrapes; raise it to at least ${2 * period}ms${fix}`.replace('  ', ' '));
  }
  return out;
}

/** Flow control as the EPP runs it: each setting from its flag, else the config's `flowControl`, else the default. */
export interface FlowControlSettings {
  readonly enabled: boolean;
  readonly maxQueued: number;
  readonly maxQueuedBytes: number;
  readonly maxWaitMs: number;
  readonly dispatchPerTick: number;
  readonly dispatchIntervalMs: number;
  readonly objectives: ReadonlyMap<string, number>;
  /** The highest priority `x-kvroute-priority` may give a request (`--flow-control-max-header-priority`). */
  readonly maxHeaderPriority: number;
  /** `--ext-proc-max-message-timeout` (0: off). */
  readonly maxMessageTimeoutMs: number;
  /**
   * `flowControl.sessionFairness`, else false when GIE's `flowControl` gate is on, else true: requests without a fairness
   * id keyed by session, and round robin for bands naming no fairness policy (else GIE's default-flow and global-strict).
   */
  readonly sessionFairness: boolean;
  /** Bounds and fairness per priority level (`flowControl.priorityBands`), and for the levels not listed. */
  readonly bands: ReadonlyMap<number, BandOptions>;
  readonly defaultBand: BandOptions;
  /** For the unlisted levels below 0 when the config has `flowControl.defaultNegativePriorityBand` (llm-d-router v0.10.0). */
  readonly defaultNegativeBand?: BandOptions;
}

/** GIE's default byte bound of each priority band. */
const DEFAULT_BAND_MAX_BYTES = 1_000_000_000;

/**
 * llm-d-router v0.10.0's request bound of each priority band when unset or 0 (`defaultPriorityBandMaxRequests`,
 * `flowcontrol/registry/config.go` applyDefaults); GIE v1.5.0 has none (its comment names one, its code sets none).
 */
const LLMD_DEFAULT_BAND_MAX_REQUESTS = 5000;

/** llm-d-router v0.10.0's queue-wait budget when `defaultRequestTTL` is unset (`flowcontrol/controller/config.go`). */
const LLMD_DEFAULT_REQUEST_TTL = '60s';

const isLlmdConfig = (config: EndpointPickerConfig): boolean => config.apiVersion === LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION;

/**
 * A band of the config as the queue takes it: its refs resolved to a fairness policy. A band naming none takes GIE's
 * default, global-strict (`flowcontrol/registry/config.go` DefaultFairnessPolicyRef @ v1.5.0), unless the config keeps
 * kvroute's session fairness, whose flows take turns (the queue's round-robin default).
 */
function bandOptions(band: Omit<PriorityBandConfig, 'priority'> | undefined, config: EndpointPickerConfig, sessionFairness: boolean): BandOptions {
  const llmdRequests = isLlmdConfig(config) && !(Number(band?.maxRequests ?? 0) > 0) ? { maxRequests: LLMD_DEFAULT_BAND_MAX_REQUESTS } : {};
  const ref = band?.fairnessPolicyRef;
  // A ref is a plugin's name or a policy's type name (the loader checked which).
  const type = ref === undefined ? undefined : (config.plugins.find((p) => p.name === ref)?.type ?? ref);
  const fairness = type !== undefined
    ? { fairness: type === 'global-strict-fairness-policy' ? 'global-strict' as const : 'round-robin' as const }
    : sessionFairness ? {} : { fairness: 'global-strict' as const };
  // GIE bounds every band's bytes, 1 GB unless set (`flowcontrol/registry/config.go` @ v1.5.0).
  if (band === undefined) return { maxBytes: DEFAULT_BAND_MAX_BYTES, ...llmdRequests, ...fairness };
  return {
    ...(band.maxRequests !== undefined ? { maxRequests: Number(band.maxRequests) } : {}),
    ...llmdRequests,
    maxBytes: band.maxBytes !== undefined ? Number(band.maxBytes) : DEFAULT_BAND_MAX_BYTES,
    ...fairness,
  };
}

export function resolveFlowControl(config: EndpointPickerConfig, flags: FlowControlFlags = {}): FlowControlSettings {
  const c = config.flowControl ?? {};
  const d = FLOW_CONTROL_DEFAULTS;
  // A config that turns GIE's gate on is written for GIE's flow control, so it gets GIE's flows and fairness.
  const sessionFairness = c.sessionFairness ?? !featureGateEnabled(config, 'flowControl');
  return {
    enabled: flags.enabled ?? c.enabled ?? d.enabled,
    maxQueued: flags.maxQueued ?? c.maxQueued ?? d.maxQueued,
    maxQueuedBytes: flags.maxQueuedBytes ?? c.maxQueuedBytes ?? d.maxQueuedBytes,
    // `defaultRequestTTL: 0` is GIE's "no deadline": the request waits as long as its client (and the proxy) does.
    // A config without flowControl has no defaults filled in by the loader: llm-d's group takes llm-d's 60 s there too.
    maxWaitMs: flags.maxWaitMs ?? (parseDuration(c.defaultRequestTTL ?? (isLlmdConfig(config) ? LLMD_DEFAULT_REQUEST_TTL : d.defaultRequestTTL)) || Infinity),
    dispatchPerTick: flags.dispatchPerTick ?? c.dispatchPerTick ?? d.dispatchPerTick,
    dispatchIntervalMs: flags.dispatchIntervalMs ?? parseDuration(c.dispatchInterval ?? d.dispatchInterval),
    objectives: new Map(Object.entries(c.objectives ?? {})),
    maxHeaderPriority: flags.maxHeaderPriority ?? c.maxHeaderPriority ?? d.maxHeaderPriority,
    maxMessageTimeoutMs: flags.maxMessageTimeoutMs ?? 0,
    sessionFairness,
    bands: new Map((c.priorityBands ?? []).map((band) => [band.priority, bandOptions(band, config, sessionFairness)])),
    defaultBand: bandOptions(c.defaultPriorityBand, config, sessionFairness),
    ...(c.defaultNegativePriorityBand !== undefined ? { defaultNegativeBand: bandOptions(c.defaultNegativePriorityBand, config, sessionFairness) } : {}),
  };
}

/**
 * Where pods' metrics are scraped: a `metrics-data-source` plugin's parameters when the config has one (GIE v1.5.0
 * moved these settings from the `--model-server-metrics-*` flags, deprecated there, into that plugin:
 * `pkg/epp/server/options.go`, `datalayer/source/metrics/datasource.go`), else the flags. llm-d-router v0.10.0's
 * `port` overrides every endpoint's port, and its `interval` gives the scrape period (`intervalMs`; see
 * {@link sourceIntervalMs}).
 */
export function scrapeTarget(
  config: EndpointPickerConfig,
  options: Pick<EppOptions, 'modelServerMetricsPath' | 'modelServerMetricsScheme' | 'modelServerMetricsInsecureSkipVerify'> & Partial<Pick<EppOptions, 'refreshMetricsIntervalMs'>>,
): { path: string; scheme: 'http' | 'https'; insecureSkipVerify: boolean; port?: number; intervalMs?: number } {
  for (const plugin of config.plugins) {
    if (plugin.type === 'metrics-data-source') {
      const p = plugin.parameters ?? {};
      const intervalMs = p.interval === undefined ? undefined : sourceIntervalMs(p.interval, options.refreshMetricsIntervalMs ?? 50);
      return {
        path: p.path ?? '/metrics', scheme: p.scheme ?? 'http', insecureSkipVerify: p.insecureSkipVerify ?? true,
        ...(p.port !== undefined ? { port: p.port } : {}),
        ...(intervalMs !== undefined ? { intervalMs } : {}),
      };
    }
  }
  return { path: options.modelServerMetricsPath, scheme: options.modelServerMetricsScheme, insecureSkipVerify: options.modelServerMetricsInsecureSkipVerify };
}

/**
 * The scrape period a `metrics-data-source` `interval` gives, as llm-d-router v0.10.0's data-layer runtime sets it
 * (`pkg/epp/datalayer/runtime.go` Configure, `interval_dispatcher.go` periodTicks): the base tick is the refresh
 * interval, lowered to the source's interval when that is shorter but not below 50ms (`defaultRefreshInterval`), and
 * the period is the interval rounded to the nearest whole number of ticks, at least one. Undefined for 0: every tick.
 */
export function sourceIntervalMs(interval: string, refreshIntervalMs: number): number | undefined {
  const requested = parseDuration(interval.startsWith('+') ? interval.slice(1) : interval);
  if (requested <= 0) return undefined;
  const lowered = Math.max(requested, 50);
  const tick = lowered < refreshIntervalMs ? lowered : refreshIntervalMs;
  return Math.max(1, Math.round(requested / tick)) * tick;
}

/** startExtProcServer, with a certificate pair it cannot use refused naming the flag that gave it. */
async function startExtProcServerNamingCertPath(opts: Parameters<typeof startExtProcServer>[0]): Promise<ExtProcServer> {
  try {
    return await startExtProcServer(opts);
  } catch (e) {
    if (e instanceof CertificatePairError) throw new Error(`--cert-path: ${e.message}`);
    throw e;
  }
}

export async function startEpp(options: EppOptions, logger: Logger = jsonLogger(options.verbosity)): Promise<RunningEpp> {
  const read = loadConfig(options);
  // Info, as llm-d-router v0.10.0 logs them (pkg/epp/config/loader/configloader.go LoadRawConfig: logger.Info("DEPRECATION: …")):
  // kvroute's own configs are written in GIE's group, so a warning would fire on every kvroute start.
  for (const note of endpointPickerConfigNotes(read)) logger.info(note);
  const loaded = applyDeprecatedSaturationEnv(read, options.deprecatedSaturationEnv);
  for (const note of loaded.notes) logger.warn(note);
  // Info, as GIE v1.5.0 logs them (setupLog.Info in applyDeprecatedEnvFeatureGate, env.GetEnvBool).
  const gated = applyDeprecatedEnvFeatureGates(loaded.config, options.deprecatedFeatureGateEnv);
  for (const note of gated.notes) logger.info(note);
  const config = gated.config;
  const scrape = scrapeTarget(config, options);
  // A metrics-data-source's `interval` is the scrape period (llm-d-router v0.10.0), else --refresh-metrics-interval.
  const refreshIntervalMs = scrape.intervalMs ?? options.refreshMetricsIntervalMs;
  for (const w of stalenessWarnings(config, options.metricsScrapeMode, refreshIntervalMs, options.metricsScrapeBudget)) logger.warn(w);
  const metrics = createEppMetrics({
    collectDefaultMetrics: true,
    ...(options.commit !== undefined ? { commit: options.commit } : {}),
    ...(options.buildRef !== undefined ? { buildRef: options.buildRef } : {}),
  });
  const scheduler = buildScheduler(config, {
    metrics: metrics.scheduling,
    logger,
    // One debug line per decision (its size bounded by DECISION_TOP_CANDIDATES): a line per request is for diagnosis.
    ...(options.verbosity >= 3 ? { decisionLog: (decision) => logger.debug('scheduling decision', { ...decision }) } : {}),
  });
  // vLLM's LoRA family only grows (one series per change): read it only for a plugin that uses it.
  const readsLora = config.plugins.some((p) => p.type === 'lora-affinity-scorer' || p.type === 'lora-room-filter');
  const scrapes = scrapesModelServerMetrics(config);
  const datastore = new Datastore({
    // llm-d-router v0.10.0 `dataLayer.injectDefaults: false` with no metrics-data-source listed: nothing is scraped.
    ...(scrapes ? {} : { scrape: false }),
    ...(readsLora ? { metricNames: { ...VLLM_METRIC_NAMES, loraInfo: LORA_INFO_METRIC } } : {}),
    refreshIntervalMs,
    metricsPort: options.modelServerMetricsPort,
    ...(scrape.port !== undefined ? { metricsPortOverride: scrape.port } : {}),
    metricsPath: scrape.path,
    metricsScheme: scrape.scheme,
    metricsInsecureSkipVerify: scrape.insecureSkipVerify,
    scrapeMode: options.metricsScrapeMode,
    scrapeWorkers: scrapes && options.metricsScrapeMode === 'worker' ? options.metricsScrapeWorkers : undefined,
    scrapeBudgetPerSecond: scrapes && options.metricsScrapeMode === 'worker' ? options.metricsScrapeBudget : undefined,
    onScrapeWorkerError: (err) => logger.error('metrics scrape worker died; restarting it', { error: err.message }),
    onListenerError: (err, event) => logger.error('datastore listener failed', { event, error: String(err) }),
  });
  const fileDiscovery = fileDiscoveryOf(config, options);
  // llm-d-router v0.10.0 cmd/epp/runner/runner.go runWithFileDiscovery: "--pool-name is optional in file discovery
  // mode and defaults to epp".
  const poolName = options.poolName ?? (fileDiscovery ? 'epp' : 'static');
  const flow = resolveFlowControl(config, options.flowControl);
  const flowQueue = flow.enabled
    ? new FlowControlQueue({ maxQueued: flow.maxQueued, maxQueuedBytes: flow.maxQueuedBytes, maxWaitMs: flow.maxWaitMs, maxDispatchPerCall: flow.dispatchPerTick, bands: flow.bands, defaultBand: flow.defaultBand, defaultNegativeBand: flow.defaultNegativeBand })
    : undefined;
  // The pool's InferenceObjectives (once discovery follows them), else the config's table; its InferenceModelRewrites.
  let watched: KubernetesDiscovery | undefined;
  const objectives = { get: (name: string) => watched?.objectivePriority(name) ?? flow.objectives.get(name), priorities: () => watched?.objectivePriorities() ?? [] };
  const modelRewrites = { rule: (model: string) => watched?.modelRewrites.rule(model) };
  const director = new RequestControl({
    objectives,
    maxHeaderPriority: flow.maxHeaderPriority,
    modelRewrites,
    datastore,
    scheduler,
    metrics: metrics.collectors,
    poolName,
    poolTargetPorts: () => watched?.currentPool?.targetPorts,
    ...(options.disableEndpointSubsetFilter ? { disableEndpointSubsetFilter: true } : {}),
    ...(options.emitEndpointScores ? { emitEndpointScores: true } : {}),
    ...(flowQueue ? {
      flowControl: {
        queue: flowQueue, tickMs: flow.dispatchIntervalMs, objectives: flow.objectives, maxMessageTimeoutMs: flow.maxMessageTimeoutMs, sessionFairness: flow.sessionFairness,
        // A config that turns GIE's gate on (`flowControl` or `flowControl=true`; `=false` is as if not named, llm-d-router
        // v0.10.0 pkg/epp/config/loader/configloader.go loadFeatureConfig) gets GIE's series for every request
        // (RequestControl's flowControl.recordEveryRequest).
        ...(featureGateEnabled(config, 'flowControl') ? { recordEveryRequest: true } : {}),
      },
    } : {}),
    onInternalError: (error, requestId, hook) => logger.error(
      hook === undefined ? 'scheduling failed; sent to the least-loaded endpoint' : `plugin hook ${hook} failed; the request goes on`,
      { requestId, error: error.stack ?? error.message },
    ),
  });

  // Shutdown runs these in the reverse order they were added. ext_proc is added last so it stops first: open streams
  // (a stream lasts as long as its response, generations included) drain while scrapers and discovery still run,
  // so a request whose body completes during the drain is still scheduled on fresh metrics.
  const cleanups: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        logger.warn('shutdown step failed', { error: (e as Error).message });
      }
    }
  };

  try {
    // Before anything binds: an address that does not resolve fails with grpc-js's "Name resolution failed for target
    // dns:…", which names neither the flag nor the fix.
    const host = options.host ?? await allAddresses();
    if (options.host !== undefined) await checkBindHost(options.host);
    // Plugins open their sockets first and close them last, after the EPP stopped answering.
    cleanups.push(() => scheduler.plugins.close());
    // After ext_proc has stopped: whatever still waits is refused ('closed'), and the dispatch ticker stops.
    cleanups.push(() => director.close());
    await scheduler.plugins.start();
    const extProc: ExtProcServer = await startExtProcServerNamingCertPath({
      director,
      host,
      port: options.grpcPort,
      healthPort: options.grpcHealthPort,
      tlsCertDir: options.certPath,
      tlsCertReload: options.enableCertReload,
      selfSignedTls: options.secureServing === true && options.certPath === undefined,
      tlsPolicy: { minVersion: options.tlsMinVersion, cipherSuites: options.tlsCipherSuites },
      defaultRequestBodyMode: options.requestBodyMode === 'buffered' ? 'BUFFERED' : 'FULL_DUPLEX_STREAMED',
      defaultResponseBodyMode: options.responseBodyMode === 'none' ? 'NONE' : 'FULL_DUPLEX_STREAMED',
      ...(options.grpcMaxRecvMsgSize ? { maxReceiveMessageBytes: options.grpcMaxRecvMsgSize } : {}),
      ...(options.grpcMaxSendMsgSize ? { maxSendMessageBytes: options.grpcMaxSendMsgSize } : {}),
      logger,
    });
    const unservable = unservableCipherSuites(options.tlsCipherSuites ?? []);
    if (unservable.length > 0) logger.warn('--tls-cipher-suites lists suites Node\'s OpenSSL does not implement; they are not served', { suites: unservable });
    const resetWarning = streamResetLimitWarning(extProc.streamResetLimitLifted);
    if (resetWarning) logger.warn(resetWarning);

    // Readiness: the pool synced and, the first time, every plugin's data warm (the precise scorer's KV-event
    // subscriptions connected, each bounded by its warm-up wait). Only the first time: every replica sees a new decode
    // pod at once, so gating on later pods would take all replicas out of their Service together. A pool synced with
    // no ready pod is SERVING, as upstream's is (GIE cmd/epp/runner/health.go @ v1.0.0: `PoolHasSynced()` alone):
    // requests then get the EPP's 503 naming the empty pool, and a probe never kills an EPP (and its index) while
    // every decode pod is still loading its model. llm-d's manifests probe liveness under the ext_proc service name.
    let warmedUp = false;
    const updateServing = () => {
      const synced = datastore.poolSynced;
      if (synced && !warmedUp && (datastore.readyCount === 0 || scheduler.plugins.warm())) {
        warmedUp = true;
        logger.info(datastore.readyCount === 0
          ? 'ready: the pool synced with no ready endpoint yet'
          : 'warm-up done: the pool synced and every KV-event subscription connected or stopped being waited for');
      }
      extProc.setServing(synced && warmedUp);
    };
    scheduler.plugins.onWarmChange(updateServing);
    datastore.on('endpointAdded', (ep) => {
      scheduler.plugins.addEndpoint(ep);
      logger.info('endpoint added', { endpoint: ep.key, name: ep.name, pod: ep.podName ?? ep.name });
      updateServing();
    });
    datastore.on('endpointRemoved', (ep) => {
      // Plugins that track endpoints by address (prefix indexes, load and latency state) must forget it, or they keep
      // steering traffic to it. Session bindings are left as they are, as upstream's: they name the pod
      // (endpointIdentity), so a session whose pod is no longer a candidate rebinds to the next pick, and a new pod
      // given this address inherits none of them.
      scheduler.plugins.removeEndpoint(ep.key);
      metrics.forgetEndpoint(ep);
      logger.info('endpoint removed', { endpoint: ep.key, name: ep.name, pod: ep.podName ?? ep.name });
      updateServing();
    });
    datastore.on('endpointRestarted', (ep, sinceMs) => {
      // A new process holds none of the old one's cache: prefixes the index credits it with would draw traffic there
      // for cold prefills (until the new process's KV events say otherwise, or forever for the approximate index).
      scheduler.plugins.endpointRestarted(ep.key, sinceMs);
      logger.info('model server restarted (a new process start time, or its counters went back): what the EPP knew of its cache is dropped', { endpoint: ep.key, name: ep.name, pod: ep.podName ?? ep.name });
    });
    // Once per failing spell (the datastore tells it once until the pod's scrapes succeed again for a while): a pool
    // whose pages cannot be read (a wrong --model-server-metrics-port or path, a NetworkPolicy) answers every request
    // 503 "saturation-filter left none", and this is the line that says why. GIE v1.5.0 logs every failed scrape,
    // at TRACE only (`pkg/epp/backend/metrics/pod_metrics.go` refreshMetrics: "Failed to refresh metrics").
    datastore.on('endpointScrapesFailing', (ep, error, failures) => {
      logger.warn('model server metrics cannot be read: filters that read them leave the endpoint out until a scrape succeeds (logged again only after it recovered)', {
        endpoint: ep.key, name: ep.name, pod: ep.podName ?? ep.name, failures, error,
      });
    });
    datastore.on('endpointScrapesRecovered', (ep) => {
      logger.info('model server metrics read again', { endpoint: ep.key, name: ep.name, pod: ep.podName ?? ep.name });
    });
    datastore.on('poolSyncChanged', updateServing);

    // Pool gauges are computed when Prometheus scrapes, so they are never staler than the scrape itself.
    let counted = { success: 0, failure: 0, restarts: 0 };
    let elu = performance.eventLoopUtilization();
    const updatePoolGauges = () => {
      const stats = datastore.poolStats(monotonicMs(), options.metricsStalenessThresholdMs);
      const c = metrics.collectors;
      // Scrape counts live in the datastore as plain numbers (thousands a second at 256 pods) and reach the counters
      // here, once per Prometheus scrape.
      const scrapes = { ...datastore.scrapeCounts, restarts: datastore.scrapeWorkerRestarts };
      c.modelServerScrapes.inc({ outcome: 'success' }, scrapes.success - counted.success);
      c.modelServerScrapes.inc({ outcome: 'failure' }, scrapes.failure - counted.failure);
      c.scrapeWorkerRestarts.inc(scrapes.restarts - counted.restarts);
      counted = scrapes;
      c.metricsRefreshInterval.set({ mode: datastore.scrapeMode }, datastore.effectiveRefreshIntervalMs / 1000);
      const now = performance.eventLoopUtilization();
      c.eventLoopUtilization.set(performance.eventLoopUtilization(now, elu).utilization);
      elu = now;
      c.flowControlQueueSize.set(flowQueue?.size ?? 0);
      c.flowControlQueueBytes.set(flowQueue?.queuedBytes ?? 0);
      const saturation = director.poolSaturation();
      if (saturation !== undefined) c.gieFlowControlPoolSaturation.set({ inference_pool: poolName }, saturation);
      c.poolReadyPods.set({ name: poolName }, stats.readyEndpoints);
      // GIE sets the averages only while a pod is ready (logger.go @ v1.5.0 L113-121).
      if (stats.averageKvCacheUsage !== undefined) c.poolAverageKvCacheUtilization.set({ name: poolName }, stats.averageKvCacheUsage);
      if (stats.averageWaitingQueue !== undefined) c.poolAverageQueueSize.set({ name: poolName }, stats.averageWaitingQueue);
      if (stats.averageRunningQueue !== undefined) c.poolAverageRunningRequests.set({ name: poolName }, stats.averageRunningQueue);
      if (stats.stdDevKvCacheUsage !== undefined) c.poolStdDevKvCacheUtilization.set({ name: poolName }, stats.stdDevKvCacheUsage);
      if (stats.stdDevWaitingQueue !== undefined) c.poolStdDevQueueSize.set({ name: poolName }, stats.stdDevWaitingQueue);
      if (stats.stdDevRunningQueue !== undefined) c.poolStdDevRunningRequests.set({ name: poolName }, stats.stdDevRunningQueue);
      c.poolPerPodQueueSize.reset();
      const snapshot = datastore.snapshot();
      for (const s of snapshot) {
        c.poolPerPodQueueSize.set({ name: poolName, model_server_pod: s.endpoint.name }, s.metrics.waitingQueueSize);
      }
      scheduler.plugins.refreshGauges(snapshot);
    };

    const metricsServer = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
        updatePoolGauges();
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
          (e: Error) => res.writeHead(500).end(e.message),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the EPP serves GET /metrics here\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      metricsServer.once('error', (e) => reject(new Error(`cannot listen on ${hostPort(host, options.metricsPort)} for metrics (--host, --metrics-port): ${e.message}`)));
      metricsServer.listen(options.metricsPort, host, () => resolve());
    });
    cleanups.push(() => new Promise<void>((resolve) => {
      metricsServer.close(() => resolve());
      metricsServer.closeAllConnections();
    }));

    cleanups.push(() => datastore.stop());
    const discovery: Discovery = fileDiscovery
      ? new FileDiscovery(datastore, { ...fileDiscovery, log: (level, message) => logger[level](message) })
      : options.endpoints
      ? new StaticDiscovery(datastore, options.endpoints)
      : new KubernetesDiscovery(datastore, {
        poolName: options.poolName!,
        poolNamespace: options.poolNamespace,
        ...(options.poolGroup !== undefined ? { poolGroup: options.poolGroup } : {}),
        kubeConfig: options.kubeconfig ? { kind: 'file', path: options.kubeconfig } : { kind: 'default' },
        log: (level, message) => logger[level](message),
        // llm-d-router v0.10.0 runner.go: "If endpointSelector is nil, it means it's not in the standalone mode. Then we
        // should start the inferencePool and other CRD Reconciler." Standalone, none is started.
        objectives: options.endpointSelector === undefined,
        modelRewrites: options.endpointSelector === undefined,
        ...(options.endpointSelector ? { endpointSelector: options.endpointSelector } : {}),
      });
    if (discovery instanceof KubernetesDiscovery) watched = discovery;
    if (fileDiscovery) {
      // As llm-d-router v0.10.0's runWithFileDiscovery says once at start-up: no Kubernetes client runs in this mode.
      logger.info('file-discovery mode: Kubernetes-only features are inactive (InferenceObjective and InferenceModelRewrite watches); objectives come from the config\'s flowControl', { path: fileDiscovery.path, pool: poolName, namespace: options.poolNamespace });
    }
    // Discovery stops before the datastore: a stopped datastore refuses changes.
    cleanups.push(() => discovery.stop());
    cleanups.push(() => extProc.stop(options.shutdownGracePeriodMs, options.drainTimeoutMs));
    await discovery.start();
    updateServing();

    return {
      grpcPort: extProc.port,
      grpcHealthPort: extProc.healthPort ?? options.grpcHealthPort,
      metricsPort: (metricsServer.address() as AddressInfo).port,
      config,
      flowControl: flow,
      datastore,
      scheduler,
      metrics,
      get serving() {
        return extProc.health.status === 'SERVING';
      },
      get discoveryError() {
        return discovery.lastError;
      },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * The `file-discovery` plugin a config's `dataLayer.discovery` names (llm-d-router v0.10.0 `docs/discovery.md`), or
 * undefined. With one, the pool comes from its file: `--endpoints` is refused (two endpoint lists) and `--pool-name`
 * only names the pool, as upstream's file-discovery mode starts no Kubernetes client.
 */
function fileDiscoveryOf(config: EndpointPickerConfig, options: Pick<EppOptions, 'endpoints' | 'poolName' | 'endpointSelector'>): { path: string; watchFile: boolean } | undefined {
  const ref = config.dataLayer?.discovery?.pluginRef;
  if (ref === undefined) {
    if (!options.poolName && !options.endpoints) {
      throw new UsageError('one of --pool-name (Kubernetes discovery) or --endpoints (static) is required, or a config whose dataLayer.discovery names a file-discovery plugin');
    }
    return undefined;
  }
  if (options.endpoints) throw new UsageError(`--endpoints and the config's dataLayer.discovery (${JSON.stringify(ref)}) both list the pool's endpoints: give one`);
  if (options.endpointSelector) throw new UsageError(`--endpoint-selector and the config's dataLayer.discovery (${JSON.stringify(ref)}) both define the pool: give one`);
  const p = (config.plugins.find((plugin) => plugin.name === ref)?.parameters ?? {}) as { path?: string; watchFile?: boolean };
  return { path: p.path!, watchFile: p.watchFile ?? false };
}

/** `--host` must be an address or a name this machine resolves (it is where the three servers bind). */
async function checkBindHost(host: string): Promise<void> {
  try {
    await dns.promises.lookup(host);
  } catch (e) {
    throw new Error(`--host ${JSON.stringify(host)}: not an address or a name this machine resolves (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give an IP address such as :: (every address), 0.0.0.0 (every IPv4 address) or 127.0.0.1, or leave --host unset to bind every address`);
  }
}
