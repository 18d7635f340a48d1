/**
 * The EPP's command line. kebab-case flags are kvroute's spelling; the upstream GIE / llm-d camelCase spellings
 * (`-poolName`, `--grpcPort`, `--secureServing=false`) are accepted too, so existing manifests keep working. Every
 * flag is parsed once here into typed options; an unknown flag, a missing value or a malformed one is an error that
 * names the flag, never silently ignored.
 */
import type { SecureVersion } from 'tls';
import { DEPRECATED_SATURATION_ENV, type DeprecatedSaturationEnv } from './config/deprecated-saturation-env';
import { DEPRECATED_ENV_FEATURE_GATES, parseGoBool, type DeprecatedFeatureGateEnv } from './config/deprecated-env-feature-gates';
import { parseDuration } from './config/duration';
import { parseGoAtoi, parseGoInt } from './config/go-strconv';
import { quantityAsInt64 } from './config/quantity';
import { MAX_FLOW_PRIORITY } from './config/flow-control-defaults';
import { LORA_INFO_METRIC, VLLM_METRIC_NAMES } from './datastore/vllm-metrics';
import { parseEndpointList } from './datastore/static-discovery';
import { parseLabelSelector, type LabelSelector } from './datastore/label-selector';
import { POOL_GROUPS, type PoolGroup } from './datastore/inference-pool';
import { SCRAPE_MODES, type ScrapeMode } from './datastore/datastore';
import { parseCipherSuites, parseTlsVersion } from './extproc/tls-policy';

export type RequestBodyModeFlag = 'full-duplex' | 'buffered';
export type ResponseBodyModeFlag = 'none' | 'full-duplex';

export interface EppOptions {
  readonly grpcPort: number;
  readonly grpcHealthPort: number;
  readonly metricsPort: number;
  /** Bind address; undefined: every address (`::`, or `0.0.0.0` without IPv6; `allAddresses`). */
  readonly host?: string;
  readonly configFile?: string;
  readonly configText?: string;
  readonly poolName?: string;
  readonly poolNamespace: string;
  /**
   * `--pool-group`: the group InferenceObjectives' and InferenceModelRewrites' poolRef must name, and which pool version
   * is read first (KubernetesDiscoveryOptions.poolGroup); unset: the pool's own group, v1 first.
   */
  readonly poolGroup?: PoolGroup;
  readonly endpoints?: string;
  /**
   * llm-d-router v0.10.0's standalone mode (`--endpoint-selector`, `--endpoint-target-ports`): the pods the selector
   * matches in `poolNamespace` are the pool, and `poolName` is the EPP's Deployment, read from `$POD_NAME`.
   */
  readonly endpointSelector?: { readonly selector: LabelSelector; readonly targetPorts: readonly number[] };
  readonly kubeconfig?: string;
  readonly refreshMetricsIntervalMs: number;
  /** `--metrics-staleness-threshold`: how old a pod's metrics may be for the pool gauges to count it ready. */
  readonly metricsStalenessThresholdMs: number;
  /**
   * The build's commit and ref for `inference_extension_info` (GIE stamps them with ldflags from its Dockerfile's
   * COMMIT_SHA and BUILD_REF build args; kvroute's Dockerfile passes the same build args on as $KVROUTE_COMMIT_SHA and
   * $KVROUTE_BUILD_REF). Undefined: "unknown".
   */
  readonly commit: string | undefined;
  readonly buildRef: string | undefined;
  /** GIE v1.0-v1.4's `SD_*` saturation-detector variables, as set in the environment (`deprecated-saturation-env.ts`). */
  readonly deprecatedSaturationEnv: DeprecatedSaturationEnv;
  /** GIE v1.5.0's feature-gate variables (`ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER`), as set in the environment. */
  readonly deprecatedFeatureGateEnv: DeprecatedFeatureGateEnv;
  readonly modelServerMetricsPort?: number;
  readonly modelServerMetricsPath: string;
  readonly modelServerMetricsScheme: 'http' | 'https';
  readonly modelServerMetricsInsecureSkipVerify: boolean;
  /** Where the model servers' pages are fetched and parsed (DatastoreOptions.scrapeMode). */
  readonly metricsScrapeMode: ScrapeMode;
  /** `worker` mode's thread count. */
  readonly metricsScrapeWorkers: number;
  /** `worker` mode's most scrapes a second across the pool; 0: none (DatastoreOptions.scrapeBudgetPerSecond). */
  readonly metricsScrapeBudget: number;
  /** Upstream flags accepted for compatibility that change nothing here (main logs a warning naming them). */
  readonly ignoredFlags: readonly string[];
  /** Ignore the proxy's subset hint (`envoy.lb.subset_hint`): every ready endpoint is a candidate. */
  readonly disableEndpointSubsetFilter: boolean;
  readonly certPath?: string;
  /** `--enable-cert-reload`: follow changes to `certPath`'s pair. */
  readonly enableCertReload: boolean;
  /** TLS on the ext_proc port: `certPath`'s certificate, else a self-signed one (`--secure-serving`). */
  readonly secureServing?: boolean;
  /** `--tls-min-version` in Node's spelling: the lowest TLS version secure serving accepts; Node's default (1.2) when unset. */
  readonly tlsMinVersion?: SecureVersion;
  /** `--tls-cipher-suites`: Go names of the TLS 1.0-1.2 suites secure serving allows; Node's defaults when unset. */
  readonly tlsCipherSuites?: readonly string[];
  readonly requestBodyMode: RequestBodyModeFlag;
  readonly responseBodyMode: ResponseBodyModeFlag;
  /** `--drain-timeout`: how long after SIGTERM new ext_proc streams are still accepted (NOT_SERVING meanwhile). */
  readonly drainTimeoutMs: number;
  /** How long, after the drain window, open ext_proc streams (each lasts as long as its response) get before being cancelled. */
  readonly shutdownGracePeriodMs: number;
  /**
   * llm-d's `--grpc-max-recv-msg-size` / `--grpc-max-send-msg-size` in bytes; undefined or 0: kvroute's defaults; -1: no
   * limit (2Gi or more, past grpc-js's 32-bit lengths).
   */
  readonly grpcMaxRecvMsgSize?: number;
  readonly grpcMaxSendMsgSize?: number;
  /** llm-d's `--emit-endpoint-scores`: every candidate's score in the answer's `envoy.lb` metadata. */
  readonly emitEndpointScores: boolean;
  readonly verbosity: number;
  /** Flow-control flags as given; undefined ones come from the config's `flowControl`, then the defaults. */
  readonly flowControl: FlowControlFlags;
}

