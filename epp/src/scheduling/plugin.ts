/**
 * What a plugin module declares: its config `type`, the extension points it implements (declared, never inferred
 * from method names), its parameters (typed, with defaults and validation in one parser) and its factory. One module
 * per plugin exports one `definePlugin(...)`; `plugins/index.ts` lists them, and the config catalogue, the config
 * types and the scheduler's registry are all derived from that list, so adding a plugin is one file and one line.
 * Shaped like llm-d's plugins (`pkg/plugins/...`: a type name, a parameters struct, a factory registered in one line).
 */
import type { FieldReader } from '../config/fields';
import type { Admitter, PostResponse, PrepareRequest, PreRequest, ResponseComplete, SaturationDetector } from '../requestcontrol/hooks';
import type { Filter, Picker, Plugin, PluginHandle, PostCycle, ProfileHandler, Scorer } from './framework';

/** An extension point a plugin implements. */
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
  /** Request control: runs before the cycle, asynchronously, to compute data scorers read (e.g. token ids). */
  | 'prepare-request'
  /**
   * Request control: admits or denies a request after flow control and the request-preparing plugins, before its
   * cycle (llm-d-router v0.10.0's `Admitter`, extension point `Admission`). Attached globally.
   */
  | 'admission'
  /** Request control: runs once the request is committed to its target. Attached globally, like upstream. */
  | 'pre-request'
  /** Request control: runs when the target's response headers arrive; may add response headers. Attached globally. */
  | 'post-response'
  /** Request control: runs once when the request's exchange with its target ends, however it ends. Attached globally. */
  | 'response-complete'
  /**
   * Request control: tells whether the pool may take more work (GIE v1.5.0's `SaturationDetector`). Acts only when the
   * config's `saturationDetector` section names it.
   */
  | 'saturation-detector';

/** The interface each kind obliges a plugin instance to implement. */
export interface PluginKindInterfaces {
  'profile-handler': ProfileHandler;
  filter: Filter;
  scorer: Scorer;
  picker: Picker;
  'post-cycle': PostCycle;
  'prepare-request': PrepareRequest;
  admission: Admitter;
  'pre-request': PreRequest;
  'post-response': PostResponse;
  'response-complete': ResponseComplete;
  'saturation-detector': SaturationDetector;
}

/** The method whose presence `createPlugin` checks for each declared kind, so a wrong declaration fails at start-up. */
const KIND_METHODS: { readonly [K in PluginKind]: keyof PluginKindInterfaces[K] } = {
  'profile-handler': 'pickProfiles',
  filter: 'filter',
  scorer: 'score',
  picker: 'pick',
  'post-cycle': 'postCycle',
  'prepare-request': 'prepareRequest',
  admission: 'admit',
  'pre-request': 'preRequest',
  'post-response': 'postResponse',
  'response-complete': 'responseComplete',
  'saturation-detector': 'saturation',
};

/**
 * What one profile's scorers hand each other through the cycle's state. Scorers run in the order the profile lists
 * them, so a reader listed before the writer sees nothing and falls back silently (e.g. a prefix-blind no-hit-lru).
 */
export type SharedCycleState =
  /** The prefix scorers' per-endpoint match (`PREFIX_MATCH`, `prefix-match.ts`). */
  'prefix-match';

/** The kinds that live in scheduling profiles; the others act outside them. */
export const PROFILE_KINDS: readonly PluginKind[] = ['filter', 'scorer', 'picker', 'post-cycle'];

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/** A plugin instance implementing every kind in `K` (just `Plugin` for the unspecific `readonly PluginKind[]`). */
export type PluginInstance<K extends readonly PluginKind[]> = [PluginKind] extends [K[number]]
  ? Plugin
  : Plugin & UnionToIntersection<PluginKindInterfaces[K[number]]>;

/** Plugins without parameters accept an absent or empty `parameters` map. */
export type NoParameters = Record<string, never>;

/**
 * A plugin's parameters: the input type `P` users write (optional fields documented with `@default`), and the parser
 * that validates a raw map and returns every field filled. `P` is carried for the compiler only.
 */
