/**
 * GIE's data-layer and request-parser plugins (GIE v1.5.0, `pkg/epp/framework/plugins/datalayer/...` and
 * `requesthandling/parsers/openai`), which upstream's own configs list and its `dataLayer` and `parser` sections refer
 * to: GIE's Helm chart renders `metrics-data-source` and `core-metrics-extractor` into every config, and llm-d
 * v0.8.0's precise-prefix config adds `endpoint-notification-source`. kvroute's datastore does this work itself (it
 * discovers the pool's pods and scrapes vLLM's metrics, `src/datastore/`), and it parses OpenAI bodies itself
 * (`@kvroute/protocol/openai`), so these plugins act at no extension point here: they are accepted so upstream configs
 * load, their parameters are checked, and `metrics-data-source`'s parameters set how pods are scraped (as upstream
 * moved those settings from flags into this plugin). Parameters kvroute cannot honour are errors naming the field.
 */
import { DURATION_FORMAT_HINT, parseDuration } from '../../config/duration';
import { ConfigError } from '../../config/errors';
import { definePlugin, NO_PARAMETERS, parameters } from '../plugin';

/** A plugin that only carries its name and type: the work is done by kvroute's datastore or request control. */
class DataLayerPlugin {
  constructor(readonly type: string, readonly name: string) {}
}

export interface MetricsDataSourceParameters {
  /** `http` or `https`. @default "http" */
  scheme?: 'http' | 'https';
  /** @default "/metrics" */
  path?: string;
  /** With https, accept the model servers' self-signed certificates. @default true */
  insecureSkipVerify?: boolean;
  /**
   * llm-d-router v0.10.0's: scrape this port on every endpoint instead of its own (1-65535; `WithPortOverride`).
   * @default the endpoint's port, or `--model-server-metrics-port`
   */
  port?: number;
  /**
   * llm-d-router v0.10.0's: the scrape period, a Go duration, rounded to a multiple of the base tick
   * (`--refresh-metrics-interval`, lowered to it when shorter, not below 50ms); "" or 0: every base tick.
   * @default ""
   */
  interval?: string;
  /** llm-d-router v0.10.0's TLS files: read only with `https` (see the parser for which kvroute can honour). */
  caCertPath?: string;
  clientCertPath?: string;
  clientKeyPath?: string;
}

