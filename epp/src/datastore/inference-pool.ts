import { endpointKey } from './endpoint-key';
import type { Endpoint } from './types';

/** The two InferencePool API versions in the field: GIE ≥ v1.0, and GIE v0.5 (llm-d v0.2, Istio 1.27). */
export const POOL_API_VERSIONS = ['inference.networking.k8s.io/v1', 'inference.networking.x-k8s.io/v1alpha2'] as const;
export type PoolApiVersion = (typeof POOL_API_VERSIONS)[number];

/** What discovery needs from an InferencePool, whichever version it came from. */
export interface PoolSpec {
  readonly apiVersion: PoolApiVersion;
  readonly name: string;
  readonly namespace: string;
  /** Pod label selector (v1 `selector.matchLabels`, v1alpha2 `selector`). */
  readonly selector: Readonly<Record<string, string>>;
  /** v1 `targetPorts[0].number`, v1alpha2 `targetPortNumber`. */
  readonly targetPort: number;
  readonly resourceVersion?: string;
}

export class PoolSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PoolSpecError';
  }
}

/**
 * Reads an InferencePool object of either version. The version comes from the object's `apiVersion`, falling back to
 * `apiVersion` (the one it was fetched as).
 */
export function parseInferencePool(obj: unknown, apiVersion?: PoolApiVersion): PoolSpec {
  const o = asRecord(obj, 'InferencePool');
  const meta = asRecord(o.metadata, 'InferencePool metadata');
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
  const where = `InferencePool ${namespace}/${name}`;
  const version = (typeof o.apiVersion === 'string' ? o.apiVersion : apiVersion) as string | undefined;
  if (!isPoolApiVersion(version)) throw new PoolSpecError(`${where}: unsupported apiVersion "${String(version)}"`);
  const spec = asRecord(o.spec, `${where} spec`);

  let selectorRaw: unknown;
  let port: unknown;
  if (version === 'inference.networking.k8s.io/v1') {
    const sel = spec.selector;
    selectorRaw = isRecord(sel) ? sel.matchLabels : undefined;
    if (selectorRaw === undefined) throw new PoolSpecError(`${where}: spec.selector.matchLabels is missing`);
    if (isRecord(sel) && sel.matchExpressions !== undefined) {
      throw new PoolSpecError(`${where}: spec.selector.matchExpressions is not part of the InferencePool API`);
    }
    const ports = spec.targetPorts;
    if (!Array.isArray(ports) || ports.length === 0) throw new PoolSpecError(`${where}: spec.targetPorts is empty`);
    const first: unknown = ports[0];
    port = isRecord(first) ? first.number : undefined;
  } else {
    selectorRaw = spec.selector;
    if (selectorRaw === undefined) throw new PoolSpecError(`${where}: spec.selector is missing`);
    port = spec.targetPortNumber;
  }

  const selector = readSelector(selectorRaw, where);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PoolSpecError(`${where}: target port ${JSON.stringify(port)} is not a port number`);
  }
  const rv = typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined;
  return Object.freeze({ apiVersion: version, name, namespace, selector, targetPort: port, resourceVersion: rv });
}

function readSelector(raw: unknown, where: string): Readonly<Record<string, string>> {
  if (!isRecord(raw)) throw new PoolSpecError(`${where}: selector is not a label map`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new PoolSpecError(`${where}: selector value for "${k}" is not a string`);
    out[k] = v;
  }
  // Kubernetes reads an empty selector as "every pod in the namespace", which here would route inference traffic to
  // the EPP, Envoy and anything else running beside them.
  if (Object.keys(out).length === 0) throw new PoolSpecError(`${where}: selector is empty`);
  return Object.freeze(out);
}

export function isPoolApiVersion(v: unknown): v is PoolApiVersion {
  return (POOL_API_VERSIONS as readonly unknown[]).includes(v);
}

export function splitApiVersion(v: PoolApiVersion): { group: string; version: string } {
  const i = v.indexOf('/');
  return { group: v.slice(0, i), version: v.slice(i + 1) };
}

/** `k=v,k2=v2`, the API's labelSelector query form, keys sorted so equal selectors compare equal as strings. */
export function labelSelectorString(selector: Readonly<Record<string, string>>): string {
  return Object.keys(selector)
    .sort()
    .map((k) => `${k}=${selector[k]}`)
    .join(',');
}

export function selectorMatches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>> | undefined): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}

/** The fields of a Pod discovery reads; matches both the client's typed V1Pod and raw watch JSON. */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: unknown;
    resourceVersion?: string;
  };
  status?: {
    podIP?: string;
    conditions?: ReadonlyArray<{ type?: string; status?: string }>;
  };
}

export function isPodReady(pod: PodLike): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/**
 * The endpoint a pod contributes to the pool, or undefined when it should receive no traffic: not Ready, no IP yet,
 * or already terminating (Ready can stay True for a moment after deletion starts).
 */
export function podEndpoint(pod: PodLike, pool: Pick<PoolSpec, 'selector' | 'targetPort'>): Endpoint | undefined {
  const meta = pod.metadata;
  if (!meta?.name) return undefined;
  if (meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null) return undefined;
  if (!selectorMatches(pool.selector, meta.labels)) return undefined;
  const ip = pod.status?.podIP;
  if (!ip) return undefined;
  if (!isPodReady(pod)) return undefined;
  return Object.freeze({
    key: endpointKey(ip, pool.targetPort),
    name: meta.name,
    namespace: meta.namespace ?? '',
    address: ip,
    port: pool.targetPort,
    labels: Object.freeze({ ...(meta.labels ?? {}) }),
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (!isRecord(v)) throw new PoolSpecError(`${what} is not an object`);
  return v;
}