export interface FlowControlFlags {
  readonly enabled?: boolean;
  readonly maxQueued?: number;
  readonly maxQueuedBytes?: number;
  readonly maxWaitMs?: number;
  readonly dispatchPerTick?: number;
  readonly dispatchIntervalMs?: number;
  /** The highest priority `x-kvroute-priority` may give a request. */
  readonly maxHeaderPriority?: number;
  /** The gateway's ext_proc `max_message_timeout` (0: never ask Envoy for more time). */
  readonly maxMessageTimeoutMs?: number;
}

/**
 * `--endpoint-selector` and `--endpoint-target-ports` (llm-d-router v0.10.0 `pkg/epp/server/options.go` Complete and
 * Validate; `cmd/epp/runner/runner.go` extractGKNN): the selector in Kubernetes syntax, exclusive with `--pool-name`;
 * 1-8 ports, duplicates dropped (removeDuplicatePorts); the pool named after the EPP's Deployment, taken from `$POD_NAME`
 * (`<deployment>-<replicaset hash>-<pod hash>`, extractDeploymentName). Upstream also takes port 0; refused here, as no
 * pod serves on it.
 */
function readEndpointSelector(
  selectorText: string | undefined,
  portsText: string | undefined,
  poolName: string | undefined,
  endpoints: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): { selector: LabelSelector; targetPorts: number[]; poolName: string } | undefined {
  if (selectorText === undefined) return undefined;
  if (poolName) throw new UsageError('--pool-name and --endpoint-selector are exclusive: either pool-name or endpoint-selector must be set (llm-d-router)');
  if (endpoints) throw new UsageError('--endpoints and --endpoint-selector are exclusive: list the endpoints or select pods, not both');
  let selector: LabelSelector;
  try {
    selector = parseLabelSelector(selectorText);
  } catch (e) {
    throw new UsageError(`--endpoint-selector: ${(e as Error).message}`);
  }
  if (portsText === undefined) throw new UsageError('--endpoint-selector needs --endpoint-target-ports: the pods\' model-server ports, e.g. 8000');
  const targetPorts: number[] = [];
  for (const part of portsText.split(',')) {
    // pflag's IntSlice Set reads each item with strconv.Atoi (a sign allowed): what it cannot read is a parse error
    // (exit 2); an integer out of range is Validate's "invalid port number" (options.go @ v0.10.0, exit 1).
    const port = parseGoAtoi(part);
    if (port === undefined || port < 1 || port > 65535) {
      const message = `--endpoint-target-ports: ${JSON.stringify(part)} is not a port 1-65535 (write e.g. 8000,8001 with no spaces)`;
      throw port === undefined ? new FlagParseError(message) : new UsageError(message);
    }
    if (!targetPorts.includes(port)) targetPorts.push(port);
  }
  if (targetPorts.length > 8) throw new UsageError(`--endpoint-target-ports: at most 8 ports, got ${targetPorts.length}`);
  const podName = env.POD_NAME;
  if (!podName) {
    throw new UsageError('--endpoint-selector: $POD_NAME is not set; the pool is named after the EPP\'s Deployment, read from its pod name (set POD_NAME from the Downward API, fieldRef metadata.name, as llm-d-router\'s chart does)');
  }
  const match = /^(.+)-[a-z0-9]+-[a-z0-9]+$/.exec(podName);
  if (!match) throw new UsageError(`--endpoint-selector: cannot take a Deployment name from $POD_NAME ${JSON.stringify(podName)} (expected <deployment>-<hash>-<hash>)`);
  return { selector, targetPorts, poolName: match[1]! };
}

/**
 * A flag value the EPP refuses once the flags are read (exclusive flags, a missing one, a value out of range, a flag
 * kvroute does not take): exit status 1, as llm-d-router v0.10.0's runner returns opts.Complete / opts.Validate errors
 * from Run and cmd/epp/main.go run turns any error into `return 1` (os.Exit(1)).
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Argv that does not parse as flags: an unknown flag, a missing value, a value that is not the flag's type (integer,
 * boolean, duration, list of integers). Exit status 2, as pflag exits for a parse error of its CommandLine set, which
 * llm-d-router v0.10.0 cmd/epp/runner/runner.go Run parses with pflag.Parse(): `CommandLine = NewFlagSet(os.Args[0],
 * ExitOnError)`, and FlagSet.Parse's `case ExitOnError: fmt.Println(err); os.Exit(2)` (spf13/pflag flag.go).
 */
export class FlagParseError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'FlagParseError';
  }
}

/**
 * `ignored-*`: upstream flags whose concern kvroute handles differently; parsed, then reported as ignored.
 * `ignored-fixed`: upstream flags that name what kvroute already uses (`fixed`): that value is reported as ignored, any
 *   other is refused with `help`.
 * `unsupported`: upstream flags kvroute refuses, with `help` saying why and what to use instead.
 */
type Kind = 'int' | 'port' | 'string' | 'bool' | 'duration' | 'ignored-string' | 'ignored-bool' | 'ignored-fixed' | 'unsupported';

interface FlagSpec {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly kind: Kind;
  readonly help: string;
  readonly default?: string;
  /** `ignored-fixed` only: the values that change nothing here. */
  readonly fixed?: readonly string[];
}

/**
 * GIE v0.5.1–v1.4.x's metric-name flags (cmd/epp/runner/runner.go; camelCase in v0.5.1; `cache-info-metric` from v1.1.0,
 * `total-running-requests-metric` from v1.3.0), which llm-d's guides and GIE's chart pass: accepted when they name the vLLM metric kvroute reads anyway, so those manifests start. GIE v1.5.0
 * refuses them all (pkg/epp/server/options.go Validate); refusing them here stopped v1.0-era manifests for no gain.
 */
function metricNameFlag(name: string, aliases: readonly string[], fixed: readonly string[]): FlagSpec {
  return {
    name, aliases, kind: 'ignored-fixed', fixed,
    help: `names the model-server metric to read; kvroute reads vLLM's ${fixed.join(' (or ')}${fixed.length > 1 ? ')' : ''} itself, so that value is accepted and ignored and any other is refused`,
  };
}

