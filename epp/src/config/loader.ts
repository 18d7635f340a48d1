import { FLOW_CONTROL_DEFAULTS, MAX_FLOW_PRIORITY } from './flow-control-defaults';
import { isAlias, isMap, isScalar, isSeq, parseDocument, stringify, visit, type Document, type Node as YamlNode, type YAMLMap } from 'yaml';
import { NO_PARAMETERS, PROFILE_KINDS } from '../scheduling/plugin';
import { isKnownPluginType, KNOWN_PLUGIN_TYPES, pluginCycleState, pluginDefinition, pluginHasKind, type PluginKind, type PluginType } from './catalogue';
import { ConfigError, describeValue } from './errors';
import { FieldReader, isPlainObject } from './fields';
import { parseQuantity } from './quantity';
import { parseDuration } from './duration';
import { resolvePluginParameters } from './parameters';
import { DEFAULT_APPROX_PRODUCER_NAME, defaultApproxScorer, LLMD_BLOCK_CUT, LLMD_MAX_PREFIX_BLOCKS, LLMD_MAX_PREFIX_TOKENS, normalizeProducerForms } from './producer-form';
import {
  ENDPOINT_PICKER_CONFIG_API_VERSION,
  ENDPOINT_PICKER_CONFIG_API_VERSIONS,
  ENDPOINT_PICKER_CONFIG_KIND,
  LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION,
  type EndpointPickerConfigApiVersion,
  FEATURE_GATE_DEFAULTS,
  KNOWN_FEATURE_GATES,
  type EndpointPickerConfig,
  type FeatureGate,
  type FlowControlConfig,
  type PluginSpec,
  type SchedulingProfilePluginRef,
  type SchedulingProfileSpec,
} from './types';

/** The profile GIE creates when a config declares none. */
export const DEFAULT_PROFILE_NAME = 'default';
/** The weight a scorer gets when its profile entry has none (GIE phase-two default). */
export const DEFAULT_SCORER_WEIGHT = 1;
const DEFAULT_PICKER_TYPE = 'max-score-picker';
const DEFAULT_PROFILE_HANDLER_TYPE = 'single-profile-handler';

/**
 * Parses EndpointPickerConfig YAML (one document) and validates it; see `validateEndpointPickerConfig`.
 * @throws ConfigError for YAML syntax errors, duplicate keys and every validation failure.
 */
export function parseEndpointPickerConfig(yamlText: string): EndpointPickerConfig {
  // `merge`: YAML 1.1 merge keys (`<<: *anchor`), which upstream's decoder (sigs.k8s.io/yaml over go-yaml v2, YAML 1.1)
  // merges; without it `<<` was read as a key and the entry reported as lacking `type`. A key a merge sets twice is
  // refused as upstream's strict decoder refuses it (`mergeCollision`).
  const document = parseDocument(yamlText, { uniqueKeys: true, prettyErrors: true, merge: true });
  const [firstError] = document.errors;
  if (firstError?.code === 'MULTIPLE_DOCS') throw new ConfigError('', 'expected one YAML document, got several');
  if (firstError !== undefined) throw new ConfigError('', `invalid YAML: ${firstError.message}`);
  const collision = mergeCollision(document);
  if (collision !== undefined) {
    const line = yamlText.slice(0, collision.offset).split('\n').length;
    throw new ConfigError('', `invalid YAML: line ${line}: key ${JSON.stringify(collision.key)} already set in map (a key written beside a merge key (<<) that the merged mapping sets too, or that two merged mappings both set: upstream's strict decoder refuses it; drop one of them from the anchor or from here)`);
  }
  const value: unknown = document.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) throw new ConfigError('', 'empty document; expected an EndpointPickerConfig');
  return validateEndpointPickerConfig(value);
}

/**
 * The first key a mapping of `document` sets twice through a merge key (`<<`): written beside the merge and set by the
 * merged mapping too, or set by two merged mappings. Upstream decodes the config strictly (llm-d-router v0.10.0
 * pkg/epp/config/loader/configloader.go decodeRawConfig: `serializer.EnableStrict`, so the apimachinery YAML
 * serializer runs sigs.k8s.io/yaml `YAMLToJSONStrict` over the document), and go-yaml v2's strict decoder merges each
 * merged key through the same `setMapIndex` as a written one, which refuses a key already in the map: "line N: key "x"
 * already set in map" (gopkg.in/yaml.v2 decode.go `mapping`, `merge`, `setMapIndex`; go-yaml/yaml#410, never fixed in
 * v2), whichever comes first. YAML 1.1's own rule (a key written beside `<<` wins) therefore never applies upstream.
 */
function mergeCollision(document: Document): { key: string; offset: number } | undefined {
  // Keys as go-yaml holds them (1 and "1" are different keys), named as written.
  const id = (key: { value: unknown }): string => `${typeof key.value}:${String(key.value)}`;
  const keysOf = (node: unknown, seen: Set<unknown>): string[] => {
    const target = isAlias(node) ? node.resolve(document) : node;
    if (!isMap(target) || seen.has(target)) return [];
    seen.add(target);
    const keys: string[] = [];
    for (const pair of target.items) {
      if (isMergePair(pair.key)) {
        for (const source of mergeSources(pair.value)) keys.push(...keysOf(source, seen));
      } else if (isScalar(pair.key)) {
        keys.push(id(pair.key));
      }
    }
    return keys;
  };
  let found: { key: string; offset: number } | undefined;
  visit(document, {
    Map(_key, map: YAMLMap) {
      const set = new Set<string>();
      for (const pair of map.items) {
        const keys = isMergePair(pair.key)
          ? mergeSources(pair.value).flatMap((source) => keysOf(source, new Set([map])))
          : isScalar(pair.key) ? [id(pair.key)] : [];
        for (const key of keys) {
          if (set.has(key)) {
            found = { key: key.slice(key.indexOf(':') + 1), offset: (pair.key as YamlNode).range?.[0] ?? 0 };
            return visit.BREAK;
          }
          set.add(key);
        }
      }
      return undefined;
    },
  });
  return found;
}

/** A merge key as the parser read it with `merge` (a plain `<<`; a quoted one is a plain key). */
function isMergePair(key: unknown): boolean {
  return isScalar(key) && typeof key.value === 'symbol';
}

/** The mappings a merge key's value names: one (an alias or a mapping written in place), or a sequence of them. */
function mergeSources(value: unknown): unknown[] {
  return isSeq(value) ? value.items : [value];
}

/**
 * Checks a config strictly (unknown fields are errors, plugin parameters included: GIE v1.5.0 decodes the document
 * strictly but each plugin's `parameters` with plain json.Unmarshal, which ignores unknown keys; llm-d-router v0.10.0
 * gives each factory a DisallowUnknownFields decoder (`fwkplugin.StrictDecoder`), as kvroute names them, so a misspelt
 * parameter cannot silently fall back to its default) and returns it normalized:
 * - every plugin has a `name` (its type by default) and its `parameters` with **every default filled in**, so the
 *   rendered ConfigMap states the effective values; plugins without parameters have no `parameters` key;
 * - no profiles → a `default` profile with every filter, scorer and picker, in declaration order;
 * - a profile without a picker gets a declared picker, else `max-score-picker` (added to `plugins` if absent);
 * - no profile handler and one profile → `single-profile-handler` is added;
 * - a plugin reading the default in-flight load (upstream's `Consumes()`: `prefix-cache-affinity-filter` whose load
 *   gate reads in-flight tokens, `utilization-filter` with an `active-requests` condition, `active-request-scorer`,
 *   `concurrency-detector`, `predicted-latency-producer`) and no `inflight-load-producer` → one is added;
 * - a `prefix-cache-affinity-filter`, `no-hit-lru-scorer` or `predicted-latency-producer` naming no prefix producer and
 *   no approximate `prefix-cache-scorer` → one with upstream's producer defaults, at weight 0 in their profiles;
 * - a P/D profile handler and no prefix scorer → a `prefix-cache-scorer` in no profile, with upstream's producer defaults;
 * - every scorer reference has a weight (1 by default); weights are finite numbers, integral or not, negative ones
 *   included (a penalty: upstream takes any float64, `configloader.go` NewWeightedScorer @ llm-d-router v0.10.0);
 * - llm-d's producer form (`precise-prefix-cache-producer` read by a `prefix-cache-scorer`) becomes one
 *   `precise-prefix-cache-scorer`, and each `approx-prefix-cache-producer`'s parameters move onto the scorers that
 *   read it (`producer-form.ts`).
 * The result is a fresh object; validating it again returns an equal value.
 * @throws ConfigError naming the field path and what would be accepted; `plugins[i]` in it is the plugin as written,
 *         producers merged away counted.
 */
export function validateEndpointPickerConfig(value: unknown): EndpointPickerConfig {
  const { document, pluginOrigins, notes: producerNotes, defaultProducerScorer } = normalizeProducerForms(value);
  if (pluginOrigins === undefined) {
    const config = validateNormalized(document, defaultProducerScorer);
    if (producerNotes.length > 0) configNotes.set(config, [...producerNotes, ...(configNotes.get(config) ?? [])]);
    return config;
  }
  let config: EndpointPickerConfig;
  try {
    config = validateNormalized(document, defaultProducerScorer);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(originalPluginIndices(error.path, pluginOrigins), originalPluginIndices(error.problem, pluginOrigins));
  }
  // The producers' notes already name plugins as written; the loader's own are translated.
  const notes = [...producerNotes, ...(configNotes.get(config) ?? []).map((note) => originalPluginIndices(note, pluginOrigins))];
  if (notes.length > 0) configNotes.set(config, notes);
  return config;
}

