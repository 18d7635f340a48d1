/**
 * llm-d's newer way of writing precise prefix scoring, accepted as an alias of `precise-prefix-cache-scorer`:
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
 * scorer (llm-d-inference-scheduler PRs #1086, #1112, #1121, May 2026; not on main or any tag when this was written,
 * which is why the shape is taken from those PRs and the reference notes). In kvroute the producer's work and the
 * scorer's are one plugin, so the pair is rewritten before validation into one `precise-prefix-cache-scorer` carrying
 * the producer's parameters under the scorer's name (profiles keep referring to the scorer, with its weight). The
 * normalized config, and so the rendered ConfigMap, shows the single-plugin form.
 */
import { ConfigError, describeValue } from './errors';
import { isPlainObject } from './fields';

export const PRECISE_PRODUCER_TYPE = 'precise-prefix-cache-producer';
const SCORER_TYPE = 'prefix-cache-scorer';
const PRECISE_SCORER_TYPE = 'precise-prefix-cache-scorer';
const PRODUCER_REF = 'prefixMatchInfoProducerName';

/**
 * Returns the document with every producer + scorer pair merged, or the document itself when it uses no producer.
 * Only the shape of the pair is checked here; the merged plugin is then validated like any other.
 * @throws ConfigError naming the field when a producer is not read by exactly one scorer, a scorer names no producer,
 *         or a scorer that reads a producer also sets estimate parameters.
 */
