/**
 * The plugin types kvroute's EPP knows, derived from the plugin modules (`../scheduling/plugins`): the loader uses
 * their declared kinds to place plugins in profiles and their parameter parsers to fill defaults; the scheduler uses
 * their factories. Nothing here is listed by hand.
 */
import * as DEFINITIONS from '../scheduling/plugins';
import type { PluginDefinition, PluginKind, SharedCycleState } from '../scheduling/plugin';

export type { PluginKind } from '../scheduling/plugin';

/** The union of every plugin definition. */
export type PluginDefinitions = (typeof DEFINITIONS)[keyof typeof DEFINITIONS];

/** Every config `type` the EPP accepts. */
export type PluginType = PluginDefinitions['type'];

/** The definitions, in the order `scheduling/plugins/index.ts` lists them. */
export const PLUGIN_DEFINITIONS: readonly PluginDefinitions[] = Object.values(DEFINITIONS);

const BY_TYPE: ReadonlyMap<string, PluginDefinition> = new Map(PLUGIN_DEFINITIONS.map((d) => [d.type, d as PluginDefinition]));

/** Every accepted type name. */
export const KNOWN_PLUGIN_TYPES: readonly PluginType[] = PLUGIN_DEFINITIONS.map((d) => d.type);

/** Older names that build the same plugin as their target (e.g. `kv-cache-scorer` → `kv-cache-utilization-scorer`). */
export const PLUGIN_TYPE_ALIASES: Readonly<Partial<Record<PluginType, PluginType>>> = Object.fromEntries(
  PLUGIN_DEFINITIONS.flatMap((d) => ('aliasOf' in d ? [[d.type, d.aliasOf]] : [])),
);

export function isKnownPluginType(type: string): type is PluginType {
  return BY_TYPE.has(type);
}

export function pluginDefinition(type: PluginType): PluginDefinition {
  return BY_TYPE.get(type)!;
}

export function pluginKinds(type: PluginType): readonly PluginKind[] {
  return pluginDefinition(type).kinds;
}

export function pluginHasKind(type: PluginType, kind: PluginKind): boolean {
  return pluginKinds(type).includes(kind);
}

/** The cycle state `type`'s scorer reads from earlier scorers and writes for later ones (see `PluginDefinition.cycleState`). */
export function pluginCycleState(type: PluginType): { reads: readonly SharedCycleState[]; writes: readonly SharedCycleState[] } {
  const declared = pluginDefinition(type).cycleState;
  return { reads: declared?.reads ?? [], writes: declared?.writes ?? [] };
}