/**
 * `text` with every top-level `plugins[i]` (not a profile's `….plugins[j]`) turned into the index the plugin had in the
 * document as written, before producers were merged away (`origins[i]`).
 */
function originalPluginIndices(text: string, origins: readonly number[]): string {
  return text.replace(/(^|[^.\w])plugins\[(\d+)\]/g, (whole, before: string, index: string) => {
    const origin = origins[Number(index)];
    return origin === undefined ? whole : `${before}plugins[${origin}]`;
  });
}

function validateNormalized(document: unknown, defaultProducerScorer?: string): EndpointPickerConfig {
  const top = FieldReader.ofMap(document, '');
  const notes: string[] = [];
  const apiVersion = readApiVersion(top, notes);
  top.constant('kind', ENDPOINT_PICKER_CONFIG_KIND);
  const plugins = readPlugins(top, notes);
  const declaredProfiles = readProfiles(top, plugins, notes);
  const featureGates = readFeatureGates(top);
  const flowControlRead = readFlowControl(top, plugins, apiVersion);
  const flowControl = flowControlRead?.config;
  const dataLayer = readDataLayer(top, plugins);
  const parsers = readParsers(top, plugins, notes, apiVersion);
  const saturationDetectorRaw = chooseSaturationDetector(top.raw('saturationDetector'), flowControlRead?.saturationDetector, notes);
  top.finish();

  const profiles =
    declaredProfiles.length > 0
      ? declaredProfiles
      : [{ name: DEFAULT_PROFILE_NAME, plugins: defaultProfileRefs(plugins) }];
  for (const profile of profiles) addDefaultPicker(profile, plugins, declaredProfiles.indexOf(profile));
  addDefaultProfileHandler(plugins, profiles);
  addInFlightLoadProducer(plugins, defaultProducerScorer);
  addDefaultPrefixScorer(plugins, profiles, notes);
  addPdPrefixScorer(plugins);
  // After the profiles, as GIE's ensureSaturationDetector runs after ensureSchedulingLayer: a detector the section
  // adds is not put into the defaulted profile.
  const saturationDetector = readSaturationDetector(saturationDetectorRaw?.raw, plugins, saturationDetectorRaw?.path ?? 'saturationDetector');

  const config: EndpointPickerConfig = {
    apiVersion,
    kind: ENDPOINT_PICKER_CONFIG_KIND,
    plugins,
    schedulingProfiles: profiles,
    ...(featureGates !== undefined ? { featureGates } : {}),
    ...(flowControl !== undefined ? { flowControl } : {}),
    ...(dataLayer !== undefined ? { dataLayer } : {}),
    ...parsers,
    ...(saturationDetector !== undefined ? { saturationDetector } : {}),
  };
  if (notes.length > 0) configNotes.set(config, notes);
  return config;
}

/** Deprecation notes of the configs `validateEndpointPickerConfig` returned, as upstream's loader logs them. */
const configNotes = new WeakMap<EndpointPickerConfig, readonly string[]>();

/**
 * What upstream's loader would log as deprecated about the document this config was read from (llm-d-router
 * `pkg/epp/config/loader/configloader.go` @ v0.10.0 LoadRawConfig: `logger.Info("DEPRECATION: …")`); empty for a
 * config that did not come from `validateEndpointPickerConfig`. The runner logs them at info level, as upstream does.
 */
export function endpointPickerConfigNotes(config: EndpointPickerConfig): readonly string[] {
  return configNotes.get(config) ?? [];
}

/**
 * Either group: llm-d-router v0.10.0 registers `llm-d.ai/v1alpha1` and still decodes GIE's
 * `inference.networking.x-k8s.io/v1alpha1` (`pkg/epp/config/loader/configloader.go` @ v0.10.0:
 * deprecatedSchemeGroupVersion), logging it as deprecated. kvroute keeps rendering GIE's group, which every GIE
 * release and llm-d-router up to v0.10 read.
 */
function readApiVersion(top: FieldReader, notes: string[]): EndpointPickerConfigApiVersion {
  const value = top.raw('apiVersion');
  if (!(ENDPOINT_PICKER_CONFIG_API_VERSIONS as readonly unknown[]).includes(value)) {
    throw new ConfigError('apiVersion', `must be ${ENDPOINT_PICKER_CONFIG_API_VERSIONS.map((v) => JSON.stringify(v)).join(' or ')}, got ${describeValue(value)}`);
  }
  if (value === ENDPOINT_PICKER_CONFIG_API_VERSION) {
    notes.push(`DEPRECATION: apiVersion ${ENDPOINT_PICKER_CONFIG_API_VERSION}/EndpointPickerConfig is deprecated (llm-d-router v0.10.0); replacement: ${LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION}/EndpointPickerConfig`);
  }
  return value as EndpointPickerConfigApiVersion;
}

/** GIE v1.5.0's saturation detector plugin types (`pkg/epp/framework/plugins/flowcontrol/saturationdetector`). */
const DEFAULT_SATURATION_DETECTOR = 'utilization-detector';

/**
 * GIE v1.5.0's `saturationDetector: {pluginRef}` (`config/loader/defaults.go` ensureSaturationDetector, `validation.go`):
 * an empty or missing `pluginRef` means `utilization-detector`, added with its defaults when no plugin has that name.
 * Without the section, a plugin named `utilization-detector` is the detector, as in GIE; with neither, GIE's default
 * is added as GIE adds it, unless the config detects saturation with kvroute's `saturation-filter` (kvroute's own
 * configs: its thresholds and staleness suit kvroute's scrape modes), which then is the only detection.
 */
function readSaturationDetector(raw: unknown, plugins: PluginSpec[], path: string): EndpointPickerConfig['saturationDetector'] {
  if (raw === undefined || raw === null) {
    const named = plugins.find((p) => p.name === DEFAULT_SATURATION_DETECTOR);
    if (named !== undefined) return pluginHasKind(named.type, 'saturation-detector') ? { pluginRef: named.name! } : undefined;
    if (plugins.some((p) => p.type === 'saturation-filter')) return undefined;
    ensurePlugin(DEFAULT_SATURATION_DETECTOR, plugins, `${path}.pluginRef`);
    return { pluginRef: DEFAULT_SATURATION_DETECTOR };
  }
  const fields = FieldReader.ofMap(raw, path);
  const pluginRef = optionalRef(fields, 'pluginRef') ?? DEFAULT_SATURATION_DETECTOR;
  fields.finish();
  const plugin = pluginRef === DEFAULT_SATURATION_DETECTOR
    ? ensurePlugin(DEFAULT_SATURATION_DETECTOR, plugins, `${path}.pluginRef`)
    : plugins.find((p) => p.name === pluginRef);
  if (plugin === undefined) {
    throw new ConfigError(`${path}.pluginRef`, `no plugin named ${JSON.stringify(pluginRef)}; plugins are: ${plugins.map((p) => p.name).join(', ') || '(none)'}`);
  }
  if (!pluginHasKind(plugin.type, 'saturation-detector')) {
    throw new ConfigError(
      `${path}.pluginRef`,
      `${JSON.stringify(pluginRef)} is a ${plugin.type}, not a saturation detector; detectors: ${KNOWN_PLUGIN_TYPES.filter((t) => pluginHasKind(t, 'saturation-detector')).join(', ')}`,
    );
  }
  return { pluginRef };
}

/** The plugin types each role of GIE v1.5.0's `dataLayer` and `parser` sections may refer to. */
const DATA_SOURCE_TYPES: readonly string[] = ['metrics-data-source', 'endpoint-notification-source'];
const EXTRACTOR_TYPES: Readonly<Record<string, readonly string[]>> = {
  'metrics-data-source': ['core-metrics-extractor'],
  // llm-d v0.8.0 deploy/config/epp-precise-prefix-cache-config.yaml: the precise scorer learns of pods from it.
  'endpoint-notification-source': ['precise-prefix-cache-scorer'],
};
const PARSER_TYPES: readonly string[] = ['openai-parser', 'anthropic-parser', 'vllmhttp-parser', 'passthrough-parser'];
/** llm-d-router v0.10.0 also registers `multicluster-file-discovery` (alpha, peer clusters as endpoints): not here. */
const DISCOVERY_TYPES: readonly string[] = ['file-discovery'];

function referencedPlugin(value: unknown, path: string, plugins: readonly PluginSpec[], allowed: readonly string[]): string {
  const fields = FieldReader.ofMap(value, path);
  const pluginRef = fields.requiredString('pluginRef');
  fields.finish();
  const plugin = plugins.find((p) => p.name === pluginRef);
  if (plugin === undefined) {
    throw new ConfigError(`${path}.pluginRef`, `no plugin named ${JSON.stringify(pluginRef)}; plugins are: ${plugins.map((p) => p.name).join(', ') || '(none)'}`);
  }
  if (!allowed.includes(plugin.type)) {
    throw new ConfigError(`${path}.pluginRef`, `${JSON.stringify(pluginRef)} is a ${plugin.type}; allowed here: ${allowed.join(', ')}`);
  }
  return pluginRef;
}

