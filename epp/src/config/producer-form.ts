/**
 * Upstream's producer forms of prefix scoring, rewritten before validation into kvroute's plugins, whose scorers do the
 * producers' work themselves (each holds its index). `normalizeProducerForms` runs them in order.
 *
 * llm-d's precise form, accepted as an alias of `precise-prefix-cache-scorer`:
 *
 * ```yaml
 * plugins:
 * - type: precise-prefix-cache-producer          # matches the request against the KV-event index
 *   name: kv-events
 *   parameters: { kvEventsConfig: ..., indexerConfig: ..., speculativeIndexing: true }
 * - type: prefix-cache-scorer                    # scores from the producer's match info instead of its own estimate
 *   parameters: { prefixMatchInfoProducerName: kv-events }
 * schedulingProfiles:
 * - name: default
 *   plugins: [{ pluginRef: prefix-cache-scorer, weight: 3 }]
 * ```
 *
 * Upstream this is a data producer (writes `PrefixCacheMatchInfo` per endpoint in request control) read by the prefix
 * scorer (llm-d-inference-scheduler PRs #1086, #1112, #1121; in llm-d-router v0.10.0 as
 * `requestcontrol/dataproducer/preciseprefixcache`). In kvroute the producer's work and the scorer's are one plugin, so
 * the pair is rewritten into one `precise-prefix-cache-scorer` carrying the producer's parameters (and the scorer's
 * `matchLengthWeight`, `matchLengthScaleTokens`) under the scorer's name (profiles keep referring to the scorer, with
 * its weight). The normalized config, and so the rendered ConfigMap, shows the single-plugin form.
 *
 * The approximate form, `approx-prefix-cache-producer` read by `prefix-cache-scorer`, is rewritten the same way: the
 * producer's parameters move onto the scorers that read it, by llm-d-router v0.10.0's names under llm-d's group
 * (`mergeLlmdApproxProducers`: several producers, each scorer reading the one it names or the default-named one) and
 * by GIE v1.5.0's single unnamed producer under GIE's (`mergeGieApproxProducer`).
 */
import { ConfigError, describeValue } from './errors';
import { isPlainObject } from './fields';
import { resolvePluginParameters } from './parameters';
import { LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION } from './types';

export const PRECISE_PRODUCER_TYPE = 'precise-prefix-cache-producer';
export const APPROX_PRODUCER_TYPE = 'approx-prefix-cache-producer';
/**
 * The producer a `prefix-cache-scorer` naming none reads in llm-d-router v0.10.0: its data key's default producer name
 * (`datalayer/attribute/prefix/data_types.go` PrefixCacheMatchInfoDataKey = NewDataKey(..., ApproxPrefixCachePluginType)),
 * made with its defaults when no plugin has that name (`pkg/epp/datalayer/data_graph.go` CreateMissingDataProducers).
 */
export const DEFAULT_APPROX_PRODUCER_NAME = APPROX_PRODUCER_TYPE;
const SCORER_TYPE = 'prefix-cache-scorer';

/**
 * The approximate `prefix-cache-scorer` among `plugins` standing for upstream's default producer, which readers naming
 * no producer read: the only one; among several, the one named `prefix-cache-scorer` (the scorer reading the default
 * producer when llm-d's form is merged), else the one named after that producer; else none.
 */
export function defaultApproxScorer<T extends { readonly type: string; readonly name?: string }>(plugins: readonly T[]): T | undefined {
  const approx = plugins.filter((p) => p.type === SCORER_TYPE);
  if (approx.length <= 1) return approx[0];
  return approx.find((p) => p.name === SCORER_TYPE) ?? approx.find((p) => p.name === DEFAULT_APPROX_PRODUCER_NAME);
}
const PRECISE_SCORER_TYPE = 'precise-prefix-cache-scorer';
const PD_HANDLER_TYPE = 'pd-profile-handler';
const PRODUCER_REF = 'prefixMatchInfoProducerName';
/** llm-d-router v0.10.0's own `prefix-cache-scorer` parameters besides the reference (`scorer/prefix/plugin.go` Config). */
const MATCH_LENGTH_PARAMETERS: readonly string[] = ['matchLengthWeight', 'matchLengthScaleTokens'];

const typeOf = (p: unknown) => (isPlainObject(p) && typeof p.type === 'string' ? p.type : undefined);
const nameOf = (p: unknown) => (isPlainObject(p) ? (typeof p.name === 'string' && p.name !== '' ? p.name : typeOf(p)) : undefined);
/** The producer a scorer names (a non-empty string once `checkProducerReferences` ran), else undefined. */
const referenceOf = (p: unknown): string | undefined => {
  if (typeOf(p) !== SCORER_TYPE || !isPlainObject(p) || !isPlainObject(p.parameters)) return undefined;
  const ref = p.parameters[PRODUCER_REF];
  return typeof ref === 'string' && ref !== '' ? ref : undefined;
};
const namesOf = (plugins: readonly unknown[], type: string) => plugins.flatMap((p) => (typeOf(p) === type ? [nameOf(p)!] : []));
const listed = (names: readonly string[]) => (names.length > 0 ? names.join(', ') : '(none)');

/** A merge's result: the document, and the indices (in the plugin list it was given) of the plugins it dropped. */
interface Merged {
  readonly document: unknown;
  readonly removed: readonly number[];
  /** What was skipped that upstream also ignores without a word, for the config's notes (plugin indices as written). */
  readonly notes?: readonly string[];
  /**
   * The scorer doing the work of the default-named approximate producer (`approx-prefix-cache-producer`) when one was
   * merged: what a reader naming no producer reads, the loader's own included.
   */
  readonly defaultProducerScorer?: string;
}