/** `metrics-data-source` (GIE v1.5.0 `datalayer/source/metrics/datasource.go`): where pods' metrics are scraped. */
export const metricsDataSource = definePlugin({
  type: 'metrics-data-source',
  kinds: [],
  parameters: parameters<MetricsDataSourceParameters>((fields) => {
    const scheme = fields.optionalString('scheme') ?? 'http';
    if (scheme !== 'http' && scheme !== 'https') {
      throw new ConfigError(fields.fieldPath('scheme'), `must be http or https, got ${JSON.stringify(scheme)}`);
    }
    const path = fields.optionalString('path') ?? '/metrics';
    if (!path.startsWith('/')) throw new ConfigError(fields.fieldPath('path'), `must start with "/", got ${JSON.stringify(path)}`);
    const insecureSkipVerify = fields.boolean('insecureSkipVerify', true);
    // llm-d-router v0.10.0 datalayer/source/metrics/datasource.go MetricsDataSourceFactory: `Port *int`, refused outside
    // 1-65535 with this message; `Interval string`, read by http.ParseIntervalOption (time.ParseDuration, "" a no-op)
    // and refused when negative by NewHTTPDataSource.
    const port = fields.integer('port', 0, Number.MIN_SAFE_INTEGER);
    if (fields.has('port') && (port < 1 || port > 65535)) {
      throw new ConfigError(fields.fieldPath('port'), `invalid port ${port}: must be between 1 and 65535`);
    }
    const interval = fields.goString('interval', DURATION_FORMAT_HINT);
    if (interval !== '') {
      const unsigned = interval.startsWith('+') ? interval.slice(1) : interval;
      if (unsigned.startsWith('-')) throw new ConfigError(fields.fieldPath('interval'), `interval must be non-negative, got ${JSON.stringify(interval)}`);
      try {
        parseDuration(unsigned);
      } catch (e) {
        throw new ConfigError(fields.fieldPath('interval'), `invalid interval ${JSON.stringify(interval)}: ${(e as Error).message}`);
      }
    }
    // The TLS files matter only with https (upstream builds its TLS config for https alone: http.NewHTTPDataSource), and
    // the CA only when certificates are verified (tlsClientConfig: "Ignored when SkipVerify is set"). kvroute's scraper
    // verifies against Node's CA bundle and presents no client certificate, so where upstream would use them they are
    // refused rather than silently not used.
    const tls = { caCertPath: fields.goString('caCertPath'), clientCertPath: fields.goString('clientCertPath'), clientKeyPath: fields.goString('clientKeyPath') };
    if (scheme === 'https') {
      if (!insecureSkipVerify && tls.caCertPath !== '') {
        throw new ConfigError(fields.fieldPath('caCertPath'), 'is not supported: kvroute verifies the model servers\' certificates against Node\'s CA bundle only (or set insecureSkipVerify: true, the default)');
      }
      for (const key of ['clientCertPath', 'clientKeyPath'] as const) {
        if (tls[key] !== '') throw new ConfigError(fields.fieldPath(key), 'is not supported: kvroute\'s scraper presents no client certificate (mTLS to the model servers)');
      }
    }
    return {
      scheme, path, insecureSkipVerify,
      // Rendered only when given, so configs without them render unchanged.
      ...(fields.has('port') ? { port } : {}),
      ...(interval !== '' ? { interval } : {}),
      ...Object.fromEntries(Object.entries(tls).filter(([, value]) => value !== '')),
    } as Required<MetricsDataSourceParameters>;
  }),
  create: (name) => new DataLayerPlugin('metrics-data-source', name),
});

/**
 * llm-d-router v0.10.0's `DefaultEngineTypeLabelKey` (`pkg/epp/framework/plugins/datalayer/extractor/metrics/
 * mapping_registry.go`); GIE v1.5.0's was `inference.networking.k8s.io/engine-type`, which v0.10.0 keeps as
 * `legacyGAIEEngineTypeLabelKey` and reads from a pod whose `engineLabelKey` label is missing or empty
 * (`getEngineTypeFromEndpoint`, `extractor.go`). kvroute reads no pod's engine label: every pod is scraped as vLLM.
 */
export const DEFAULT_ENGINE_LABEL_KEY = 'llm-d.ai/engine-type';

export interface CoreMetricsExtractorParameters {
  /** The engine whose metric names are read. kvroute reads vLLM's only. @default "vllm" */
  defaultEngine?: 'vllm';
  /** The pod label naming a pod's engine; every pod is read as vLLM here. @default llm-d-router v0.10.0's "llm-d.ai/engine-type" */
  engineLabelKey?: string;
}

/**
 * `core-metrics-extractor` (GIE v1.5.0 `datalayer/extractor/metrics/factories.go`): which metric names a page is read
 * with. kvroute reads vLLM's (`src/datastore/vllm-metrics.ts`), so only the vLLM engine is accepted, and per-engine
 * metric specs (`engineConfigs`) are refused rather than silently not applied.
 */
export const coreMetricsExtractor = definePlugin({
  type: 'core-metrics-extractor',
  kinds: [],
  parameters: parameters<CoreMetricsExtractorParameters>((fields) => {
    const engine = fields.optionalString('defaultEngine') ?? 'vllm';
    if (engine !== 'vllm') {
      throw new ConfigError(fields.fieldPath('defaultEngine'), `kvroute reads vLLM's metrics only: must be vllm, got ${JSON.stringify(engine)}`);
    }
    if (fields.has('engineConfigs')) {
      throw new ConfigError(fields.fieldPath('engineConfigs'), 'per-engine metric names are not supported: kvroute reads vLLM\'s metric names');
    }
    return { defaultEngine: 'vllm', engineLabelKey: fields.optionalString('engineLabelKey') ?? DEFAULT_ENGINE_LABEL_KEY };
  }),
  create: (name) => new DataLayerPlugin('core-metrics-extractor', name),
});

