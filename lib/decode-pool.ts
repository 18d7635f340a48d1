import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { hardenedContainerSecurityContext, PodSecurityException, RUNTIME_DEFAULT_SECCOMP } from './pod-security';
import { checkSecretKeyReference } from './session-store';
import {
  checkClusterDomain, checkDns1035Label, checkDnsLabel, checkFraction, checkImage, checkInteger, checkLabels, checkOneOf, checkQuantity, PropsError,
} from './validation';

/**
 * How vLLM hashes prefix-cache blocks (`--prefix-caching-hash-algo`; vllm/config.py `PrefixCachingHashAlgo`):
 * vLLM 0.10.0-0.10.1 (the default image's 0.10.0) takes `builtin`, `sha256` and `sha256_cbor_64bit`; from 0.10.2 on
 * `sha256` and `sha256_cbor`, later also `xxhash` and `xxhash_cbor` (`builtin` is gone).
 */
export type PrefixCachingHashAlgo = 'builtin' | 'sha256' | 'sha256_cbor_64bit' | 'sha256_cbor' | 'xxhash' | 'xxhash_cbor';

/** The hash algorithms vLLM 0.10.0, the default image's, accepts (vllm/config.py @ v0.10.0). */
const VLLM_0_10_0_HASH_ALGOS: readonly PrefixCachingHashAlgo[] = ['builtin', 'sha256', 'sha256_cbor_64bit'];
/** The decode image when none is given: llm-d v0.2.0, which ships vLLM 0.10.0. */
const DEFAULT_DECODE_IMAGE = 'ghcr.io/llm-d/llm-d:v0.2.0';

/**
 * vLLM's KV-cache event publisher (`--kv-events-config`, vllm/config.py `KVEventsConfig` @ v0.10.0), feeding the
 * EPP's precise prefix-cache scorer.
 * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.KVEventsConfig
 */
export interface KvEventsOptions {
  /**
   * - `per-pod`: each vLLM binds its publisher (`tcp://*:<port>`) and the EPP dials every pod; every EPP replica can
   *   subscribe, and a replay socket repairs lost events. llm-d's `discoverPods: true`.
   * - `central`: each vLLM connects to the EPP's bound endpoint; one subscriber only.
   * @default 'per-pod'
   */
  readonly mode?: 'per-pod' | 'central';
  /**
   * `per-pod`: the port vLLM publishes on (container port `kv-events`), from 1024 to 65535; not 8000 or 8001, the
   * routing sidecar's and vLLM's HTTP ports in the same pod.
   * @default 5557
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.KVEventsConfig
   */
  readonly port?: number;
  /**
   * `per-pod`: the port of vLLM's replay socket (`replay_endpoint`, container port `kv-replay`), from 1024 to 65535;
   * not `port`, 8000 or 8001.
   * @default 5558
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.KVEventsConfig
   */
  readonly replayPort?: number;
  /**
   * `central`: the endpoint vLLM connects to, the EPP's (e.g. `tcp://<epp service>:5557`), with a port from 1 to 65535.
   * The EPP binds that port, so under `KvAwareRouting` it must not be one of the EPP's own (9002, 9003, 9090).
   * @default under `KvAwareRouting`, `tcp://<name>-epp.<namespace>.svc.<clusterDomain>:5557`; required otherwise
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.KVEventsConfig
   */
  readonly endpoint?: string;
  /** Batches vLLM keeps for replay (`buffer_steps`). @default 10000 */
  readonly bufferSteps?: number;
}