/**
 * Every rewrite of upstream's producer forms, in order, before validation: llm-d v0.2's `mode: cache_tracking`, the
 * references' check, the precise pairs' merge, the approximate producers' merge (llm-d-router v0.10.0's named
 * producers under llm-d's group, GIE v1.5.0's single producer under GIE's) and llm-d's window default.
 * `pluginOrigins[i]` is the index in the given document's `plugins` of the result's `plugins[i]`, so errors found later
 * can name the plugin as the user wrote it (undefined when nothing was dropped).
 */
export function normalizeProducerForms(value: unknown): { document: unknown; pluginOrigins: readonly number[] | undefined; notes: readonly string[]; defaultProducerScorer?: string } {
  const checked = checkProducerReferences(rewriteCacheTrackingMode(value));
  const precise = mergePreciseProducers(checked);
  const approx = isPlainObject(precise.document) && precise.document.apiVersion === LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION
    ? mergeLlmdApproxProducers(precise.document)
    : mergeGieApproxProducer(precise.document);
  const notes = [...(precise.notes ?? []), ...(approx.notes ?? [])];
  const document = applyLlmdPrefixWindow(approx.document, notes);
  const defaults = approx.defaultProducerScorer !== undefined ? { defaultProducerScorer: approx.defaultProducerScorer } : {};
  if (precise.removed.length === 0 && approx.removed.length === 0) return { document, pluginOrigins: undefined, notes, ...defaults };
  const count = isPlainObject(checked) && Array.isArray(checked.plugins) ? checked.plugins.length : 0;
  const afterPrecise = Array.from({ length: count }, (_, i) => i).filter((i) => !precise.removed.includes(i));
  return { document, pluginOrigins: afterPrecise.filter((_, i) => !approx.removed.includes(i)), notes, ...defaults };
}

/**
 * Checks every `prefix-cache-scorer`'s `prefixMatchInfoProducerName` before the merges claim them: it names an
 * `approx-prefix-cache-producer` or a `precise-prefix-cache-producer` that is listed, or (under llm-d's group)
 * the default producer's name, which llm-d-router v0.10.0 makes when it is not listed. An empty (or null) name is no
 * name, as upstream's DataKey.WithNonEmptyProducerName keeps the default (`framework/interface/plugin/datakey.go`), and
 * is dropped. Also refuses a producer whose name another plugin has, as the loader would had the producer stayed, and
 * checks `pd-profile-handler`'s reference (`checkPdHandlerReferences`).
 * @throws ConfigError naming the field and the producers that exist.
 */
function checkProducerReferences(document: unknown): unknown {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return document;
  const plugins: unknown[] = document.plugins;
  const approx = namesOf(plugins, APPROX_PRODUCER_TYPE);
  const precise = namesOf(plugins, PRECISE_PRODUCER_TYPE);
  const llmd = document.apiVersion === LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION;
  if (!llmd) checkOneGieApproxProducer(plugins);
  if (approx.length + precise.length > 0) checkUniqueNames(plugins);
  let changed = false;
  const checked = plugins.map((p, i) => {
    if (typeOf(p) !== SCORER_TYPE || !isPlainObject(p) || !isPlainObject(p.parameters) || !(PRODUCER_REF in p.parameters)) return p;
    const ref = p.parameters[PRODUCER_REF];
    const at = `plugins[${i}].parameters.${PRODUCER_REF}`;
    if (ref === '' || ref === null) {
      const { [PRODUCER_REF]: _none, ...parameters } = p.parameters;
      changed = true;
      return { ...p, parameters };
    }
    if (typeof ref !== 'string') {
      throw new ConfigError(at, `must be the name of an ${APPROX_PRODUCER_TYPE} or a ${PRECISE_PRODUCER_TYPE} plugin, got ${describeValue(ref)}`);
    }
    if (approx.includes(ref) || precise.includes(ref) || (llmd && ref === DEFAULT_APPROX_PRODUCER_NAME)) return p;
    throw missingProducer(at, ref, plugins, "kvroute's prefix scorer reads", llmd);
  });
  checkPdHandlerReferences(plugins, llmd);
  return changed ? { ...document, plugins: checked } : document;
}

/**
 * A `pd-profile-handler`'s references, checked against the plugins as written (before the merges drop producers):
 *
 * Its `prefixPluginName`, else its `prefixPluginType` (llm-d-router v0.10.0 `profilehandler/disagg/pd_profile_handler.go`
 * PdProfileHandlerConfigParser takes the type when the name is empty), names a configured plugin of any type: the field
 * is a `pluginRef`, and the loader refuses a dependency on a name no plugin has (`pkg/epp/config/loader/configloader.go`
 * buildPluginDAG), though the handler never reads it.
 *
 * Its `prefixMatchInfoProducerName`, when set, names a producer of the prefix match: llm-d-router
 * v0.10.0's handler `Consumes` (Required) the match info under that producer's name (`profilehandler/disagg/
 * pd_profile_handler.go` NewPdProfileHandler, WithNonEmptyProducerName), and its runner refuses a config where no plugin
 * produces that key unless it is the default-named `approx-prefix-cache-producer`'s, which it then makes
 * (`pkg/epp/datalayer/data_graph.go` CreateMissingDataProducers: "no default producer found for missing data key").
 * Besides the producers, the precise scorer produces under its own name (`scorer/preciseprefixcache/
 * legacy_producer.go`); upstream's `prefix-cache-scorer` only reads. kvroute's decider reads the decode profile's
 * prefix match whatever the handler names, so the name is checked and then dropped.
 */