/**
 * GIE v1.5.0's `dataLayer: {sources: [{pluginRef, extractors: [{pluginRef}]}]}` (apix/config/v1alpha1
 * endpointpickerconfig_types.go), with llm-d-router v0.10.0's additions to the same struct: `injectDefaults`,
 * `discovery: {pluginRef}` (a `file-discovery` plugin, `docs/discovery.md`) and the cross-replica syncer fields.
 * Checked (each reference names a plugin of a fitting type) and kept; kvroute's datastore does the work, with
 * `metrics-data-source`'s parameters.
 */
function readDataLayer(top: FieldReader, plugins: readonly PluginSpec[]): EndpointPickerConfig['dataLayer'] {
  if (!top.has('dataLayer')) {
    top.raw('dataLayer');
    return undefined;
  }
  const r = FieldReader.ofMap(top.raw('dataLayer'), 'dataLayer');
  // `sources` is optional in llm-d-router v0.10.0 (`omitempty`): a config may name only its discovery.
  const list = r.raw('sources') ?? [];
  const injectDefaults = r.raw('injectDefaults') == null ? undefined : r.boolean('injectDefaults', true);
  const discovery = r.raw('discovery') == null ? undefined : { pluginRef: referencedPlugin(r.raw('discovery'), 'dataLayer.discovery', plugins, DISCOVERY_TYPES) };
  if (r.raw('crossReplicaSyncerPluginRef') != null) {
    // configloader.go buildDataLayerConfig: the plugin must be a fwkdl.CrossReplicaSyncer, which no plugin v0.10.0
    // registers implements, so upstream refuses every value too.
    throw new ConfigError('dataLayer.crossReplicaSyncerPluginRef', `no cross-replica syncer plugin exists (llm-d-router v0.10.0 registers none); kvroute's replicas share sessions through session-affinity-filter's sessionStore: drop the field`);
  }
  const crossReplicaSyncInterval = r.raw('crossReplicaSyncInterval') == null ? undefined : r.duration('crossReplicaSyncInterval', '1s');
  r.finish();
  if (!Array.isArray(list)) throw new ConfigError('dataLayer.sources', `must be a list of {pluginRef, extractors}, got ${describeValue(list)}`);
  return {
    sources: list.map((item, index) => {
      const path = `dataLayer.sources[${index}]`;
      const fields = FieldReader.ofMap(item, path);
      const source = referencedPlugin({ pluginRef: fields.raw('pluginRef') }, path, plugins, DATA_SOURCE_TYPES);
      const sourceType = plugins.find((p) => p.name === source)!.type;
      const extractors = fields.raw('extractors') ?? [];
      fields.finish();
      if (!Array.isArray(extractors)) throw new ConfigError(`${path}.extractors`, `must be a list of {pluginRef}, got ${describeValue(extractors)}`);
      return {
        pluginRef: source,
        extractors: extractors.map((e, i) => ({ pluginRef: referencedPlugin(e, `${path}.extractors[${i}]`, plugins, EXTRACTOR_TYPES[sourceType] ?? []) })),
      };
    }),
    ...(injectDefaults !== undefined ? { injectDefaults } : {}),
    ...(discovery !== undefined ? { discovery } : {}),
    ...(crossReplicaSyncInterval !== undefined ? { crossReplicaSyncInterval } : {}),
  };
}

/**
 * Whether pods' `/metrics` pages are scraped: llm-d-router v0.10.0 injects its default metrics source unless
 * `dataLayer.injectDefaults` is false, and a config whose `sources` lists a `metrics-data-source` has one anyway
 * (`docs/architecture.md`, "DataLayer"). GIE v1.5.0 and every config without `injectDefaults: false` scrape.
 */
export function scrapesModelServerMetrics(config: Pick<EndpointPickerConfig, 'dataLayer' | 'plugins'>): boolean {
  const dl = config.dataLayer;
  if (dl?.injectDefaults !== false) return true;
  return dl.sources.some((s) => config.plugins.find((p) => p.name === s.pluginRef)?.type === 'metrics-data-source');
}

/**
 * llm-d-router v0.10.0's `flowControl.saturationDetector` and the top-level `saturationDetector` it deprecates (v0.9.0;
 * `apix/config/v1alpha1/endpointpickerconfig_types.go`, `pkg/epp/config/loader/configloader.go` LoadRawConfig: "If both
 * are set, the new field is used"): one meaning. Both set and naming different detectors is refused here rather than
 * one being silently dropped; both naming the same one is fine. Returns the section to read and its path.
 */
function chooseSaturationDetector(topLevel: unknown, inFlowControl: unknown, notes: string[]): { raw: unknown; path: string } | undefined {
  const given = (v: unknown) => v !== undefined && v !== null;
  if (given(topLevel)) notes.push('DEPRECATION: top-level saturationDetector is deprecated, use flowControl.saturationDetector instead (llm-d-router v0.9.0)');
  if (!given(inFlowControl)) return given(topLevel) ? { raw: topLevel, path: 'saturationDetector' } : undefined;
  if (given(topLevel)) {
    const ref = (v: unknown, path: string) => {
      const f = FieldReader.ofMap(v, path);
      const r = optionalRef(f, 'pluginRef') ?? DEFAULT_SATURATION_DETECTOR;
      f.finish();
      return r;
    };
    const a = ref(topLevel, 'saturationDetector');
    const b = ref(inFlowControl, 'flowControl.saturationDetector');
    if (a !== b) {
      throw new ConfigError('saturationDetector', `names ${JSON.stringify(a)} and flowControl.saturationDetector names ${JSON.stringify(b)}: give one (llm-d-router v0.9.0 moved the section into flowControl; upstream would silently use flowControl's)`);
    }
  }
  return { raw: inFlowControl, path: 'flowControl.saturationDetector' };
}

/**
 * llm-d-router v0.10.0's parser types kvroute has no counterpart of (`pkg/epp/framework/plugins/requesthandling/parsers`
 * vertexai, vllmgrpc): both read gRPC (protobuf) request bodies, for h2c routes (their `Claims` name only
 * `AppProtocolH2C`), which kvroute's EPP does not parse.
 */
const UNSUPPORTED_PARSER_TYPES: readonly string[] = ['vertexai-parser', 'vllmgrpc-parser'];

function unsupportedParser(path: string, type: string): ConfigError {
  return new ConfigError(path, `llm-d-router's ${type} is not supported: it reads gRPC (protobuf) request bodies, and kvroute's EPP reads HTTP JSON bodies (${PARSER_TYPES.filter((t) => t !== 'passthrough-parser').join(', ')}) or none (passthrough-parser)`);
}

/**
 * A parser reference: a declared parser plugin, or a parser type name, added with its defaults when no plugin has that
 * name (llm-d-router v0.10.0 `pkg/epp/config/loader/defaults.go` ensureParsers).
 */
function parserRef(value: unknown, path: string, plugins: PluginSpec[]): PluginSpec {
  const f = FieldReader.ofMap(value, path);
  const ref = f.requiredString('pluginRef');
  f.finish();
  const declared = plugins.find((p) => p.name === ref);
  if (declared === undefined && PARSER_TYPES.includes(ref)) return ensurePlugin(ref as PluginType, plugins, `${path}.pluginRef`);
  if (declared === undefined && UNSUPPORTED_PARSER_TYPES.includes(ref)) throw unsupportedParser(`${path}.pluginRef`, ref);
  return plugins.find((p) => p.name === referencedPlugin({ pluginRef: ref }, path, plugins, PARSER_TYPES))!;
}

/** llm-d-router v0.10.0 `pkg/epp/config/loader/defaults.go` ensureParsers: the parsers of a config that names none. */
const LLMD_DEFAULT_PARSER_TYPES: readonly PluginType[] = ['openai-parser', 'anthropic-parser', 'vllmhttp-parser'];

/**
 * The request parsers, in one of two forms, read as the upstream each belongs to reads it:
 *
 * - llm-d-router v0.10.0's `requestHandler: {parsers: [{pluginRef}]}`, or any config under its group
 *   (`llm-d.ai/v1alpha1`, which only llm-d reads): a registry resolving each request's parser by its path
 *   (`pkg/epp/handlers/parsers.go` NewParserRegistry; kvroute's `requestcontrol/request-parsers.ts`). The list is kept
 *   as upstream keeps it: a second parser of a type is skipped, and so is everything after the first parser claiming no
 *   paths (`passthrough-parser`, the fallback). An empty or absent list is the top-level `parser` it deprecates (v0.9.0:
 *   `configloader.go` LoadRawConfig copies it in), else upstream's default openai, anthropic and vllmhttp parsers
 *   (`defaults.go` ensureParsers), added to `plugins` as upstream registers them. Written as `requestHandler`.
 * - GIE v1.5.0's top-level `parser: {pluginRef}` under GIE's group without `requestHandler` (a section GIE's strict
 *   decoding refuses): one parser for every request whatever its path (GIE v1.5.0 `pkg/epp/handlers/server.go`),
 *   `openai-parser` when none is named (`defaults.go` ensureParser). Written as `parser`, only when given.
 *
 * Both `parser` and a non-empty `requestHandler.parsers` other than that one parser are refused rather than `parser`
 * silently dropped, as upstream would.
 */