/** Props of {@link DecodePool}: one Deployment of vLLM decode pods behind the llm-d routing sidecar. */
export interface DecodePoolProps {
  /** Namespace of every object. */
  readonly namespace: string;
  /**
   * The cluster's DNS domain: the decode DestinationRule's host and the EnvoyFilter's cluster match name the Service
   * `<name>-decode.<namespace>.svc.<clusterDomain>`, as Istio names it (istiod's `--domain`).
   * @default 'cluster.local'
   * @see https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/
   */
  readonly clusterDomain?: string;
  /**
   * Base name; the Deployment and Service are `<name>-decode`, matching llm-d-modelservice's `<fullname>-decode`.
   * Also the value of the pods' `llm-d.ai/model` label, as in llm-d. A DNS-1035 label (it starts the Service's name) of
   * at most 56 characters.
   * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names
   */
  readonly name: string;
  /** Hugging Face model id vLLM loads, e.g. `Qwen/Qwen3-0.6B`. */
  readonly model: string;
  /**
   * Name clients send as `model` (`--served-model-name`).
   * @default the `model` value
   */
  readonly servedModelName?: string;
  /** @default 2 */
  readonly replicas?: number;
  /**
   * Fraction of each GPU's memory vLLM may use for weights, activations and KV cache (`--gpu-memory-utilization`).
   * The usual per-cluster override: lower it where GPUs are shared or memory fragments.
   * @default 0.9
   */
  readonly gpuMemoryUtilization?: number;
  /**
   * `--max-model-len`: prompt + output tokens per request. It must not exceed the model's own context length
   * (`max_position_embeddings` or `model_max_length` in its config.json, 40960 for Qwen/Qwen3-0.6B): vLLM refuses to
   * start above it unless the pod sets `VLLM_ALLOW_LONG_MAX_MODEL_LEN=1` (`_get_and_verify_max_len`, vllm/config.py @
   * v0.10.0). Synth cannot check that without the model's config.
   * @default 4096
   * @see https://docs.vllm.ai/en/v0.10.0/configuration/engine_args.html
   */
  readonly maxModelLen?: number;
  /**
   * `--max-num-seqs`: requests each vLLM engine runs at once; more wait in its queue for one to finish. `KvAwareRouting`
   * tells the EPP the same number (the latency scorer's `maxNumSeqs`), so it predicts that wait for a pod already
   * running this many instead of stacking a burst of requests that share a cached prefix onto it. Left unset, the flag
   * is not written and vLLM picks its default (256 for the OpenAI server; 1024 on GPUs of 70 GiB or more other than the
   * A100, such as H100, H200, MI300x), and the EPP assumes 1024. vLLM refuses fewer batched tokens than sequences: with
   * `--max-num-batched-tokens` in `extraArgs` (read as vLLM 0.10 reads it: `8k` is 8000, `8K` 8192) this may not exceed
   * it, and above 2048 (vLLM's default batched tokens) that flag is required.
   * @default vLLM's (the flag is not written)
   * @see https://docs.vllm.ai/en/v0.10.0/configuration/engine_args.html
   */
  readonly maxNumSeqs?: number;
  /**
   * Tokens per KV-cache block (`--block-size`). The EPP's prefix scorer assumes 16-token blocks (64 characters). 16, 32,
   * 64 or 128 on the default image (its CUDA attention backend refuses other sizes at start-up); 1 and 8 too with an
   * `image` whose backend takes them.
   * @default 16
   */
  readonly blockSize?: number;
  /**
   * With the default image (vLLM 0.10.0) only `builtin`, `sha256` and `sha256_cbor_64bit` are accepted; the others
   * need an `image` with a newer vLLM, which in turn no longer takes `builtin`. With `kvEvents`, vLLM 0.10.0-0.10.1
   * cannot publish `sha256` hashes (256-bit integers, past msgpack's 64): refused on the default image; on an image of
   * your own with such a vLLM, choose `sha256_cbor_64bit`.
   * @default 'builtin'
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.CacheConfig.prefix_caching_hash_algo
   */
  readonly prefixCachingHashAlgo?: PrefixCachingHashAlgo;
  /**
   * `PYTHONHASHSEED` for reproducible block hashes across pods: vLLM seeds the first block's parent hash from it, and
   * from random bytes without it. Set with every algorithm but `builtin` (the seed architecture's, left as it is).
   * @default '42' when the hash algorithm is not `builtin`, unset otherwise
   */
  readonly pythonHashSeed?: string;
  /**
   * vLLM's `--scheduling-policy`: `priority` serves the waiting queue by each request's `priority` field (lower first),
   * then arrival, which the EPP's `prefill-priority` plugin sets from each pick's uncached prefill (short prefills
   * first). `fcfs` ignores the field, so `KvAwareRouting` refuses an EPP config with that plugin
   * on an `fcfs` pool.
   * @default 'fcfs' (the flag is not written)
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.SchedulerConfig.policy
   */
  readonly schedulingPolicy?: 'fcfs' | 'priority';
  /**
   * Publish KV-cache events over ZMQ for the EPP's precise prefix-cache scorer. Any hash algorithm works, `builtin`
   * included: the EPP keys blocks by their token ids and maps vLLM's hashes to those keys.
   * @default no events
   */
  readonly kvEvents?: KvEventsOptions;
  /**
   * LoRA adapters vLLM loads at start-up (`--enable-lora --lora-modules name=path …`). Each `name` is a model name
   * clients may request; `path` is a Hugging Face repo id or a path inside the pod. vLLM loads them when it starts, so
   * an adapter of a rank above `maxLoraRank` stops the pod. With adapters the pods export `vllm:lora_requests_info`,
   * and `KvAwareRouting` gives the built-in EPP config kvroute's `lora-room-filter`, which reads it to keep adapter
   * requests off pods whose adapter slots other adapters hold (`EndpointPicker.loraAdapters`). With `kvEvents` it needs
   * an `image` whose vLLM has #27728 (the default's 0.10.0 fails on its first LoRA block event).
   * @default none (LoRA off)
   * @see https://docs.vllm.ai/en/v0.10.0/features/lora.html
   */
  readonly loraAdapters?: readonly LoraAdapter[];
  /**
   * vLLM's `--max-loras`: the adapters one pod serves at once; a request for one more waits in vLLM's queue until
   * one of them has no running request. Only with `loraAdapters`.
   * @default vLLM's 1 (the flag is not written)
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.LoRAConfig
   */
  readonly maxLoras?: number;
  /**
   * vLLM's `--max-lora-rank`: the largest rank among `loraAdapters`. Only with `loraAdapters`.
   * @default vLLM's 16 (the flag is not written)
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.LoRAConfig
   */
  readonly maxLoraRank?: 8 | 16 | 32 | 64 | 128 | 256 | 320 | 512;
  /**
   * vLLM's `--max-cpu-loras`: the adapters a pod keeps in CPU memory, an LRU cache in front of loading them from disk
   * (or the Hub). vLLM's own default is `max_loras`, so a pool with more adapters than GPU slots would reload one from
   * storage at every switch; kvroute keeps every listed adapter in CPU memory instead, which costs each adapter's
   * weights in the pod's memory (`memory` must hold them; lower this for many large adapters). At least the pod's
   * `maxLoras` (vLLM refuses less). Only with `loraAdapters`.
   * @default the number of `loraAdapters`, written only when it exceeds `maxLoras` (else vLLM's default is the same)
   * @see https://docs.vllm.ai/en/v0.10.0/api/vllm/config.html#vllm.config.LoRAConfig
   */
  readonly maxCpuLoras?: number;
  /** GPUs per pod (`nvidia.com/gpu` request and limit; also vLLM's tensor parallel size). @default 1 */
  readonly gpusPerPod?: number;
  /** @default 'ghcr.io/llm-d/llm-d:v0.2.0' (vLLM 0.10.0) */
  readonly image?: string;
  /** @default 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.2.0' */
  readonly sidecarImage?: string;
  /**
   * The Deployment's rolling update, in pods. The default never takes a ready pod away before its replacement is
   * ready, which needs a spare GPU for the surge pod: without one the rollout waits (Pending) and, after
   * `progressDeadlineSeconds`, reports `ProgressDeadlineExceeded` without going on. On GPUs shared with other
   * workloads `{ maxSurge: 0, maxUnavailable: 1 }` rolls one pod at a time in place instead, at one pod's capacity.
   * llm-d-modelservice sets no strategy (Kubernetes' 25 % / 25 %).
   * @default { maxSurge: 1, maxUnavailable: 0 }
   * @see https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment
   */
  readonly rollout?: { readonly maxSurge?: number; readonly maxUnavailable?: number };
  /**
   * How the routing sidecar runs. `container`: a plain container beside vLLM, for Kubernetes 1.28 (the target), where
   * native sidecars sit behind the alpha `SidecarContainers` gate. `native`: an init container with
   * `restartPolicy: Always`, as llm-d-modelservice renders it, for Kubernetes >= 1.29 (the gate on by default):
   * Kubernetes stops it only after vLLM has exited, so vLLM's drain of in-flight requests on SIGTERM (its 120 s grace
   * period) reaches clients. A plain sidecar gets SIGTERM with vLLM and exits at once (its `Serve` returns as soon as
   * `Shutdown` starts, and `main` with it: llm-d-routing-sidecar `internal/proxy/proxy.go`, unchanged in
   * llm-d-inference-scheduler v0.8.0's `pkg/sidecar/proxy`), cutting the pod's streaming responses on every rollout,
   * scale-down or drain. Its image has no shell for a preStop delay.
   * @default 'container'
   * @see https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/
   */
  readonly routingSidecar?: 'container' | 'native';
  /**
   * Run the vLLM container as this non-root UID, with `runAsNonRoot: true`: the decode pod then meets every control of
   * the Pod Security "restricted" profile. Only for an `image` built for that user: torch can fail at import under a
   * UID without a passwd entry (kserve/kserve#5666), and vLLM needs a writable `$HOME`; llm-d's newer images create
   * such a user (`USER 2000`, llm-d/llm-d docker/Dockerfile.cuda). Left unset, vLLM runs as its image's user: the
   * documented exception.
   * @default the image's user (the seed's `ghcr.io/llm-d/llm-d:v0.2.0` declares no non-root user kvroute could verify)
   * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
   */
  readonly runAsUser?: number;
  /**
   * Secret holding the Hugging Face token. Referenced as optional, so public models start without it. `name` is a
   * DNS-1123 subdomain, `key` a Secret key (at most 253 alphanumerics, '-', '_' or '.'; not `.`, not starting with `..`).
   * @default { name: 'llm-d-hf-token', key: 'HF_TOKEN' }
   * @see https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data
   */
  readonly hfTokenSecret?: { readonly name: string; readonly key: string };
  /**
   * CPU request of the vLLM container (limit left unset: vLLM bursts during load and compile); a Kubernetes quantity.
   * @default '4'
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly cpu?: string;
  /**
   * Memory request and limit of the vLLM container; a Kubernetes quantity.
   * @default '32Gi'
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly memory?: string;
  /**
   * Size limit of the emptyDir the model is downloaded into (`HF_HOME`); a Kubernetes quantity.
   * @default '50Gi'
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly modelCacheSize?: string;
  /**
   * Size of the in-memory `/dev/shm` (NCCL and tensor-parallel workers need more than the 64 MiB default); a Kubernetes
   * quantity.
   * @default '8Gi'
   * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
   */
  readonly shmSize?: string;
  /**
   * Longest time a pod may take to download and load the model before Kubernetes restarts it. The Deployment's
   * `progressDeadlineSeconds` is this plus Kubernetes' default 600 s (for the image pull and scheduling), so a rollout
   * whose new pod loads within this time is never reported `ProgressDeadlineExceeded` (Kubernetes' default deadline
   * alone, 600 s, would fail `kubectl rollout status` and GitOps health checks while the pod still loads).
   * @default 1800 seconds
   * @see https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#progress-deadline-seconds
   */
  readonly startupTimeoutSeconds?: number;
  /**
   * Extra `vllm serve` arguments appended after kvroute's own. Flags kvroute writes from a typed option are refused
   * (with the option to set instead), in every spelling vLLM reads (`_` for `-`, `--no-` twins, dotted `--a.b=v`,
   * unique prefixes): vLLM's argparse takes the last value, so a duplicate would silently override the option, and
   * the EPP is configured from the options, not from these arguments (a `--block-size` here would leave its prefix
   * index hashing other blocks than vLLM's). A parallel layout may be given (`-tp`, `-pp`, `-dp`, `-dpl`, e.g.
   * `-tp 2 -pp 2`): it must use exactly `gpusPerPod` GPUs, and kvroute then writes no `--tensor-parallel-size` of its
   * own. `--disable-log-stats` is refused (it removes the metrics the EPP routes on). A `--config` file is not read.
   * @default none
   */
  readonly extraArgs?: string[];
  /**
   * Node selector for GPU nodes; keys and values as Kubernetes labels take them.
   * @default none
   * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
   */
  readonly nodeSelector?: Record<string, string>;
  /**
   * Tolerations of the decode pods, checked as the API server checks them: `operator` Exists or Equal (Exists with no
   * value), `effect` NoSchedule, PreferNoSchedule, NoExecute or empty (all), `tolerationSeconds` only with NoExecute.
   * @default tolerate the `nvidia.com/gpu` NoSchedule taint GPU node pools usually carry
   * @see https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/
   */
  readonly tolerations?: k8s.Toleration[];
}