function checkPdHandlerReferences(plugins: readonly unknown[], llmd: boolean): void {
  const producers = [...namesOf(plugins, APPROX_PRODUCER_TYPE), ...namesOf(plugins, PRECISE_PRODUCER_TYPE), ...namesOf(plugins, PRECISE_SCORER_TYPE)];
  const names = plugins.map(nameOf);
  plugins.forEach((p, i) => {
    if (typeOf(p) !== PD_HANDLER_TYPE || !isPlainObject(p) || !isPlainObject(p.parameters)) return;
    const { prefixPluginName, prefixPluginType } = p.parameters;
    // Not strings: the handler's own parameters refuse them.
    const byType = (prefixPluginName === undefined || prefixPluginName === null || prefixPluginName === '') && typeof prefixPluginType === 'string';
    const dependency = byType ? prefixPluginType : prefixPluginName;
    if (typeof dependency === 'string' && dependency !== '' && !names.includes(dependency)) {
      throw new ConfigError(
        `plugins[${i}].parameters.${byType ? 'prefixPluginType' : 'prefixPluginName'}`,
        `no plugin named ${JSON.stringify(dependency)} (${byType ? 'prefixPluginName, empty, takes it; ' : ''}llm-d-router v0.10.0: a plugin has a dependency on the unregistered plugin ${dependency})`,
      );
    }
    const ref = p.parameters[PRODUCER_REF];
    // Not a string: the handler's own parameters refuse it. Empty: no name, as WithNonEmptyProducerName keeps the default.
    if (typeof ref !== 'string' || ref === '' || producers.includes(ref) || (llmd && ref === DEFAULT_APPROX_PRODUCER_NAME)) return;
    throw missingProducer(`plugins[${i}].parameters.${PRODUCER_REF}`, ref, plugins, 'of the prefix match', llmd);
  });
}

/** The error for a `prefixMatchInfoProducerName` naming no producer: the plugin it names instead, or none, and the producers there are. */
function missingProducer(at: string, ref: string, plugins: readonly unknown[], producerOf: string, llmd: boolean): ConfigError {
  const approx = namesOf(plugins, APPROX_PRODUCER_TYPE);
  const precise = namesOf(plugins, PRECISE_PRODUCER_TYPE);
  const producers = `${APPROX_PRODUCER_TYPE}s: ${listed(approx)}; ${PRECISE_PRODUCER_TYPE}s: ${listed(precise)}`;
  // A plugin of that name and another type (llm-d's `burst-prefix-cache-producer`, say): its type is the problem.
  const other = plugins.findIndex((q) => nameOf(q) === ref);
  if (other !== -1) {
    return new ConfigError(at, `${JSON.stringify(ref)} is a ${typeOf(plugins[other]) ?? 'plugin without a type'} (plugins[${other}]), not a producer ${producerOf}; ${producers}`);
  }
  return new ConfigError(
    at,
    `no ${APPROX_PRODUCER_TYPE} or ${PRECISE_PRODUCER_TYPE} named ${JSON.stringify(ref)}; ${producers}`
      + (llmd ? ` (${DEFAULT_APPROX_PRODUCER_NAME} may also be named unlisted: llm-d-router v0.10.0 makes that one with its defaults)` : ''),
  );
}

/** The loader's duplicate-name rule (`readPlugins`), applied while the producers are still in the list. */
function checkUniqueNames(plugins: readonly unknown[]): void {
  const first = new Map<string, number>();
  plugins.forEach((p, i) => {
    const name = nameOf(p);
    if (name === undefined) return;
    const earlier = first.get(name);
    if (earlier !== undefined) {
      throw new ConfigError(
        `plugins[${i}].name`,
        `duplicate plugin name ${JSON.stringify(name)} (also plugins[${earlier}]); the name defaults to the type, so give one of them a distinct name`,
      );
    }
    first.set(name, i);
  });
}

/** The producer's parameters as a map (undefined when it has none). @throws ConfigError when they are something else. */
function producerParameters(producer: Record<string, unknown>, index: number): Record<string, unknown> | undefined {
  const parameters = producer.parameters;
  if (parameters === undefined || parameters === null) return undefined;
  if (!isPlainObject(parameters)) throw new ConfigError(`plugins[${index}].parameters`, `must be a map, got ${describeValue(parameters)}`);
  for (const key of [...MATCH_LENGTH_PARAMETERS, PRODUCER_REF]) {
    if (key in parameters) {
      throw new ConfigError(
        `plugins[${index}].parameters.${key}`,
        `is a ${SCORER_TYPE} parameter (llm-d-router v0.10.0 scheduling/scorer/prefix/plugin.go), not the ${String(producer.type)}'s: set it on the scorer that reads this producer`,
      );
    }
  }
  return parameters;
}

/** The scorer's match-length parameters (llm-d-router v0.10.0's, which stay on the scorer), as a map. */
function matchLengthOf(parameters: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(parameters).filter(([k]) => MATCH_LENGTH_PARAMETERS.includes(k)));
}

/**
 * An approx producer's parameters are validated where the producer sits, so an error names its own field: they are the
 * approximate scorer's estimate parameters (kvroute's scorer holds the index).
 */
function checkApproxProducerParameters(parameters: Record<string, unknown> | undefined, index: number): void {
  resolvePluginParameters(SCORER_TYPE, parameters, `plugins[${index}].parameters`);
}

/**
 * The precise producer + scorer pairs merged, each into one `precise-prefix-cache-scorer` (the document itself when it
 * lists no precise producer). A `prefix-cache-scorer` naming an approximate producer (or none) is left for the
 * approximate merge. Only the shape of the pair is checked here; the merged plugin is then validated like any other.
 * A deprecated `precise-prefix-cache-scorer` listed beside a producer reads it and its own parameters are ignored, with
 * a note, as llm-d-router v0.10.0's factory "returns a prefix-cache-scorer bound to it and ignores any legacy
 * parameters" (`scheduling/scorer/preciseprefixcache/precise_prefix_cache.go` PluginFactory; upstream defers when the
 * producer was made first, which its loader's map-ordered instantiation leaves to chance, kvroute always). A producer
 * no scorer reads is dropped with a note, as upstream's loader makes it all the same and it runs for nobody.
 * @throws ConfigError naming the field when a producer is read by several scorers, a deprecated scorer sits beside
 *         several producers (upstream's findExistingPreciseProducer error), or a scorer that reads a producer also sets
 *         estimate parameters (llm-d-router v0.10.0's scorer takes only the match-length ones, which are carried onto
 *         the merged plugin).
 */
