import { LabelSelector } from './label-selector';
import { endpointKey } from './endpoint-key';
import type { Endpoint } from './types';

/** The two InferencePool API versions in the field: GIE ≥ v1.0, and GIE v0.5 (llm-d v0.2, Istio 1.27). */
export const POOL_API_VERSIONS = ['inference.networking.k8s.io/v1', 'inference.networking.x-k8s.io/v1alpha2'] as const;
export type PoolApiVersion = (typeof POOL_API_VERSIONS)[number];
/** `--pool-group`'s values: the groups of the two versions. */
export const POOL_GROUPS = ['inference.networking.k8s.io', 'inference.networking.x-k8s.io'] as const;
export type PoolGroup = (typeof POOL_GROUPS)[number];

/** What discovery needs from an InferencePool, whichever version it came from. */
export interface PoolSpec {
  readonly apiVersion: PoolApiVersion;
  readonly name: string;
  readonly namespace: string;
  /**
   * Pod label selector (v1 `selector.matchLabels`, v1alpha2 `selector`), or without a pool llm-d-router's
   * `--endpoint-selector` in full label-selector syntax.
   */
  readonly selector: Readonly<Record<string, string>> | LabelSelector;
  /**
   * v1 `targetPorts[*].number` (1-8 unique ports, each a distinct endpoint per pod: GIE ≥ v1.1.0), v1alpha2
   * `[targetPortNumber]`.
   */
  readonly targetPorts: readonly number[];
  readonly resourceVersion?: string;
}

/** `targetPorts`' `maxItems` in the v1 CRD (GIE ≥ v1.1.0; v1.0 allowed one). */
export const MAX_TARGET_PORTS = 8;

/**
 * A pod annotation naming which of the pool's target ports it serves (comma-separated numbers); the others give no
 * endpoint. Without it, every target port does (`extractActivePorts`, llm-d-router `pkg/epp/datastore/datastore.go`
 * @ v0.10.0 `activePortsAnnotation`).
 */
export const ACTIVE_PORTS_ANNOTATION = 'llm-d.ai/active-ports';

/**
 * GIE's key for the same annotation (GIE v1.5.0; llm-d-router v0.10.0's deprecated `legacyGAIEActivePortsAnnotation`),
 * read only when the pod has no `llm-d.ai/active-ports` annotation at all.
 */
export const LEGACY_ACTIVE_PORTS_ANNOTATION = 'inference.networking.k8s.io/active-ports';

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
    // The CRD's bounds (api/v1/inferencepool_types.go @ v1.5.0): at most 8, each unique.
    if (ports.length > MAX_TARGET_PORTS) {
      throw new PoolSpecError(`${where}: spec.targetPorts lists ${ports.length} ports, at most ${MAX_TARGET_PORTS} are allowed`);
    }
    port = ports.map((p: unknown) => (isRecord(p) ? p.number : undefined));
  } else {
    selectorRaw = spec.selector;
    if (selectorRaw === undefined) throw new PoolSpecError(`${where}: spec.selector is missing`);
    port = [spec.targetPortNumber];
  }

  const selector = readSelector(selectorRaw, where);
  const targetPorts = port as unknown[];
  for (const p of targetPorts) {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
      throw new PoolSpecError(`${where}: target port ${JSON.stringify(p)} is not a port number`);
    }
  }
  if (new Set(targetPorts).size !== targetPorts.length) {
    throw new PoolSpecError(`${where}: spec.targetPorts lists port ${String(targetPorts.find((p, i) => targetPorts.indexOf(p) !== i))} twice (port numbers must be unique)`);
  }
  const rv = typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined;
  return Object.freeze({ apiVersion: version, name, namespace, selector, targetPorts: Object.freeze(targetPorts as number[]), resourceVersion: rv });
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
export function labelSelectorString(selector: Readonly<Record<string, string>> | LabelSelector): string {
  if (selector instanceof LabelSelector) return selector.toString();
  return Object.keys(selector)
    .sort()
    .map((k) => `${k}=${selector[k]}`)
    .join(',');
}

export function selectorMatches(selector: Readonly<Record<string, string>> | LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  if (selector instanceof LabelSelector) return selector.matches(labels);
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}

/** The fields of a Pod discovery reads; matches both the client's typed V1Pod and raw watch JSON. */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
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
 * The endpoints a pod contributes to the pool, one per target port it serves (GIE's `podUpdateOrAddIfNotExist`,
 * pkg/epp/datastore/datastore.go @ v1.5.0), or none when it should receive no traffic: not Ready, no IP yet, or
 * already terminating (Ready can stay True for a moment after deletion starts). The i-th target port's endpoint is
 * `<pod>-rank-<i>`; with several target ports each is scraped on its own port.
 */
export function podEndpoints(pod: PodLike, pool: Pick<PoolSpec, 'selector' | 'targetPorts'>): Endpoint[] {
  const meta = pod.metadata;
  if (!meta?.name) return [];
  if (meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null) return [];
  if (!selectorMatches(pool.selector, meta.labels)) return [];
  const ip = pod.status?.podIP;
  if (!ip) return [];
  if (!isPodReady(pod)) return [];
  const active = activePorts(meta.annotations, pool.targetPorts);
  const labels = Object.freeze({ ...(meta.labels ?? {}) });
  const several = pool.targetPorts.length > 1;
  const out: Endpoint[] = [];
  pool.targetPorts.forEach((port, rank) => {
    if (!active.has(port)) return;
    out.push(Object.freeze({
      key: endpointKey(ip, port),
      name: `${meta.name}-rank-${rank}`,
      namespace: meta.namespace ?? '',
      address: ip,
      port,
      labels,
      podName: meta.name,
      rank,
      ...(several ? { metricsPort: port } : {}),
    }));
  });
  return out;
}

/**
 * The target ports a pod's `llm-d.ai/active-ports` annotation names, or, when the pod has no such annotation, its
 * `inference.networking.k8s.io/active-ports` (numbers that are not target ports, or not numbers, are ignored); every
 * target port without either. As llm-d-router's `extractActivePorts` (`pkg/epp/datastore/datastore.go` @ v0.10.0):
 * the new key wins by being present, even empty or with no valid port (the pod then serves none), and each entry is
 * read with `Sscanf("%d")`: leading digits count ("8001x" is 8001).
 */
function activePorts(annotations: Readonly<Record<string, string>> | undefined, targetPorts: readonly number[]): ReadonlySet<number> {
  const raw = annotations?.[ACTIVE_PORTS_ANNOTATION] ?? annotations?.[LEGACY_ACTIVE_PORTS_ANNOTATION];
  if (raw === undefined) return new Set(targetPorts);
  const out = new Set<number>();
  for (const part of raw.split(',')) {
    const m = /^[+-]?\d+/.exec(part.trim());
    const n = m ? Number(m[0]) : NaN;
    if (n > 0 && targetPorts.includes(n)) out.add(n);
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (!isRecord(v)) throw new PoolSpecError(`${what} is not an object`);
  return v;
}