/** One LoRA adapter of a {@link DecodePool}: vLLM's `--lora-modules name=path`. */
export interface LoraAdapter {
  /** The model name clients request it by. */
  readonly name: string;
  /** A Hugging Face repo id or a path inside the pod. */
  readonly path: string;
}

const SCOPE = 'DecodePool';

/**
 * vLLM decode pods with prefix caching, the llm-d routing sidecar in front of each, and the decode Service Envoy
 * routes to. Exposes the selector, ports and Service that the InferencePool, EnvoyFilter and monitors wire to.
 */
export class DecodePool extends Construct {
  /** Port of the routing sidecar, the pods' entry point: the Service, the InferencePool and the EPP's picks use it. */
  public static readonly SIDECAR_PORT = 8000;
  /** Port vLLM itself listens on inside the pod. */
  public static readonly VLLM_PORT = 8001;
  /** Container port names, used by probes and the PodMonitor. */
  public static readonly VLLM_PORT_NAME = 'vllm';
  public static readonly SIDECAR_PORT_NAME = 'http';

  public readonly deployment: k8s.KubeDeployment;
  public readonly service: k8s.KubeService;
  public readonly namespace: string;
  public readonly deploymentName: string;
  public readonly serviceName: string;
  /** `<service>.<namespace>.svc.<clusterDomain>`: the host Istio names the decode cluster after. */
  public readonly serviceFqdn: string;
  public readonly servicePort = DecodePool.SIDECAR_PORT;
  /** Labels every decode pod carries; the selector of the Deployment, Service, InferencePool and PodMonitor. */
  public readonly podLabels: Readonly<Record<string, string>>;
  public readonly model: string;
  public readonly servedModelName: string;
  public readonly replicas: number;
  public readonly gpuMemoryUtilization: number;
  /** `--max-num-seqs` as written; undefined when vLLM picks its default. */
  public readonly maxNumSeqs: number | undefined;
  public readonly blockSize: number;
  public readonly prefixCachingHashAlgo: PrefixCachingHashAlgo;
  /** vLLM's `--scheduling-policy`. */
  public readonly schedulingPolicy: 'fcfs' | 'priority';
  /** How the routing sidecar runs (see `DecodePoolProps.routingSidecar`). */
  public readonly routingSidecar: 'container' | 'native';
  /** The KV-event publisher settings, resolved; undefined without events. */
  public readonly kvEvents?: Required<Omit<KvEventsOptions, 'endpoint'>> & { readonly endpoint?: string };
  /** Every port the decode pod declares, by name, in the pod's order (the sidecar's, then vLLM's container's). */
  public readonly containerPorts: readonly { readonly name: string; readonly port: number }[];
  /** Container port names of the publisher and its replay socket. */
  public static readonly KV_EVENTS_PORT_NAME = 'kv-events';
  public static readonly KV_REPLAY_PORT_NAME = 'kv-replay';
  /**
   * The hardening controls the decode pod does not meet, and why (README, "Security"); the tests check the pod against
   * the Pod Security "restricted" profile and require its failures to be exactly these.
   */
  public readonly podSecurityExceptions: readonly PodSecurityException[];
  /** The LoRA adapters vLLM loads (empty: LoRA off). */
  public readonly loraAdapters: readonly LoraAdapter[];
  /** `--max-loras` as written; undefined: vLLM's default (1), or LoRA off. */
  public readonly maxLoras?: number;
  /** `--max-lora-rank` as written; undefined: vLLM's default (16), or LoRA off. */
  public readonly maxLoraRank?: number;
  /** `--max-cpu-loras` as written; undefined: vLLM's default (`max_loras`), or LoRA off. */
  public readonly maxCpuLoras?: number;

