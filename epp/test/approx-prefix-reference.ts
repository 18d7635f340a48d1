/**
 * Shared by the approximate-prefix body differentials (llmd-v0.10-approx-prefix-bodies.test.ts for chat and Anthropic
 * Messages bodies, llmd-v0.10-approx-prefix-responses.test.ts for /v1/responses): Go's `encoding/json` as the
 * reference models write upstream's bytes with it, the seeded word lists the bodies are drawn from, and the real
 * scorer and request the observable is measured on.
 */
import { promptHead, promptSlice, type ParsedRequestBody } from '@kvroute/protocol/openai';
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS } from '../src/scheduling/metrics-hooks';
import { PrefixCacheScorer, type PrefixCacheScorerParameters } from '../src/scheduling/plugins/prefix-cache-scorer';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** Go's `encoding/json` string escaping: HTML-safe (`<`, `>`, `&`) and U+2028/U+2029 escaped. */
export function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `json.Marshal` of a decoded `any`: maps with sorted keys. */
export function goMarshalAny(v: Json): string {
  if (v === null || typeof v !== 'object') return typeof v === 'string' ? goString(v) : JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(goMarshalAny).join(',')}]`;
  return `{${Object.keys(v).sort().map((k) => `${goString(k)}:${goMarshalAny(v[k]!)}`).join(',')}}`;
}

/** Words with characters Go's JSON escapes (`<`, `&`) and a non-ASCII one. */
export const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'eps', 'zeta', 'eta', 'theta', 'a<b', 'x&y', 'é'];

export function words(random: () => number, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(random() * WORDS.length)]!);
  return out.join(' ');
}

export const pick = <T>(random: () => number, xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

/** Every object inside a JSON value, the value itself first: where a random change can land. */
export function objects(v: Json, out: JsonObject[] = []): JsonObject[] {
  if (v === null || typeof v !== 'object') return out;
  if (Array.isArray(v)) {
    for (const x of v) objects(x, out);
    return out;
  }
  out.push(v);
  for (const k of Object.keys(v)) objects(v[k]!, out);
  return out;
}

/** The scorer through the real config loader, with 4-token blocks (16 characters) so a change anywhere moves a block; the 64-token floor lowered as upstream's tests do. */
export function loadScorer(): PrefixCacheScorer {
  const yaml = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: prefix-cache-scorer\n  parameters: {blockSizeTokens: 4, minBlockSizeTokens: 1, autoTune: false, maxPrefixBlocksToMatch: 0}\nschedulingProfiles:\n- name: default\n  plugins: [{pluginRef: prefix-cache-scorer}]\n';
  const resolved = parseEndpointPickerConfig(yaml).plugins.find((p) => p.type === 'prefix-cache-scorer')!.parameters as Required<PrefixCacheScorerParameters>;
  return new PrefixCacheScorer('prefix-cache-scorer', resolved, NOOP_SCHEDULING_METRICS);
}

export function pod(name: string): EndpointSnapshot {
  return { endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} }, metrics: EMPTY_METRICS, activeRequests: 0 };
}

/** The request as request control hands it to the scheduler (`request-control.ts`: the head and slice readers). */
export function cycleOf(parsed: ParsedRequestBody): CycleContext {
  return {
    request: {
      requestId: 'r', model: parsed.model ?? '', prompt: parsed.prompt, input: parsed.input, headers: {},
      promptHead: (n: number) => promptHead(parsed.input, n), promptSlice: (s: number, e: number) => promptSlice(parsed.input, s, e),
      ...(parsed.cacheSalt !== undefined ? { cacheSalt: parsed.cacheSalt } : {}),
    },
    state: new CycleState(),
  };
}