function mergePreciseProducers(document: unknown): Merged {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return { document, removed: [] };
  const plugins: unknown[] = document.plugins;
  const producers = new Map<string, number>();
  plugins.forEach((p, i) => {
    if (typeOf(p) === PRECISE_PRODUCER_TYPE) producers.set(nameOf(p)!, i);
  });
  if (producers.size === 0) return { document, removed: [] };
  const readBy = new Map<string, number>();
  /** Producer name → the merged scorer's name, for the references that named the producer. */
  const scorerOf = new Map<string, string>();
  // llm-d-router v0.10.0 splits tokenizing out of the precise producer into a `token-producer`; kvroute's precise scorer
  // tokenizes itself, with that producer's model when it names none (one token-producer with a modelName).
  const tokenModels = plugins.filter((p) => typeOf(p) === TOKEN_PRODUCER_TYPE)
    .map((p) => (isPlainObject(p) && isPlainObject(p.parameters) && typeof p.parameters.modelName === 'string' && p.parameters.modelName !== '' ? p.parameters.modelName : undefined))
    .filter((m): m is string => m !== undefined);
  const tokenModel = tokenModels.length === 1 ? tokenModels[0] : undefined;
  const notes: string[] = [];
  const deprecated = plugins.findIndex((p) => typeOf(p) === PRECISE_SCORER_TYPE);
  if (deprecated !== -1 && producers.size > 1) {
    const [first, second] = [...producers.keys()];
    throw new ConfigError(
      `plugins[${deprecated}]`,
      `multiple ${PRECISE_PRODUCER_TYPE} instances configured (${first}/${PRECISE_PRODUCER_TYPE}, ${second}/${PRECISE_PRODUCER_TYPE}); `
        + `${PRECISE_SCORER_TYPE} cannot disambiguate — configure ${SCORER_TYPE} directly with an explicit ${PRODUCER_REF}`,
    );
  }
  const merged = plugins.map((p, i) => {
    // The deprecated scorer beside the one producer reads it, as a prefix-cache-scorer naming it would.
    const producerName = typeOf(p) === PRECISE_SCORER_TYPE ? [...producers.keys()][0] : referenceOf(p);
    if (producerName === undefined || !producers.has(producerName)) return p;
    const scorer = p as Record<string, unknown> & { parameters: Record<string, unknown> };
    const path = `plugins[${i}].parameters`;
    const producerIndex = producers.get(producerName)!;
    const earlier = readBy.get(producerName);
    if (earlier !== undefined) {
      throw new ConfigError(`${path}.${PRODUCER_REF}`, `${JSON.stringify(producerName)} is already read by plugins[${earlier}]; one scorer per producer`);
    }
    readBy.set(producerName, i);
    const producer = plugins[producerIndex] as Record<string, unknown>;
    scorerOf.set(producerName, nameOf(scorer)!);
    const withModel = withTokenizerModel(producerParameters(producer, producerIndex), tokenModel) as Record<string, unknown> | undefined;
    if (typeOf(p) === PRECISE_SCORER_TYPE) {
      const ignored = isPlainObject(scorer.parameters) ? Object.keys(scorer.parameters) : [];
      notes.push(
        `plugins[${i}]: ${PRECISE_SCORER_TYPE} ${JSON.stringify(nameOf(scorer))} is deprecated and defers to ${PRECISE_PRODUCER_TYPE} ${JSON.stringify(producerName)} `
          + `(plugins[${producerIndex}]), scoring from it`
          + (ignored.length > 0 ? `; its own parameters (${ignored.join(', ')}) are ignored, as llm-d-router v0.10.0 ignores them` : ''),
      );
      return { type: PRECISE_SCORER_TYPE, name: nameOf(scorer), ...(withModel !== undefined ? { parameters: withModel } : {}) };
    }
    const others = Object.keys(scorer.parameters).filter((k) => k !== PRODUCER_REF && !MATCH_LENGTH_PARAMETERS.includes(k));
    if (others.length > 0) {
      throw new ConfigError(
        `${path}.${others[0]}`,
        `a ${SCORER_TYPE} that reads ${PRODUCER_REF} scores from the KV-event index; its estimate parameters (${others.join(', ')}) `
          + `do not apply: set them on the ${PRECISE_PRODUCER_TYPE} or drop them`,
      );
    }
    const parameters = { ...withModel, ...matchLengthOf(scorer.parameters) };
    return {
      type: PRECISE_SCORER_TYPE,
      name: nameOf(scorer),
      ...(withModel !== undefined || Object.keys(parameters).length > 0 ? { parameters } : {}),
    };
  });
  // A producer no scorer reads: upstream's loader makes it all the same (configloader.go instantiatePlugins) and it
  // runs for nobody; kvroute drops it with a note.
  for (const [name, index] of producers) {
    if (!readBy.has(name)) {
      notes.push(
        `plugins[${index}]: ${PRECISE_PRODUCER_TYPE} ${JSON.stringify(name)} is read by no scorer and was skipped (to score from it, add a ${SCORER_TYPE} with `
          + `parameters.${PRODUCER_REF}: ${name}, or use type ${PRECISE_SCORER_TYPE} directly)`,
      );
    }
  }
  checkNoProfileRefersToProducer(document.schedulingProfiles, new Set(producers.keys()), PRECISE_PRODUCER_TYPE);
  const dataLayer = renameExtractors(document.dataLayer, scorerOf);
  const removed = [...producers.values()];
  return {
    document: { ...document, plugins: renameMatchReaders(merged.filter((_, i) => !removed.includes(i)), scorerOf), ...(dataLayer !== undefined ? { dataLayer } : {}) },
    removed,
    notes,
  };
}