const FLAGS: readonly FlagSpec[] = [
  { name: 'grpc-port', aliases: ['grpcPort'], kind: 'port', default: '9002', help: 'ext_proc gRPC port (also serves grpc.health.v1 for Envoy\'s health checks)' },
  { name: 'grpc-health-port', aliases: ['grpcHealthPort'], kind: 'port', default: '9003', help: 'plaintext grpc.health.v1 port for Kubernetes probes; service "liveness" is SERVING while the process runs, every other name once the pool has synced (and, at start-up, the KV-event subscriptions of the pods it had then are warm), ready pods or not' },
  { name: 'metrics-port', aliases: ['metricsPort'], kind: 'port', default: '9090', help: 'HTTP port serving Prometheus /metrics' },
  // GIE v1.5.0 listens on ":<port>" (internal/runnable/grpc.go GRPCServer; metrics on ":9090"): every address.
  { name: 'host', aliases: [], kind: 'string', help: 'address the three servers bind (default: every address, IPv6 included: ::, which also takes IPv4, or 0.0.0.0 on a host without IPv6)' },
  { name: 'config-file', aliases: ['configFile'], kind: 'string', help: 'EndpointPickerConfig YAML file (default: kvroute\'s built-in config)' },
  { name: 'config-text', aliases: ['configText'], kind: 'string', help: 'EndpointPickerConfig YAML given inline (exclusive with --config-file)' },
  { name: 'pool-name', aliases: ['poolName'], kind: 'string', help: 'InferencePool whose pods are the endpoints (Kubernetes discovery)' },
  { name: 'pool-namespace', aliases: ['poolNamespace'], kind: 'string', help: 'namespace of the InferencePool and its pods (default: $NAMESPACE, else "default", as GIE\'s runner resolves it)' },
  { name: 'pool-group', aliases: ['poolGroup'], kind: 'string', help: 'inference.networking.k8s.io or inference.networking.x-k8s.io: the group InferenceObjectives\' and InferenceModelRewrites\' poolRef must name (GIE v1.5.0; default: the pool\'s own group), and which InferencePool version is read first: v1alpha2 for inference.networking.x-k8s.io (as GIE v1.0-v1.4), else v1; the other version is read when that one has no such pool (GIE v1.5.0 reads v1 whatever the group)' },
  { name: 'endpoints', aliases: [], kind: 'string', help: 'static endpoints host:port,host:port (local runs; exclusive with --pool-name)' },
  { name: 'disable-endpoint-subset-filter', aliases: [], kind: 'bool', default: 'false', help: 'ignore the proxy\'s x-gateway-destination-endpoint-subset hint (metadata envoy.lb.subset_hint): every ready endpoint is a candidate' },
  { name: 'kubeconfig', aliases: [], kind: 'string', help: 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account)' },
  { name: 'refresh-metrics-interval', aliases: ['refreshMetricsInterval'], kind: 'duration', default: '50ms', help: 'how often each endpoint\'s /metrics is scraped' },
  { name: 'metrics-scrape-mode', aliases: [], kind: 'string', default: 'worker', help: 'where model-server pages are fetched and parsed: worker (worker threads, off the routing loop), adaptive (on the routing loop, interval lengthened with pool size and loop load, up to 400ms) or event-loop (on the routing loop at the fixed interval)' },
  { name: 'metrics-scrape-budget', aliases: [], kind: 'int', default: '1000', help: 'worker mode: the most model-server scrapes a second across the pool; beyond it every pod\'s period stretches (up to 400ms) so scraping\'s CPU stops growing with the pool; 0 scrapes every pod at --refresh-metrics-interval' },
  { name: 'metrics-scrape-workers', aliases: [], kind: 'int', default: '1', help: 'worker threads for --metrics-scrape-mode=worker (1-64); pods are spread over them, each pod on one; add threads (and CPU) when kvroute_epp_model_server_scrapes_total falls behind pods / interval' },
  { name: 'model-server-metrics-port', aliases: ['modelServerMetricsPort'], kind: 'port', help: 'port to scrape instead of the endpoint\'s own (default: the endpoint port)' },
  { name: 'model-server-metrics-path', aliases: ['modelServerMetricsPath'], kind: 'string', default: '/metrics', help: 'path of the model servers\' Prometheus metrics' },
  { name: 'model-server-metrics-scheme', aliases: ['modelServerMetricsScheme'], kind: 'string', default: 'http', help: 'http or https for the model servers\' metrics' },
  { name: 'model-server-metrics-https-insecure-skip-verify', aliases: ['modelServerMetricsHttpsInsecureSkipVerify'], kind: 'bool', default: 'true', help: 'with https, accept the model servers\' self-signed certificates' },
  { name: 'cert-path', aliases: ['certPath'], kind: 'string', help: 'directory with tls.crt and tls.key: serve TLS on the ext_proc port (default plaintext; the mesh brings mTLS). With --secure-serving=false it changes nothing (reported as ignored), as upstream' },
  { name: 'secure-serving', aliases: ['secureServing'], kind: 'bool', default: 'false', help: 'serve TLS on the ext_proc port: with --cert-path\'s certificate, else a self-signed one made at start-up (GIE\'s default; kvroute\'s default is plaintext, the mesh brings mTLS)' },
  { name: 'request-body-mode', aliases: [], kind: 'string', default: 'full-duplex', help: 'body mode assumed when Envoy sends no protocol_config: full-duplex (FULL_DUPLEX_STREAMED) or buffered; must match the filter\'s processing_mode' },
  { name: 'response-body-mode', aliases: [], kind: 'string', default: 'none', help: 'response body mode assumed when Envoy sends no protocol_config: none (kvroute\'s EnvoyFilter: the stream ends with the exchange) or full-duplex; a body that arrives under an assumed none is streamed back in full duplex, as GIE does' },
  // llm-d-router v0.10.0's (pkg/epp/server/options.go; cmd/epp/runner/runner.go runWithGracefulShutdown): on SIGTERM
  // NotServing, and ext_proc keeps accepting new streams for the window. Upstream's default is 30s; kvroute's is 0, as
  // its multi-replica manifests keep a terminating replica accepting through a preStop sleep instead.
  { name: 'drain-timeout', aliases: [], kind: 'duration', default: '0s', help: 'on SIGTERM: report NOT_SERVING and keep accepting new ext_proc streams this long (Envoys that have not yet learnt the pod is leaving still send to it), then stop accepting and drain for --shutdown-grace-period; 0: stop accepting at once' },
  { name: 'shutdown-grace-period', aliases: [], kind: 'duration', default: '120s', help: 'on SIGTERM, after --drain-timeout: stop accepting streams and wait this long for open ones (whole responses, generations included) before cancelling them; keep the two together below the pod\'s terminationGracePeriodSeconds' },
  // Flow control (issue 9): each flag overrides the config's `flowControl` field of the same meaning.
  { name: 'flow-control', aliases: [], kind: 'bool', help: 'when every pod is saturated, hold requests in a bounded queue and dispatch them as capacity frees instead of answering 429 at once (default true, or the config\'s flowControl.enabled)' },
  { name: 'flow-control-max-queued', aliases: [], kind: 'int', help: 'requests that may wait at once; past it a newcomer displaces a lower-priority sheddable one or gets 429 (default 1024, or flowControl.maxQueued)' },
  { name: 'flow-control-max-queued-bytes', aliases: [], kind: 'int', help: 'request body bytes that may wait at once; past it newcomers displace lower-priority sheddable ones or get 429, as does a body larger than the bound (default 134217728 = 128 MiB, or flowControl.maxQueuedBytes)' },
  { name: 'flow-control-max-wait', aliases: [], kind: 'duration', help: 'how long a request may wait before a 429 (default 30s, 60s for a config of llm-d.ai/v1alpha1, or flowControl.defaultRequestTTL); 0: no deadline of the EPP\'s own' },
  { name: 'flow-control-dispatch-per-tick', aliases: [], kind: 'int', help: 'the most waiting requests released per tick, so a backlog is paced onto the pods (default 4, or flowControl.dispatchPerTick)' },
  { name: 'flow-control-dispatch-interval', aliases: [], kind: 'duration', help: 'how often waiting requests are retried (default 50ms, or flowControl.dispatchInterval)' },
  { name: 'flow-control-max-header-priority', aliases: [], kind: 'int', help: 'the highest priority x-kvroute-priority may give a request, -100 to 100; a higher value counts as this (default 0, or flowControl.maxHeaderPriority: a client may lower its own priority, mark itself sheddable, but not raise it; raise it where the gateway sets or strips the header)' },
  { name: 'ext-proc-max-message-timeout', aliases: [], kind: 'duration', help: 'the gateway ext_proc filter\'s max_message_timeout: a request that waits in flow control asks Envoy (override_message_timeout) to hold its answer this long and waits at most this long less 250ms (at most 1h, the proto\'s bound); unset (default): never ask, so Envoy\'s message_timeout (1s in the EnvoyFilter) bounds the wait' },
  { name: 'v', aliases: ['verbosity'], kind: 'int', default: '0', help: 'log verbosity: 0 warnings and errors, 1 adds endpoint and discovery changes, 2 adds per-stream protocol events, 3 adds each scheduling decision (the pick and the best candidates\' scores)' },
  { name: 'help', aliases: ['h'], kind: 'bool', help: 'print this help' },
  // Upstream (GIE / llm-d) flags that existing manifests pass; accepted so those manifests start, and reported.
  { name: 'zap-encoder', aliases: [], kind: 'ignored-string', help: 'ignored: logs are always JSON lines' },
  { name: 'zap-log-level', aliases: [], kind: 'ignored-string', help: 'ignored: use --v' },
  { name: 'zap-devel', aliases: [], kind: 'ignored-bool', help: 'ignored' },
  { name: 'zap-stacktrace-level', aliases: [], kind: 'ignored-string', help: 'ignored' },
  { name: 'zap-time-encoding', aliases: [], kind: 'ignored-string', help: 'ignored' },
  // GIE v1.5.0's flags (pkg/epp/server/options.go AddFlags) for concerns kvroute handles its own way.
  { name: 'enable-pprof', aliases: ['enablePprof'], kind: 'ignored-bool', help: 'ignored: no pprof endpoints' },
  { name: 'health-checking', aliases: ['healthChecking'], kind: 'ignored-bool', help: 'ignored: grpc.health.v1 is always served on the ext_proc port too' },
  { name: 'tracing', aliases: [], kind: 'ignored-bool', help: 'ignored: no OpenTelemetry traces are emitted' },
  { name: 'metrics-endpoint-auth', aliases: ['metricsEndpointAuth'], kind: 'ignored-bool', help: 'ignored: /metrics is plain HTTP without an auth filter (restrict it with the NetworkPolicy)' },
  { name: 'enable-cert-reload', aliases: [], kind: 'bool', default: 'false', help: 'with --cert-path: watch the directory and serve a rotated tls.crt/tls.key to new connections, 250ms after the last change (GIE v1.5.0 pkg/common/certs.go NewCertReloader); a pair that fails to load is logged and the previous one stays. Without --cert-path it changes nothing (reported as ignored)' },
  { name: 'ha-enable-leader-election', aliases: [], kind: 'ignored-bool', help: 'ignored: every replica serves (active-active; replicas share session bindings through the session store) instead of only the leader reporting ready' },
  { name: 'refresh-prometheus-metrics-interval', aliases: ['refreshPrometheusMetricsInterval'], kind: 'ignored-string', help: 'ignored: pool gauges are computed at each scrape of /metrics' },
  { name: 'metrics-staleness-threshold', aliases: [], kind: 'duration', default: '2s', help: 'GIE\'s: inference_pool_ready_pods and the inference_pool_average_* gauges count the pods whose last successful scrape is at most this old (scheduling staleness is the saturation filter\'s metricsStalenessThreshold parameter)' },
  // llm-d-router v0.10.0's flags (pkg/epp/server/options.go AddFlags @ v0.10.0).
  { name: 'allow-experimental-plugins', aliases: [], kind: 'ignored-bool', help: 'ignored: kvroute has no experimental-plugin gate; every plugin type it knows loads' },
  { name: 'enable-grpc-stream-metrics', aliases: [], kind: 'ignored-bool', help: 'ignored: no ext_proc stream gauges or histograms of upstream\'s; routing is unchanged' },
  { name: 'emit-endpoint-scores', aliases: [], kind: 'bool', default: 'false', help: 'write every scored candidate\'s final score into the answer\'s dynamic metadata, envoy.lb x-gateway-destination-endpoint-scores (a struct of ip:port → score), as llm-d-router v0.10.0 does (handlers/request.go generateMetadata); off by default' },
  // llm-d-router v0.10.0 pkg/epp/server/options.go: Kubernetes quantities with an optional trailing B (sanitizeSizeString),
  // non-negative, that Quantity.AsInt64 holds; 0 keeps the default; the limits go to the gRPC server (runserver.go
  // MaxRecvMsgSize / MaxSendMsgSize), 2Gi and more as no limit (grpc-js's lengths are 32-bit).
  { name: 'grpc-max-recv-msg-size', aliases: [], kind: 'string', help: 'largest gRPC message the ext_proc server accepts, a size like 10MiB or 25MB; 2Gi or more: no limit (default: the request body limit + 1 MiB, so a buffered body fits)' },
  { name: 'grpc-max-send-msg-size', aliases: [], kind: 'string', help: 'largest gRPC message the ext_proc server sends, a size like 10MiB or 25MB; 2Gi or more: no limit (default: unlimited, grpc-js\'s)' },
  { name: 'tls-min-version', aliases: [], kind: 'string', help: 'the lowest TLS version secure serving accepts: VersionTLS10, VersionTLS11, VersionTLS12 or VersionTLS13 (default TLS 1.2, Node\'s); below VersionTLS12 the ext_proc port also lowers OpenSSL\'s security level to 0, without which OpenSSL 3 refuses TLS 1.0 and 1.1. Without secure serving it changes nothing (reported as ignored)' },
  { name: 'tls-cipher-suites', aliases: [], kind: 'string', help: 'comma-separated Go crypto/tls suite names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ...; CSV, so a name may be double-quoted), given again appended (an empty repeat adds nothing): the only TLS 1.0-1.2 suites secure serving allows, in Go\'s preference order; TLS 1.3 suites are not configurable (their names are accepted and change nothing); Go\'s RC4 and 3DES suites, which Node\'s OpenSSL lacks, are not served (warned at start-up); a list with no other TLS 1.2 suite serves TLS 1.3 only. Without secure serving it changes nothing (reported as ignored)' },
  { name: 'metrics-cert-dir', aliases: [], kind: 'unsupported', help: 'is not supported: /metrics is plain HTTP; ignoring the flag would serve it without the TLS asked for (restrict it with the NetworkPolicy, or put the mesh\'s mTLS in front)' },
  { name: 'metrics-client-ca-file', aliases: [], kind: 'unsupported', help: 'is not supported: /metrics cannot require client certificates; ignoring the flag would serve it unauthenticated (restrict it with the NetworkPolicy, or put the mesh\'s mTLS in front)' },
  { name: 'endpoint-selector', aliases: [], kind: 'string', help: 'llm-d-router\'s standalone mode: the pods this Kubernetes label selector matches in the namespace are the pool, no InferencePool (\'app=vllm,env in (prod,staging)\'); needs --endpoint-target-ports and $POD_NAME; exclusive with --pool-name and --endpoints' },
  { name: 'endpoint-target-ports', aliases: [], kind: 'string', help: 'with --endpoint-selector: the pods\' model-server ports, 1-8 comma-separated (\'8000\' or \'8000,8001\'), each its own endpoint per pod; given again, its ports are added, as pflag\'s int slices do' },
  metricNameFlag('total-queued-requests-metric', ['totalQueuedRequestsMetric'], [VLLM_METRIC_NAMES.waiting.name]),
  metricNameFlag('total-running-requests-metric', [], [VLLM_METRIC_NAMES.running.name]),
  metricNameFlag('kv-cache-usage-percentage-metric', ['kvCacheUsagePercentageMetric'], VLLM_METRIC_NAMES.kvUsage.map((m) => m.name)),
  metricNameFlag('cache-info-metric', [], [VLLM_METRIC_NAMES.cacheInfo.name]),
  // An empty value is GIE v1.0–v1.4's "no LoRA scraping"; kvroute reads the family only for a lora-affinity-scorer or lora-room-filter.
  {
    name: 'lora-info-metric', aliases: ['loraInfoMetric'], kind: 'ignored-fixed', fixed: [LORA_INFO_METRIC.name, ''],
    help: `names the model-server LoRA metric; kvroute reads vLLM's ${LORA_INFO_METRIC.name} when a lora-affinity-scorer or lora-room-filter is configured, so that value (or an empty one: no LoRA scraping) is accepted and ignored and any other is refused`,
  },
  // GIE v0.5.1's (cmd/epp/runner/runner.go): the header/metadata names Envoy routes by; kvroute's are fixed to the defaults.
  { name: 'destinationEndpointHintKey', aliases: [], kind: 'ignored-fixed', fixed: ['x-gateway-destination-endpoint'], help: 'names the header and metadata key of the pick; kvroute always uses x-gateway-destination-endpoint (GIE v0.5.1\'s default), so that value is accepted and ignored and any other is refused' },
  { name: 'DestinationEndpointHintMetadataNamespace', aliases: [], kind: 'ignored-fixed', fixed: ['envoy.lb'], help: 'names the metadata namespace of the pick; kvroute always uses envoy.lb (GIE v0.5.1\'s default), so that value is accepted and ignored and any other is refused' },
];

