import { ConfigError } from '../../config/errors';
import type { Plugin, PluginHandle } from '../framework';

/**
 * The plugin a parameter (`path`, its value `named`) refers to, as llm-d-router's readers of another plugin's data name
 * their producer: by name when the parameter is set, else the config's one plugin that `matches` (undefined when none).
 * With several matches and no name: the one named `preferNamed` when given (a plugin named by default carries its
 * type's name, upstream's default producer key), else a ConfigError asking for the name.
 */
export function referencedPlugin(
  handle: PluginHandle,
  plugins: readonly Plugin[],
  path: string,
  named: string,
  matches: (plugin: Plugin) => boolean,
  preferNamed?: string,
): Plugin | undefined {
  if (named !== '') {
    const plugin = handle.plugin?.(named) ?? plugins.find((x) => x.name === named);
    if (plugin === undefined) throw new ConfigError(path, `no plugin named ${JSON.stringify(named)}`);
    return plugin;
  }
  const found = plugins.filter(matches);
  if (found.length <= 1) return found[0];
  const preferred = preferNamed !== undefined ? found.find((x) => x.name === preferNamed) : undefined;
  if (preferred !== undefined) return preferred;
  throw new ConfigError(path, `the config has several (${found.map((x) => x.name).join(', ')}): name the one to read`);
}