/** Upstream's other readers of a prefix producer's match, which name it by `prefixMatchInfoProducerName`. */
const MATCH_READER_TYPES = ['prefix-cache-affinity-filter', 'inflight-load-producer', 'predicted-latency-producer', 'no-hit-lru-scorer', 'latency-scorer'];
/**
 * Readers renamed only when they name a producer: the `latency-scorer` naming none reads its profile's match (kvroute's
 * configs), not the default producer's.
 */
const NAMED_ONLY_READER_TYPES = ['latency-scorer'];

/**
 * `prefixMatchInfoProducerName` of the other readers (`prefix-cache-affinity-filter`, `inflight-load-producer`,
 * `predicted-latency-producer`, `no-hit-lru-scorer`, `latency-scorer`) naming a merged producer names the scorer that now does its work;
 * naming none, when `defaultProducer` (the default-named approximate producer, which upstream's readers then read:
 * `PrefixCacheMatchInfoDataKey.WithNonEmptyProducerName("")`) was merged, the scorer that does its work.
 */
function renameMatchReaders(plugins: unknown[], scorerOf: ReadonlyMap<string, string>, defaultProducer?: string): unknown[] {
  return plugins.map((p) => {
    if (!isPlainObject(p) || typeof p.type !== 'string' || !MATCH_READER_TYPES.includes(p.type)) return p;
    // Parameters that are not a map, or a name that is not a string, are left for the plugin's own check to refuse.
    if (p.parameters !== undefined && p.parameters !== null && !isPlainObject(p.parameters)) return p;
    const parameters = isPlainObject(p.parameters) ? p.parameters : {};
    const named = parameters[PRODUCER_REF];
    if (named !== undefined && named !== null && typeof named !== 'string') return p;
    const producer = typeof named === 'string' && named !== '' ? named : NAMED_ONLY_READER_TYPES.includes(p.type) ? undefined : defaultProducer;
    const scorer = producer !== undefined ? scorerOf.get(producer) : undefined;
    return scorer === undefined ? p : { ...p, parameters: { ...parameters, [PRODUCER_REF]: scorer } };
  });
}

const TOKEN_PRODUCER_TYPE = 'token-producer';

/** The producer's parameters with `indexerConfig.tokenizersPoolConfig.modelName` set to `model` when it has none. */
function withTokenizerModel(parameters: unknown, model: string | undefined): unknown {
  if (model === undefined) return parameters;
  const p = isPlainObject(parameters) ? parameters : {};
  const indexer = isPlainObject(p.indexerConfig) ? p.indexerConfig : {};
  const pool = isPlainObject(indexer.tokenizersPoolConfig) ? indexer.tokenizersPoolConfig : {};
  if (typeof pool.modelName === 'string' && pool.modelName !== '') return parameters;
  return { ...p, indexerConfig: { ...indexer, tokenizersPoolConfig: { ...pool, modelName: model } } };
}

/**
 * `dataLayer.sources[].extractors[]` naming a merged producer (llm-d's precise sample lists it under
 * `endpoint-notification-source`) name the scorer that now does its work.
 */
function renameExtractors(dataLayer: unknown, scorerOf: ReadonlyMap<string, string>): unknown {
  if (!isPlainObject(dataLayer) || !Array.isArray(dataLayer.sources) || scorerOf.size === 0) return dataLayer;
  const sources = dataLayer.sources.map((source: unknown) => {
    if (!isPlainObject(source) || !Array.isArray(source.extractors)) return source;
    const extractors = source.extractors.map((e: unknown) =>
      isPlainObject(e) && typeof e.pluginRef === 'string' && scorerOf.has(e.pluginRef) ? { ...e, pluginRef: scorerOf.get(e.pluginRef) } : e);
    return { ...source, extractors };
  });
  return { ...dataLayer, sources };
}

function checkNoProfileRefersToProducer(profiles: unknown, producers: ReadonlySet<string>, type: string): void {
  if (!Array.isArray(profiles)) return;
  profiles.forEach((profile, i) => {
    if (!isPlainObject(profile) || !Array.isArray(profile.plugins)) return;
    profile.plugins.forEach((ref: unknown, j: number) => {
      if (isPlainObject(ref) && typeof ref.pluginRef === 'string' && producers.has(ref.pluginRef)) {
        throw new ConfigError(
          `schedulingProfiles[${i}].plugins[${j}].pluginRef`,
          `${JSON.stringify(ref.pluginRef)} is a${type === APPROX_PRODUCER_TYPE ? 'n' : ''} ${type}, which runs before scheduling; reference the ${SCORER_TYPE} that reads it instead`,
        );
      }
    });
  });
}

/**
 * llm-d v0.2.x's way of writing precise prefix scoring: `prefix-cache-scorer` with `mode: cache_tracking`, which its
 * factory hands to the KV-event tracking plugin (llm-d-inference-scheduler `pkg/plugins/scorer/prefix_cache.go` @
 * v0.2.1; sample `deploy/config/epp-prefix-cache-tracking-config.yaml`). Rewritten before validation into kvroute's
 * `precise-prefix-cache-scorer` under the same name, with the other parameters (`indexerConfig`, `kvEventsConfig`), so
 * profiles keep referring to it with its weight; the rendered ConfigMap shows the precise type. `mode: estimate` and no
 * mode stay the approximate scorer.
 */
