import type { PluginType } from './catalogue';
import { ConfigError, describeValue } from './errors';
import { FieldReader } from './fields';
import type { ResolvedPluginParameters } from './types';

/**
 * Per-type parameter parsing: validates a plugin's raw `parameters` and fills every default. The loader uses it to
 * normalize configs, and the scheduler's plugin factories receive its output, so the defaults live only here.
 */

type ParameterParser<T extends PluginType> = (fields: FieldReader) => ResolvedPluginParameters<T>;

const none = (): Record<string, never> => ({});

const picker = (fields: FieldReader) => ({ maxNumOfEndpoints: fields.integer('maxNumOfEndpoints', 1, 1) });

const PARAMETER_PARSERS: { readonly [T in PluginType]: ParameterParser<T> } = {
  'single-profile-handler': none,
  'max-score-picker': picker,
  'random-picker': picker,
  'prefix-cache-scorer': (fields) => {
    const mode = fields.raw('mode');
    if (mode === 'cache_tracking') {
      throw new ConfigError(
        fields.fieldPath('mode'),
        '"cache_tracking" needs vLLM KV events (ZMQ) and a tokenizer, which kvroute does not support yet; ' +
          'use "estimate" (the default)',
      );
    }
    if (mode !== undefined && mode !== null && mode !== 'estimate') {
      throw new ConfigError(fields.fieldPath('mode'), `must be "estimate", got ${describeValue(mode)}`);
    }
    return {
      mode: 'estimate',
      hashBlockSize: fields.integer('hashBlockSize', 64, 1),
      maxPrefixBlocksToMatch: fields.integer('maxPrefixBlocksToMatch', 256, 1),
      lruCapacityPerServer: fields.integer('lruCapacityPerServer', 31250, 1),
    };
  },
  'queue-scorer': none,
  'kv-cache-utilization-scorer': none,
  'kv-cache-scorer': none,
  'load-aware-scorer': (fields) => ({ threshold: fields.integer('threshold', 128, 1) }),
  'active-request-scorer': (fields) => ({ requestTimeout: fields.duration('requestTimeout', '2m') }),
  'session-affinity-scorer': none,
  'session-affinity-filter': (fields) => ({
    // Lower-cased because request headers reach plugins with lower-case names.
    headers: fields.stringList('headers', ['x-session-id', 'x-session-token'], { minLength: 1 }).map((h) => h.toLowerCase()),
    ttl: fields.duration('ttl', '30m'),
    capacity: fields.integer('capacity', 65536, 1),
  }),
  'decode-filter': none,
  'prefill-filter': none,
  'by-label': (fields) => ({
    label: fields.requiredString('label'),
    validValues: fields.stringList('validValues', []),
    allowsNoLabel: fields.boolean('allowsNoLabel', false),
  }),
  'saturation-filter': (fields) => ({
    queueDepthThreshold: fields.integer('queueDepthThreshold', 5, 0),
    kvCacheUtilThreshold: fields.number('kvCacheUtilThreshold', 0.8, 0, 1),
    metricsStalenessThreshold: fields.duration('metricsStalenessThreshold', '200ms'),
    maxConsecutiveScrapeFailures: fields.integer('maxConsecutiveScrapeFailures', 3, 0),
  }),
};

/**
 * Validates `raw` as the parameters of `type` and returns them with defaults filled.
 * @param path where the parameters sit in the document, e.g. `plugins[2].parameters`, for error messages.
 * @throws ConfigError naming the offending field.
 */
export function resolvePluginParameters<T extends PluginType>(
  type: T,
  raw: unknown,
  path = 'parameters',
): ResolvedPluginParameters<T> {
  const fields = FieldReader.ofOptionalMap(raw, path);
  const parse = PARAMETER_PARSERS[type] as ParameterParser<T>;
  const resolved = parse(fields);
  fields.finish();
  return resolved;
}