const BY_NAME = new Map<string, FlagSpec>();
for (const f of FLAGS) for (const n of [f.name, ...f.aliases]) BY_NAME.set(n, f);

export function usage(): string {
  const lines = FLAGS.map((f) => {
    const names = [`--${f.name}`, ...f.aliases.map((a) => `--${a}`)].join(', ');
    const value = f.kind === 'bool' || f.kind === 'ignored-bool' ? '' : ` <${f.kind === 'ignored-string' || f.kind === 'ignored-fixed' || f.kind === 'unsupported' ? 'string' : f.kind}>`;
    const def = f.default !== undefined ? ` (default ${f.default})` : '';
    return `  ${names}${value}\n      ${f.help}${def}`;
  });
  return [
    'kvroute-epp: an Envoy ext_proc endpoint picker that routes LLM requests by prefix cache, load and session.',
    '',
    'Usage: kvroute-epp (--pool-name NAME [--pool-namespace NS] | --endpoints HOST:PORT,... | --config-file F naming a file-discovery) [flags]',
    '',
    'Flags take "--flag value" or "--flag=value"; one or two leading dashes. Booleans take "--flag" or "--flag=false"',
    '(a separate "false" word is rejected: Go\'s flag package would silently stop parsing there).',
    '',
    ...lines,
  ].join('\n');
}