export function rewriteCacheTrackingMode(document: unknown): unknown {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return document;
  const tracking = (p: unknown): p is Record<string, unknown> & { parameters: Record<string, unknown> } =>
    isPlainObject(p) && p.type === SCORER_TYPE && isPlainObject(p.parameters) && p.parameters.mode === 'cache_tracking';
  if (!document.plugins.some(tracking)) return document;
  const plugins = document.plugins.map((p: unknown) => {
    if (!tracking(p)) return p;
    const { mode: _mode, ...rest } = p.parameters;
    // llm-d v0.2's tracker only ever bound its socket (llm-d-kv-cache-manager v0.2: ZMQEndpoint "tcp://*:5557", no
    // pod discovery); the precise scorer's own default is v0.8.0's, dialling every pod.
    const events = isPlainObject(rest.kvEventsConfig) ? rest.kvEventsConfig : {};
    const parameters = { ...rest, kvEventsConfig: { discoverPods: false, ...events } };
    const name = typeof p.name === 'string' && p.name !== '' ? p.name : SCORER_TYPE;
    return { ...p, type: PRECISE_SCORER_TYPE, name, parameters };
  });
  return { ...document, plugins };
}

/**
 * GIE v1.5.0's way of writing approximate prefix scoring: the hashing and the index live in an
 * `approx-prefix-cache-producer` (a request-control data producer, `pkg/epp/framework/plugins/requestcontrol/
 * dataproducer/approximateprefix/plugin.go`) that carries the parameters, and a `prefix-cache-scorer` without
 * parameters scores from its match info (`scheduling/scorer/prefix/plugin.go`: the scorer's factory ignores its
 * parameters). Only when no producer is listed does GIE's loader make one from the scorer's parameters
 * (`pkg/epp/config/loader/configloader.go`), which is the form kvroute's scorer reads directly. So the producer's
 * parameters are moved onto every `prefix-cache-scorer`, and the producer dropped, before validation. GIE v1.5.0 has
 * one match-info key, `PrefixCacheMatchInfoKey` (`datalayer/attribute/prefix/data_types.go`), and no producer names: the
 * named producers of llm-d-router v0.10.0 are its group's (`mergeLlmdApproxProducers`).
 * @throws ConfigError naming the field when there are several producers, none is read by a scorer, a scorer sets
 *         parameters of its own (GIE would ignore them without a word), or a profile references the producer.
 */
function mergeGieApproxProducer(document: unknown): Merged {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return { document, removed: [] };
  const plugins: unknown[] = document.plugins;
  checkOneGieApproxProducer(plugins);
  const index = plugins.findIndex((p) => typeOf(p) === APPROX_PRODUCER_TYPE);
  if (index < 0) return { document, removed: [] };
  const producer = plugins[index] as Record<string, unknown>;
  const parameters = producerParameters(producer, index);
  checkApproxProducerParameters(parameters, index);
  const name = nameOf(producer)!;
  const scorers = plugins.flatMap((p, i) => (typeOf(p) === SCORER_TYPE ? [i] : []));
  if (scorers.length === 0) {
    throw new ConfigError(`plugins[${index}]`, `${APPROX_PRODUCER_TYPE} ${JSON.stringify(name)} is read by no ${SCORER_TYPE}: add one (without parameters) to score from it`);
  }
  const merged = plugins.map((p, i) => {
    if (!scorers.includes(i)) return p;
    const scorer = p as Record<string, unknown>;
    if (isPlainObject(scorer.parameters) && Object.keys(scorer.parameters).length > 0) {
      const first = PRODUCER_REF in scorer.parameters ? PRODUCER_REF : Object.keys(scorer.parameters)[0]!;
      throw new ConfigError(
        `plugins[${i}].parameters.${first}`,
        first === PRODUCER_REF
          ? `producer names are llm-d-router v0.10.0's (apiVersion: ${LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION}); GIE v1.5.0's ${SCORER_TYPE} reads the one ${APPROX_PRODUCER_TYPE} and ignores its parameters: drop it, or write the config in llm-d's group`
          : `with an ${APPROX_PRODUCER_TYPE} listed, GIE v1.5.0 ignores a ${SCORER_TYPE}'s parameters: set them on the producer (plugins[${index}]) or drop the producer`,
      );
    }
    const { parameters: _ignored, ...rest } = scorer;
    return { ...rest, ...(parameters !== undefined ? { parameters } : {}) };
  });
  checkNoProfileRefersToProducer(document.schedulingProfiles, new Set([name]), APPROX_PRODUCER_TYPE);
  const scorerName = (plugins[scorers[0]!] as Record<string, unknown>).name;
  const renamed = new Map([[name, typeof scorerName === 'string' && scorerName !== '' ? scorerName : SCORER_TYPE]]);
  // Unnamed, the producer is the default-named one (its type), whose key readers naming none read.
  return {
    document: { ...document, plugins: renameMatchReaders(merged.filter((_, i) => i !== index), renamed, DEFAULT_APPROX_PRODUCER_NAME) },
    removed: [index],
    defaultProducerScorer: renamed.get(DEFAULT_APPROX_PRODUCER_NAME),
  };
}

/** GIE v1.5.0 has one match-info key, so one approximate producer. */
function checkOneGieApproxProducer(plugins: readonly unknown[]): void {
  const indices = plugins.flatMap((p, i) => (typeOf(p) === APPROX_PRODUCER_TYPE ? [i] : []));
  if (indices.length > 1) {
    throw new ConfigError(
      `plugins[${indices[1]}]`,
      `a second ${APPROX_PRODUCER_TYPE}: GIE v1.5.0's ${SCORER_TYPE} reads the one producer; several, each named by a scorer's `
        + `${PRODUCER_REF}, are llm-d-router v0.10.0's (apiVersion: ${LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION})`,
    );
  }
}

