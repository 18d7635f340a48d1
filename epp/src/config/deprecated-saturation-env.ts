import { parseDuration } from './duration';
import type { EndpointPickerConfig, PluginSpec } from './types';

/**
 * GIE v1.0–v1.4's environment variables for the saturation detector, which manifests of that time set on the EPP's
 * container. GIE v1.0–v1.1 read them as the detector's whole configuration (`LoadConfigFromEnv`,
 * pkg/epp/saturationdetector/config.go @ v1.0.0); v1.2–v1.4 let each one that is set override the config file
 * (`applyDeprecatedSaturationConfig`, cmd/epp/runner/runner.go @ v1.4.0 L566-589); v1.5.0 dropped them. kvroute follows
 * v1.4: a set variable overrides the parameter of every `saturation-filter` and `utilization-detector` in the config,
 * with GIE's parsing: a value that does not parse, or is out of range, gives GIE's default.
 */
export const DEPRECATED_SATURATION_ENV = ['SD_QUEUE_DEPTH_THRESHOLD', 'SD_KV_CACHE_UTIL_THRESHOLD', 'SD_METRICS_STALENESS_THRESHOLD'] as const;
export type DeprecatedSaturationEnv = Partial<Record<(typeof DEPRECATED_SATURATION_ENV)[number], string>>;

/** The plugin types that take the detector's three parameters. */
const DETECTOR_TYPES: ReadonlySet<string> = new Set(['saturation-filter', 'utilization-detector']);

/** GIE's `utilizationdetector` defaults (detector.go @ v1.4.0), which a bad value falls back to. */
const DEFAULTS = { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThreshold: '200ms' } as const;

/**
 * The config with the variables of `env` that are set applied, and a line for the log per variable (GIE logs each as
 * deprecated, and a value it cannot parse as an error).
 */
export function applyDeprecatedSaturationEnv(config: EndpointPickerConfig, env: DeprecatedSaturationEnv): { config: EndpointPickerConfig; notes: string[] } {
  const overrides: Record<string, number | string> = {};
  const notes: string[] = [];
  const set = (name: string, key: keyof typeof DEFAULTS, value: number | string, valid: boolean) => {
    overrides[key] = valid ? value : DEFAULTS[key];
    notes.push(valid
      ? `${name}=${env[name as keyof DeprecatedSaturationEnv]} sets ${key} (GIE v1.0-v1.4's deprecated saturation-detector variable; GIE v1.5 ignores it)`
      : `${name}=${JSON.stringify(env[name as keyof DeprecatedSaturationEnv])} is not valid: ${key} is GIE's default ${DEFAULTS[key]}`);
  };
  const depth = env.SD_QUEUE_DEPTH_THRESHOLD;
  if (depth !== undefined) {
    // Go's strconv.Atoi: an optional sign and decimal digits.
    const n = /^[+-]?\d+$/.test(depth) ? Number(depth) : NaN;
    set('SD_QUEUE_DEPTH_THRESHOLD', 'queueDepthThreshold', n, Number.isSafeInteger(n) && n > 0);
  }
  const kv = env.SD_KV_CACHE_UTIL_THRESHOLD;
  if (kv !== undefined) {
    const x = kv.trim() === kv && kv !== '' ? Number(kv) : NaN;
    set('SD_KV_CACHE_UTIL_THRESHOLD', 'kvCacheUtilThreshold', x, x > 0 && x < 1);
  }
  const staleness = env.SD_METRICS_STALENESS_THRESHOLD;
  if (staleness !== undefined) {
    let ms = NaN;
    try {
      ms = parseDuration(staleness);
    } catch {
      // GIE's GetEnvDuration logs the error and keeps the default.
    }
    set('SD_METRICS_STALENESS_THRESHOLD', 'metricsStalenessThreshold', staleness, ms > 0);
  }
  if (Object.keys(overrides).length === 0) return { config, notes };
  const plugins = config.plugins.map((p) => (DETECTOR_TYPES.has(p.type)
    ? ({ ...p, parameters: { ...(p.parameters as Record<string, unknown> | undefined), ...overrides } } as PluginSpec)
    : p));
  if (!config.plugins.some((p) => DETECTOR_TYPES.has(p.type))) notes.push('the config has no saturation-filter or utilization-detector for these variables to set');
  return { config: { ...config, plugins }, notes };
}