export interface ParameterSpec<P extends object> {
  parse(fields: FieldReader): Required<P>;
  /**
   * Checks what only the whole config can tell (e.g. that a `profileName` names one of its profiles); throws a
   * ConfigError naming the field under `path` (the plugin's `parameters`). Run when the plugins are built.
   */
  checkWithProfiles?(resolved: Required<P>, profileNames: readonly string[], path: string): void;
  /** Never set; carries `P` so config types can be derived from the plugin list. */
  readonly input?: P;
}

/** Declares a plugin's parameters: `parameters<MyParameters>((fields) => ({ ... }))`. */
export function parameters<P extends object>(
  parse: (fields: FieldReader) => Required<P>,
  checkWithProfiles?: (resolved: Required<P>, profileNames: readonly string[], path: string) => void,
): ParameterSpec<P> {
  return checkWithProfiles === undefined ? { parse } : { parse, checkWithProfiles };
}

/** For plugins that take none: any field is an error naming the plugin as parameterless. */
export const NO_PARAMETERS: ParameterSpec<NoParameters> = { parse: () => ({}) };

export interface PluginDefinition<T extends string = string, P extends object = object, K extends readonly PluginKind[] = readonly PluginKind[]> {
  /** The config `type`; llm-d's or GIE's name where the plugin mirrors one of theirs, so their configs load unchanged. */
  readonly type: T;
  /** The extension points this plugin implements; placement in profiles and request control follows this list. */
  readonly kinds: K;
  readonly parameters: ParameterSpec<P>;
  /**
   * The cycle state its scorer reads from the scorers before it, and writes for those after it. The loader refuses a
   * profile that lists a reader before a writer of the same state. @default none
   */
  readonly cycleState?: { readonly reads?: readonly SharedCycleState[]; readonly writes?: readonly SharedCycleState[] };
  /** Builds one instance from its config name, its resolved parameters and the shared handle. */
  create(name: string, parameters: Required<P>, handle: PluginHandle): PluginInstance<K>;
}

/** Identity with inference: `T` and `K` are inferred as literals, so the plugin list yields exact config types. */
export function definePlugin<const T extends string, P extends object, const K extends readonly PluginKind[]>(
  definition: PluginDefinition<T, P, K>,
): PluginDefinition<T, P, K> {
  return definition;
}

/**
 * Another name for the same plugin: an older one (e.g. GIE v0.5.1's `kv-cache-scorer`), or one upstream registers for the
 * same factory (llm-d's `multicluster-session-affinity-filter`); instances report the alias as their type.
 */
export function aliasOf<const T extends string, P extends object, K extends readonly PluginKind[]>(
  type: T,
  target: PluginDefinition<string, P, K>,
): PluginDefinition<T, P, K> & { readonly aliasOf: string } {
  return {
    type,
    kinds: target.kinds,
    parameters: target.parameters,
    ...(target.cycleState === undefined ? {} : { cycleState: target.cycleState }),
    aliasOf: target.type,
    create: (name, resolved, handle) => Object.assign(target.create(name, resolved, handle), { type }),
  };
}

/** The input parameter type of a definition. */
export type ParametersOf<D> = D extends PluginDefinition<string, infer P, readonly PluginKind[]> ? P : never;

/**
 * Builds an instance and checks that it implements what its definition declares, so a plugin that forgets a method
 * fails when the EPP starts rather than on the first request that reaches that extension point.
 */
export function createPlugin(definition: PluginDefinition, name: string, resolved: object, handle: PluginHandle): Plugin {
  const instance = definition.create(name, resolved as Required<object>, handle);
  for (const kind of definition.kinds) {
    const method = KIND_METHODS[kind];
    if (typeof (instance as unknown as Record<string, unknown>)[method] !== 'function') {
      throw new Error(`plugin ${definition.type} declares kind ${kind} but its instance has no ${String(method)}() method`);
    }
  }
  return instance;
}