/**
 * llm-d-router v0.10.0's approximate producers, by name: each `approx-prefix-cache-producer` writes its match info under
 * a data key carrying its name (`approximateprefix/plugin.go` newDataProducer: PrefixCacheMatchInfoDataKey
 * .WithNonEmptyProducerName(name)), and a `prefix-cache-scorer` reads the producer its `prefixMatchInfoProducerName`
 * names, else the default-named one, `approx-prefix-cache-producer` (`scheduling/scorer/prefix/plugin.go` New), which
 * the runner makes with its defaults when no plugin has that name (`pkg/epp/datalayer/data_graph.go`
 * CreateMissingDataProducers; `test/integration/epp/wellknown_configs_test.go` "tiered-prefix-cache-cpu" expects it
 * beside the listed `cpu-prefix-cache-producer`). kvroute's scorer holds its own index, so each scorer that reads a
 * producer gets that producer's parameters (plus its own `matchLengthWeight` and `matchLengthScaleTokens`), and the
 * producers are dropped: two scorers reading different producers keep separate indexes of their own sizes. A scorer
 * naming none with no default-named producer listed keeps its own parameters (kvroute's and GIE's direct form; the
 * defaults when it has none).
 * @throws ConfigError naming the field when a listed producer is read by no scorer, a scorer reading a producer sets
 *         estimate parameters (upstream's scorer has none; its strict decoder refuses them), or a profile references a
 *         producer.
 */
function mergeLlmdApproxProducers(document: unknown): Merged {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return { document, removed: [] };
  const plugins: unknown[] = document.plugins;
  const producers = new Map<string, { index: number; parameters: Record<string, unknown> | undefined }>();
  plugins.forEach((p, i) => {
    if (typeOf(p) !== APPROX_PRODUCER_TYPE) return;
    const parameters = producerParameters(p as Record<string, unknown>, i);
    checkApproxProducerParameters(parameters, i);
    producers.set(nameOf(p)!, { index: i, parameters });
  });
  const readByScorer = plugins.some((p) => typeOf(p) === SCORER_TYPE && isPlainObject(p) && isPlainObject(p.parameters) && PRODUCER_REF in p.parameters);
  if (producers.size === 0 && !readByScorer) return { document, removed: [] };
  const read = new Set<string>();
  /** Producer → the first scorer that reads it, which the filter and load producer naming the producer read instead. */
  const readerOf = new Map<string, string>();
  const merged = plugins.map((p, i) => {
    if (typeOf(p) !== SCORER_TYPE) return p;
    const scorer = p as Record<string, unknown>;
    const own = isPlainObject(scorer.parameters) ? scorer.parameters : {};
    const named = referenceOf(p);
    const target = named ?? (producers.has(DEFAULT_APPROX_PRODUCER_NAME) ? DEFAULT_APPROX_PRODUCER_NAME : undefined);
    // Naming none, with no default-named producer listed: the scorer's own estimate (or the defaults).
    if (target === undefined) return p;
    const producer = producers.get(target);
    const others = Object.keys(own).filter((k) => k !== PRODUCER_REF && !MATCH_LENGTH_PARAMETERS.includes(k));
    if (others.length > 0) {
      const source = producer !== undefined ? `${APPROX_PRODUCER_TYPE} ${JSON.stringify(target)} (plugins[${producer.index}])` : `the default ${APPROX_PRODUCER_TYPE}, made with its defaults`;
      throw new ConfigError(
        `plugins[${i}].parameters.${others[0]}`,
        `a ${SCORER_TYPE} reading ${source} takes its estimate parameters (${others.join(', ')}) from the producer; llm-d-router v0.10.0's `
          + `scorer has only ${PRODUCER_REF}, ${MATCH_LENGTH_PARAMETERS.join(' and ')}: `
          + (producer !== undefined ? `set them on plugins[${producer.index}] or drop them` : `list an ${APPROX_PRODUCER_TYPE} with them, or drop them`),
      );
    }
    read.add(target);
    if (!readerOf.has(target)) readerOf.set(target, typeof scorer.name === 'string' && scorer.name !== '' ? scorer.name : SCORER_TYPE);
    const { parameters: _own, ...rest } = scorer;
    const parameters = { ...producer?.parameters, ...matchLengthOf(own) };
    return { ...rest, ...(producer?.parameters !== undefined || Object.keys(parameters).length > 0 ? { parameters } : {}) };
  });
  // A producer no scorer reads: upstream runs it for nobody, without a word; kvroute drops it with a note.
  const notes: string[] = [];
  for (const [name, { index }] of producers) {
    if (read.has(name)) continue;
    notes.push(
      `plugins[${index}]: ${APPROX_PRODUCER_TYPE} ${JSON.stringify(name)} is read by no ${SCORER_TYPE} and was skipped (a ${SCORER_TYPE} naming no `
        + `producer reads the one named ${DEFAULT_APPROX_PRODUCER_NAME}, llm-d-router v0.10.0's default; to score from this one, set its `
        + `parameters.${PRODUCER_REF}: ${name})`,
    );
  }
  checkNoProfileRefersToProducer(document.schedulingProfiles, new Set(producers.keys()), APPROX_PRODUCER_TYPE);
  const removed = [...producers.values()].map((p) => p.index);
  return {
    document: { ...document, plugins: renameMatchReaders(merged.filter((_, i) => !removed.includes(i)), readerOf, DEFAULT_APPROX_PRODUCER_NAME) },
    removed,
    notes,
    defaultProducerScorer: readerOf.get(DEFAULT_APPROX_PRODUCER_NAME),
  };
}

/** llm-d-router v0.10.0's approximate prefix window: 128K tokens (`approximateprefix/types.go` defaultMaxPrefixTokens, #1548). */
export const LLMD_MAX_PREFIX_TOKENS = 131072;
/** llm-d-router v0.10.0's block cap, in force only under `maxPrefixTokensToMatch: 0` (`approximateprefix/types.go` defaultMaxPrefixBlocks). */
export const LLMD_MAX_PREFIX_BLOCKS = 2048;
/** llm-d-router v0.10.0's smallest block, in tokens, whatever the pods' or the config's (`approximateprefix/plugin.go` minBlockSizeTokens, #1158). */
export const LLMD_MIN_BLOCK_SIZE_TOKENS = 64;