/** `endpoint-notification-source` (GIE v1.5.0 `datalayer/source/notifications`): pod add/remove events; kvroute's discovery. */
export const endpointNotificationSource = definePlugin({
  type: 'endpoint-notification-source',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new DataLayerPlugin('endpoint-notification-source', name),
});

/**
 * `openai-parser` (GIE v1.5.0 `requesthandling/parsers/openai`): OpenAI-style bodies. GIE's only parser reads every
 * request; in llm-d-router v0.10.0's registry it claims the OpenAI paths (`requestcontrol/request-parsers.ts`).
 */
export const openaiParser = definePlugin({
  type: 'openai-parser',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new DataLayerPlugin('openai-parser', name),
});

/**
 * `passthrough-parser` (GIE v1.5.0 `requesthandling/parsers/passthrough`): the body is not read. Named as the config's
 * `parser`, request control schedules every request with no model and no prompt (scorers that need one score it 0),
 * counts it with an empty model name, and forwards the body untouched, as GIE's `ParseRequest` returns the raw
 * payload and `ParseResponse` nothing.
 */
export const passthroughParser = definePlugin({
  type: 'passthrough-parser',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new DataLayerPlugin('passthrough-parser', name),
});

export interface FileDiscoveryParameters {
  /** The endpoints file, YAML or JSON (`{endpoints: [{name, namespace, address, port, labels}]}`). Required. */
  path?: string;
  /** Re-read the file when it is written or replaced. @default false */
  watchFile?: boolean;
}

/**
 * `file-discovery` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/datalayer/discovery/file/plugin.go`): the pool's
 * endpoints from a file, for an EPP with no Kubernetes. Named by `dataLayer.discovery.pluginRef`, it replaces
 * InferencePool discovery (`src/datastore/file-discovery.ts` does the work; the runner starts it). Listed but not named
 * there, it does nothing, as upstream's plugin is only started as the discovery.
 */
export const fileDiscovery = definePlugin({
  type: 'file-discovery',
  kinds: [],
  parameters: parameters<FileDiscoveryParameters>((fields) => {
    if (!fields.has('path')) throw new ConfigError(fields.fieldPath('path'), "is required: the endpoints file (llm-d-router file-discovery's 'path' parameter)");
    return { path: fields.requiredString('path'), watchFile: fields.boolean('watchFile', false) };
  }),
  create: (name) => new DataLayerPlugin('file-discovery', name),
});

/**
 * `anthropic-parser` (llm-d-router v0.10.0 `requesthandling/parsers/anthropic`): Anthropic Messages API bodies on
 * `…/messages` (model, stream, system and messages as the prompt), `…/messages/count_tokens` forwarded unread; usage
 * from Anthropic's response fields (`requestcontrol/request-parsers.ts`, `response-usage.ts`).
 */
export const anthropicParser = definePlugin({
  type: 'anthropic-parser',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new DataLayerPlugin('anthropic-parser', name),
});

/**
 * `vllmhttp-parser` (llm-d-router v0.10.0 `requesthandling/parsers/vllmhttp`): vLLM's `…/inference/v1/generate`, whose
 * prompt is pre-tokenized (`token_ids`); usage read as the openai parser reads it.
 */
export const vllmhttpParser = definePlugin({
  type: 'vllmhttp-parser',
  kinds: [],
  parameters: NO_PARAMETERS,
  create: (name) => new DataLayerPlugin('vllmhttp-parser', name),
});
