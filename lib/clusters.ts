import { KvAwareRoutingProps } from './kv-aware-routing';

/** A cluster kvroute is deployed to: `npm run synth` writes its manifests into `dist/<name>/`. */
export interface ClusterProfile {
  /** Folder name under dist/: a DNS-1123 label, unique among the profiles (`synthClusters` refuses others before writing). */
  readonly name: string;
  /** What sets this cluster apart (written into its kustomization.yaml; the README's profile table is kept by hand). */
  readonly description: string;
  readonly routing: KvAwareRoutingProps;
}

/**
 * Recursively optional (optional nested objects too), for overrides of a base profile. Arrays and label maps are
 * replaced whole, not merged; `null` removes an optional field the base sets.
 */
export type Overrides<T> = {
  readonly [K in keyof T]?:
    | (NonNullable<T[K]> extends readonly unknown[] ? T[K]
      : K extends LabelMapKey ? T[K]
      : NonNullable<T[K]> extends object ? Overrides<NonNullable<T[K]>> : T[K])
    | (undefined extends T[K] ? null : never);
};

/**
 * Fields that hold a set of Kubernetes labels: one value (a selector or a label set), so an override replaces it whole.
 * Merged key by key, a profile moving `nodeSelector` from `{gpu: a100}` to `{'nvidia.com/gpu.product': H100}` would
 * require both labels, which no node has.
 */
const LABEL_MAP_KEYS = ['nodeSelector', 'selectorLabels', 'dashboardLabels', 'podLabels', 'namespaceLabels'] as const;
type LabelMapKey = (typeof LABEL_MAP_KEYS)[number];
const REPLACED_WHOLE: ReadonlySet<string> = new Set(LABEL_MAP_KEYS);

/**
 * `base` with `overrides` merged in depth (object spread is shallow, and a cluster usually changes one field deep
 * inside `decode` or `extProc`). Arrays, label maps and non-plain values replace; `undefined` leaves the base value;
 * `null` removes the field (a feature the base turns on, such as `sessionStore` or `decode.kvEvents`; to switch such a
 * field to its other form, remove it, then set it: `withOverrides(withOverrides(base, { sessionStore: null }), {
 * sessionStore: { deploy: {} } })`).
 */
export function withOverrides<T extends object>(base: T, overrides: Overrides<T>): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(overrides as Record<string, unknown>)) {
    if (value === undefined) continue;
    if (value === null) {
      delete out[key];
      continue;
    }
    const current = out[key];
    out[key] = !REPLACED_WHOLE.has(key) && isPlainObject(value) && isPlainObject(current) ? withOverrides(current, value as Overrides<Record<string, unknown>>) : value;
  }
  return out as T;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * The seed deployment: namespace `llm-d`, llm-d-modelservice names (`ms-llm-d-modelservice-decode`/`-epp`), the
 * `llm-d-gateway` Gateway for host `llm-d.demo.local` on Istio 1.27.0, vLLM at 0.9 GPU memory utilization,
 * round-robin fallback.
 */
export const DEMO: KvAwareRoutingProps = {
  namespace: 'llm-d',
  name: 'ms-llm-d-modelservice',
  istioVersion: '1.27.0',
  decode: {
    model: 'Qwen/Qwen3-0.6B',
    replicas: 2,
    gpuMemoryUtilization: 0.9,
  },
  gateway: {
    name: 'llm-d-gateway',
    hostname: 'llm-d.demo.local',
  },
};

/**
 * The profiles. Those routing with the approximate prefix scorer (demo, prod-shared-gpus, prod-session-hash,
 * prod-native-istio) keep one EPP: each replica would learn only from its own picks, so N replicas each see about 1/N
 * of a prefix's traffic and send its next requests elsewhere more often (README "Running more than one EPP replica").
 */
export const CLUSTERS: readonly ClusterProfile[] = [
  {
    name: 'demo',
    description: 'The seed architecture exactly: 2 decode pods at 0.9 GPU memory utilization, round-robin fallback.',
    routing: DEMO,
  },
  {
    name: 'prod-shared-gpus',
    description: 'GPUs shared with other workloads: vLLM capped at 0.7 of GPU memory, so more (smaller-cache) replicas, rolled one at a time in place (no spare GPU to surge onto).',
    routing: withOverrides(DEMO, {
      istioVersion: '1.29',
      decode: { gpuMemoryUtilization: 0.7, replicas: 6, rollout: { maxSurge: 0, maxUnavailable: 1 } },
      gateway: { serviceType: 'ClusterIP' },
      monitoring: { selectorLabels: { release: 'kube-prometheus-stack' } },
    }),
  },
  {
    name: 'prod-session-hash',
    description: 'Consistent-hash backup on x-session-id: sessions keep their pod even while the EPP is down.',
    routing: withOverrides(DEMO, {
      istioVersion: '1.27',
      decode: { replicas: 4 },
      extProc: { consistentHashFallback: true },
    }),
  },
  {
    name: 'prod-precise',
    description: 'Precise prefix-cache routing: every vLLM publishes its KV events per pod; 2 EPP replicas each index what every pod holds, sessions shared through a Valkey.',
    routing: withOverrides(DEMO, {
      istioVersion: '1.28',
      decode: { replicas: 4, kvEvents: { mode: 'per-pod' } },
      // Per-pod events: each replica subscribes to every pod and builds the same index, so a second replica adds
      // availability without splitting what the scheduler knows; the Valkey keeps a session on one pod whichever
      // replica Envoy sends its request to.
      endpointPicker: { replicas: 2 },
      sessionStore: { deploy: {} },
    }),
  },
  {
    name: 'prod-ha',
    description: 'Active-active EPP: 3 replicas spread over nodes with per-pod KV events, sessions in the platform\'s Valkey (password from a Secret).',
    routing: withOverrides(DEMO, {
      istioVersion: '1.29',
      decode: { replicas: 8, kvEvents: { mode: 'per-pod' } },
      monitoring: { selectorLabels: { release: 'kube-prometheus-stack' } },
      // Three, so a drain or a rollout (one at a time: the PodDisruptionBudget, maxSurge 1 / maxUnavailable 0) still
      // leaves two, and each replica's node is its own (nodeSpread required: a node failure takes one replica).
      endpointPicker: { replicas: 3, nodeSpread: 'required' },
      sessionStore: {
        existing: {
          host: 'valkey.platform-cache.svc.cluster.local',
          port: 6379,
          passwordSecret: { name: 'kvroute-session-store', key: 'password' },
          networkPeer: { namespace: 'platform-cache', podLabels: { 'app.kubernetes.io/name': 'valkey' } },
        },
      },
    }),
  },
  {
    name: 'prod-native-istio',
    description: 'Istio 1.30 routes to the InferencePool (v1) itself and calls the EPP: no ext_proc EnvoyFilter.',
    routing: withOverrides(DEMO, {
      istioVersion: '1.30',
      inferenceRouting: 'native',
      decode: { replicas: 4 },
    }),
  },
];

/** Looks a profile up by name, with an error that lists the known ones. */
export function clusterProfile(name: string): ClusterProfile {
  const found = CLUSTERS.find((c) => c.name === name);
  if (!found) {
    throw new Error(`unknown cluster "${name}"; known clusters: ${CLUSTERS.map((c) => c.name).join(', ')}`);
  }
  return found;
}