function readParsers(top: FieldReader, plugins: PluginSpec[], notes: string[], apiVersion: EndpointPickerConfigApiVersion): Pick<EndpointPickerConfig, 'parser' | 'requestHandler'> {
  const oldRaw = top.raw('parser');
  const handlerRaw = top.raw('requestHandler');
  let old: PluginSpec | undefined;
  if (oldRaw !== undefined && oldRaw !== null) {
    notes.push('DEPRECATION: top-level parser is deprecated, use requestHandler.parsers instead (llm-d-router v0.9.0)');
    old = parserRef(oldRaw, 'parser', plugins);
  }
  const handlerGiven = handlerRaw !== undefined && handlerRaw !== null;
  if (!handlerGiven && apiVersion !== LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION) return old !== undefined ? { parser: { pluginRef: old.name! } } : {};
  let list: unknown;
  if (handlerGiven) {
    const r = FieldReader.ofMap(handlerRaw, 'requestHandler');
    list = r.raw('parsers');
    r.finish();
    if (list !== undefined && list !== null && !Array.isArray(list)) {
      throw new ConfigError('requestHandler.parsers', `must be a list of {pluginRef}, got ${describeValue(list)}`);
    }
  }
  const effective: PluginSpec[] = [];
  for (const [index, item] of ((list as unknown[] | undefined | null) ?? []).entries()) {
    const plugin = parserRef(item, `requestHandler.parsers[${index}]`, plugins);
    if (!effective.some((p) => p.type === plugin.type)) effective.push(plugin);
    if (plugin.type === 'passthrough-parser') break; // claims no paths: upstream's fallback, later entries skipped
  }
  if (old !== undefined && effective.length > 0 && !(effective.length === 1 && effective[0]!.type === old.type)) {
    throw new ConfigError('parser', `names a ${old.type} and requestHandler.parsers ${effective.length === 1 ? 'a' : 'lists'} ${effective.map((p) => p.type).join(', ')}: give one (llm-d-router v0.9.0 moved the parser into requestHandler.parsers; upstream would silently use that one)`);
  }
  if (effective.length === 0) {
    if (old !== undefined) effective.push(old);
    else for (const type of LLMD_DEFAULT_PARSER_TYPES) effective.push(ensurePlugin(type, plugins, 'requestHandler.parsers'));
  }
  return { requestHandler: { parsers: effective.map((p) => ({ pluginRef: p.name! })) } };
}

/**
 * `featureGates`: entries `name`, `name=true` or `name=false`, as llm-d-router v0.10.0 validates them
 * (`pkg/epp/config/loader/validation.go` validateFeatureGates: the text before the first "=" must be a registered gate;
 * after it, a Go `strconv.ParseBool` value once lower-cased and trimmed); kept as written.
 */
function readFeatureGates(top: FieldReader): string[] | undefined {
  if (!top.has('featureGates')) {
    top.raw('featureGates');
    return undefined;
  }
  const gates = top.stringList('featureGates', []);
  gates.forEach((gate, index) => {
    const [name, value] = gate.split('=');
    if (!(KNOWN_FEATURE_GATES as readonly string[]).includes(name!)) {
      throw new ConfigError(`featureGates[${index}]`, `unknown feature gate ${JSON.stringify(name)}; known: ${KNOWN_FEATURE_GATES.join(', ')}`);
    }
    if (value !== undefined && parseGateValue(value) === undefined) {
      throw new ConfigError(`featureGates[${index}]`, `${JSON.stringify(value)} is not a valid value for the feature gate ${name}; write ${name}, ${name}=true or ${name}=false`);
    }
  });
  return gates;
}

/** Go's strconv.ParseBool after upstream's ToLower and TrimSpace: 1, t, true / 0, f, false. */
function parseGateValue(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (v === '1' || v === 't' || v === 'true') return true;
  if (v === '0' || v === 'f' || v === 'false') return false;
  return undefined;
}

/**
 * Whether a gate is on for this config: its registered default (`FEATURE_GATE_DEFAULTS`), then each entry in order, a
 * bare name meaning true (llm-d-router v0.10.0 `pkg/epp/config/loader/configloader.go` loadFeatureConfig).
 */
export function featureGateEnabled(config: Pick<EndpointPickerConfig, 'featureGates'>, gate: FeatureGate): boolean {
  let enabled = FEATURE_GATE_DEFAULTS[gate];
  for (const entry of config.featureGates ?? []) {
    const [name, value] = entry.split('=');
    if (name === gate) enabled = value === undefined ? true : parseGateValue(value) ?? enabled;
  }
  return enabled;
}

/**
 * `flowControl`: every field checked and filled with its default, so the ConfigMap states what the EPP runs. GIE
 * v1.5.0's keys load too (`apix/config/v1alpha1` FlowControlConfig): `maxRequests` and `maxBytes` (quantities) become
 * `maxQueued` and `maxQueuedBytes`; `priorityBands` and `defaultPriorityBand` are kept with their quantities as
 * integers; `usageLimitPolicyPluginRef` must name a usage-limit policy (GIE's `static-usage-limit-policy`, llm-d-router
 * v0.10.0's `priority-holdback-policy` or `soft-reflective-ceiling-policy`); `defaultRequestTTL: 0` means no
 * deadline of the EPP's own, as in GIE.
 */
function readFlowControl(top: FieldReader, plugins: readonly PluginSpec[], apiVersion: EndpointPickerConfigApiVersion): { config: FlowControlConfig; saturationDetector: unknown } | undefined {
  if (!top.has('flowControl')) {
    top.raw('flowControl');
    return undefined;
  }
  const r = FieldReader.ofMap(top.raw('flowControl'), 'flowControl');
  const objectivesRaw = r.raw('objectives');
  const objectives: Record<string, number> = {};
  if (objectivesRaw !== undefined && objectivesRaw !== null) {
    const o = FieldReader.ofMap(objectivesRaw, 'flowControl.objectives');
    for (const name of Object.keys(objectivesRaw as object)) {
      // Any integer, as an InferenceObjective's `spec.priority` (GIE v1.5.0 `apix/v1alpha2` InferenceObjectiveSpec).
      objectives[name] = o.integer(name, 0, Number.MIN_SAFE_INTEGER);
    }
  }
  const bands = readPriorityBands(r.raw('priorityBands'), plugins);
  const defaultBand = r.raw('defaultPriorityBand');
  // llm-d-router v0.10.0 (apix/config/v1alpha1 FlowControlConfig.DefaultNegativePriorityBand): the template of the
  // levels below 0 that priorityBands does not list; without it they take defaultPriorityBand (flowcontrol/registry/registry.go provisionPriorityBandLocked).
  const defaultNegativeBand = r.raw('defaultNegativePriorityBand');
  // Read by the caller: llm-d-router v0.9.0 moved the top-level saturationDetector here.
  const saturationDetector = r.raw('saturationDetector');
  // llm-d-router v0.10.0's in-flight eviction of priority < 0 requests (FlowControlConfig.EnableEviction, default false).
  const enableEviction = r.raw('enableEviction');
  if (enableEviction !== undefined && enableEviction !== null && typeof enableEviction !== 'boolean') {
    throw new ConfigError('flowControl.enableEviction', `must be true or false, got ${describeValue(enableEviction)}`);
  }
  if (enableEviction === true) {
    throw new ConfigError('flowControl.enableEviction', 'true is not supported: kvroute never terminates a request it has dispatched; a sheddable request is refused or displaced only while it waits. Remove it or set false');
  }
  const usageLimitRef = optionalRef(r, 'usageLimitPolicyPluginRef');
  // GIE registers the default policy under its type name (`config/loader/defaults.go` ensureFlowControlLayer); the
  // others must be declared (llm-d-router v0.10.0: "not framework-injected", softreflectiveceiling/README.md).
  if (usageLimitRef !== undefined && usageLimitRef !== 'static-usage-limit-policy') {
    const plugin = plugins.find((p) => p.name === usageLimitRef);
    if (plugin === undefined || !USAGE_LIMIT_POLICY_TYPES.includes(plugin.type)) {
      throw new ConfigError(
        'flowControl.usageLimitPolicyPluginRef',
        plugin === undefined
          ? `no plugin named ${JSON.stringify(usageLimitRef)}; declare one of ${USAGE_LIMIT_POLICY_TYPES.join(', ')} in plugins`
          : `${JSON.stringify(usageLimitRef)} is a ${plugin.type}, not a usage-limit policy (${USAGE_LIMIT_POLICY_TYPES.join(', ')})`,
      );
    }
  }
  // Written in GIE's terms: GIE's meaning of what the section leaves out (FlowControlConfig.sessionFairness).
  const upstreamTerms = UPSTREAM_FLOW_CONTROL_KEYS.some((key) => r.has(key));
  const sessionFairness = r.boolean('sessionFairness', !upstreamTerms);
  const config: FlowControlConfig = {
    enabled: r.boolean('enabled', FLOW_CONTROL_DEFAULTS.enabled),
    maxQueued: quantityAlias(r, 'maxQueued', 'maxRequests', FLOW_CONTROL_DEFAULTS.maxQueued),
    maxQueuedBytes: quantityAlias(r, 'maxQueuedBytes', 'maxBytes', FLOW_CONTROL_DEFAULTS.maxQueuedBytes),
    // Unset: llm-d-router v0.10.0's 60 s queue-wait budget under its group (`flowcontrol/controller/config.go`
    // defaultRequestTTL), kvroute's 30 s otherwise (GIE v1.5.0 has none).
    defaultRequestTTL: readRequestTTL(r, apiVersion === LLMD_ENDPOINT_PICKER_CONFIG_API_VERSION ? '60s' : FLOW_CONTROL_DEFAULTS.defaultRequestTTL),
    dispatchPerTick: r.integer('dispatchPerTick', FLOW_CONTROL_DEFAULTS.dispatchPerTick, 1),
    dispatchInterval: r.duration('dispatchInterval', FLOW_CONTROL_DEFAULTS.dispatchInterval),
    maxHeaderPriority: r.integer('maxHeaderPriority', FLOW_CONTROL_DEFAULTS.maxHeaderPriority, -MAX_FLOW_PRIORITY, MAX_FLOW_PRIORITY),
    // Left out when neither given nor implied, so that GIE's gate (which an environment variable may turn on after
    // loading) decides at start (`resolveFlowControl`).
    ...(upstreamTerms || r.has('sessionFairness') ? { sessionFairness } : {}),
    objectives,
    ...(bands !== undefined ? { priorityBands: bands } : {}),
    ...(defaultBand !== undefined && defaultBand !== null
      ? { defaultPriorityBand: readPriorityBand(defaultBand, 'flowControl.defaultPriorityBand', plugins, false) }
      : {}),
    ...(defaultNegativeBand !== undefined && defaultNegativeBand !== null
      ? { defaultNegativePriorityBand: readPriorityBand(defaultNegativeBand, 'flowControl.defaultNegativePriorityBand', plugins, false) }
      : {}),
    ...(usageLimitRef !== undefined ? { usageLimitPolicyPluginRef: usageLimitRef } : {}),
  };
  r.finish();
  return { config, saturationDetector };
}

