import { KNOWN_PLUGIN_TYPES, PLUGIN_TYPE_ALIASES, resolvePluginParameters, type PluginType } from '../src/config';
import { implementedKinds, isEndpointRemovalAware, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { BUILTIN_PLUGIN_REGISTRY, type PluginFactory } from '../src/scheduling/registry';

const handle: PluginHandle = { now: () => 0, random: () => 0, metrics: NOOP_SCHEDULING_METRICS };
/** Parameters for types that have required ones. */
const REQUIRED_PARAMETERS: Partial<Record<PluginType, object>> = { 'by-label': { label: 'tier' } };

function build(type: PluginType) {
  const parameters = resolvePluginParameters(type, REQUIRED_PARAMETERS[type]);
  return (BUILTIN_PLUGIN_REGISTRY[type] as PluginFactory<PluginType>)(`my-${type}`, parameters, handle);
}

const types = Object.keys(KNOWN_PLUGIN_TYPES) as PluginType[];

describe('plugin registry ↔ config catalogue', () => {
  it('has a factory for exactly the catalogued types', () => {
    expect(Object.keys(BUILTIN_PLUGIN_REGISTRY).sort()).toEqual([...types].sort());
  });

  it.each(types)('%s builds a plugin implementing exactly its catalogued kinds, named and typed as configured', (type) => {
    const plugin = build(type);
    expect(implementedKinds(plugin)).toEqual(KNOWN_PLUGIN_TYPES[type]);
    expect(plugin.name).toBe(`my-${type}`);
    expect(plugin.type).toBe(type);
  });

  it('aliases point at catalogued types of the same kinds', () => {
    for (const [alias, target] of Object.entries(PLUGIN_TYPE_ALIASES) as [PluginType, PluginType][]) {
      expect(KNOWN_PLUGIN_TYPES[alias]).toEqual(KNOWN_PLUGIN_TYPES[target]);
      expect(implementedKinds(build(alias))).toEqual(implementedKinds(build(target)));
    }
  });

  it('only the prefix scorer holds per-endpoint state that needs removal', () => {
    expect(types.filter((type) => isEndpointRemovalAware(build(type)))).toEqual(['prefix-cache-scorer']);
  });
});