function parseValue(spec: FlagSpec, flag: string, raw: string): string | number | boolean {
  switch (spec.kind) {
    case 'int': {
      // pflag's IntVar: strconv.ParseInt(s, 0, 64), so 0x10, 0o17, 1_000 and +5 are integers too.
      const n = parseGoInt(raw);
      if (n === undefined) throw new FlagParseError(`${flag}: must be an integer, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'port': {
      // Upstream's ports are IntVar flags: a value that is not an integer fails the parse; one out of range parses.
      const n = parseGoInt(raw);
      const message = `${flag}: must be a port number from 0 to 65535, got ${JSON.stringify(raw)}`;
      if (n === undefined) throw new FlagParseError(message);
      if (n < 0 || n > 65535) throw new UsageError(message);
      return n;
    }
    case 'ignored-string':
      return raw;
    case 'ignored-fixed':
      if (!spec.fixed!.includes(raw)) throw new UsageError(`${flag}: got ${JSON.stringify(raw)}; ${flag} ${spec.help}`);
      return raw;
    case 'unsupported':
      throw new UsageError(`${flag} ${spec.help}`);
    case 'ignored-bool':
    case 'bool': {
      // Go's strconv.ParseBool, which GIE's flags use.
      const b = parseGoBool(raw);
      if (b === undefined) throw new FlagParseError(`${flag}: must be true or false, got ${JSON.stringify(raw)}`);
      return b;
    }
    case 'duration': {
      // Go's time.ParseDuration (pflag's DurationVar) reads a sign: a negative duration parses, and is refused after;
      // "-0s" is 0 and "+50ms" 50ms, as there.
      const signed = raw.startsWith('-') || raw.startsWith('+');
      let ms: number;
      try {
        ms = parseDuration(signed ? raw.slice(1) : raw);
      } catch (e) {
        throw new FlagParseError(`${flag}: ${(e as Error).message}`);
      }
      if (raw.startsWith('-') && ms > 0) throw new UsageError(`${flag}: must not be negative, got ${JSON.stringify(raw)}`);
      // 0 is GIE's defaultRequestTTL for "no deadline of the EPP's own"; every other duration flag must be positive.
      if (ms === 0 && spec.name === 'flow-control-max-wait') return Infinity;
      // GIE takes 0 here too: no pod's metrics are fresh enough, so the pool gauges read no ready pod.
      if (ms === 0 && spec.name === 'metrics-staleness-threshold') return 0;
      // llm-d-router: "A drainTimeout of 0 stops the servers as soon as the manager terminates."
      if (ms === 0 && spec.name === 'drain-timeout') return 0;
      if (ms <= 0) throw new UsageError(`${flag}: must be positive, got ${JSON.stringify(raw)}`);
      return ms;
    }
    case 'string':
      if (raw === '') throw new UsageError(`${flag}: must not be empty`);
      return raw;
  }
}

/**
 * Flags upstream declares as slices (`fs.IntSliceVar` in GIE v1.5.0 / llm-d-router v0.10.0 pkg/epp/server/options.go):
 * pflag's Set replaces the default on the first use and appends on every later one (spf13/pflag int_slice.go), so a
 * repeated one adds to the list; `--tls-cipher-suites` is a string slice, the same way.
 */
const APPENDING: ReadonlySet<string> = new Set(['endpoint-target-ports', 'tls-cipher-suites']);

/** String flags whose empty value stands for unset (their default, or the environment's): GIE's pool and config flags. */
const EMPTY_IS_UNSET: ReadonlySet<string> = new Set(['config-file', 'config-text', 'pool-name', 'pool-namespace', 'pool-group', 'endpoints', 'endpoint-selector', 'endpoint-target-ports', 'kubeconfig', 'cert-path', 'tls-min-version', 'tls-cipher-suites']);

/**
 * Parses `argv` (without `node` and the script). Returns `undefined` when `--help` was asked for.
 * @throws FlagParseError (exit 2) when argv does not parse as flags, UsageError (exit 1) for a value refused after;
 *   both name the offending flag.
 */
export function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): EppOptions | undefined {
  const values = new Map<string, string | number | boolean>();
  /** Each flag's value as written, for errors that echo it. */
  const rawValues = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new FlagParseError(`unexpected argument ${JSON.stringify(arg)}: flags start with - or --, and this program takes no positional arguments`);
    const [, name, inline] = m;
    const spec = BY_NAME.get(name);
    if (!spec) {
      const near = [...BY_NAME.keys()].find((k) => k.toLowerCase().replace(/-/g, '') === name.toLowerCase().replace(/-/g, ''));
      throw new FlagParseError(`unknown flag ${arg.split('=')[0]}${near ? ` (did you mean --${near}?)` : ''}; see --help`);
    }
    // A repeated flag keeps its last value, as Go's pflag does: GIE's chart writes some flags itself and then appends
    // the release's `inferenceExtension.flags` (config/charts/epplib/templates/_deployment.yaml @ v1.5.0 L89-134).
    // A slice flag's earlier values are kept and the new ones appended.
    const earlier = APPENDING.has(spec.name) ? rawValues.get(spec.name) : undefined;
    let raw: string;
    if (inline !== undefined) {
      raw = inline;
    } else if (spec.kind === 'bool' || spec.kind === 'ignored-bool') {
      if (argv[i + 1] === 'true' || argv[i + 1] === 'false') {
        throw new FlagParseError(`--${name} ${argv[i + 1]}: write --${name}=${argv[i + 1]} (a boolean flag takes its value after "=")`);
      }
      raw = 'true';
    } else {
      if (i + 1 >= argv.length) throw new FlagParseError(`--${name}: needs a value`);
      raw = argv[++i];
    }
    // An empty value of a flag whose absence means "the default" is that absence, as GIE documents for --pool-namespace
    // ("leave the flag unset or set it to an empty string", site-src/guides/epp-configuration/flags.md @ v1.5.0) and
    // kvroute extends to its other pool and config flags: Helm templates render unset values as "".
    // A slice flag's empty use adds no entry (pflag string_slice.go readAsCSV("") is []string{}), so its earlier
    // values stay: `--tls-cipher-suites X --tls-cipher-suites ""` is [X] upstream, not the default suites.
    if (raw === '' && EMPTY_IS_UNSET.has(spec.name)) {
      if (earlier === undefined) {
        values.delete(spec.name);
        rawValues.delete(spec.name);
      }
      continue;
    }
    if (earlier !== undefined) raw = `${earlier},${raw}`;
    values.set(spec.name, parseValue(spec, `--${name}`, raw));
    rawValues.set(spec.name, raw);
  }
  if (values.get('help') === true) return undefined;

  const get = <T extends string | number | boolean>(name: string): T | undefined => {
    if (values.has(name)) return values.get(name) as T;
    const spec = BY_NAME.get(name)!;
    return spec.default === undefined ? undefined : (parseValue(spec, `--${name}`, spec.default) as T);
  };

  const endpoints = get<string>('endpoints');
  const standalone = readEndpointSelector(get<string>('endpoint-selector'), get<string>('endpoint-target-ports'), get<string>('pool-name'), endpoints, env);
  const poolName = get<string>('pool-name') ?? standalone?.poolName;
  const configFile = get<string>('config-file');
  const configText = get<string>('config-text');
  if (configFile && configText) throw new UsageError('--config-file and --config-text are exclusive');
  // With a config, its dataLayer.discovery may name the pool's endpoints (llm-d-router v0.10.0 file-discovery): the
  // runner checks once the config is read.
  if (!poolName && !endpoints && !configFile && !configText) {
    throw new UsageError('one of --pool-name (Kubernetes discovery) or --endpoints (static) is required, or a config whose dataLayer.discovery names a file-discovery plugin');
  }
  if (poolName && endpoints) throw new UsageError('--pool-name and --endpoints are exclusive: discover from Kubernetes or list endpoints, not both');
  if (endpoints) {
    try {
      parseEndpointList(endpoints);
    } catch (e) {
      throw new UsageError(`--endpoints: ${(e as Error).message}`);
    }
  }

  const poolGroup = get<string>('pool-group');
  if (poolGroup !== undefined && !(POOL_GROUPS as readonly string[]).includes(poolGroup)) {
    throw new UsageError(`--pool-group: must be inference.networking.x-k8s.io or inference.networking.k8s.io, got ${JSON.stringify(poolGroup)}`);
  }

  // Upstream reads --cert-path only under SecureServing (pkg/epp/server/runserver.go @ llm-d-router v0.10.0 and
  // GIE v1.5.0: `if r.SecureServing { if r.CertPath != "" {...} }`), so an explicit --secure-serving=false serves
  // plaintext and the path goes unused: reported as ignored below, not refused (an upstream command line still starts).
  const plaintextAsked = values.get('secure-serving') === false;
  const certPathGiven = get<string>('cert-path');
  const certPath = plaintextAsked ? undefined : certPathGiven;
  const secureServing = get<boolean>('secure-serving') === true || certPath !== undefined;
  const responseBodyMode = get<string>('response-body-mode')!;
  if (responseBodyMode !== 'none' && responseBodyMode !== 'full-duplex') {
    throw new UsageError(`--response-body-mode: must be none or full-duplex, got ${JSON.stringify(responseBodyMode)}`);
  }
  const bodyMode = get<string>('request-body-mode')!;
  if (bodyMode !== 'full-duplex' && bodyMode !== 'buffered') {
    throw new UsageError(`--request-body-mode: must be full-duplex or buffered, got ${JSON.stringify(bodyMode)}`);
  }
  const scheme = get<string>('model-server-metrics-scheme')!;
  if (scheme !== 'http' && scheme !== 'https') {
    throw new UsageError(`--model-server-metrics-scheme: must be http or https, got ${JSON.stringify(scheme)}`);
  }
  const scrapeMode = get<string>('metrics-scrape-mode')!;
  if (!(SCRAPE_MODES as readonly string[]).includes(scrapeMode)) {
    throw new UsageError(`--metrics-scrape-mode: must be ${SCRAPE_MODES.join(', ')}, got ${JSON.stringify(scrapeMode)}`);
  }
  const scrapeWorkers = get<number>('metrics-scrape-workers')!;
  if (scrapeWorkers < 1 || scrapeWorkers > 64) throw new UsageError(`--metrics-scrape-workers: must be 1 to 64, got ${scrapeWorkers}`);
  if (values.has('metrics-scrape-workers') && scrapeMode !== 'worker') {
    throw new UsageError(`--metrics-scrape-workers applies to --metrics-scrape-mode=worker only, got mode ${scrapeMode}`);
  }
  const scrapeBudget = get<number>('metrics-scrape-budget')!;
  if (scrapeBudget < 0) throw new UsageError(`--metrics-scrape-budget: must be >= 0 (0: no budget), got ${scrapeBudget}`);
  if (values.has('metrics-scrape-budget') && scrapeMode !== 'worker') {
    throw new UsageError(`--metrics-scrape-budget applies to --metrics-scrape-mode=worker only, got mode ${scrapeMode}`);
  }
  for (const flag of ['flow-control-max-queued', 'flow-control-max-queued-bytes', 'flow-control-dispatch-per-tick']) {
    const n = get<number>(flag);
    if (n !== undefined && n < 1) throw new UsageError(`--${flag}: must be an integer >= 1, got ${n}`);
  }
  const maxHeaderPriority = get<number>('flow-control-max-header-priority');
  if (maxHeaderPriority !== undefined && Math.abs(maxHeaderPriority) > MAX_FLOW_PRIORITY) {
    throw new UsageError(`--flow-control-max-header-priority: must be an integer between -${MAX_FLOW_PRIORITY} and ${MAX_FLOW_PRIORITY} (x-kvroute-priority's range), got ${maxHeaderPriority}`);
  }
  const maxMessageTimeout = get<number>('ext-proc-max-message-timeout');
  // ext_proc.proto @ v1.35.0: max_message_timeout lte 3600s; Envoy would NACK the filter above it.
  if (maxMessageTimeout !== undefined && maxMessageTimeout > 3_600_000) {
    throw new UsageError(`--ext-proc-max-message-timeout: must be at most 1h (Envoy's bound for max_message_timeout), got ${rawValues.get('ext-proc-max-message-timeout')}`);
  }
  const flowControl: FlowControlFlags = {
    enabled: get<boolean>('flow-control'),
    maxQueued: get<number>('flow-control-max-queued'),
    maxQueuedBytes: get<number>('flow-control-max-queued-bytes'),
    maxWaitMs: get<number>('flow-control-max-wait'),
    dispatchPerTick: get<number>('flow-control-dispatch-per-tick'),
    dispatchIntervalMs: get<number>('flow-control-dispatch-interval'),
    maxHeaderPriority,
    maxMessageTimeoutMs: maxMessageTimeout,
  };
  const ignoredFlags = FLAGS.filter((f) => f.kind.startsWith('ignored-') && values.has(f.name)).map((f) => `--${f.name}`);
  // Upstream reads the target ports only with a selector and ignores them beside --pool-name (options.go Validate).
  if (!standalone && values.has('endpoint-target-ports')) ignoredFlags.push('--endpoint-target-ports');
  // Upstream reloads only a --cert-path certificate (runserver.go: `r.CertPath != "" && r.EnableCertReload`).
  if (certPathGiven !== undefined && certPath === undefined) ignoredFlags.push('--cert-path');
  if (certPath === undefined && values.has('enable-cert-reload')) ignoredFlags.push('--enable-cert-reload');
  // Upstream applies its TLS overrides to the secure listener only (runserver.go applyTLSOverrides under SecureServing).
  // A TLS override's value parsed with its flag named in the error, and reported as ignored without secure serving.
  const tlsOverride = <T>(flag: string, parse: (value: string) => T): T | undefined => {
    const value = get<string>(flag);
    if (value === undefined) return undefined;
    let parsed: T;
    try {
      parsed = parse(value);
    } catch (e) {
      throw new UsageError(`--${flag}: ${(e as Error).message}`);
    }
    if (!secureServing) ignoredFlags.push(`--${flag}`);
    return parsed;
  };
  const tlsMinVersion = tlsOverride('tls-min-version', parseTlsVersion);
  const tlsCipherSuites = tlsOverride('tls-cipher-suites', parseCipherSuites);
  const verbosity = get<number>('v')!;
  if (verbosity < 0) throw new UsageError(`--v: must be >= 0, got ${verbosity}`);

  return {
    grpcPort: get<number>('grpc-port')!,
    grpcHealthPort: get<number>('grpc-health-port')!,
    metricsPort: get<number>('metrics-port')!,
    host: get<string>('host'),
    configFile,
    configText,
    poolName,
    // GIE v1.5.0 cmd/epp/runner/runner.go resolvePoolNamespace: the flag, else $NAMESPACE, else "default".
    poolNamespace: get<string>('pool-namespace') ?? (env.NAMESPACE || 'default'),
    ...(poolGroup !== undefined ? { poolGroup: poolGroup as PoolGroup } : {}),
    endpoints,
    ...(standalone ? { endpointSelector: { selector: standalone.selector, targetPorts: standalone.targetPorts } } : {}),
    kubeconfig: get<string>('kubeconfig'),
    refreshMetricsIntervalMs: get<number>('refresh-metrics-interval')!,
    metricsStalenessThresholdMs: get<number>('metrics-staleness-threshold')!,
    commit: env.KVROUTE_COMMIT_SHA || undefined,
    buildRef: env.KVROUTE_BUILD_REF || undefined,
    deprecatedSaturationEnv: Object.fromEntries(DEPRECATED_SATURATION_ENV.filter((k) => env[k] !== undefined).map((k) => [k, env[k]!])),
    deprecatedFeatureGateEnv: Object.fromEntries(DEPRECATED_ENV_FEATURE_GATES.filter((g) => env[g.env] !== undefined).map((g) => [g.env, env[g.env]!])),
    modelServerMetricsPort: get<number>('model-server-metrics-port'),
    modelServerMetricsPath: get<string>('model-server-metrics-path')!,
    modelServerMetricsScheme: scheme,
    modelServerMetricsInsecureSkipVerify: get<boolean>('model-server-metrics-https-insecure-skip-verify')!,
    metricsScrapeMode: scrapeMode as ScrapeMode,
    metricsScrapeWorkers: scrapeWorkers,
    metricsScrapeBudget: scrapeBudget,
    ignoredFlags,
    disableEndpointSubsetFilter: get<boolean>('disable-endpoint-subset-filter')!,
    certPath,
    enableCertReload: certPath !== undefined && get<boolean>('enable-cert-reload') === true,
    secureServing,
    ...(secureServing && tlsMinVersion !== undefined ? { tlsMinVersion } : {}),
    // options.go Complete applies a list only when it names a suite (len(opts.TLSCipherSuites) > 0).
    ...(secureServing && tlsCipherSuites !== undefined && tlsCipherSuites.length > 0 ? { tlsCipherSuites } : {}),
    requestBodyMode: bodyMode,
    responseBodyMode,
    drainTimeoutMs: get<number>('drain-timeout')!,
    shutdownGracePeriodMs: get<number>('shutdown-grace-period')!,
    ...messageSizes(get<string>('grpc-max-recv-msg-size'), get<string>('grpc-max-send-msg-size')),
    emitEndpointScores: get<boolean>('emit-endpoint-scores')!,
    verbosity,
    flowControl,
  };
}

/**
 * `--grpc-max-recv-msg-size` and `--grpc-max-send-msg-size` as llm-d-router v0.10.0 reads them
 * (`pkg/epp/server/options.go` Complete, sanitizeSizeString): a Kubernetes quantity (`10Mi`, `25M`, `1048576`) with an
 * optional trailing `B`/`b`, that `Quantity.AsInt64` holds (else upstream's "overflows maximum supported size", for
 * `1.5Mi`, `4Ei`, `1000m` or 19 digits too: see quantityAsInt64), not negative; 0 leaves the server's default. grpc-js
 * holds a limit in a 32-bit signed length, so 2Gi and more (grpc-go's limit of that many bytes, which no message
 * reaches) is -1, grpc-js's "no limit".
 */
function messageSizes(recv: string | undefined, send: string | undefined): { grpcMaxRecvMsgSize?: number; grpcMaxSendMsgSize?: number } {
  const size = (flag: string, text: string): number => {
    let s = text.trim();
    if (s.length > 1 && (s.endsWith('B') || s.endsWith('b'))) s = s.slice(0, -1);
    let bytes: bigint | undefined;
    try {
      bytes = quantityAsInt64(s);
    } catch (e) {
      throw new UsageError(`--${flag} ${(e as Error).message}`);
    }
    if (bytes === undefined) throw new UsageError(`--${flag} overflows maximum supported size: ${s}`);
    if (bytes < 0n) throw new UsageError(`--${flag} must be non-negative, got ${JSON.stringify(text)}`);
    return bytes >= 2n ** 31n ? -1 : Number(bytes);
  };
  return {
    ...(recv !== undefined ? { grpcMaxRecvMsgSize: size('grpc-max-recv-msg-size', recv) } : {}),
    ...(send !== undefined ? { grpcMaxSendMsgSize: size('grpc-max-send-msg-size', send) } : {}),
  };
}
