import { pluginDefinition, type PluginType } from './catalogue';
import { FieldReader } from './fields';
import type { ResolvedPluginParameters } from './types';

/**
 * Validates `raw` as the parameters of `type` and returns them with every default filled, using the parser the
 * plugin's module declares (so each default lives in one place, next to the plugin). The loader uses it to normalize
 * configs, and the plugin factories receive its output.
 * @param path where the parameters sit in the document, e.g. `plugins[2].parameters`, for error messages.
 * @throws ConfigError naming the offending field.
 */
export function resolvePluginParameters<T extends PluginType>(
  type: T,
  raw: unknown,
  path = 'parameters',
): ResolvedPluginParameters<T> {
  const fields = FieldReader.ofOptionalMap(raw, path);
  const resolved = pluginDefinition(type).parameters.parse(fields);
  fields.finish();
  return resolved as ResolvedPluginParameters<T>;
}