/** `defaultRequestTTL`: a positive duration, or 0 for none (GIE: the request waits as long as its client does). */
function readRequestTTL(r: FieldReader, defaultTtl: string): string {
  const raw = r.raw('defaultRequestTTL');
  if (raw === 0) return '0s';
  if (typeof raw === 'string') {
    let ms: number | undefined;
    try {
      ms = parseDuration(raw);
    } catch {
      ms = undefined; // r.duration below names the problem
    }
    if (ms === 0) return '0s';
  }
  return r.duration('defaultRequestTTL', defaultTtl);
}

/** kvroute's integer field or GIE's quantity-valued name for the same bound; both given is an error. */
function quantityAlias(r: FieldReader, key: string, gieKey: string, defaultValue: number): number {
  const gie = r.raw(gieKey);
  if (gie === undefined || gie === null) return r.integer(key, defaultValue, 1);
  if (r.has(key)) throw new ConfigError(r.fieldPath(gieKey), `is GIE's name for ${key}; give one of the two`);
  r.raw(key);
  // GIE: 0 sets no global bound (`flowcontrol/registry/config.go`); the EPP's memory needs one, so kvroute's default
  // stays.
  return quantity(gie, r.fieldPath(gieKey)) || defaultValue;
}

/**
 * `flowControl` keys GIE v1.5.0 (`apix/config/v1alpha1` FlowControlConfig) or llm-d-router v0.10.0 has and kvroute's own
 * configs need not: a section with any of them is written in upstream's terms. (`defaultRequestTTL` is GIE's too, but
 * also kvroute's only name for the wait.)
 */
const UPSTREAM_FLOW_CONTROL_KEYS = ['maxRequests', 'maxBytes', 'priorityBands', 'defaultPriorityBand', 'defaultNegativePriorityBand', 'usageLimitPolicyPluginRef', 'saturationDetector', 'enableEviction'];

/** A non-negative quantity, as GIE's resolveQuantity accepts (`flowcontrol/registry/config.go` @ v1.5.0). */
function quantity(value: unknown, path: string): number {
  let n: number;
  try {
    n = parseQuantity(value);
  } catch (error) {
    throw new ConfigError(path, (error as Error).message);
  }
  if (n < 0) throw new ConfigError(path, `must not be negative, got ${describeValue(value)}`);
  return n;
}

