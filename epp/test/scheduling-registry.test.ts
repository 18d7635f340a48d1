import * as fs from 'node:fs';
import * as path from 'node:path';
import { KNOWN_PLUGIN_TYPES, PLUGIN_DEFINITIONS, PLUGIN_TYPE_ALIASES, pluginDefinition, resolvePluginParameters, type PluginType } from '../src/config';
import { SILENT_PLUGIN_LOGGER, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { createPlugin, definePlugin, NO_PARAMETERS, type PluginKind } from '../src/scheduling/plugin';
import * as PLUGIN_MODULE_EXPORTS from '../src/scheduling/plugins';

const handle: PluginHandle = { now: () => 0, random: () => 0, metrics: NOOP_SCHEDULING_METRICS, logger: SILENT_PLUGIN_LOGGER };
/** Parameters for types that have required ones. */
const REQUIRED_PARAMETERS: Partial<Record<PluginType, object>> = { 'by-label': { label: 'tier', allowsNoLabel: true }, 'lora-room-filter': { adapters: ['sql-lora'] }, 'file-discovery': { path: '/etc/epp/endpoints.yaml' }, 'priority-holdback-policy': { minCeiling: 0.5 }, 'session-id-producer': { cookieName: 'llm-d-session' }, 'utilization-filter': { conditions: [{ metric: 'waiting-queue', maxValue: 0 }] }, 'header-label-affinity-scorer': { headerName: 'x-preferred-zone', labelKey: 'topology.kubernetes.io/zone' } };

/** The method each kind obliges, checked independently of the framework's own table. */
const METHOD_OF_KIND: Record<PluginKind, string> = {
  'profile-handler': 'pickProfiles', filter: 'filter', scorer: 'score', picker: 'pick',
  'post-cycle': 'postCycle', 'prepare-request': 'prepareRequest', admission: 'admit', 'pre-request': 'preRequest', 'post-response': 'postResponse', 'response-complete': 'responseComplete',
  'saturation-detector': 'saturation',
};
const ALL_KIND_METHODS = Object.values(METHOD_OF_KIND);

function build(type: PluginType) {
  const parameters = resolvePluginParameters(type, REQUIRED_PARAMETERS[type]);
  return createPlugin(pluginDefinition(type), `my-${type}`, parameters, handle);
}

describe('plugin modules → catalogue → registry', () => {
  it('the catalogue is exactly the definitions plugins/index.ts exports, each type once', () => {
    expect(KNOWN_PLUGIN_TYPES).toEqual(Object.values(PLUGIN_MODULE_EXPORTS).map((d) => d.type));
    expect(new Set(KNOWN_PLUGIN_TYPES).size).toBe(KNOWN_PLUGIN_TYPES.length);
    for (const d of PLUGIN_DEFINITIONS) expect(Object.keys(d).sort()).toEqual(expect.arrayContaining(['create', 'kinds', 'parameters', 'type']));
  });

  it('every plugin module in plugins/ is listed (a plugin is one file plus one line)', () => {
    const dir = path.join(__dirname, '..', 'src', 'scheduling', 'plugins');
    const index = fs.readFileSync(path.join(dir, 'index.ts'), 'utf8');
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'index.ts')) {
      const source = fs.readFileSync(path.join(dir, file), 'utf8');
      if (!source.includes('definePlugin(')) continue; // helpers of a plugin (hashing, the index)
      expect(index).toContain(`from './${file.replace(/\.ts$/, '')}'`);
    }
  });

  it.each(KNOWN_PLUGIN_TYPES)('%s builds an instance implementing its declared kinds, named and typed as configured', (type) => {
    const plugin = build(type) as unknown as Record<string, unknown>;
    const declared = pluginDefinition(type).kinds.map((kind) => METHOD_OF_KIND[kind]);
    for (const method of declared) expect(typeof plugin[method]).toBe('function');
    // Declared kinds are the whole truth: no undeclared extension-point method that would never be called.
    const implemented = ALL_KIND_METHODS.filter((m) => typeof plugin[m] === 'function');
    expect(implemented.sort()).toEqual([...declared].sort());
    expect(plugin.name).toBe(`my-${type}`);
    expect(plugin.type).toBe(type);
  });

  it('aliases build the same plugin as their target, reporting the alias as type', () => {
    expect(PLUGIN_TYPE_ALIASES).toEqual({ 'kv-cache-scorer': 'kv-cache-utilization-scorer', 'by-label-selector': 'label-selector-filter', 'prefill-header-handler': 'disagg-headers-handler', 'multicluster-session-affinity-filter': 'session-affinity-filter' });
    for (const [alias, target] of Object.entries(PLUGIN_TYPE_ALIASES) as [PluginType, PluginType][]) {
      expect(pluginDefinition(alias).kinds).toEqual(pluginDefinition(target).kinds);
      expect(Object.getPrototypeOf(build(alias))).toBe(Object.getPrototypeOf(build(target)));
    }
  });

  it('only the prefix scorers, the latency models (latency-scorer, inflight-load-producer), the no-hit LRU and the session-load scorer hold per-endpoint state that needs removal', () => {
    expect(KNOWN_PLUGIN_TYPES.filter((type) => typeof build(type).removeEndpoint === 'function')).toEqual(['inflight-load-producer', 'latency-scorer', 'no-hit-lru-scorer', 'prefix-cache-scorer', 'precise-prefix-cache-scorer', 'session-load-scorer']);
  });

  it('a plugin that declares a kind it does not implement fails when it is built, naming the method', () => {
    const broken = definePlugin({ type: 'broken', kinds: ['scorer'], parameters: NO_PARAMETERS, create: (name) => ({ type: 'broken', name }) as never });
    expect(() => createPlugin(broken, 'b', {}, handle)).toThrow('plugin broken declares kind scorer but its instance has no score() method');
  });
});
