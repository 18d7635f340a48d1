/**
 * The plugin types kvroute's EPP knows, with the extension points each one implements. The loader uses the kinds to
 * place plugins in profiles and to apply defaults; the scheduler's registry must build exactly these types, each
 * implementing exactly these kinds (a test holds the two together).
 */

/** An extension point of the scheduling framework (see `epp/src/scheduling/framework.ts`). */
export type PluginKind =
  /** Chooses which profiles run and which result is primary. Exactly one per config. */
  | 'profile-handler'
  /** Narrows the candidate endpoints. */
  | 'filter'
  /** Scores candidates in [0, 1]; the profile multiplies the score by the scorer's weight. */
  | 'scorer'
  /** Chooses the target(s) from the scored candidates. At most one per profile. */
  | 'picker'
  /** Runs after a profile's pick, e.g. to learn where a prefix now lives. */
  | 'post-cycle'
  /** Runs once the request is about to be sent to the target. Attached globally, like upstream. */
  | 'pre-request'
  /** Runs when the target's response headers arrive; may add response headers. Attached globally. */
  | 'post-response';

/**
 * Plugin type → the kinds it implements. Type names are llm-d / GIE's, so their configs load unchanged.
 * `kv-cache-scorer` is the v0.5.1 name of `kv-cache-utilization-scorer` (renamed in GIE PR #1238); both are accepted.
 */
export const KNOWN_PLUGIN_TYPES = {
  'single-profile-handler': ['profile-handler'],
  'max-score-picker': ['picker'],
  'random-picker': ['picker'],
  'prefix-cache-scorer': ['scorer', 'post-cycle'],
  'queue-scorer': ['scorer'],
  'kv-cache-utilization-scorer': ['scorer'],
  'kv-cache-scorer': ['scorer'],
  'load-aware-scorer': ['scorer'],
  'active-request-scorer': ['scorer'],
  'session-affinity-scorer': ['scorer', 'post-response'],
  'session-affinity-filter': ['filter', 'post-cycle'],
  'decode-filter': ['filter'],
  'prefill-filter': ['filter'],
  'by-label': ['filter'],
  'saturation-filter': ['filter'],
} as const satisfies Readonly<Record<string, readonly PluginKind[]>>;

export type PluginType = keyof typeof KNOWN_PLUGIN_TYPES;

/** Older names that build the same plugin as their target. */
export const PLUGIN_TYPE_ALIASES: Readonly<Partial<Record<PluginType, PluginType>>> = {
  'kv-cache-scorer': 'kv-cache-utilization-scorer',
};

export function isKnownPluginType(type: string): type is PluginType {
  return Object.prototype.hasOwnProperty.call(KNOWN_PLUGIN_TYPES, type);
}

export function pluginKinds(type: PluginType): readonly PluginKind[] {
  return KNOWN_PLUGIN_TYPES[type];
}

export function pluginHasKind(type: PluginType, kind: PluginKind): boolean {
  return (KNOWN_PLUGIN_TYPES[type] as readonly PluginKind[]).includes(kind);
}