/**
 * How llm-d-router v0.10.0 cuts a prompt into blocks, as the scorer's parameters: blocks of at least 64 tokens
 * (`approximateprefix/plugin.go` GetBlockSize) and the short last block hashed too (`prefixhash/hashing.go`
 * getKVCacheBlocksFromTokens), where GIE v1.5.0 hashes full blocks of the pods' size only.
 */
export const LLMD_BLOCK_CUT = Object.freeze({ minBlockSizeTokens: LLMD_MIN_BLOCK_SIZE_TOKENS, partialLastBlock: true });

/** The block size a scorer's parameters give, in tokens (GIE's `blockSizeTokens`; characters ÷ 4 otherwise), if any. */
function configuredBlockTokens(params: Record<string, unknown>): number | undefined {
  if (typeof params.blockSizeTokens === 'number') return params.blockSizeTokens;
  for (const key of ['hashBlockSize', 'blockSize']) {
    if (typeof params[key] === 'number') return (params[key] as number) / 4;
  }
  return undefined;
}

/**
 * A config in llm-d's group gets llm-d-router v0.10.0's approximate prefix window where it sets none: its producers
 * (made with the defaults when not listed) match up to 131,072 tokens (`approximateprefix/types.go`
 * defaultMaxPrefixTokens, #1548), where GIE v1.5.0's matches 256 blocks (about 4K tokens at 16 a block). So two prompts
 * that share their first 4K tokens and part after are told apart there as upstream tells them. As upstream, the token
 * window is the default even beside a `maxPrefixBlocksToMatch`, which then applies only with `maxPrefixTokensToMatch: 0`
 * (`approximateprefix/plugin.go` resolveMaxBlocks; README: "Applies only when maxPrefixTokensToMatch is 0"), and the
 * block cap's default is v0.10.0's 2048. Prompts are cut as v0.10.0 cuts them too (`LLMD_BLOCK_CUT`: blocks of at
 * least 64 tokens, the short last block hashed), unless the scorer sets `minBlockSizeTokens` or `partialLastBlock`
 * itself. GIE's group keeps GIE's window and cut. Runs after the producer merges, on the scorers that carry each
 * producer's parameters.
 */
export function applyLlmdPrefixWindow(document: unknown, notes: string[] = []): unknown {
  if (!isPlainObject(document) || document.apiVersion !== LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION || !Array.isArray(document.plugins)) return document;
  let changed = false;
  const plugins = document.plugins.map((p: unknown) => {
    if (!isPlainObject(p) || p.type !== SCORER_TYPE) return p;
    const params = p.parameters === undefined || p.parameters === null ? {} : p.parameters;
    if (!isPlainObject(params) || params.mode === 'cache_tracking') return p;
    // A key written with no value (YAML null) leaves upstream's default, as Go's json does.
    const unset = (key: string) => params[key] === undefined || params[key] === null;
    // llm-d's deprecated `blockSize` is a token count, mapped into `blockSizeTokens` when that is left at its default
    // (approximateprefix/plugin.go ApproxPrefixCacheFactory, #1068); GIE v1.1-v1.3's, which the scorer reads, counted
    // characters.
    let tokens: Record<string, unknown> = {};
    if (typeof params.blockSize === 'number') {
      notes.push(`${SCORER_TYPE} ${JSON.stringify(nameOf(p))}: 'blockSize' is deprecated; use 'blockSizeTokens' instead (llm-d-router v0.10.0 reads it as tokens, as here)`);
      tokens = unset('blockSizeTokens') || params.blockSizeTokens === 16 ? { blockSizeTokens: params.blockSize } : {};
    }
    const window = {
      ...tokens,
      ...(unset('maxPrefixTokensToMatch') ? { maxPrefixTokensToMatch: LLMD_MAX_PREFIX_TOKENS } : {}),
      ...(unset('maxPrefixBlocksToMatch') ? { maxPrefixBlocksToMatch: LLMD_MAX_PREFIX_BLOCKS } : {}),
      ...(unset('minBlockSizeTokens') ? { minBlockSizeTokens: LLMD_MIN_BLOCK_SIZE_TOKENS } : {}),
      ...(unset('partialLastBlock') ? { partialLastBlock: true } : {}),
    };
    // Upstream's start-up warning for a block size its floor overrides (`approximateprefix/plugin.go` newDataProducer).
    const configured = configuredBlockTokens({ ...params, ...tokens });
    const floor = typeof params.minBlockSizeTokens === 'number' ? params.minBlockSizeTokens : LLMD_MIN_BLOCK_SIZE_TOKENS;
    if (configured !== undefined && configured < floor) {
      notes.push(
        `${SCORER_TYPE} ${JSON.stringify(nameOf(p))}: the configured block size (${configured} tokens) is below llm-d-router v0.10.0's minimum of ${floor} and is raised to it, `
          + 'as upstream overrides it (llm-d-router#1158); the pods\' own block size is raised the same way',
      );
    }
    if (Object.keys(window).length === 0 && params.blockSize === undefined) return p;
    // A block cap with the token window left to its default is one upstream ignores (approximateprefix/types.go:
    // MaxPrefixBlocksToMatch "applies only when MaxPrefixTokensToMatch is 0"): say so, as the config read quietly before.
    if (!unset('maxPrefixBlocksToMatch') && unset('maxPrefixTokensToMatch')) {
      notes.push(
        `${SCORER_TYPE} ${JSON.stringify(nameOf(p))}: maxPrefixBlocksToMatch (${String(params.maxPrefixBlocksToMatch)}) is not used: llm-d-router v0.10.0 reads it only `
          + `when maxPrefixTokensToMatch is 0, and that defaults to ${LLMD_MAX_PREFIX_TOKENS} tokens; set maxPrefixTokensToMatch: 0 to cap the match by blocks`,
      );
    }
    changed = true;
    const { blockSize: _deprecated, ...kept } = params;
    return { ...p, parameters: { ...kept, ...window } };
  });
  return changed ? { ...document, plugins } : document;
}