/** A plugin reference that GIE treats as unset when empty (`omitempty` strings, `!= ""` guards). */
function optionalRef(f: FieldReader, key: string): string | undefined {
  const value = f.raw(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new ConfigError(f.fieldPath(key), `must be a plugin name, got ${describeValue(value)}`);
  return value;
}

const FAIRNESS_POLICY_TYPES: readonly string[] = ['global-strict-fairness-policy', 'round-robin-fairness-policy'];
/** What `flowControl.usageLimitPolicyPluginRef` may name: GIE v1.5.0's static policy, llm-d-router v0.10.0's per-band ones. */
const USAGE_LIMIT_POLICY_TYPES: readonly string[] = ['static-usage-limit-policy', 'priority-holdback-policy', 'soft-reflective-ceiling-policy'];
const ORDERING_POLICY_TYPES: readonly string[] = ['fcfs-ordering-policy'];
/** GIE v1.5.0 ordering policies kvroute does not implement (`pkg/epp/framework/plugins/flowcontrol/ordering`). */
const UNSUPPORTED_ORDERING_POLICIES: readonly string[] = ['edf-ordering-policy', 'slo-deadline-ordering-policy'];

function readPriorityBands(raw: unknown, plugins: readonly PluginSpec[]): FlowControlConfig['priorityBands'] {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw new ConfigError('flowControl.priorityBands', `must be a list of {priority, maxBytes, maxRequests, fairnessPolicyRef, orderingPolicyRef}, got ${describeValue(raw)}`);
  const seen = new Map<number, number>();
  return raw.map((item, index) => {
    const path = `flowControl.priorityBands[${index}]`;
    const { priority, ...rest } = readPriorityBand(item, path, plugins, true);
    const other = seen.get(priority!);
    if (other !== undefined) throw new ConfigError(`${path}.priority`, `priority ${priority} is also flowControl.priorityBands[${other}]'s; each level once`);
    seen.set(priority!, index);
    return { priority: priority!, ...rest };
  });
}

function readPriorityBand(raw: unknown, path: string, plugins: readonly PluginSpec[], needsPriority: boolean): NonNullable<FlowControlConfig['defaultPriorityBand']> {
  const f = FieldReader.ofMap(raw, path);
  let priority: number | undefined;
  if (needsPriority) {
    // Any integer, as GIE's `PriorityBandConfig.Priority` (v1.5.0 `apix/config/v1alpha1/endpointpickerconfig_types.go`),
    // a plain int: omitted, it is level 0 there too (two such bands are refused below as the same level twice).
    priority = f.integer('priority', 0, Number.MIN_SAFE_INTEGER);
  } else {
    // GIE's PriorityBandConfig carries a priority; the default band's is checked and not used.
    f.integer('priority', 0, Number.MIN_SAFE_INTEGER);
  }
  // 0 is GIE's "unset": no request bound of the band's own, and the default byte bound. Read with `raw` first, so an
  // unknown key's error lists these two among the allowed ones.
  const rawMaxRequests = f.raw('maxRequests');
  const rawMaxBytes = f.raw('maxBytes');
  const maxRequests = f.has('maxRequests') ? quantity(rawMaxRequests, f.fieldPath('maxRequests')) || undefined : undefined;
  const maxBytes = f.has('maxBytes') ? quantity(rawMaxBytes, f.fieldPath('maxBytes')) || undefined : undefined;
  const fairnessPolicyRef = policyRef(f, 'fairnessPolicyRef', FAIRNESS_POLICY_TYPES, plugins);
  const orderingPolicyRef = policyRef(f, 'orderingPolicyRef', ORDERING_POLICY_TYPES, plugins);
  f.finish();
  return {
    ...(priority !== undefined ? { priority } : {}),
    ...(maxRequests !== undefined ? { maxRequests } : {}),
    ...(maxBytes !== undefined ? { maxBytes } : {}),
    ...(fairnessPolicyRef !== undefined ? { fairnessPolicyRef } : {}),
    ...(orderingPolicyRef !== undefined ? { orderingPolicyRef } : {}),
  };
}

/** A policy reference: a declared plugin of one of `types`, or one of the type names itself (GIE registers its defaults by type name). */
function policyRef(f: FieldReader, key: string, types: readonly string[], plugins: readonly PluginSpec[]): string | undefined {
  const ref = optionalRef(f, key);
  if (ref === undefined) return undefined;
  const plugin = plugins.find((p) => p.name === ref);
  if (plugin !== undefined) {
    if (!types.includes(plugin.type)) throw new ConfigError(f.fieldPath(key), `${JSON.stringify(ref)} is a ${plugin.type}; allowed here: ${types.join(', ')}`);
    return ref;
  }
  if (types.includes(ref)) return ref;
  if (UNSUPPORTED_ORDERING_POLICIES.includes(ref) && key === 'orderingPolicyRef') {
    throw new ConfigError(f.fieldPath(key), `GIE's ${ref} is not supported: kvroute orders each flow first come first served (fcfs-ordering-policy)`);
  }
  throw new ConfigError(f.fieldPath(key), `no plugin named ${JSON.stringify(ref)}; give a plugin name or one of: ${types.join(', ')}`);
}

/**
 * Renders a config as YAML for a ConfigMap. The config is validated and normalized first (so an invalid config
 * cannot be synthesized); `parseEndpointPickerConfig(renderEndpointPickerConfig(x))` deep-equals
 * `validateEndpointPickerConfig(x)`.
 */
export function renderEndpointPickerConfig(config: EndpointPickerConfig): string {
  const normalized = validateEndpointPickerConfig(config);
  // A name equal to the type is the default, so leaving it out keeps the ConfigMap in llm-d's style and still loads
  // back to the same value.
  const plugins = normalized.plugins.map(({ name, ...rest }) => (name === rest.type ? rest : { name, ...rest }));
  return stringify({ ...normalized, plugins }, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/** Why some upstream types a config may name are not here, and what to use instead. */
const UNKNOWN_TYPE_HINTS: Readonly<Record<string, string>> = {
  'data-parallel-profile-handler': 'deprecated in llm-d-router v0.10.0 ("use simple-profile-handler with Istio >= 1.28.1", dataparallel/dp_profile_handler.go): list every data-parallel rank\'s port in the InferencePool\'s targetPorts and use single-profile-handler',
};

/**
 * Plugin types upstream registers that kvroute deliberately does not implement (epp/README.md, "Not supported"), and
 * the upstream that registers each (`cmd/epp/runner/runner.go` @ llm-d-router v0.10.0 and @ GIE v1.5.0; llm-d v0.8.0's
 * `model-server-protocol-models`). A config naming one is refused saying so, not as a type kvroute has never heard of.
 */
const LLMD = 'llm-d-router v0.10.0';
const LLMD_AND_GIE = 'llm-d-router v0.10.0 and GIE v1.5.0';
const NOT_IMPLEMENTED_TYPES: Readonly<Record<string, string>> = {
  'token-load-scorer': LLMD_AND_GIE,
  'k8s-notification-source': LLMD_AND_GIE,
  'request-attribute-reporter': LLMD_AND_GIE,
  'edf-ordering-policy': LLMD_AND_GIE,
  'slo-deadline-ordering-policy': LLMD_AND_GIE,
  // GIE's sidecar-trained predicted-latency scorer (site-src/guides/troubleshooting.md lists it); kvroute's own is the
  // latency-scorer, with llm-d-router v0.10.0's predicted-latency-producer.
  'predicted-latency-scorer': 'GIE v1.5.0',
  'model-server-protocol-models': 'llm-d v0.8.0',
  ...Object.fromEntries([
    'encode-filter', 'context-length-aware', 'models-data-source', 'models-data-extractor', 'burst-prefix-cache-producer',
    'mm-embeddings-cache-producer', 'mm-embeddings-cache-scorer', 'topology-extractor', 'topology-affinity-filter',
    'topology-affinity-scorer', 'dcgm-data-source', 'dcgm-extractor', 'program-aware-fairness', 'endpoint-attribute-filter',
    'endpoint-attribute-scorer', 'p2p-source-producer', 'disaggregatedset-rollout-screener', 'always-disagg-multimodal-decider',
    'data-parallel-profile-handler', 'multicluster-file-discovery', 'multicluster-metrics-data-source',
    'multicluster-metrics-extractor', 'multicluster-queue-scorer', 'multicluster-kv-cache-utilization-scorer',
    'multicluster-prefix-cache-scorer', 'multicluster-approx-prefix-cache-producer',
    'priority-then-time-eviction-order-policy', 'sheddable-eviction-filter',
  ].map((type) => [type, LLMD])),
};

function readPlugins(top: FieldReader, notes: string[]): PluginSpec[] {
  // Absent or null is an empty list, as Go's json leaves the slice nil (llm-d-router v0.10.0 and GIE v1.5.0
  // apix/config/v1alpha1 `Plugins []PluginSpec json:"plugins"`; no check of its length in the loader): llm-d's own
  // cmd/epp/runner/feature_gate_test.go loads configs that set only featureGates, and the defaults then fill in.
  const list = top.raw('plugins') ?? [];
  if (!Array.isArray(list)) throw new ConfigError('plugins', `must be a list of plugins, got ${describeValue(list)}`);
  const firstIndexByName = new Map<string, number>();
  return list.map((item, index) => {
    const path = `plugins[${index}]`;
    const fields = FieldReader.ofMap(item, path);
    const type = fields.requiredString('type');
    if (UNSUPPORTED_PARSER_TYPES.includes(type)) throw unsupportedParser(`${path}.type`, type);
    if (!isKnownPluginType(type)) {
      const hint = UNKNOWN_TYPE_HINTS[type];
      const upstream = NOT_IMPLEMENTED_TYPES[type];
      const what = upstream !== undefined
        ? `${upstream}'s plugin type ${JSON.stringify(type)} is not implemented in kvroute (epp/README.md, "Not supported")`
        : `unknown plugin type ${JSON.stringify(type)}`;
      throw new ConfigError(`${path}.type`, `${what}${hint !== undefined ? `; ${hint}` : ''}; known types: ${KNOWN_PLUGIN_TYPES.join(', ')}`);
    }
    const name = fields.optionalString('name') ?? type;
    const sameName = firstIndexByName.get(name);
    if (sameName !== undefined) {
      throw new ConfigError(
        `${path}.name`,
        `duplicate plugin name ${JSON.stringify(name)} (also plugins[${sameName}]); the name defaults to the type, ` +
          'so give one of them a distinct name',
      );
    }
    firstIndexByName.set(name, index);
    let rawParameters = fields.raw('parameters');
    if (pluginDefinition(type).parameters === NO_PARAMETERS && isPlainObject(rawParameters) && Object.keys(rawParameters).length > 0) {
      // Upstream's factories for these plugins take the decoder as `_` (llm-d-router v0.10.0
      // pkg/epp/framework/interface/plugin/registry.go FactoryFunc; GIE v1.5.0 the same with json.RawMessage), so fields
      // there are ignored, not refused: llm-d's own docs/discovery.md example gives single-profile-handler two.
      notes.push(`${path}.parameters: ${type} takes no parameters; ignored as upstream ignores them (${Object.keys(rawParameters).join(', ')})`);
      rawParameters = undefined;
    }
    const parameters = resolvePluginParameters(type, rawParameters, `${path}.parameters`);
    fields.finish();
    return pluginSpec(type, name, parameters);
  });
}

function pluginSpec(type: PluginType, name: string, parameters: object): PluginSpec {
  const spec = Object.keys(parameters).length > 0 ? { type, name, parameters } : { type, name };
  return spec as PluginSpec;
}

function readProfiles(top: FieldReader, plugins: readonly PluginSpec[], notes: string[]): SchedulingProfileSpec[] {
  const list = top.raw('schedulingProfiles');
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    throw new ConfigError('schedulingProfiles', `must be a list of profiles, got ${describeValue(list)}`);
  }
  const seenNames = new Set<string>();
  return list.map((item, index) => {
    const path = `schedulingProfiles[${index}]`;
    const fields = FieldReader.ofMap(item, path);
    const name = fields.requiredString('name');
    if (seenNames.has(name)) throw new ConfigError(`${path}.name`, `duplicate profile name ${JSON.stringify(name)}`);
    seenNames.add(name);
    // Absent or null: no entries, as Go's json decodes it (`SchedulingProfile.Plugins json:"plugins"`); the profile
    // still gets its picker (defaults.go ensureSchedulingLayer).
    const refs = fields.raw('plugins') ?? [];
    if (!Array.isArray(refs)) {
      throw new ConfigError(`${path}.plugins`, `must be a list of {pluginRef, weight?}, got ${describeValue(refs)}`);
    }
    const profilePlugins = mergeRepeatedRefs(
      refs.map((ref, refIndex) => readProfileRef(ref, `${path}.plugins[${refIndex}]`, plugins, notes)), plugins, path, notes);
    fields.finish();
    checkProfilePlugins(profilePlugins, plugins, path);
    return { name, plugins: profilePlugins };
  });
}

/**
 * A scorer or filter listed twice in one profile: upstream appends it twice (`SchedulerProfile.AddPlugins`,
 * pkg/epp/scheduling/scheduler_profile.go @ llm-d-router v0.10.0, GIE v1.5.0 the same), so a scorer counts with the sum
 * of its weights and a filter filters twice, which keeps what once does. kvroute keeps one entry at the first place,
 * the weights added, with a note. A picker listed twice stays, for `checkProfilePlugins` to refuse as upstream does
 * ("already have a registered picker plugin"). `refs` holds undefined for entries `readProfileRef` skipped.
 */
function mergeRepeatedRefs(refs: readonly (SchedulingProfilePluginRef | undefined)[], plugins: readonly PluginSpec[], path: string, notes: string[]): SchedulingProfilePluginRef[] {
  const out: SchedulingProfilePluginRef[] = [];
  const first = new Map<string, number>();
  refs.forEach((ref, index) => {
    if (ref === undefined) return;
    const at = first.get(ref.pluginRef);
    if (at === undefined || isOfKind(ref.pluginRef, 'picker', plugins)) {
      if (at === undefined) first.set(ref.pluginRef, out.length);
      out.push(ref);
      return;
    }
    const earlier = out[at]!;
    if (earlier.weight !== undefined && ref.weight !== undefined) {
      out[at] = { ...earlier, weight: earlier.weight + ref.weight };
      notes.push(`${path}.plugins[${index}].pluginRef: ${JSON.stringify(ref.pluginRef)} is listed again: upstream scores it once per listing, so its weights add up (${out[at]!.weight})`);
    } else {
      notes.push(`${path}.plugins[${index}].pluginRef: ${JSON.stringify(ref.pluginRef)} is listed again: upstream filters twice, which keeps what once does; kept once`);
    }
  });
  return out;
}

function readProfileRef(value: unknown, path: string, plugins: readonly PluginSpec[], notes: string[]): SchedulingProfilePluginRef | undefined {
  const fields = FieldReader.ofMap(value, path);
  const pluginRef = fields.requiredString('pluginRef');
  const plugin = plugins.find((p) => p.name === pluginRef);
  if (plugin === undefined) {
    throw new ConfigError(
      `${path}.pluginRef`,
      `no plugin named ${JSON.stringify(pluginRef)}; plugins are: ${plugins.map((p) => p.name).join(', ') || '(none)'}`,
    );
  }
  if (!PROFILE_KINDS.some((kind) => pluginHasKind(plugin.type, kind))) {
    // Upstream adds a profile's plugins by the interfaces they implement and skips the rest without a word (llm-d-router
    // v0.10.0 pkg/epp/scheduling/scheduler_profile.go AddPlugins; GIE v1.5.0 the same): llm-d's docs/discovery.md
    // example lists its single-profile-handler in the profile. Skipped here too, with a note.
    if (fields.has('weight')) throw new ConfigError(`${path}.weight`, `only scorers take a weight; ${JSON.stringify(pluginRef)} is a ${plugin.type}`);
    fields.finish();
    notes.push(`${path}.pluginRef: ${JSON.stringify(pluginRef)} is a ${plugin.type}, which acts outside profiles (a profile holds filters, scorers and a picker); skipped as upstream skips it`);
    return undefined;
  }
  const isScorer = pluginHasKind(plugin.type, 'scorer');
  if (!isScorer && fields.has('weight')) {
    throw new ConfigError(`${path}.weight`, `only scorers take a weight; ${JSON.stringify(pluginRef)} is not a scorer`);
  }
  // Read even for non-scorers so an explicit `weight: null` is not reported as an unknown field.
  const weight = fields.number('weight', DEFAULT_SCORER_WEIGHT, Number.NEGATIVE_INFINITY);
  fields.finish();
  return isScorer ? { pluginRef, weight } : { pluginRef };
}

function checkProfilePlugins(refs: readonly SchedulingProfilePluginRef[], plugins: readonly PluginSpec[], path: string): void {
  const seen = new Set<string>();
  const pickers: string[] = [];
  refs.forEach((ref, index) => {
    if (seen.has(ref.pluginRef)) {
      throw new ConfigError(`${path}.plugins[${index}].pluginRef`, `${JSON.stringify(ref.pluginRef)} is listed twice`);
    }
    seen.add(ref.pluginRef);
    if (isOfKind(ref.pluginRef, 'picker', plugins)) pickers.push(ref.pluginRef);
  });
  if (pickers.length > 1) {
    throw new ConfigError(`${path}.plugins`, `at most one picker per profile, got ${pickers.join(', ')}`);
  }
  checkCycleStateOrder(refs, plugins, path);
}

/**
 * Scorers run in the order the profile lists them, and a scorer that reads what another writes (the prefix match) sees
 * nothing when listed first: it then treats every request as uncached, without an error. Refused here instead.
 */
function checkCycleStateOrder(refs: readonly SchedulingProfilePluginRef[], plugins: readonly PluginSpec[], path: string): void {
  const scorers = refs.flatMap((ref, index) => {
    const plugin = plugins.find((p) => p.name === ref.pluginRef);
    return plugin !== undefined && pluginHasKind(plugin.type, 'scorer') ? [{ ref, index, state: pluginCycleState(plugin.type) }] : [];
  });
  scorers.forEach((reader, position) => {
    for (const name of reader.state.reads) {
      if (scorers.slice(0, position).some((s) => s.state.writes.includes(name))) continue;
      const writer = scorers.slice(position + 1).find((s) => s.state.writes.includes(name));
      if (writer === undefined) continue; // no writer at all: the reader's documented fallback, not an ordering mistake
      throw new ConfigError(
        `${path}.plugins[${reader.index}].pluginRef`,
        `${JSON.stringify(reader.ref.pluginRef)} reads the ${name} that ${JSON.stringify(writer.ref.pluginRef)} ` +
          `(plugins[${writer.index}]) writes, and scorers run in the order listed: list ${JSON.stringify(reader.ref.pluginRef)} after it`,
      );
    }
  });
}

function isOfKind(name: string, kind: PluginKind, plugins: readonly PluginSpec[]): boolean {
  const plugin = plugins.find((p) => p.name === name);
  return plugin !== undefined && pluginHasKind(plugin.type, kind);
}

function defaultProfileRefs(plugins: readonly PluginSpec[]): SchedulingProfilePluginRef[] {
  const refs = plugins
    .filter((p) => PROFILE_KINDS.some((kind) => pluginHasKind(p.type, kind)))
    .map((p) => (pluginHasKind(p.type, 'scorer') ? { pluginRef: p.name!, weight: DEFAULT_SCORER_WEIGHT } : { pluginRef: p.name! }));
  checkProfilePlugins(refs, plugins, 'schedulingProfiles (defaulted from plugins)');
  return refs;
}

/**
 * A profile without a picker gets a declared picker, else `max-score-picker` (added to `plugins`), as GIE v1.5.0's
 * loader reuses any picker the config declares (`config/loader/defaults.go`: the first it finds in its plugin map,
 * which for several pickers is Go's random map order; here the first declared).
 */
function addDefaultPicker(profile: SchedulingProfileSpec, plugins: PluginSpec[], declaredIndex: number): void {
  if (profile.plugins.some((ref) => isOfKind(ref.pluginRef, 'picker', plugins))) return;
  const path = declaredIndex >= 0 ? `schedulingProfiles[${declaredIndex}].plugins` : 'schedulingProfiles';
  const picker = plugins.find((p) => pluginHasKind(p.type, 'picker')) ?? ensurePlugin(DEFAULT_PICKER_TYPE, plugins, `${path} (adding the default picker)`);
  profile.plugins.push({ pluginRef: picker.name! });
}

function addDefaultProfileHandler(plugins: PluginSpec[], profiles: readonly SchedulingProfileSpec[]): void {
  const handlers = plugins.filter((p) => pluginHasKind(p.type, 'profile-handler'));
  if (handlers.length > 1) {
    throw new ConfigError('plugins', `exactly one profile handler allowed, got ${handlers.map((p) => p.name).join(', ')}`);
  }
  if (handlers.length === 0) {
    if (profiles.length !== 1) {
      throw new ConfigError(
        'plugins',
        `no profile handler, and ${profiles.length} profiles: add one (single-profile-handler runs exactly one profile)`,
      );
    }
    handlers.push(ensurePlugin(DEFAULT_PROFILE_HANDLER_TYPE, plugins, 'plugins (adding the default profile handler)'));
  }
  const [handler] = handlers;
  if (handler!.type === 'single-profile-handler' && profiles.length !== 1) {
    throw new ConfigError(
      'schedulingProfiles',
      `single-profile-handler runs exactly one profile, got ${profiles.length}: ${profiles.map((p) => p.name).join(', ')}`,
    );
  }
}

/**
 * A config listing no `inflight-load-producer` gets one when a plugin reads the default producer's in-flight load, as
 * llm-d-router v0.10.0's data-layer DAG creates the default producer of a key a plugin's `Consumes()` requires
 * (`datalayer/data_graph.go` CreateMissingDataProducers; `cmd/epp/runner/runner.go` RegisterAsDefaultProducer), so its
 * gauges (`llm_d_epp_inflight_requests`, `_tokens`) are exported as there. The readers, by upstream's `Consumes()`:
 * - `prefix-cache-affinity-filter` whose load gate reads in-flight tokens (`ttftSource: prefillThroughput`, its
 *   default, with `maxTTFTPenaltyMs` > 0) (`filter/prefixcacheaffinity/plugin.go`);
 * - `utilization-filter` with an `active-requests` condition (`filter/utilization/filter.go`);
 * - `active-request-scorer` (`scorer/activerequest/active_request.go`);
 * - `concurrency-detector` (`flowcontrol/saturationdetector/concurrency/detector.go`);
 * - `predicted-latency-producer` (`requestcontrol/dataproducer/predictedlatency/dataproducer_hooks.go`; kvroute's
 *   reads no counts from it, but upstream's DAG builds it all the same).
 * Each only when it names no producer. The rendered config shows it. Picks do not change: the counts the filters and
 * scorers read are the datastore's, and only `prefix-cache-affinity-filter` reads the producer's tokens.
 */
function addInFlightLoadProducer(plugins: PluginSpec[], defaultProducerScorer: string | undefined): void {
  if (plugins.some((p) => p.type === 'inflight-load-producer')) return;
  const reader = plugins.find((p) => {
    const q = p.parameters as { inFlightLoadProducerName?: string } | undefined;
    if ((q?.inFlightLoadProducerName ?? '') !== '') return false;
    switch (p.type) {
      case 'prefix-cache-affinity-filter': {
        const a = p.parameters as { maxTTFTPenaltyMs?: number; ttftSource?: string } | undefined;
        return (a?.maxTTFTPenaltyMs ?? 0) > 0 && a?.ttftSource === 'prefillThroughput';
      }
      case 'utilization-filter':
        return ((p.parameters as { conditions?: { metric?: string }[] } | undefined)?.conditions ?? []).some((c) => c.metric === 'active-requests');
      case 'active-request-scorer':
      case 'concurrency-detector':
      case 'predicted-latency-producer':
        return true;
      default:
        return false;
    }
  });
  // Upstream's default producer reads the default approximate producer's key, which a listed one merged into a scorer
  // writes (`defaultProducerScorer`).
  if (reader !== undefined) {
    ensurePlugin('inflight-load-producer', plugins, `plugins (adding the inflight-load-producer a ${reader.type} reads)`,
      defaultProducerScorer !== undefined ? { prefixMatchInfoProducerName: defaultProducerScorer } : undefined);
  }
}

/**
 * The readers of the prefix match that llm-d-router v0.10.0 makes require its producer (`Consumes()` Required), so that
 * its data layer creates the default one when none is configured: `filter/prefixcacheaffinity/plugin.go`,
 * `scorer/nohitlru/no_hit_lru.go`, `dataproducer/predictedlatency/dataproducer_hooks.go`. (`inflight-load-producer`
 * reads it Optional: without a producer it counts the whole prompt, and so does kvroute's.)
 */
const DEFAULT_PREFIX_READER_TYPES: readonly string[] = ['prefix-cache-affinity-filter', 'no-hit-lru-scorer', 'predicted-latency-producer'];

/**
 * Readers of the prefix match naming no producer (`DEFAULT_PREFIX_READER_TYPES`), in a config with no approximate
 * `prefix-cache-scorer` (or several, none of them the one `resolvePrefixProducer` takes for the default producer), get one with llm-d-router v0.10.0's `approx-prefix-cache-producer` defaults, listed at weight 0
 * in each profile listing such a reader (kvroute's approximate scorer learns only the picks of the profiles that list
 * it). Upstream such a reader reads the default producer's key, `PrefixCacheMatchInfoDataKey/approx-prefix-cache-producer`
 * (`datalayer/attribute/prefix/data_types.go`; `WithNonEmptyProducerName("")` keeps it), which a precise producer does
 * not write (it publishes under its own name: `dataproducer/preciseprefixcache/producer.go`), and the data-layer DAG
 * makes that producer when no plugin produces the key (`datalayer/data_graph.go` CreateMissingDataProducers;
 * `cmd/epp/runner/runner.go` RegisterAsDefaultProducer): so beside a precise scorer as well as with no prefix scorer at
 * all (llm-d-router's `deploy/config/sim-epp-no-hit-lru.yaml` lists a precise producer and a no-hit-lru-scorer naming
 * none). Named `prefix-cache-scorer`, or upstream's producer name when a precise scorer merged from llm-d's form holds
 * that one. Said in a note; the rendered config shows the scorer.
 */
function addDefaultPrefixScorer(plugins: PluginSpec[], profiles: SchedulingProfileSpec[], notes: string[]): void {
  if (defaultApproxScorer(plugins) !== undefined) return;
  const readers = plugins.filter((p) => {
    const named = (p.parameters as { prefixMatchInfoProducerName?: string } | undefined)?.prefixMatchInfoProducerName ?? '';
    if (named === '') return DEFAULT_PREFIX_READER_TYPES.includes(p.type);
    // The default producer named, and no plugin of that name: the same key as naming none (`resolvePrefixProducer`),
    // for the `latency-scorer` too, which requires it upstream (`scorer/latency/plugin.go` Consumes) and reads its
    // profile's match here only when it names none.
    return named === DEFAULT_APPROX_PRODUCER_NAME && !plugins.some((q) => q.name === named) && [...DEFAULT_PREFIX_READER_TYPES, 'latency-scorer'].includes(p.type);
  });
  if (readers.length === 0) return;
  const name = plugins.some((p) => p.name === 'prefix-cache-scorer') ? DEFAULT_APPROX_PRODUCER_NAME : 'prefix-cache-scorer';
  const taken = plugins.find((p) => p.name === name);
  const path = `plugins (adding the prefix-cache-scorer ${readers.map((r) => r.type).join(', ')} read, as upstream's default approx-prefix-cache-producer)`;
  if (taken !== undefined) throw new ConfigError(path, `the default prefix-cache-scorer would be named ${JSON.stringify(name)}, but that name is taken by a ${taken.type}`);
  const parameters = { maxPrefixTokensToMatch: LLMD_MAX_PREFIX_TOKENS, maxPrefixBlocksToMatch: LLMD_MAX_PREFIX_BLOCKS, ...LLMD_BLOCK_CUT };
  const added = pluginSpec('prefix-cache-scorer', name, resolvePluginParameters('prefix-cache-scorer', parameters, path));
  addedByLoader.add(added);
  plugins.push(added);
  const names = new Set(readers.map((r) => r.name));
  const listing = profiles.filter((profile) => profile.plugins.some((ref) => names.has(ref.pluginRef)));
  for (const profile of listing) {
    // Before the first scorer reading the prefix match, which scorers publish in the order listed (`checkCycleStateOrder`).
    const reader = profile.plugins.findIndex((ref) => {
      const plugin = plugins.find((q) => q.name === ref.pluginRef);
      return plugin !== undefined && pluginHasKind(plugin.type, 'scorer') && pluginCycleState(plugin.type).reads.includes('prefix-match');
    });
    profile.plugins.splice(reader === -1 ? profile.plugins.length : reader, 0, { pluginRef: name, weight: 0 });
  }
  notes.push(
    `plugins: added a prefix-cache-scorer${name !== 'prefix-cache-scorer' ? ` named ${JSON.stringify(name)}` : ''} (weight 0 in profile ${listing.map((p) => p.name).join(', ')}), which `
      + `${readers.map((r) => `${r.type} ${JSON.stringify(r.name)}`).join(', ')} read${readers.length === 1 ? 's' : ''}, as llm-d-router v0.10.0's data layer adds its default approx-prefix-cache-producer`,
  );
}

/** The P/D profile handlers, which read the decode pick's prefix match (their decider, the conditional-decode gate). */
const PD_HANDLER_TYPES: readonly string[] = ['disagg-profile-handler', 'pd-profile-handler'];

/**
 * A P/D profile handler in a config with no prefix scorer gets a `prefix-cache-scorer` listed in no profile, with
 * llm-d-router v0.10.0's `approx-prefix-cache-producer` defaults (`approximateprefix/types.go` defaultConfig: a
 * 131,072-token window, 2048 blocks, autoTune): upstream's handlers `Consumes()` PrefixCacheMatchInfo
 * (`disagg_profile_handler.go`, `pd_profile_handler.go`), and the data-layer DAG makes that producer when no plugin
 * produces it (`datalayer/data_graph.go` CreateMissingDataProducers; `cmd/epp/runner/runner.go` registers it as the
 * key's default producer). Scoring nothing, it matches the decode pick for the decider and the conditional-decode gate,
 * and learns every pick (the scheduler's `pdPrefixSource`). The rendered config shows it.
 */
function addPdPrefixScorer(plugins: PluginSpec[]): void {
  if (!plugins.some((p) => PD_HANDLER_TYPES.includes(p.type))) return;
  if (plugins.some((p) => p.type === 'prefix-cache-scorer' || p.type === 'precise-prefix-cache-scorer')) return;
  const path = 'plugins (adding the prefix-cache-scorer a P/D profile handler reads, as upstream\'s default approx-prefix-cache-producer)';
  ensurePlugin('prefix-cache-scorer', plugins, path, { maxPrefixTokensToMatch: LLMD_MAX_PREFIX_TOKENS, maxPrefixBlocksToMatch: LLMD_MAX_PREFIX_BLOCKS, ...LLMD_BLOCK_CUT });
}

/** Plugins the loader added to a config that did not declare them (GIE's defaults), for messages that must say so. */
const addedByLoader = new WeakSet<PluginSpec>();

/** True for a plugin the loader added as a default (GIE's `ensure…` defaults), not one the config declared. */
export function isAddedByLoader(plugin: PluginSpec): boolean {
  return addedByLoader.has(plugin);
}

/** Finds the plugin named after `type` or appends it with `parameters` (none: its defaults), like GIE's defaulting. */
function ensurePlugin(type: PluginType, plugins: PluginSpec[], path: string, parameters?: Record<string, unknown>): PluginSpec {
  const existing = plugins.find((p) => p.name === type);
  if (existing !== undefined) {
    if (existing.type !== type) {
      throw new ConfigError(
        path,
        `the default ${type} would be named ${JSON.stringify(type)}, but that name is taken by a ${existing.type}`,
      );
    }
    return existing;
  }
  const added = pluginSpec(type, type, resolvePluginParameters(type, parameters, path));
  addedByLoader.add(added);
  plugins.push(added);
  return added;
}