  constructor(scope: Construct, id: string, props: DecodePoolProps) {
    super(scope, id);
    // <name>-decode is the Service's name: a DNS-1035 label of at most 63 characters.
    const name = checkDns1035Label(SCOPE, 'name', props.name, 56);
    this.namespace = checkDnsLabel(SCOPE, 'namespace', props.namespace);
    // `vllm serve <model>` is a positional argument: argparse takes a word starting with '-' for an option and vLLM
    // exits (a Hugging Face repo id cannot start with '-', a path starts with '/' or a name).
    if (typeof props.model !== 'string' || props.model.trim() === '' || /\s/.test(props.model) || props.model.startsWith('-')) {
      throw new PropsError(SCOPE, 'model', 'must be a non-empty model id without spaces, not starting with "-", e.g. "Qwen/Qwen3-0.6B"', props.model);
    }
    this.model = props.model;
    this.servedModelName = props.servedModelName ?? props.model;
    if (typeof this.servedModelName !== 'string' || this.servedModelName.trim() === '' || /\s/.test(this.servedModelName)) {
      throw new PropsError(SCOPE, 'servedModelName', 'must be a non-empty name without spaces', props.servedModelName);
    }
    this.replicas = checkInteger(SCOPE, 'replicas', props.replicas ?? 2, 0, 1000);
    this.gpuMemoryUtilization = checkFraction(SCOPE, 'gpuMemoryUtilization', props.gpuMemoryUtilization ?? 0.9, 0, 1);
    const maxModelLen = checkInteger(SCOPE, 'maxModelLen', props.maxModelLen ?? 4096, 16);
    this.maxNumSeqs = props.maxNumSeqs === undefined ? undefined : checkInteger(SCOPE, 'maxNumSeqs', props.maxNumSeqs, 1, 65536);
    this.schedulingPolicy = checkOneOf(SCOPE, 'schedulingPolicy', props.schedulingPolicy ?? 'fcfs', ['fcfs', 'priority'] as const);
    this.loraAdapters = checkLoraAdapters(props.loraAdapters ?? [], this.servedModelName);
    if (props.maxLoras !== undefined) {
      if (this.loraAdapters.length === 0) throw new PropsError(SCOPE, 'maxLoras', 'applies only with loraAdapters', props.maxLoras);
      this.maxLoras = checkInteger(SCOPE, 'maxLoras', props.maxLoras, 1, 256);
    }
    if (props.maxLoraRank !== undefined) {
      if (this.loraAdapters.length === 0) throw new PropsError(SCOPE, 'maxLoraRank', 'applies only with loraAdapters', props.maxLoraRank);
      // LoRAConfig.__post_init__'s possible_max_ranks (vllm/config.py @ v0.10.0).
      this.maxLoraRank = checkOneOf(SCOPE, 'maxLoraRank', props.maxLoraRank, [8, 16, 32, 64, 128, 256, 320, 512]);
    }
    if (props.maxCpuLoras !== undefined) {
      if (this.loraAdapters.length === 0) throw new PropsError(SCOPE, 'maxCpuLoras', 'applies only with loraAdapters', props.maxCpuLoras);
      // LoRAConfig.__post_init__ (vllm/config.py @ v0.10.0): "max_cpu_loras (…) must be >= max_loras (…)".
      const gpuSlots = this.maxLoras ?? 1;
      this.maxCpuLoras = checkInteger(SCOPE, 'maxCpuLoras', props.maxCpuLoras, 1, 4096);
      if (this.maxCpuLoras < gpuSlots) {
        throw new PropsError(SCOPE, 'maxCpuLoras', `must be at least maxLoras (${gpuSlots}${this.maxLoras === undefined ? ', vLLM\'s default' : ''}): vLLM refuses fewer CPU slots than GPU slots`, props.maxCpuLoras);
      }
    } else if (this.loraAdapters.length > (this.maxLoras ?? 1)) {
      this.maxCpuLoras = this.loraAdapters.length;
    }
    this.routingSidecar = checkOneOf(SCOPE, 'routingSidecar', props.routingSidecar ?? 'container', ['container', 'native'] as const);
    this.prefixCachingHashAlgo = checkOneOf(SCOPE, 'prefixCachingHashAlgo', props.prefixCachingHashAlgo ?? 'builtin',
      ['builtin', 'sha256', 'sha256_cbor_64bit', 'sha256_cbor', 'xxhash', 'xxhash_cbor'] as const);
    if (props.tolerations !== undefined) checkTolerations(props.tolerations);
    const gpus = checkInteger(SCOPE, 'gpusPerPod', props.gpusPerPod ?? 1, 1, 16);
    const parallel = parallelGpus(Array.isArray(props.extraArgs) ? props.extraArgs : []);
    if (parallel !== undefined && parallel.gpus !== gpus) {
      // Fewer GPUs than the layout needs: vLLM never starts ("World size … is larger than the number of available
      // GPUs"); more: GPUs requested and left idle.
      throw new PropsError(SCOPE, 'gpusPerPod', `must equal the GPUs the parallel layout in extraArgs uses (${parallel.layout} = ${parallel.gpus})`, gpus);
    }
    const image = checkImage(SCOPE, 'image', props.image ?? DEFAULT_DECODE_IMAGE);
    checkBatchedTokens(this.maxNumSeqs, Array.isArray(props.extraArgs) ? props.extraArgs : [], image === DEFAULT_DECODE_IMAGE);
    // vLLM's CLI takes 1 and 8 too (`--block-size` choices, vllm/config.py @ v0.10.0), but FlashAttention, V1's backend on
    // the default image's CUDA GPUs, fails the KV cache's set-up on anything but a multiple of 16
    // (vllm/v1/attention/backends/flash_attn.py get_kv_cache_shape: "Block size must be a multiple of 16.").
    this.blockSize = image === DEFAULT_DECODE_IMAGE
      ? checkOneOf(SCOPE, 'blockSize', props.blockSize ?? 16, [16, 32, 64, 128])
      : checkOneOf(SCOPE, 'blockSize', props.blockSize ?? 16, [1, 8, 16, 32, 64, 128]);
    if (image === DEFAULT_DECODE_IMAGE && !VLLM_0_10_0_HASH_ALGOS.includes(this.prefixCachingHashAlgo)) {
      throw new PropsError(SCOPE, 'prefixCachingHashAlgo',
        `the default image (${DEFAULT_DECODE_IMAGE}, vLLM 0.10.0) accepts ${VLLM_0_10_0_HASH_ALGOS.map((a) => `"${a}"`).join(', ')}; set image to one with vLLM 0.10.2 or later for it`,
        this.prefixCachingHashAlgo);
    }
    const sidecarImage = checkImage(SCOPE, 'sidecarImage', props.sidecarImage ?? 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.2.0');
    const startupTimeout = checkInteger(SCOPE, 'startupTimeoutSeconds', props.startupTimeoutSeconds ?? 1800, 60, 86400);
    const runAsUser = props.runAsUser === undefined ? undefined : checkInteger(SCOPE, 'runAsUser', props.runAsUser, 1, 2147483647);
    this.podSecurityExceptions = [
      ...(runAsUser === undefined
        ? [{
            control: 'runAsNonRoot' as const,
            container: 'vllm',
            reason: 'the vLLM image runs as its own user, which kvroute cannot verify is non-root (vLLM\'s images run as root, and torch can fail at import under a UID without a passwd entry); set runAsUser for an image with a non-root user',
          }]
        : []),
      {
        control: 'readOnlyRootFilesystem',
        container: 'vllm',
        reason: 'vLLM, torch.compile, Triton and FlashInfer write caches under $HOME, /tmp and their own directories, which differ from release to release',
      },
    ];
    if (props.pythonHashSeed !== undefined && this.prefixCachingHashAlgo === 'builtin') {
      throw new PropsError(SCOPE, 'pythonHashSeed', "is set only with a prefixCachingHashAlgo other than 'builtin'", props.pythonHashSeed);
    }
    // CPython aborts start-up on anything but "random" or an integer in [0, 4294967295], read with strtoul(text, &end,
    // 10) to the end (Python/initconfig.c config_init_hash_seed): C's leading whitespace, a sign and leading zeros pass
    // (`007`, ` 42`, `+42`, `-0`), a negative number wraps past the bound, trailing text fails; vLLM hashes the string
    // as given. "random" (or "", unset) would give each pod its own block hashes, which is what the seed is for.
    if (props.pythonHashSeed !== undefined && (typeof props.pythonHashSeed !== 'string' || !pythonAcceptsHashSeed(props.pythonHashSeed))) {
      throw new PropsError(SCOPE, 'pythonHashSeed', 'must be a decimal integer from 0 to 4294967295, as a string (CPython refuses anything else at start-up; "random" would differ from pod to pod)', props.pythonHashSeed);
    }
    if (props.kvEvents) {
      const mode = checkOneOf(SCOPE, 'kvEvents.mode', props.kvEvents.mode ?? 'per-pod', ['per-pod', 'central'] as const);
      const endpoint = props.kvEvents.endpoint;
      if (mode === 'central' && (endpoint === undefined || !/^tcp:\/\/[^\s:*]+:\d{1,5}$/.test(endpoint))) {
        throw new PropsError(SCOPE, 'kvEvents.endpoint', 'with mode "central" must be the EPP\'s ZMQ endpoint, like "tcp://epp.ns.svc:5557"', endpoint);
      }
      if (mode === 'central') {
        const port = Number(/:(\d+)$/.exec(endpoint!)![1]);
        if (!(port >= 1 && port <= 65535)) {
          throw new PropsError(SCOPE, 'kvEvents.endpoint', 'must name a port from 1 to 65535 (the EPP binds it for the pods\' publishers)', endpoint);
        }
      }
      if (mode === 'per-pod' && endpoint !== undefined) {
        throw new PropsError(SCOPE, 'kvEvents.endpoint', 'applies to mode "central" only; with "per-pod" vLLM binds kvEvents.port', endpoint);
      }
      this.kvEvents = {
        mode,
        port: checkInteger(SCOPE, 'kvEvents.port', props.kvEvents.port ?? 5557, 1024, 65535),
        replayPort: checkInteger(SCOPE, 'kvEvents.replayPort', props.kvEvents.replayPort ?? 5558, 1024, 65535),
        bufferSteps: checkInteger(SCOPE, 'kvEvents.bufferSteps', props.kvEvents.bufferSteps ?? 10_000, 1, 10_000_000),
        ...(endpoint !== undefined ? { endpoint } : {}),
      };
      if (this.kvEvents.port === this.kvEvents.replayPort) {
        throw new PropsError(SCOPE, 'kvEvents.replayPort', 'must differ from kvEvents.port', this.kvEvents.replayPort);
      }
      if (mode === 'per-pod' && (parallel?.ranks ?? 1) > 1) {
        // Each data-parallel rank's scheduler publishes on its own sockets, both ports offset by its rank
        // (vllm/distributed/kv_events.py @ v0.10.0 ZmqEventPublisher offset_endpoint_port): rank 1's publisher binds
        // port + 1, which is rank 0's replay port by default, and the engine dies with "address in use"; and the EPP
        // subscribes to one port a pod.
        throw new PropsError(SCOPE, 'kvEvents', `per-pod KV events serve one data-parallel rank a pod; extraArgs runs ${parallel!.ranks} on each (vLLM offsets each rank's publisher and replay ports by its rank)`, props.kvEvents);
      }
      if (mode === 'per-pod') {
        // vLLM binds both in the pod, beside the routing sidecar's and its own HTTP port: a shared one fails its start
        // with "address in use" (the API server takes duplicate containerPorts across containers).
        for (const field of ['port', 'replayPort'] as const) {
          const port = this.kvEvents[field];
          if (port === DecodePool.SIDECAR_PORT || port === DecodePool.VLLM_PORT) {
            throw new PropsError(SCOPE, `kvEvents.${field}`, `must not be a port the decode pod already listens on (${DecodePool.SIDECAR_PORT}, the routing sidecar's; ${DecodePool.VLLM_PORT}, vLLM's HTTP server)`, port);
          }
        }
      }
      // vLLM 0.10's BlockStored reads `request.lora_request.id`, which LoRARequest does not have
      // (vllm/v1/core/block_pool.py @ v0.10.0 cache_full_blocks): the engine fails on the first LoRA block it stores.
      // Fixed by vLLM #27728 (merged 2025-11-03), which reports `lora_id` = lora_int_id.
      if (image === DEFAULT_DECODE_IMAGE && this.loraAdapters.length > 0) {
        throw new PropsError(SCOPE, 'image',
          'with kvEvents and loraAdapters must be set to a vLLM with #27728: the default (vLLM 0.10.0) fails its engine on the first LoRA block it publishes',
          image);
      }
      // vLLM 0.10.0-0.10.1's `sha256` block hash is the whole 256-bit digest as a Python int (vllm/utils/__init__.py
      // `sha256`), and BlockStored/BlockRemoved carry it as is (block_pool.py cache_full_blocks): msgspec's msgpack
      // encoder writes integers of at most 64 bits, so every such batch fails to encode in the publisher thread and is
      // dropped, and the EPP's index stays empty. `sha256_cbor_64bit` was added (vLLM #20511) for exactly this.
      if (image === DEFAULT_DECODE_IMAGE && this.prefixCachingHashAlgo === 'sha256') {
        throw new PropsError(SCOPE, 'prefixCachingHashAlgo',
          'with kvEvents on the default image (vLLM 0.10.0) must be "builtin" or "sha256_cbor_64bit": vLLM 0.10.0 publishes "sha256" block hashes as 256-bit integers, which its msgpack encoder cannot write, so no KV event reaches the EPP',
          this.prefixCachingHashAlgo);
      }
    }

    this.deploymentName = `${name}-decode`;
    this.serviceName = `${name}-decode`;
    this.serviceFqdn = `${this.serviceName}.${this.namespace}.svc.${checkClusterDomain(SCOPE, props.clusterDomain)}`;
    this.podLabels = {
      'llm-d.ai/inferenceServing': 'true',
      'llm-d.ai/model': name,
      'llm-d.ai/role': 'decode',
    };

    const args = [
      this.model,
      `--port=${DecodePool.VLLM_PORT}`,
      `--served-model-name=${this.servedModelName}`,
      '--enable-prefix-caching',
      `--prefix-caching-hash-algo=${this.prefixCachingHashAlgo}`,
      `--block-size=${this.blockSize}`,
      // The seed's flag, kept as the seed lists it, but inert on vLLM 0.10's V1 engine: for a generative model
      // `_set_default_args_v1` sets enable_chunked_prefill = True whatever the flag said, and logs nothing
      // (vllm/engine/arg_utils.py @ v0.10.0, "V1 always uses chunked prefills"). The pods run chunked prefill, as
      // kvroute's simulator models them.
      '--no-enable-chunked-prefill',
      `--gpu-memory-utilization=${this.gpuMemoryUtilization}`,
      `--max-model-len=${maxModelLen}`,
      // An addition to the seed's flags: without it vLLM leaves usage.prompt_tokens_details.cached_tokens out of
      // every response (vllm/entrypoints/openai/serving_chat.py @ v0.10.0), so clients and benchmarks reading usage
      // see no cache hits at all.
      '--enable-prompt-tokens-details',
    ];
    if (this.maxNumSeqs !== undefined) args.push(`--max-num-seqs=${this.maxNumSeqs}`);
    // A layout given in extraArgs (checked against gpusPerPod above) is vLLM's to read; kvroute's own flag would be
    // a second --tensor-parallel-size, and argparse keeps whichever comes last.
    if (gpus > 1 && parallel === undefined) args.push(`--tensor-parallel-size=${gpus}`);
    if (this.schedulingPolicy !== 'fcfs') args.push(`--scheduling-policy=${this.schedulingPolicy}`);
    if (this.loraAdapters.length > 0) {
      // Without --enable-lora vLLM refuses --lora-modules at start-up ("LoRA is not enabled.";
      // vllm/entrypoints/openai/serving_models.py @ v0.10.0 init_static_loras). --lora-modules takes the pairs as one
      // argparse nargs='+' list, so they follow it as separate arguments.
      args.push('--enable-lora');
      if (this.maxLoras !== undefined) args.push(`--max-loras=${this.maxLoras}`);
      if (this.maxLoraRank !== undefined) args.push(`--max-lora-rank=${this.maxLoraRank}`);
      if (this.maxCpuLoras !== undefined) args.push(`--max-cpu-loras=${this.maxCpuLoras}`);
      args.push('--lora-modules', ...this.loraAdapters.map((a) => `${a.name}=${a.path}`));
    }
    if (this.kvEvents) {
      const perPod = this.kvEvents.mode === 'per-pod';
      // vLLM 0.10 needs both enable_kv_cache_events and publisher "zmq" (EventPublisherFactory.create). A '*' endpoint
      // binds, any other connects (ZmqEventPublisher._socket_setup). $(POD_IP) is expanded by the kubelet from the env
      // var below: llm-d's topic `kv@<pod ip:port>@<model>` names the pod for a central subscriber.
      args.push(`--kv-events-config=${JSON.stringify({
        enable_kv_cache_events: true,
        publisher: 'zmq',
        endpoint: perPod ? `tcp://*:${this.kvEvents.port}` : this.kvEvents.endpoint,
        ...(perPod ? { replay_endpoint: `tcp://*:${this.kvEvents.replayPort}` } : {}),
        buffer_steps: this.kvEvents.bufferSteps,
        topic: `kv@$(POD_IP):${DecodePool.SIDECAR_PORT}@${this.servedModelName}`,
      })}`);
    }
    args.push(...checkExtraArgs(props.extraArgs ?? []));

    const cpu = checkQuantity(SCOPE, 'cpu', props.cpu ?? '4');
    const memory = checkQuantity(SCOPE, 'memory', props.memory ?? '32Gi');
    const modelCacheSize = checkQuantity(SCOPE, 'modelCacheSize', props.modelCacheSize ?? '50Gi');
    const shmSize = checkQuantity(SCOPE, 'shmSize', props.shmSize ?? '8Gi');
    // The API server validates a pod's nodeSelector as labels.
    const nodeSelector = props.nodeSelector === undefined ? undefined : checkLabels(SCOPE, 'nodeSelector', props.nodeSelector, { allowEmpty: true });
    const hfSecret = checkSecretKeyReference(SCOPE, 'hfTokenSecret', props.hfTokenSecret ?? { name: 'llm-d-hf-token', key: 'HF_TOKEN' }, 'HF_TOKEN');
    const env: k8s.EnvVar[] = [
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'HF_HOME', value: '/model-cache' },
      { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: hfSecret.name, key: hfSecret.key, optional: true } } },
    ];
    if (this.prefixCachingHashAlgo !== 'builtin') {
      env.push({ name: 'PYTHONHASHSEED', value: props.pythonHashSeed ?? '42' });
    }

    const vllmHealth = (periodSeconds: number, failureThreshold: number): k8s.Probe => ({
      // The sidecar's own /health always answers 200, so readiness must ask vLLM directly.
      httpGet: { path: '/health', port: k8s.IntOrString.fromString(DecodePool.VLLM_PORT_NAME) },
      periodSeconds,
      failureThreshold,
      timeoutSeconds: 5,
    });

    const maxSurge = checkInteger(SCOPE, 'rollout.maxSurge', props.rollout?.maxSurge ?? 1, 0, 1000);
    const maxUnavailable = checkInteger(SCOPE, 'rollout.maxUnavailable', props.rollout?.maxUnavailable ?? 0, 0, 1000);
    if (maxSurge === 0 && maxUnavailable === 0) {
      throw new PropsError(SCOPE, 'rollout', 'maxSurge and maxUnavailable cannot both be 0 (Kubernetes refuses such a Deployment: nothing could roll)', props.rollout);
    }

    const routingProxy: k8s.Container = {
      name: 'routing-proxy',
      // Native: an init container that keeps running (KEP-753), started before vLLM and stopped after it.
      ...(this.routingSidecar === 'native' ? { restartPolicy: 'Always' } : {}),
      image: sidecarImage,
      args: [
        `--port=${DecodePool.SIDECAR_PORT}`,
        `--vllm-port=${DecodePool.VLLM_PORT}`,
        // Its default (true) serves self-signed TLS on 8000, which plain-HTTP Envoy clusters cannot talk to.
        '--secure-proxy=false',
      ],
      ports: [{ name: DecodePool.SIDECAR_PORT_NAME, containerPort: DecodePool.SIDECAR_PORT, protocol: 'TCP' }],
      resources: {
        requests: { cpu: k8s.Quantity.fromString('100m'), memory: k8s.Quantity.fromString('128Mi') },
        limits: { memory: k8s.Quantity.fromString('512Mi') },
      },
      readinessProbe: {
        tcpSocket: { port: k8s.IntOrString.fromString(DecodePool.SIDECAR_PORT_NAME) },
        periodSeconds: 5,
      },
      // The image runs as `USER 65532:65532` (llm-d-routing-sidecar Dockerfile @ v0.2.0), a numeric UID the
      // kubelet can verify for runAsNonRoot, and writes nothing to its filesystem.
      securityContext: {
        ...hardenedContainerSecurityContext(),
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
      },
    };

    const vllmPorts = [
      { name: DecodePool.VLLM_PORT_NAME, port: DecodePool.VLLM_PORT },
      ...(this.kvEvents?.mode === 'per-pod'
        ? [{ name: DecodePool.KV_EVENTS_PORT_NAME, port: this.kvEvents.port }, { name: DecodePool.KV_REPLAY_PORT_NAME, port: this.kvEvents.replayPort }]
        : []),
    ];
    this.containerPorts = [{ name: DecodePool.SIDECAR_PORT_NAME, port: DecodePool.SIDECAR_PORT }, ...vllmPorts];
    this.deployment = new k8s.KubeDeployment(this, 'Deployment', {
      metadata: { name: this.deploymentName, namespace: this.namespace, labels: { ...this.podLabels } },
      spec: {
        replicas: this.replicas,
        selector: { matchLabels: { ...this.podLabels } },
        // A new pod may load for the whole startup probe's budget: the rollout counts as progressing until then, plus
        // Kubernetes' own 600 s default for the pull and scheduling.
        progressDeadlineSeconds: startupTimeout + 600,
        // A new pod needs a GPU and minutes to load: by default never take capacity away before the replacement is ready.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(maxSurge), maxUnavailable: k8s.IntOrString.fromNumber(maxUnavailable) } },
        template: {
          metadata: { labels: { ...this.podLabels } },
          spec: {
            // vLLM drains in-flight requests on SIGTERM; long generations need time.
            terminationGracePeriodSeconds: 120,
            // Neither container calls the Kubernetes API: vLLM never does, and the routing sidecar only with
            // --enable-ssrf-protection (default false; cmd/llm-d-routing-sidecar/main.go @ v0.2.0), which is not set.
            automountServiceAccountToken: false,
            securityContext: { seccompProfile: RUNTIME_DEFAULT_SECCOMP },
            nodeSelector,
            tolerations: props.tolerations ?? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
            ...(this.routingSidecar === 'native' ? { initContainers: [routingProxy] } : {}),
            containers: [
              {
                name: 'vllm',
                image,
                command: ['vllm', 'serve'],
                args,
                env,
                ports: vllmPorts.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
                resources: {
                  requests: {
                    'cpu': k8s.Quantity.fromString(cpu),
                    'memory': k8s.Quantity.fromString(memory),
                    'nvidia.com/gpu': k8s.Quantity.fromString(String(gpus)),
                  },
                  limits: {
                    'memory': k8s.Quantity.fromString(memory),
                    'nvidia.com/gpu': k8s.Quantity.fromString(String(gpus)),
                  },
                },
                startupProbe: vllmHealth(10, Math.ceil(startupTimeout / 10)),
                readinessProbe: vllmHealth(5, 3),
                livenessProbe: vllmHealth(10, 6),
                // Hardened as far as the image allows (podSecurityExceptions): no privilege escalation and no
                // capabilities (the GPU arrives as device nodes from the device plugin). Not runAsNonRoot unless runAsUser
                // is set: vLLM's own images run as root (a non-root image is an opt-in target, vllm-project/vllm#40275),
                // and a UID the image has no passwd entry for can break torch at import. Not a read-only root
                // filesystem: vLLM and its compilers write caches under $HOME (apparently / in this image, hence the
                // /.cache and /.config emptyDirs), /tmp and package directories, which move from release to release.
                securityContext: {
                  ...hardenedContainerSecurityContext(),
                  ...(runAsUser !== undefined ? { runAsNonRoot: true, runAsUser } : {}),
                },
                volumeMounts: [
                  { name: 'model-cache', mountPath: '/model-cache' },
                  // The image writes torch-compile and config caches under / (see llm-d-modelservice's mounts).
                  { name: 'torch-compile-cache', mountPath: '/.cache' },
                  { name: 'metrics-volume', mountPath: '/.config' },
                  { name: 'shm', mountPath: '/dev/shm' },
                ],
              },
              // A plain sidecar by default: native ones (initContainers + restartPolicy: Always) need K8s >= 1.29.
              ...(this.routingSidecar === 'container' ? [routingProxy] : []),
            ],
            volumes: [
              { name: 'model-cache', emptyDir: { sizeLimit: k8s.Quantity.fromString(modelCacheSize) } },
              { name: 'torch-compile-cache', emptyDir: {} },
              { name: 'metrics-volume', emptyDir: {} },
              { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString(shmSize) } },
            ],
          },
        },
      },
    });

    this.service = new k8s.KubeService(this, 'Service', {
      metadata: { name: this.serviceName, namespace: this.namespace, labels: { ...this.podLabels } },
      spec: {
        type: 'ClusterIP',
        selector: { ...this.podLabels },
        ports: [{
          // 'http' tells Istio the protocol; the EPP's picks are <podIP>:8000, so the endpoints must be on 8000.
          name: DecodePool.SIDECAR_PORT_NAME,
          port: DecodePool.SIDECAR_PORT,
          // By number for a native sidecar: the EndpointSlice controller resolved named ports only among
          // spec.containers until Kubernetes 1.32 (kubernetes/kubernetes#127976), so on 1.29-1.31 a name declared by a
          // restartPolicy: Always init container would leave every pod out of the Service.
          targetPort: this.routingSidecar === 'native'
            ? k8s.IntOrString.fromNumber(DecodePool.SIDECAR_PORT)
            : k8s.IntOrString.fromString(DecodePool.SIDECAR_PORT_NAME),
          protocol: 'TCP',
          appProtocol: 'http',
        }],
      },
    });
  }
}

/**
 * The API server's toleration rules (k8s.io/kubernetes pkg/apis/core/validation `validateTolerations` @ v1.28): the
 * schema lets any string through, the apply then fails.
 */
function checkTolerations(tolerations: readonly k8s.Toleration[]): void {
  if (!Array.isArray(tolerations)) throw new PropsError(SCOPE, 'tolerations', 'must be a list of tolerations', tolerations);
  tolerations.forEach((t, i) => {
    const field = `tolerations[${i}]`;
    // An empty operator is Equal (validateTolerations: `case core.TolerationOpEqual, "":`).
    const operator = t?.operator || 'Equal';
    if (operator !== 'Exists' && operator !== 'Equal') throw new PropsError(SCOPE, `${field}.operator`, 'must be "Exists" or "Equal"', t?.operator);
    if (operator === 'Exists' && t.value !== undefined && t.value !== '') throw new PropsError(SCOPE, `${field}.value`, 'must be empty when operator is "Exists"', t.value);
    if (operator === 'Equal' && (t.key === undefined || t.key === '')) throw new PropsError(SCOPE, `${field}.key`, 'must be set when operator is "Equal" (an empty key tolerates every taint only with "Exists")', t.key);
    if (t.key !== undefined && t.key !== '') {
      try {
        checkLabels(SCOPE, field, { [t.key]: t.value ?? '' }, { allowEmpty: true });
      } catch {
        throw new PropsError(SCOPE, field, 'must have a label key ([prefix/]name) and a label value (at most 63 alphanumerics, \'-\', \'_\' or \'.\')', t);
      }
    }
    const effect = t.effect ?? '';
    if (!['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(effect)) throw new PropsError(SCOPE, `${field}.effect`, 'must be "NoSchedule", "PreferNoSchedule", "NoExecute" or empty (every effect)', t.effect);
    if (t.tolerationSeconds !== undefined && effect !== 'NoExecute') throw new PropsError(SCOPE, `${field}.tolerationSeconds`, 'applies only with effect "NoExecute"', t.tolerationSeconds);
  });
}

/**
 * Whether CPython starts with this PYTHONHASHSEED as a number (checked against CPython 3.11: `PYTHONHASHSEED=<v> python3
 * -c pass`): the simulator's `pythonStartsWithHashSeed` (sim/src/options.ts) without "" and "random", which start
 * CPython with a random seed. The cdk8s app does not depend on the simulator's package, hence the copy.
 */
function pythonAcceptsHashSeed(text: string): boolean {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(text);
  if (m === null) return false;
  const value = BigInt(m[2]!);
  return m[1] === '-' ? value === 0n : value <= 4294967295n;
}

/** vLLM 0.10's smallest default `max_num_batched_tokens` for the OpenAI server (`_set_default_args_v1`, vllm/engine/arg_utils.py). */
const DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048;

/**
 * `--max-num-batched-tokens` as vLLM 0.10 reads it: `human_readable_int` (vllm/engine/arg_utils.py, since vLLM #18968,
 * 0.9.1), a whole number, or a number with `k`, `m`, `g` (10³, 10⁶, 10⁹; decimals allowed, the product truncated) or `K`,
 * `M`, `G` (2¹⁰, 2²⁰, 2³⁰; whole numbers only). Undefined for what it refuses. Later vLLMs read other suffixes (`Ki`).
 */
export function vllmHumanReadableInt(value: string): number | undefined {
  const v = value.trim();
  const m = /^(\d+(?:\.\d+)?)([kKmMgG])$/.exec(v);
  if (m) {
    const [number, suffix] = [m[1]!, m[2]!];
    const decimal: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9 };
    if (suffix in decimal) return Math.trunc(Number(number) * decimal[suffix]!);
    if (number.includes('.')) return undefined;
    return Number(number) * ({ K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 } as Record<string, number>)[suffix]!;
  }
  // Python's int(): an optional sign, digits, single underscores between them.
  return /^[-+]?\d+(_\d+)*$/.test(v) ? Number(v.replace(/_/g, '')) : undefined;
}

/**
 * vLLM refuses to start with fewer batched tokens than sequences (SchedulerConfig._verify_args, "max_num_batched_tokens
 * (…) must be greater than or equal to max_num_seqs (…)", vllm/config.py @ v0.10.0). An unset `--max-num-seqs` is
 * clamped to the batched tokens and cannot fail; a set one fails against the batched tokens given in `extraArgs`, or
 * against vLLM's default of 2048 (8192 on H100-class GPUs) when none are.
 */
function checkBatchedTokens(maxNumSeqs: number | undefined, extraArgs: readonly string[], defaultImage: boolean): void {
  const given = extraArgValue(extraArgs, '--max-num-batched-tokens');
  const batched = given === undefined ? undefined : vllmHumanReadableInt(given);
  if (given !== undefined && batched === undefined && defaultImage) {
    throw new PropsError(SCOPE, 'extraArgs', '--max-num-batched-tokens must be a whole number, or one with a suffix vLLM 0.10 reads ("8k" = 8000, "8K" = 8192; k, m, g decimal, K, M, G binary)', given);
  }
  if (maxNumSeqs === undefined) return;
  if (given === undefined && maxNumSeqs > DEFAULT_MAX_NUM_BATCHED_TOKENS) {
    throw new PropsError(SCOPE, 'maxNumSeqs', `above ${DEFAULT_MAX_NUM_BATCHED_TOKENS} needs --max-num-batched-tokens of at least as many in extraArgs: vLLM refuses `
      + `max_num_batched_tokens < max_num_seqs at start-up (SchedulerConfig, vllm/config.py @ v0.10.0), and its default for the OpenAI server is `
      + `${DEFAULT_MAX_NUM_BATCHED_TOKENS} (8192 on H100-class GPUs)`, maxNumSeqs);
  }
  if (batched !== undefined && batched < maxNumSeqs) {
    throw new PropsError(SCOPE, 'maxNumSeqs', `must be at most the --max-num-batched-tokens in extraArgs (${JSON.stringify(given)}, ${batched} tokens): vLLM refuses `
      + 'max_num_batched_tokens < max_num_seqs at start-up (SchedulerConfig, vllm/config.py @ v0.10.0)', maxNumSeqs);
  }
}

/**
 * The value an extra argument gives `flag` (`--flag=v` or `--flag v`, `_` read as `-`; or its short alias, `-tp 2` or
 * `-tp=2`), the last one winning as in argparse.
 */
function extraArgValue(extraArgs: readonly string[], flag: string, short?: string, siblings: readonly string[] = []): string | undefined {
  let value: string | undefined;
  extraArgs.forEach((arg, i) => {
    if (typeof arg !== 'string' || !arg.startsWith('-')) return;
    const [name, inline] = [arg.split('=', 1)[0]!, arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined];
    if ((name.startsWith('--') && longFlagIs(name, flag, siblings)) || (short !== undefined && name === short)) value = inline ?? extraArgs[i + 1];
  });
  return value;
}

/**
 * Whether a long option names `flag` as vLLM's argparse reads it (see ownedFlagOf): `_` as `-`, and a unique prefix
 * (`--tensor-parallel` is `--tensor-parallel-size`) among `flag` and the `siblings` it could also abbreviate.
 */
function longFlagIs(name: string, flag: string, siblings: readonly string[]): boolean {
  const n = name.replace(/_/g, '-');
  if (n === flag) return true;
  // Without the options it could also abbreviate, only the exact name is known to mean `flag`.
  if (siblings.length === 0 || n.length <= 2 || !flag.startsWith(n) || siblings.includes(n)) return false;
  return !siblings.some((other) => other !== flag && other.startsWith(n));
}

/**
 * The parallel flags with every other vLLM 0.10 option they share a prefix with, so an abbreviation is read only when
 * argparse would (`--data-parallel-size` is itself a prefix of `--data-parallel-size-local`; `--pipeline-parallel`
 * could be nothing else).
 */
const PARALLEL_FLAGS = [
  '--tensor-parallel-size', '--pipeline-parallel-size', '--data-parallel-size', '--data-parallel-size-local',
  '--data-parallel-rank', '--data-parallel-start-rank', '--data-parallel-address', '--data-parallel-rpc-port',
  '--data-parallel-backend', '--data-parallel-hybrid-lb',
];

/**
 * The GPUs a pod's vLLM uses with the parallel layout the extra arguments give: tensor × pipeline × the data-parallel
 * ranks on this node (`--data-parallel-size-local`, else `--data-parallel-size`), each 1 by default
 * (vllm/engine/arg_utils.py @ v0.10.0, ParallelConfig's `world_size`; `-tp`, `-pp`, `-dp`, `-dpl` its short forms).
 * Undefined when none is given. A value that is not a positive integer is refused, naming its flag.
 */
function parallelGpus(extraArgs: readonly string[]): { gpus: number; ranks: number; layout: string } | undefined {
  const read = (flag: string, short: string): number | undefined => {
    const v = extraArgValue(extraArgs, flag, short, PARALLEL_FLAGS);
    if (v === undefined) return undefined;
    if (!/^[1-9]\d{0,3}$/.test(v)) throw new PropsError(SCOPE, 'extraArgs', `${flag} (${short}) must be a positive integer`, v);
    return Number(v);
  };
  const tp = read('--tensor-parallel-size', '-tp');
  const pp = read('--pipeline-parallel-size', '-pp');
  const dp = read('--data-parallel-size', '-dp');
  const dpLocal = read('--data-parallel-size-local', '-dpl');
  if (tp === undefined && pp === undefined && dp === undefined && dpLocal === undefined) return undefined;
  const ranks = dpLocal ?? dp ?? 1;
  return { gpus: (tp ?? 1) * (pp ?? 1) * ranks, ranks, layout: `tensor ${tp ?? 1} × pipeline ${pp ?? 1} × data-parallel ranks on the pod ${ranks}` };
}

/**
 * The `vllm serve` flags kvroute writes, and what decides each: a DecodePool option, or kvroute itself. The tensor
 * parallel size is not among them: kvroute writes `gpusPerPod`, but a layout such as 4 GPUs as tensor 2 × pipeline 2
 * needs `-tp 2 -pp 2`, and nothing else depends on it.
 */
const OWNED_FLAGS: Readonly<Record<string, string>> = {
  '--model': 'model',
  '--port': 'kvroute (the routing sidecar forwards to 8001)',
  '--served-model-name': 'servedModelName',
  '--enable-prefix-caching': 'kvroute (prefix caching is what it routes for)',
  '--prefix-caching-hash-algo': 'prefixCachingHashAlgo',
  '--block-size': 'blockSize',
  '--gpu-memory-utilization': 'gpuMemoryUtilization',
  '--max-model-len': 'maxModelLen',
  '--max-num-seqs': 'maxNumSeqs',
  '--enable-prompt-tokens-details': 'kvroute (cached-token usage in responses)',
  '--scheduling-policy': 'schedulingPolicy',
  '--enable-lora': 'loraAdapters',
  '--lora-modules': 'loraAdapters',
  '--max-loras': 'maxLoras',
  '--max-lora-rank': 'maxLoraRank',
  '--max-cpu-loras': 'maxCpuLoras',
  '--kv-events-config': 'kvEvents',
  // vLLM then registers no `vllm:` metric at all (vllm/v1/metrics/loggers.py @ v0.10.0, setup_default_loggers returns
  // none without log_stats): the EPP has no load signal, so every pod is unusable and every request gets 503.
  '--disable-log-stats': 'kvroute (the EPP routes on the vllm: metrics this flag removes; without them every request gets 503)',
};

/**
 * The owned flag an extra argument sets, as vLLM 0.10.0's FlexibleArgumentParser reads it (vllm/utils/__init__.py
 * `parse_args`): the name ends at `=` or at the first `.` (`--kv-events-config.topic=x` is a new one-key
 * `--kv-events-config` that replaces kvroute's whole value), `_` reads as `-`, a boolean flag has its `--no-` twin, and
 * argparse takes a unique prefix for the whole name (`allow_abbrev`), so `--block-s=32` is `--block-size`.
 */
function ownedFlagOf(arg: string): { flag: string; owner: string } | undefined {
  if (!arg.startsWith('--')) return undefined;
  const name = '--' + arg.slice(2).split('=', 1)[0]!.split('.', 1)[0]!.replace(/_/g, '-');
  const exact = OWNED_FLAGS[name] ?? (name.startsWith('--no-') ? OWNED_FLAGS[`--${name.slice(5)}`] : undefined);
  if (exact !== undefined) return { flag: name, owner: exact };
  if (name.length <= 2) return undefined;
  for (const [flag, owner] of Object.entries(OWNED_FLAGS)) {
    if (flag.startsWith(name) || `--no-${flag.slice(2)}`.startsWith(name)) return { flag: `${name} (an abbreviation of ${flag})`, owner };
  }
  return undefined;
}

function checkExtraArgs(extraArgs: readonly string[]): string[] {
  if (!Array.isArray(extraArgs)) throw new PropsError(SCOPE, 'extraArgs', 'must be a list of strings', extraArgs);
  return extraArgs.map((arg, i) => {
    if (typeof arg !== 'string') throw new PropsError(SCOPE, `extraArgs[${i}]`, 'must be a string', arg);
    const owned = ownedFlagOf(arg);
    if (owned === undefined) return arg;
    const fix = owned.owner.startsWith('kvroute') ? `is fixed by ${owned.owner}` : `is written from DecodePool.${owned.owner}; set that instead`;
    throw new PropsError(SCOPE, `extraArgs[${i}]`, `sets ${owned.flag}, which ${fix}`, arg);
  });
}

/**
 * vLLM parses each `--lora-modules` item with one `=` and no `,` as `name=path` (anything else as JSON;
 * vllm/entrypoints/openai/cli_args.py @ v0.10.0 LoRAParserAction), so neither part may hold `=`, `,` or spaces; and
 * argparse takes an item starting with `-` for an option.
 */
function checkLoraAdapters(adapters: readonly LoraAdapter[], servedModelName: string): readonly LoraAdapter[] {
  const seen = new Set<string>();
  adapters.forEach((a, i) => {
    for (const part of ['name', 'path'] as const) {
      const v = a?.[part];
      if (typeof v !== 'string' || v === '' || /[\s=,]/.test(v) || v.startsWith('-')) {
        throw new PropsError(SCOPE, `loraAdapters[${i}].${part}`, 'must be a non-empty string without spaces, "=" or ",", not starting with "-"', v);
      }
    }
    if (a.name === servedModelName) throw new PropsError(SCOPE, `loraAdapters[${i}].name`, 'must differ from servedModelName (the base model\'s name)', a.name);
    if (seen.has(a.name)) throw new PropsError(SCOPE, `loraAdapters[${i}].name`, 'names an adapter twice', a.name);
    seen.add(a.name);
  });
  return adapters.map((a) => ({ name: a.name, path: a.path }));
}