export function mergePrecisePrefixProducers(document: unknown): unknown {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return document;
  const plugins: unknown[] = document.plugins;
  const typeOf = (p: unknown) => (isPlainObject(p) && typeof p.type === 'string' ? p.type : undefined);
  const nameOf = (p: unknown) => (isPlainObject(p) ? (typeof p.name === 'string' && p.name !== '' ? p.name : typeOf(p)) : undefined);
  const readsProducer = (p: unknown) => typeOf(p) === SCORER_TYPE && isPlainObject(p) && isPlainObject(p.parameters) && PRODUCER_REF in p.parameters;
  if (!plugins.some((p) => typeOf(p) === PRECISE_PRODUCER_TYPE || readsProducer(p))) return document;

  const producers = new Map<string, number>();
  plugins.forEach((p, i) => {
    if (typeOf(p) === PRECISE_PRODUCER_TYPE) producers.set(nameOf(p)!, i);
  });
  const readBy = new Map<string, number>();
  /** Producer name → the merged scorer's name, for the references that named the producer. */
  const scorerOf = new Map<string, string>();
  // llm-d-router v0.10.0 splits tokenizing out of the precise producer into a `token-producer`; kvroute's precise scorer
  // tokenizes itself, with that producer's model when it names none (one token-producer with a modelName).
  const tokenModels = plugins.filter((p) => typeOf(p) === TOKEN_PRODUCER_TYPE)
    .map((p) => (isPlainObject(p) && isPlainObject(p.parameters) && typeof p.parameters.modelName === 'string' && p.parameters.modelName !== '' ? p.parameters.modelName : undefined))
    .filter((m): m is string => m !== undefined);
  const tokenModel = tokenModels.length === 1 ? tokenModels[0] : undefined;
  const merged = plugins.map((p, i) => {
    if (!readsProducer(p)) return p;
    const scorer = p as Record<string, unknown> & { parameters: Record<string, unknown> };
    const path = `plugins[${i}].parameters`;
    const producerName = scorer.parameters[PRODUCER_REF];
    if (typeof producerName !== 'string' || producerName === '') {
      throw new ConfigError(`${path}.${PRODUCER_REF}`, `must be the name of a ${PRECISE_PRODUCER_TYPE} plugin, got ${describeValue(producerName)}`);
    }
    const producerIndex = producers.get(producerName);
    if (producerIndex === undefined) {
      throw new ConfigError(
        `${path}.${PRODUCER_REF}`,
        `no ${PRECISE_PRODUCER_TYPE} named ${JSON.stringify(producerName)}; producers are: ${[...producers.keys()].join(', ') || '(none)'}`,
      );
    }
    const earlier = readBy.get(producerName);
    if (earlier !== undefined) {
      throw new ConfigError(`${path}.${PRODUCER_REF}`, `${JSON.stringify(producerName)} is already read by plugins[${earlier}]; one scorer per producer`);
    }
    readBy.set(producerName, i);
    const others = Object.keys(scorer.parameters).filter((k) => k !== PRODUCER_REF);
    if (others.length > 0) {
      throw new ConfigError(
        `${path}.${others[0]}`,
        `a ${SCORER_TYPE} that reads ${PRODUCER_REF} scores from the KV-event index; its estimate parameters (${others.join(', ')}) `
          + `do not apply: set them on the ${PRECISE_PRODUCER_TYPE} or drop them`,
      );
    }
    const producer = plugins[producerIndex] as Record<string, unknown>;
    scorerOf.set(producerName, nameOf(scorer)!);
    const parameters = withTokenizerModel(producer.parameters, tokenModel);
    return {
      type: PRECISE_SCORER_TYPE,
      name: nameOf(scorer),
      ...(parameters !== undefined ? { parameters } : {}),
    };
  });
  for (const [name, index] of producers) {
    if (!readBy.has(name)) {
      throw new ConfigError(
        `plugins[${index}]`,
        `${PRECISE_PRODUCER_TYPE} ${JSON.stringify(name)} is read by no scorer: add a ${SCORER_TYPE} with `
          + `parameters.${PRODUCER_REF}: ${name}, or use type ${PRECISE_SCORER_TYPE} directly`,
      );
    }
  }
  const producerNames = new Set(producers.keys());
  checkNoProfileRefersToProducer(document.schedulingProfiles, producerNames);
  const dataLayer = renameExtractors(document.dataLayer, scorerOf);
  return { ...document, plugins: merged.filter((_, i) => ![...producers.values()].includes(i)), ...(dataLayer !== undefined ? { dataLayer } : {}) };
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

function checkNoProfileRefersToProducer(profiles: unknown, producers: ReadonlySet<string>): void {
  if (!Array.isArray(profiles)) return;
  profiles.forEach((profile, i) => {
    if (!isPlainObject(profile) || !Array.isArray(profile.plugins)) return;
    profile.plugins.forEach((ref: unknown, j: number) => {
      if (isPlainObject(ref) && typeof ref.pluginRef === 'string' && producers.has(ref.pluginRef)) {
        throw new ConfigError(
          `schedulingProfiles[${i}].plugins[${j}].pluginRef`,
          `${JSON.stringify(ref.pluginRef)} is a ${PRECISE_PRODUCER_TYPE}, which runs before scheduling; reference the ${SCORER_TYPE} that reads it instead`,
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

export const APPROX_PRODUCER_TYPE = 'approx-prefix-cache-producer';

/**
 * GIE v1.5.0's way of writing approximate prefix scoring: the hashing and the index live in an
 * `approx-prefix-cache-producer` (a request-control data producer, `pkg/epp/framework/plugins/requestcontrol/
 * dataproducer/approximateprefix/plugin.go`) that carries the parameters, and a `prefix-cache-scorer` without
 * parameters scores from its match info (`scheduling/scorer/prefix/plugin.go`: the scorer's factory ignores its
 * parameters). Only when no producer is listed does GIE's loader make one from the scorer's parameters
 * (`pkg/epp/config/loader/configloader.go`), which is the form kvroute's scorer reads directly. So the producer's
 * parameters are moved onto every `prefix-cache-scorer`, and the producer dropped, before validation.
 * @throws ConfigError naming the field when there are several producers, none is read by a scorer, a scorer sets
 *         parameters of its own (GIE would ignore them without a word), or a profile references the producer.
 */
export function mergeApproxPrefixProducer(document: unknown): unknown {
  if (!isPlainObject(document) || !Array.isArray(document.plugins)) return document;
  const plugins: unknown[] = document.plugins;
  const typeOf = (p: unknown) => (isPlainObject(p) && typeof p.type === 'string' ? p.type : undefined);
  const indices = plugins.flatMap((p, i) => (typeOf(p) === APPROX_PRODUCER_TYPE ? [i] : []));
  if (indices.length === 0) return document;
  if (indices.length > 1) throw new ConfigError(`plugins[${indices[1]}]`, `a second ${APPROX_PRODUCER_TYPE}: list one, read by the ${SCORER_TYPE}`);
  const index = indices[0]!;
  const producer = plugins[index] as Record<string, unknown>;
  if (producer.parameters !== undefined && producer.parameters !== null && !isPlainObject(producer.parameters)) {
    throw new ConfigError(`plugins[${index}].parameters`, `must be a map, got ${describeValue(producer.parameters)}`);
  }
  const name = typeof producer.name === 'string' && producer.name !== '' ? producer.name : APPROX_PRODUCER_TYPE;
  const scorers = plugins.flatMap((p, i) => (typeOf(p) === SCORER_TYPE ? [i] : []));
  if (scorers.length === 0) {
    throw new ConfigError(`plugins[${index}]`, `${APPROX_PRODUCER_TYPE} ${JSON.stringify(name)} is read by no ${SCORER_TYPE}: add one (without parameters) to score from it`);
  }
  const merged = plugins.map((p, i) => {
    if (!scorers.includes(i)) return p;
    const scorer = p as Record<string, unknown>;
    if (isPlainObject(scorer.parameters) && Object.keys(scorer.parameters).length > 0) {
      const first = Object.keys(scorer.parameters)[0]!;
      throw new ConfigError(
        `plugins[${i}].parameters.${first}`,
        `with an ${APPROX_PRODUCER_TYPE} listed, GIE v1.5.0 ignores a ${SCORER_TYPE}'s parameters: set them on the producer (plugins[${index}]) or drop the producer`,
      );
    }
    const { parameters: _ignored, ...rest } = scorer;
    return { ...rest, ...(isPlainObject(producer.parameters) ? { parameters: producer.parameters } : {}) };
  });
  if (Array.isArray(document.schedulingProfiles)) {
    document.schedulingProfiles.forEach((profile: unknown, i: number) => {
      if (!isPlainObject(profile) || !Array.isArray(profile.plugins)) return;
      profile.plugins.forEach((ref: unknown, j: number) => {
        if (isPlainObject(ref) && ref.pluginRef === name) {
          throw new ConfigError(`schedulingProfiles[${i}].plugins[${j}].pluginRef`, `${JSON.stringify(name)} is an ${APPROX_PRODUCER_TYPE}, which runs before scheduling; reference the ${SCORER_TYPE} instead`);
        }
      });
    });
  }
  return { ...document, plugins: merged.filter((_, i) => i !== index) };
}

/** llm-d-router v0.10.0's approximate prefix window: 128K tokens (`approximateprefix/types.go` defaultMaxPrefixTokens, #1548). */
export const LLMD_MAX_PREFIX_TOKENS = 131072;

/**
 * A config in llm-d's group gets llm-d-router v0.10.0's approximate prefix window where it sets none: its producer
 * (which every `prefix-cache-scorer` reads, made with the defaults when not listed) matches up to 131,072 tokens
 * (`approximateprefix/types.go` defaultMaxPrefixTokens, #1548), where GIE v1.5.0's matches 256 blocks (about 4K tokens
 * at 16 a block). So two prompts that share their first 4K tokens and part after are told apart there as upstream
 * tells them. GIE's group keeps GIE's window. Runs after the producer merge, on the scorer that carries its parameters.
 */
export function applyLlmdPrefixWindow(document: unknown): unknown {
  if (!isPlainObject(document) || document.apiVersion !== 'llm-d.ai/v1alpha1' || !Array.isArray(document.plugins)) return document;
  let changed = false;
  const plugins = document.plugins.map((p: unknown) => {
    if (!isPlainObject(p) || p.type !== SCORER_TYPE) return p;
    const params = p.parameters === undefined || p.parameters === null ? {} : p.parameters;
    if (!isPlainObject(params) || 'maxPrefixTokensToMatch' in params || 'maxPrefixBlocksToMatch' in params || params.mode === 'cache_tracking') return p;
    changed = true;
    return { ...p, parameters: { ...params, maxPrefixTokensToMatch: LLMD_MAX_PREFIX_TOKENS } };
  });
  return changed ? { ...document, plugins } : document;
}
