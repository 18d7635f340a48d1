import type { SchedulingErrorReason } from './types';

/**
 * What the scheduler and its plugins report, as a small interface so scheduling does not depend on prom-client:
 * `epp/src/metrics.ts` implements it on a Registry, tests pass a recorder or `NOOP_SCHEDULING_METRICS`.
 */

/**
 * The extension point a timed plugin call belongs to: the `extension_point` label of
 * `inference_extension_plugin_duration_seconds`, spelled as GIE v1.5.0 spells them (`pkg/epp/scheduling/scheduler.go`:
 * ProfilePicker, Filter, Scorer, Picker, ProcessProfilesResults; `pkg/epp/framework/interface/requestcontrol/plugins.go`:
 * PreRequest, ResponseReceived, ResponseStreaming). kvroute's response-complete hooks are timed as ResponseStreaming,
 * where GIE times its response-body plugins (`director.go` runResponseBodyPlugins, end-of-stream call included);
 * v1.5.0 also declares ResponseComplete but times nothing under it. PostCycle is kvroute's own (plugins that learn the
 * cycle's result). Admission is llm-d-router v0.10.0's (`requestcontrol/plugins.go` AdmissionExtensionPoint, timed in
 * `director.go` runAdmissionPlugins).
 */
export type ExtensionPoint =
  | 'ProfilePicker'
  | 'ProcessProfilesResults'
  | 'Filter'
  | 'Scorer'
  | 'Picker'
  | 'PostCycle'
  | 'Admission'
  | 'PreRequest'
  | 'ResponseReceived'
  | 'ResponseStreaming'
  /** Request control's prepare-request hooks (tokenization, the shared session store's read), as llm-d times its data producers. */
  | 'DataProducer'
  /** The request parser's reading of a body (llm-d-router v0.10.0 handlers/server.go, `RequestParsingExtensionPoint`). */
  | 'RequestParsing';

/** A plugin's name and type, as llm-d labels the series a plugin writes. */
export interface PluginIdentity {
  readonly name: string;
  readonly type: string;
}

export type SessionAffinityOutcome =
  /** The session's bound endpoint was a candidate and got the request. */
  | 'hit'
  /** No live binding (new or expired session); bound to this pick. */
  | 'miss'
  /** The bound endpoint was gone or filtered out (e.g. saturated); re-bound to this pick. */
  | 'repin';

/** `reconnect`: the connection dropped on purpose, by reason (`readonly`: the store answered READONLY). */
export type SessionStoreOperation = 'read' | 'write' | 'reconnect';
export type SessionTokenOutcome = 'valid' | 'expired' | 'forged' | 'malformed';

export type SaturationExclusionReason = 'queue' | 'kv_cache' | 'stale_metrics' | 'scrape_failures';

/** A gauge's series a holder updates in place (`value`); one of an endpoint that left the pool is no longer exported. */
export interface GaugeSeries {
  value: number;
}

/** One `inflight-load-producer`'s series for one endpoint and request label set: `llm_d_epp_inflight_requests`, `_tokens`. */
export interface InflightLoadSeries {
  readonly requests: GaugeSeries;
  readonly tokens: GaugeSeries;
}

export interface SchedulingMetrics {
  /** One whole `Scheduler.schedule` call, successful or not. */
  observeSchedulingDuration(seconds: number): void;
  /** One plugin call: its extension point, its config `type` and its config `name`. */
  observePluginDuration(extensionPoint: ExtensionPoint, pluginType: string, pluginName: string, seconds: number): void;
  countPick(endpointKey: string): void;
  countSchedulingFailure(reason: SchedulingErrorReason): void;
  countSessionAffinity(outcome: SessionAffinityOutcome): void;
  setSessionBindings(bindings: number): void;
  /** A shared session store call by outcome (`hit`, `miss`, `ok`, `timeout`, `error`, `unavailable`, `dropped`). */
  countSessionStore(operation: SessionStoreOperation, outcome: string): void;
  setSessionStoreConnected(connected: boolean): void;
  countSessionToken(outcome: SessionTokenOutcome): void;
  countSaturationExclusion(reason: SaturationExclusionReason): void;
  /** One request's disaggregation outcome (llm-d-router v0.10.0 `profilehandler/disagg/metrics.go` RecordDisaggDecision). */
  countDisaggDecision(pluginName: string, pluginType: string, modelName: string, decision: 'decode-only' | 'prefill-decode'): void;
  /** One request's P/D outcome under the deprecated `pd-profile-handler` (the same file's RecordPDDecision). */
  countPdDecision(pluginName: string, pluginType: string, modelName: string, decision: 'decode-only' | 'prefill-decode'): void;
  /** Block hashes held by the prefix index, summed over endpoints; `plugin` (the indexing plugin) adds llm-d's labelled series. */
  setPrefixIndexerSize(entries: number, plugin?: PluginIdentity): void;
  /** Characters per token learnt from the pods (the approximate index sizes with it under `learnCharactersPerToken`). */
  setPrefixCharactersPerToken(charactersPerToken: number): void;
  /** The prefix matched on the chosen endpoint, in characters, against the hashed part of the prompt (`plugin`: as above). */
  observePrefixMatch(matchedCharacters: number, totalCharacters: number, plugin?: PluginIdentity): void;
  /** KV events of a pod by outcome (`received`, `applied`, `skipped_*`, `dropped_*`). */
  countKvEvents(pod: string, outcome: string, count: number): void;
  countKvEventGap(pod: string): void;
  countKvEventReplay(pod: string, outcome: 'repaired' | 'failed'): void;
  countKvIndexReset(pod: string, reason: string): void;
  setKvIndexBlocks(pod: string, blocks: number): void;
  observeTokenization(seconds: number): void;
  /** Prompt tokens the precise index predicted cached on the picked pod, and the prompt's length. */
  observePreciseMatch(predictedHitTokens: number, promptTokens: number): void;
  /**
   * Registers llm-d-router v0.10.0's in-flight load gauges (`llm_d_epp_inflight_requests`, `_tokens`), once whatever
   * the calls: an `inflight-load-producer` calls it when it is built, as upstream's factory registers them.
   */
  registerInflightLoad(): void;
  /**
   * The in-flight load series of producer `producerName` on the endpoint `endpointName` of `namespace` for requests of
   * `fairnessId` and `priority` (label values request control bounded; the label sets are bounded again here).
   */
  inflightLoadSeries(producerName: string, endpointName: string, namespace: string, fairnessId: string, priority: string): InflightLoadSeries;
}

const ignore = (): void => undefined;

export const NOOP_SCHEDULING_METRICS: SchedulingMetrics = Object.freeze({
  observeSchedulingDuration: ignore,
  observePluginDuration: ignore,
  countPick: ignore,
  countSchedulingFailure: ignore,
  countSessionAffinity: ignore,
  setSessionBindings: ignore,
  countSessionStore: ignore,
  setSessionStoreConnected: ignore,
  countSessionToken: ignore,
  countSaturationExclusion: ignore,
  countDisaggDecision: ignore,
  countPdDecision: ignore,
  setPrefixIndexerSize: ignore,
  setPrefixCharactersPerToken: ignore,
  observePrefixMatch: ignore,
  countKvEvents: ignore,
  countKvEventGap: ignore,
  countKvEventReplay: ignore,
  countKvIndexReset: ignore,
  setKvIndexBlocks: ignore,
  observeTokenization: ignore,
  observePreciseMatch: ignore,
  registerInflightLoad: ignore,
  inflightLoadSeries: () => ({ requests: { value: 0 }, tokens: { value: 0 } }),
});
