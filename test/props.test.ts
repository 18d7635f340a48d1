import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { App, Chart, Testing } from 'cdk8s';
import * as YAML from 'yaml';
import { parseArgs } from '@kvroute/epp/cli';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, withMaxNumSeqs, withPrefillPriority } from '@kvroute/epp/config';
import { CLUSTERS, DEMO, Overrides, withOverrides } from '../lib/clusters';
import { EndpointPicker } from '../lib/endpoint-picker';
import { ExtProcRouting } from '../lib/ext-proc';
import { KvAwareRouting, KvAwareRoutingProps, LARGE_POOL_REPLICAS } from '../lib/kv-aware-routing';
import { SessionStore } from '../lib/session-store';
import { checkDuration, checkGatewayApiDuration, checkImage, checkPrometheusDuration, checkQuantity, durationMs, durationNanos, toProtoDuration } from '../lib/validation';
import { container, one, synthProps } from './support/manifests';
import { CRDS } from './support/paths';
import { synthCluster, synthClusters } from '../lib/synth';

function build(props: KvAwareRoutingProps): void {
  new KvAwareRouting(Testing.app(), 'test', props);
}

describe('invalid props fail synth with a message that names the field and what is allowed', () => {
  test.each<[string, KvAwareRoutingProps, RegExp]>([
    ['GPU utilization above 1', withOverrides(DEMO, { decode: { gpuMemoryUtilization: 1.2 } }),
      /^DecodePool\.gpuMemoryUtilization: must be a number greater than 0 and at most 1, got 1\.2$/],
    ['GPU utilization of 0', withOverrides(DEMO, { decode: { gpuMemoryUtilization: 0 } }),
      /^DecodePool\.gpuMemoryUtilization: must be a number greater than 0 and at most 1, got 0$/],
    ['fractional replicas', withOverrides(DEMO, { decode: { replicas: 1.5 } }),
      /^DecodePool\.replicas: must be an integer from 0 to 1000, got 1\.5$/],
    ['an unsupported block size', withOverrides(DEMO, { decode: { blockSize: 12 } }),
      /^DecodePool\.blockSize: must be one of 16, 32, 64, 128, got 12$/],
    ...[1, 8].map((blockSize): [string, KvAwareRoutingProps, RegExp] => [
      `block size ${blockSize} on the default image, which vLLM's CLI takes and its CUDA backend refuses (vllm/v1/attention/backends/flash_attn.py get_kv_cache_shape: "Block size must be a multiple of 16.")`,
      withOverrides(DEMO, { decode: { blockSize } }), new RegExp(`^DecodePool\\.blockSize: must be one of 16, 32, 64, 128, got ${blockSize}$`)]),
    ['a block size vLLM\'s CLI refuses on another image', withOverrides(DEMO, { decode: { blockSize: 12, image: 'vllm/vllm-openai:v0.10.0' } }),
      /^DecodePool\.blockSize: must be one of 1, 8, 16, 32, 64, 128, got 12$/],
    ['per-pod KV events with two data-parallel ranks on the pod (vllm/distributed/kv_events.py @ v0.10.0 offsets each rank\'s publisher and replay ports: rank 1 binds rank 0\'s replay port)',
      withOverrides(DEMO, { decode: { gpusPerPod: 2, extraArgs: ['-dp', '2'], kvEvents: {} } }),
      /^DecodePool\.kvEvents: per-pod KV events serve one data-parallel rank a pod; extraArgs runs 2 on each/],
    ['an unknown hash algorithm', withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'md5' as never } }),
      /^DecodePool\.prefixCachingHashAlgo: must be one of "builtin", "sha256", "sha256_cbor_64bit", "sha256_cbor", "xxhash", "xxhash_cbor", got "md5"$/],
    ['sha256 with KV events on the default image: vLLM 0.10.0 publishes 256-bit hashes msgpack cannot write',
      withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256', kvEvents: { mode: 'central' } } }),
      /^DecodePool\.prefixCachingHashAlgo: with kvEvents on the default image \(vLLM 0\.10\.0\) must be "builtin" or "sha256_cbor_64bit": .*no KV event reaches the EPP, got "sha256"$/],
    ['a hash algorithm the default image\'s vLLM 0.10.0 does not have', withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256_cbor' } }),
      /^DecodePool\.prefixCachingHashAlgo: the default image \(ghcr\.io\/llm-d\/llm-d:v0\.2\.0, vLLM 0\.10\.0\) accepts "builtin", "sha256", "sha256_cbor_64bit"; set image to one with vLLM 0\.10\.2 or later for it, got "sha256_cbor"$/],
    // Each refused by CPython 3.11 at start-up (`PYTHONHASHSEED=<v> python3 -c pass`), or random (unset, "random").
    ...['abc', '-1', '4294967296', '0x2a', 'random', '', ' ', '+', '42 ', '1_000', '99999999999999999999'].map((seed): [string, KvAwareRoutingProps, RegExp] => [`a PYTHONHASHSEED CPython refuses or that differs per pod: ${JSON.stringify(seed)}`,
      withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256', pythonHashSeed: seed } }),
      /^DecodePool\.pythonHashSeed: must be a decimal integer from 0 to 4294967295, as a string \(CPython refuses anything else at start-up; "random" would differ from pod to pod\), got /]),
    ['extraArgs turning vLLM\'s metrics off, which the EPP routes on (audit s36: every request got 503)', withOverrides(DEMO, { decode: { extraArgs: ['--disable-log-stats'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --disable-log-stats, which is fixed by kvroute \(the EPP routes on the vllm: metrics this flag removes; without them every request gets 503\), got "--disable-log-stats"$/],
    ['extraArgs turning vLLM\'s metrics off, underscore spelling', withOverrides(DEMO, { decode: { extraArgs: ['--disable_log_stats'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --disable-log-stats, which is fixed by kvroute/],
    ['a tensor parallel size in extraArgs the pod\'s GPUs do not hold (audit s36: vLLM never starts)', withOverrides(DEMO, { decode: { extraArgs: ['--tensor-parallel-size=2'] } }),
      /^DecodePool\.gpusPerPod: must equal the GPUs the parallel layout in extraArgs uses \(tensor 2 × pipeline 1 × data-parallel ranks on the pod 1 = 2\), got 1$/],
    ['a parallel layout that leaves GPUs idle', withOverrides(DEMO, { decode: { gpusPerPod: 4, extraArgs: ['-tp', '2'] } }),
      /^DecodePool\.gpusPerPod: must equal the GPUs the parallel layout in extraArgs uses \(tensor 2 × pipeline 1 × data-parallel ranks on the pod 1 = 2\), got 4$/],
    ['data-parallel ranks on the pod count too', withOverrides(DEMO, { decode: { gpusPerPod: 2, extraArgs: ['-tp=2', '-dp', '4', '-dpl', '2'] } }),
      /^DecodePool\.gpusPerPod: .* \(tensor 2 × pipeline 1 × data-parallel ranks on the pod 2 = 4\), got 2$/],
    ['a tensor parallel size given by an abbreviation argparse reads (review s36)', withOverrides(DEMO, { decode: { gpusPerPod: 4, extraArgs: ['--tensor-parallel=2'] } }),
      /^DecodePool\.gpusPerPod: must equal the GPUs the parallel layout in extraArgs uses \(tensor 2 × pipeline 1 × data-parallel ranks on the pod 1 = 2\), got 4$/],
    ['a parallel size that is not a positive integer', withOverrides(DEMO, { decode: { extraArgs: ['-pp', 'two'] } }),
      /^DecodePool\.extraArgs: --pipeline-parallel-size \(-pp\) must be a positive integer, got "two"$/],
    ['a served model name that is not a string', withOverrides(DEMO, { decode: { servedModelName: 7 as unknown as string } }),
      /^DecodePool\.servedModelName: must be a non-empty name without spaces, got 7$/],
    ['a toleration operator the API server refuses (audit s36: the schema let it through)', withOverrides(DEMO, { decode: { tolerations: [{ key: 'gpu', operator: 'Equals' }] } }),
      /^DecodePool\.tolerations\[0\]\.operator: must be "Exists" or "Equal", got "Equals"$/],
    ['a toleration with Exists and a value', withOverrides(DEMO, { decode: { tolerations: [{ key: 'gpu', operator: 'Exists', value: 'yes' }] } }),
      /^DecodePool\.tolerations\[0\]\.value: must be empty when operator is "Exists", got "yes"$/],
    ['a toleration effect that is not one', withOverrides(DEMO, { decode: { tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoScheduling' }] } }),
      /^DecodePool\.tolerations\[0\]\.effect: must be "NoSchedule", "PreferNoSchedule", "NoExecute" or empty \(every effect\), got "NoScheduling"$/],
    ['tolerationSeconds without NoExecute', withOverrides(DEMO, { decode: { tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 60 }] } }),
      /^DecodePool\.tolerations\[0\]\.tolerationSeconds: applies only with effect "NoExecute", got 60$/],
    ['a toleration key that is not a label key', withOverrides(DEMO, { decode: { tolerations: [{ key: 'nvidia gpu', operator: 'Exists' }] } }),
      /^DecodePool\.tolerations\[0\]: must have a label key \(\[prefix\/\]name\) and a label value/],
    ['a ring size without the consistent-hash fallback (audit s36: silently dropped)', withOverrides(DEMO, { extProc: { minimumRingSize: 4096 } }),
      /^ExtProcRouting\.minimumRingSize: applies only with consistentHashFallback: true \(the round-robin fallback has no ring\), got 4096$/],
    ['a PYTHONHASHSEED with the builtin hash', withOverrides(DEMO, { decode: { pythonHashSeed: '7' } }),
      /^DecodePool\.pythonHashSeed: is set only with a prefixCachingHashAlgo other than 'builtin', got "7"$/],
    ['a central-mode endpoint with per-pod KV events', withOverrides(DEMO, { decode: { kvEvents: { endpoint: 'tcp://epp:5557' } } }),
      /^DecodePool\.kvEvents\.endpoint: applies to mode "central" only/],
    ['a wildcard as the central KV-event endpoint', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://*:5557' } } }),
      /^DecodePool\.kvEvents\.endpoint: with mode "central" must be the EPP's ZMQ endpoint/],
    ['the same port for events and replay', withOverrides(DEMO, { decode: { kvEvents: { port: 6000, replayPort: 6000 } } }),
      /^DecodePool\.kvEvents\.replayPort: must differ from kvEvents\.port/],
    ['a rollout that cannot roll', withOverrides(DEMO, { decode: { rollout: { maxSurge: 0 } } }),
      /^DecodePool\.rollout: maxSurge and maxUnavailable cannot both be 0/],
    ['a negative surge', withOverrides(DEMO, { decode: { rollout: { maxSurge: -1 } } }),
      /^DecodePool\.rollout\.maxSurge: must be an integer from 0 to 1000, got -1$/],
    ['an unknown routing sidecar form', withOverrides(DEMO, { decode: { routingSidecar: 'init' as never } }),
      /^DecodePool\.routingSidecar: must be one of "container", "native", got "init"$/],
    ['a LoRA adapter path with "=" (vLLM splits name=path on it)', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'a=b' }] } }),
      /^DecodePool\.loraAdapters\[0\]\.path: must be a non-empty string without spaces, "=" or ",", not starting with "-", got "a=b"$/],
    ['a LoRA adapter name argparse would take for an option', withOverrides(DEMO, { decode: { loraAdapters: [{ name: '-sql', path: 'org/a' }] } }),
      /^DecodePool\.loraAdapters\[0\]\.name: must be a non-empty string/],
    ['a LoRA rank vLLM does not allow', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/a' }], maxLoraRank: 24 as never } }),
      /^DecodePool\.maxLoraRank: must be one of 8, 16, 32, 64, 128, 256, 320, 512, got 24$/],
    ['maxLoraRank without adapters', withOverrides(DEMO, { decode: { maxLoraRank: 64 } }),
      /^DecodePool\.maxLoraRank: applies only with loraAdapters, got 64$/],
    ['a LoRA adapter named like the base model', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'Qwen/Qwen3-0.6B', path: 'org/adapter' }] } }),
      /^DecodePool\.loraAdapters\[0\]\.name: must differ from servedModelName/],
    ['a LoRA adapter named twice', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/a' }, { name: 'sql', path: 'org/b' }] } }),
      /^DecodePool\.loraAdapters\[1\]\.name: names an adapter twice, got "sql"$/],
    ['maxLoras without adapters', withOverrides(DEMO, { decode: { maxLoras: 2 } }),
      /^DecodePool\.maxLoras: applies only with loraAdapters, got 2$/],
    ['maxLoras of 0', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/a' }], maxLoras: 0 } }),
      /^DecodePool\.maxLoras: must be an integer from 1 to 256, got 0$/],
    ['maxCpuLoras without adapters', withOverrides(DEMO, { decode: { maxCpuLoras: 4 } }),
      /^DecodePool\.maxCpuLoras: applies only with loraAdapters, got 4$/],
    ['maxCpuLoras under maxLoras (vLLM LoRAConfig refuses it)', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/a' }], maxLoras: 3, maxCpuLoras: 2 } }),
      /^DecodePool\.maxCpuLoras: must be at least maxLoras \(3\): vLLM refuses fewer CPU slots than GPU slots, got 2$/],
    ['maxCpuLoras of 0', withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/a' }], maxCpuLoras: 0 } }),
      /^DecodePool\.maxCpuLoras: must be an integer from 1 to 4096, got 0$/],
    ['extraArgs setting a flag a typed option writes', withOverrides(DEMO, { decode: { extraArgs: ['--enforce-eager', '--block-size=32'] } }),
      /^DecodePool\.extraArgs\[1\]: sets --block-size, which is written from DecodePool\.blockSize; set that instead, got "--block-size=32"$/],
    ['maxNumSeqs of 0', withOverrides(DEMO, { decode: { maxNumSeqs: 0 } }),
      /^DecodePool\.maxNumSeqs: must be an integer from 1 to 65536, got 0$/],
    ['a fractional maxNumSeqs for the EPP', withOverrides(DEMO, { endpointPicker: { maxNumSeqs: 2.5 } }),
      /^EndpointPicker\.maxNumSeqs: must be an integer from 1 to 65536, got 2\.5$/],
    ['an EPP told other slots than the pool runs', withOverrides(DEMO, { decode: { maxNumSeqs: 64 }, endpointPicker: { maxNumSeqs: 32 } }),
      /^KvAwareRouting\.endpointPicker\.maxNumSeqs: must equal decode\.maxNumSeqs \(64\), the pods' --max-num-seqs, or be left unset \(it is then taken from there\), got 32$/],
    ['an EPP config given without the pool\'s slots', withOverrides(DEMO, { decode: { maxNumSeqs: 64 }, endpointPicker: { config: defaultEndpointPickerConfig() } }),
      /^KvAwareRouting\.endpointPicker\.config: must tell its latency-scorer the pods' --max-num-seqs \(decode\.maxNumSeqs 64\): withMaxNumSeqs\(config, 64\) from @kvroute\/epp\/config sets it, got 1024$/],
    ['maxNumSeqs above vLLM\'s default batched tokens without raising them', withOverrides(DEMO, { decode: { maxNumSeqs: 4096 } }),
      /^DecodePool\.maxNumSeqs: above 2048 needs --max-num-batched-tokens of at least as many in extraArgs: vLLM refuses/],
    ['maxNumSeqs above the batched tokens extraArgs give', withOverrides(DEMO, { decode: { maxNumSeqs: 4096, extraArgs: ['--max-num-batched-tokens=4000'] } }),
      /^DecodePool\.maxNumSeqs: must be at most the --max-num-batched-tokens in extraArgs \("4000", 4000 tokens\)/],
    ['extraArgs setting --max-num-seqs, which maxNumSeqs writes', withOverrides(DEMO, { decode: { extraArgs: ['--max-num-seqs', '128'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --max-num-seqs, which is written from DecodePool\.maxNumSeqs; set that instead, got "--max-num-seqs"$/],
    ['extraArgs in vLLM\'s underscore spelling', withOverrides(DEMO, { decode: { extraArgs: ['--max_loras', '4'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --max-loras, which is written from DecodePool\.maxLoras; set that instead, got "--max_loras"$/],
    ['extraArgs turning prefix caching off', withOverrides(DEMO, { decode: { extraArgs: ['--no-enable-prefix-caching'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --no-enable-prefix-caching, which is fixed by kvroute \(prefix caching is what it routes for\)/],
    ['extraArgs setting one key of kvroute\'s KV-events config in vLLM\'s dotted form (it replaces the whole value)', withOverrides(DEMO, { decode: { kvEvents: {}, extraArgs: ['--kv-events-config.hwm=1000'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --kv-events-config, which is written from DecodePool\.kvEvents; set that instead, got "--kv-events-config\.hwm=1000"$/],
    ['extraArgs abbreviating a flag a typed option writes (argparse allow_abbrev)', withOverrides(DEMO, { decode: { extraArgs: ['--block-s=32'] } }),
      /^DecodePool\.extraArgs\[0\]: sets --block-s \(an abbreviation of --block-size\), which is written from DecodePool\.blockSize/],
    ['KV events and LoRA adapters on the default image (vLLM 0.10.0 block_pool.py reads lora_request.id, fixed by #27728)', withOverrides(DEMO, { decode: { kvEvents: {}, loraAdapters: [{ name: 'sql', path: 'org/a' }] } }),
      /^DecodePool\.image: with kvEvents and loraAdapters must be set to a vLLM with #27728: the default \(vLLM 0\.10\.0\) fails its engine on the first LoRA block it publishes, got "ghcr\.io\/llm-d\/llm-d:v0\.2\.0"$/],
    ['an unknown scheduling policy', withOverrides(DEMO, { decode: { schedulingPolicy: 'sjf' as never } }),
      /^DecodePool\.schedulingPolicy: must be one of "fcfs", "priority", got "sjf"$/],
    ['prefill-priority in the EPP config on an fcfs pool (the fcfs queue ignores the field: the plugin would do nothing)', withOverrides(DEMO, { endpointPicker: { config: withPrefillPriority(defaultEndpointPickerConfig()) } }),
      /^KvAwareRouting\.decode\.schedulingPolicy: must be "priority" when the EPP config has a prefill-priority plugin \(vLLM's "fcfs" ignores the priority it writes\)/],
    ['a model id with spaces', withOverrides(DEMO, { decode: { model: 'my model' } }),
      /^DecodePool\.model: must be a non-empty model id without spaces/],
    ['an image on latest', withOverrides(DEMO, { decode: { image: 'vllm/vllm-openai:latest' } }),
      /^DecodePool\.image: must be an image reference with an explicit tag \(not "latest"\) or digest: \[host\[:port\]\/\]path, lower-case path components joined by single "\/", no scheme, got "vllm\/vllm-openai:latest"$/],
    ...[
      ['an EPP image registry with a trailing "/"', { endpointPicker: { imageRegistry: 'registry.example.com/platform/' } }, 'EndpointPicker.imageRegistry'],
      ['an EPP image registry with a scheme', { endpointPicker: { imageRegistry: 'https://registry.example.com' } }, 'EndpointPicker.imageRegistry'],
      ['a decode image with an empty path component', { decode: { image: 'ghcr.io//llm-d/llm-d:v0.2.0' } }, 'DecodePool.image'],
      ['a decode image with a port inside its path', { decode: { image: 'ghcr.io/llm-d:x/llm-d:v1' } }, 'DecodePool.image'],
      ['a decode image with an upper-case path', { decode: { image: 'ghcr.io/LLM-D/llm-d:v1' } }, 'DecodePool.image'],
      ['a registry with a port and no tag', { decode: { image: 'localhost:5000/vllm' } }, 'DecodePool.image'],
    ].map(([name, overrides, field]): [string, KvAwareRoutingProps, RegExp] => [`${name as string} (audit s36: the kubelet's InvalidImageName; distribution/reference regexp.go)`,
      withOverrides(DEMO, overrides as Overrides<KvAwareRoutingProps>), new RegExp(`^${(field as string).replace('.', '\\.')}: must be an image reference`)]),
    ['an upper-case namespace', withOverrides(DEMO, { namespace: 'LLM-D' }),
      /^KvAwareRouting\.namespace: must be a DNS-1123 label/],
    ['an EPP pool API group that does not exist', withOverrides(DEMO, { endpointPicker: { poolApiGroup: 'inference.example.com' as never } }),
      /^EndpointPicker\.poolApiGroup: must be "inference.networking.x-k8s.io" or "inference.networking.k8s.io"/],
    ['an EPP Node flag with a space in it', withOverrides(DEMO, { endpointPicker: { nodeArgs: ['--max-old-space-size=512 --inspect'] } }),
      /^EndpointPicker\.nodeArgs\[0\]: must be one flag, --name or --name=value, without spaces, got "--max-old-space-size=512 --inspect"$/],
    ['an EPP Node flag that is not a flag', withOverrides(DEMO, { endpointPicker: { nodeArgs: ['--initial-old-space-size=128', 'inspect'] } }),
      /^EndpointPicker\.nodeArgs\[1\]: must be one flag/],
    ['KV events for a model whose tokenizer the EPP image lacks, with no tokenizer claim',
      withOverrides(DEMO, { decode: { model: 'meta-llama/Llama-3.1-8B-Instruct', kvEvents: { mode: 'per-pod' } } }),
      /^EndpointPicker\.tokenizerCacheClaim: must name a PersistentVolumeClaim holding the Hugging Face cache with the tokenizer of meta-llama\/Llama-3\.1-8B-Instruct when the decode pods publish KV events .*, got undefined$/],
    // The EPP refuses --refresh-metrics-interval=0s at start-up (see the crossref test below): refused at synth instead.
    ...['0s', '0ms', '0.0s', '0h0m0s'].map((refreshMetricsInterval): [string, KvAwareRoutingProps, RegExp] => [`a scrape interval of ${refreshMetricsInterval}, which the EPP refuses`,
      withOverrides(DEMO, { endpointPicker: { refreshMetricsInterval } }),
      new RegExp(`^EndpointPicker\\.refreshMetricsInterval: must be a duration above 0 such as "50ms" \\(how often the EPP scrapes each pod; it refuses 0\\), got "${refreshMetricsInterval}"$`)]),
    ['a bad scrape interval', withOverrides(DEMO, { endpointPicker: { refreshMetricsInterval: '50' } }),
      /^EndpointPicker\.refreshMetricsInterval: must be a duration such as "50ms", "1s" or "1m30s" \(units h, m, s, ms, us, ns\), as the EPP's --refresh-metrics-interval reads it, got "50"$/],
    ['a bad message timeout', withOverrides(DEMO, { extProc: { messageTimeout: 'soon' } }),
      /^ExtProcRouting\.messageTimeout: must be a duration/],
    ['a max message timeout below the message timeout', withOverrides(DEMO, { extProc: { messageTimeout: '2s', maxMessageTimeout: '1s' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be "0s" \(off\) or between messageTimeout \(2s\) and 1h, got "1s"$/],
    ['a max message timeout above Envoy\'s 1h bound', withOverrides(DEMO, { extProc: { maxMessageTimeout: '2h' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be "0s" \(off\) or between messageTimeout \(1s\) and 1h, got "2h"$/],
    ['a bad max message timeout', withOverrides(DEMO, { extProc: { maxMessageTimeout: 'long' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be a duration/],
    // Envoy's HCM request_timeout "is disarmed when the last byte of the request is sent upstream" (envoyproxy
    // go-control-plane 197b96a9c7, Istio 1.27.0's pin: http_connection_manager.proto field 28), so it runs on while
    // ext_proc holds the buffered request; stream_idle_timeout is reset by stream events only, and none moves then.
    ['a max message timeout the default request_timeout (60s) would cut', withOverrides(DEMO, { extProc: { maxMessageTimeout: '90s' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be more than 10s \(the client's upload\) below the gateway's requestReceiveTimeout \("60s"\), .*raise gateway\.requestReceiveTimeout \("0s" turns it off\) or lower extProc\.maxMessageTimeout, got "90s"$/],
    ['a request_timeout that leaves no more than 10s beside the default max message timeout (30s)', withOverrides(DEMO, { gateway: { requestReceiveTimeout: '40s' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be more than 10s \(the client's upload\) below the gateway's requestReceiveTimeout \("40s"\)/],
    ['an idle timeout of tens of seconds under the default max message timeout (30s)', withOverrides(DEMO, { gateway: { idleTimeout: '20s' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be below the gateway's idleTimeout \("20s"\): .*raise gateway\.idleTimeout \("0s" turns it off\) or lower extProc\.maxMessageTimeout, got "30s"$/],
    ['an idle timeout equal to the max message timeout', withOverrides(DEMO, { gateway: { idleTimeout: '30000ms' } }),
      /^ExtProcRouting\.maxMessageTimeout: must be below the gateway's idleTimeout \("30000ms"\)/],
    ['an EPP outlier detection that could never eject', withOverrides(DEMO, { endpointPicker: { replicas: 2 }, extProc: { eppOutlierDetection: { maxEjectionPercent: 0 } } }),
      /^ExtProcRouting\.eppOutlierDetection\.maxEjectionPercent: must be an integer from 1 to 100, got 0$/],
    ['a bad EPP ejection time', withOverrides(DEMO, { endpointPicker: { replicas: 2 }, extProc: { eppOutlierDetection: { baseEjectionTime: 'ten' } } }),
      /^ExtProcRouting\.eppOutlierDetection\.baseEjectionTime: must be a duration/],
    // A setting the construct would drop (one EPP replica makes no DestinationRule), and bad values even then.
    ['EPP outlier detection with one EPP replica, which makes no DestinationRule', withOverrides(DEMO, { extProc: { eppOutlierDetection: { consecutiveGatewayErrors: 2 } } }),
      /^ExtProcRouting\.eppOutlierDetection: applies only with more than one EPP replica \(endpointPicker\.replicas > 1\): .*leave it unset or false, got \{"consecutiveGatewayErrors":2\}$/],
    ['a bad EPP outlier detection interval with one EPP replica', withOverrides(DEMO, { extProc: { eppOutlierDetection: { interval: 'abc' } } }),
      /^ExtProcRouting\.eppOutlierDetection\.interval: must be a duration such as "500ms", "10s" or "5m", got "abc"$/],
    ['a negative EPP consecutiveGatewayErrors with one EPP replica', withOverrides(DEMO, { extProc: { eppOutlierDetection: { consecutiveGatewayErrors: -1 } } }),
      /^ExtProcRouting\.eppOutlierDetection\.consecutiveGatewayErrors: must be an integer from 1 to 100, got -1$/],
    ['an unknown request body mode', withOverrides(DEMO, { extProc: { requestBodyMode: 'streamed' as never } }),
      /^ExtProcRouting\.requestBodyMode: must be one of "buffered", "full-duplex", got "streamed"$/],
    ['a body buffer below Envoy\'s 1 MiB default', withOverrides(DEMO, { extProc: { requestBodyBufferLimitBytes: 4096 } }),
      /^ExtProcRouting\.requestBodyBufferLimitBytes: must be an integer from 1048576 to 1073741824, got 4096$/],
    ['an Istio older than 1.27', withOverrides(DEMO, { istioVersion: '1.26.3' }),
      /^KvAwareRouting\.istioVersion: must be 1\.27 or newer \(the first Istio whose Envoy has the override_host load-balancing policy\), got "1\.26\.3"$/],
    ['native routing on Istio 1.27', withOverrides(DEMO, { istioVersion: '1.27.9', inferenceRouting: 'native' }),
      /^KvAwareRouting\.inferenceRouting: "native" needs Istio 1\.28 or newer/],
    ['native routing with the v1alpha2 pool', withOverrides(DEMO, { istioVersion: '1.28', inferenceRouting: 'native', endpointPicker: { poolApiGroup: 'inference.networking.x-k8s.io' } }),
      /^EndpointPicker\.poolApiGroup: must be "inference\.networking\.k8s\.io" with native routing on Istio 1\.28/],
    ['a bad idle timeout', withOverrides(DEMO, { gateway: { idleTimeout: '5 minutes' } }),
      /^InferenceGateway\.idleTimeout: must be a duration/],
    ['a hostname with a scheme', withOverrides(DEMO, { gateway: { hostname: 'http://llm-d.demo.local' } }),
      /^InferenceGateway\.hostname: must be a Gateway API hostname \(a lower-case DNS name such as "llm\.example\.com", optionally with a "\*\." wildcard prefix; not an IP address; at most 253 characters\), got "http:\/\/llm-d\.demo\.local"$/],
    ['an IP address as the hostname (the Gateway API refuses them)', withOverrides(DEMO, { gateway: { hostname: '10.0.0.1' } }),
      /^InferenceGateway\.hostname: must be a Gateway API hostname .*not an IP address.*, got "10\.0\.0\.1"$/],
    ['a wildcard in the middle of the hostname', withOverrides(DEMO, { gateway: { hostname: 'llm.*.example.com' } }),
      /^InferenceGateway\.hostname: must be a Gateway API hostname/],
    ['a request timeout with a fraction (the HTTPRoute CRD takes whole numbers)', withOverrides(DEMO, { gateway: { requestTimeout: '1.5s' } }),
      /^InferenceGateway\.requestTimeout: must be a Gateway API duration \(1 to 4 parts, each a whole number of at most 5 digits with unit h, m, s or ms, such as "0s", "300s", "1500ms" or "1h30m"\), got "1\.5s"$/],
    ['a request timeout of more than 5 digits', withOverrides(DEMO, { gateway: { requestTimeout: '100000s' } }),
      /^InferenceGateway\.requestTimeout: must be a Gateway API duration/],
    ['a vLLM scrape interval with a fraction (the PodMonitor CRD takes whole numbers)', withOverrides(DEMO, { monitoring: { vllmScrapeInterval: '7.5s' } }),
      /^Monitoring\.vllmScrapeInterval: must be a Prometheus Operator duration \(whole numbers with units in the order h, m, s, ms, each at most once, such as "15s", "1m30s" or "500ms"\), got "7\.5s"$/],
    ['an EPP scrape interval with its units out of order', withOverrides(DEMO, { monitoring: { eppScrapeInterval: '30s1m' } }),
      /^Monitoring\.eppScrapeInterval: must be a Prometheus Operator duration/],
    ['a gateway scrape interval with a fraction', withOverrides(DEMO, { monitoring: { gatewayScrapeInterval: '2.5s' } }),
      /^Monitoring\.gatewayScrapeInterval: must be a Prometheus Operator duration/],
    // Audit 29: at 1m the fail-open page's 1m window held two samples at best and the page never fired.
    ['a gateway scrape interval the 1-minute page window cannot hold four of', withOverrides(DEMO, { monitoring: { gatewayScrapeInterval: '1m' } }),
      /^Monitoring\.gatewayScrapeInterval: must be at most 15s: a quarter of the 1m window KvrouteEppFailingOpen rates the gateway's counters over .*, got "1m"$/],
    ['an EPP scrape interval too long for a one-minute outage to page during it', withOverrides(DEMO, { monitoring: { eppScrapeInterval: '11s' } }),
      /^Monitoring\.eppScrapeInterval: must be at most 10s: so that a one-minute EPP outage pages during it .*, got "11s"$/],
    ['a vLLM scrape interval the 5-minute window cannot hold four of', withOverrides(DEMO, { monitoring: { vllmScrapeInterval: '1m30s' } }),
      /^Monitoring\.vllmScrapeInterval: must be at most 75s: a quarter of the 5m window/],
    ['KV events on the routing sidecar\'s port', withOverrides(DEMO, { decode: { kvEvents: { port: 8000 } } }),
      /^DecodePool\.kvEvents\.port: must not be a port the decode pod already listens on \(8000, the routing sidecar's; 8001, vLLM's HTTP server\), got 8000$/],
    ['the KV-event replay socket on vLLM\'s own port', withOverrides(DEMO, { decode: { kvEvents: { replayPort: 8001 } } }),
      /^DecodePool\.kvEvents\.replayPort: must not be a port the decode pod already listens on \(8000, the routing sidecar's; 8001, vLLM's HTTP server\), got 8001$/],
    ['a central KV-event endpoint on a port above 65535', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://epp.llm-d.svc:99999' } } }),
      /^DecodePool\.kvEvents\.endpoint: must name a port from 1 to 65535 \(the EPP binds it for the pods' publishers\), got "tcp:\/\/epp\.llm-d\.svc:99999"$/],
    ['a central KV-event endpoint on port 0', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://epp.llm-d.svc:0' } } }),
      /^DecodePool\.kvEvents\.endpoint: must name a port from 1 to 65535/],
    ['a central KV-event endpoint on the EPP\'s metrics port', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://ms-llm-d-modelservice-epp.llm-d.svc.cluster.local:9090' } } }),
      /^KvAwareRouting\.decode\.kvEvents\.endpoint: must not use a port the EPP already listens on \(9002 ext_proc gRPC, 9003 gRPC health, 9090 metrics\): the EPP binds the endpoint's port for central KV events, got "tcp:\/\/ms-llm-d-modelservice-epp\.llm-d\.svc\.cluster\.local:9090"$/],
    ['a central KV-event endpoint on the EPP\'s ext_proc port', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://epp.llm-d.svc:9002' } } }),
      /^KvAwareRouting\.decode\.kvEvents\.endpoint: must not use a port the EPP already listens on/],
    ['a central KV-event endpoint on the EPP\'s health port', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central', endpoint: 'tcp://epp.llm-d.svc:9003' } } }),
      /^KvAwareRouting\.decode\.kvEvents\.endpoint: must not use a port the EPP already listens on/],
    ['a base name starting with a digit (it starts Service names: <name>-decode, <name>-epp)', withOverrides(DEMO, { name: '1pool' }),
      /^KvAwareRouting\.name: must be a DNS-1035 label \(lower-case alphanumerics and '-', starting with a letter, at most 56 characters\), as Service names are, got "1pool"$/],
    ['a base name of 57 characters', withOverrides(DEMO, { name: 'a'.repeat(57) }),
      /^KvAwareRouting\.name: must be a DNS-1035 label .*at most 56 characters/],
    ['a base name of 39 characters with a deployed session store (its StatefulSet\'s controller-revision-hash label would pass 63)', withOverrides(DEMO, { name: 'n'.repeat(39), sessionStore: { deploy: {} } }),
      /^KvAwareRouting\.name: must be at most 38 characters with sessionStore\.deploy: the store's StatefulSet "<name>-session-store" labels its pod "controller-revision-hash: <StatefulSet>-<10-character hash>", which Kubernetes limits to 63 characters, got "n{39}"$/],
    ['a gateway name starting with a digit (Istio names its Service <name>-istio)', withOverrides(DEMO, { gateway: { name: '9gw' } }),
      /^InferenceGateway\.name: must be a DNS-1035 label \(lower-case alphanumerics and '-', starting with a letter, at most 63 characters\), as Service names are, got "9gw"$/],
    ['a gateway name that leaves Istio\'s Service <name>-istio over 63 characters', withOverrides(DEMO, { gateway: { name: 'g'.repeat(58) } }),
      /^InferenceGateway\.name: must be at most 57 characters with gatewayClassName "istio" \(Istio names the gateway's Service "<name>-<class>", at most 63 characters\), got "g{58}"$/],
    ['a gateway class long enough to push <name>-<class> over 63 characters', withOverrides(DEMO, { gateway: { gatewayClassName: 'c'.repeat(50) } }),
      /^InferenceGateway\.name: must be at most 12 characters with gatewayClassName "c{50}"/],
    ['a gateway class with a dot (it ends a Service name)', withOverrides(DEMO, { gateway: { gatewayClassName: 'istio.example' } }),
      /^InferenceGateway\.gatewayClassName: must be a DNS-1123 label \(lower-case alphanumerics and '-', at most 61 characters\), got "istio\.example"$/],
    ['a decode CPU request that is not a quantity', withOverrides(DEMO, { decode: { cpu: 'lots' } }),
      /^DecodePool\.cpu: must be a Kubernetes quantity that is not negative, such as "500m", "4", "32Gi" or "1\.5G", got "lots"$/],
    ['decode memory with a space', withOverrides(DEMO, { decode: { memory: '32 GB' } }),
      /^DecodePool\.memory: must be a Kubernetes quantity that is not negative/],
    ['an empty /dev/shm size', withOverrides(DEMO, { decode: { shmSize: '' } }),
      /^DecodePool\.shmSize: must be a Kubernetes quantity that is not negative, such as "500m", "4", "32Gi" or "1\.5G", got ""$/],
    ['a negative model cache size', withOverrides(DEMO, { decode: { modelCacheSize: '-50Gi' } }),
      /^DecodePool\.modelCacheSize: must be a Kubernetes quantity that is not negative/],
    ['an EPP CPU request that is not a quantity', withOverrides(DEMO, { endpointPicker: { cpu: 'x' } }),
      /^EndpointPicker\.cpu: must be a Kubernetes quantity that is not negative, such as "500m", "4", "32Gi" or "1\.5G", got "x"$/],
    ['EPP memory in a unit Kubernetes does not have', withOverrides(DEMO, { endpointPicker: { memory: '1GB' } }),
      /^EndpointPicker\.memory: must be a Kubernetes quantity that is not negative/],
    ['a Valkey CPU request that is not a quantity', withOverrides(DEMO, { sessionStore: { deploy: { cpu: 'lots' } } }),
      /^SessionStore\.deploy\.cpu: must be a Kubernetes quantity that is not negative/],
    ['a node selector key with a space', withOverrides(DEMO, { decode: { nodeSelector: { 'bad key': 'a100' } } }),
      /^DecodePool\.nodeSelector: must be a map of Kubernetes labels \(keys `\[prefix\/\]name`, values of at most 63 alphanumerics, '-', '_' or '\.'\), got \{"bad key":"a100"\}$/],
    ['monitor selector labels with an invalid key', withOverrides(DEMO, { monitoring: { selectorLabels: { 'bad key!': 'x' } } }),
      /^Monitoring\.selectorLabels: must be a map of Kubernetes labels/],
    ['a dashboard label with an empty key', withOverrides(DEMO, { monitoring: { dashboardLabels: { '': '' } } }),
      /^Monitoring\.dashboardLabels: must be a map of Kubernetes labels/],
    ['a Hugging Face token Secret whose name is not a DNS subdomain', withOverrides(DEMO, { decode: { hfTokenSecret: { name: 'Bad_Secret', key: 'HF_TOKEN' } } }),
      /^DecodePool\.hfTokenSecret\.name: must be a DNS-1123 subdomain/],
    ['a Hugging Face token Secret with an empty key', withOverrides(DEMO, { decode: { hfTokenSecret: { name: 'hf', key: '' } } }),
      /^DecodePool\.hfTokenSecret\.key: must be a Secret key \(at most 253 alphanumerics, '-', '_' or '\.'; not '\.', not starting with '\.\.'\), got ""$/],
    ['a tokenizer cache claim name with a space', withOverrides(DEMO, { endpointPicker: { tokenizerCacheClaim: 'Bad Claim' } }),
      /^EndpointPicker\.tokenizerCacheClaim: must be a DNS-1123 subdomain \(lower-case alphanumerics, '-' and '\.'\), got "Bad Claim"$/],
    ['a listener port out of range', withOverrides(DEMO, { gateway: { port: 70000 } }),
      /^InferenceGateway\.port: must be an integer from 1 to 65535, got 70000$/],
    ['an alert threshold above 1', withOverrides(DEMO, { monitoring: { minPrefixCacheHitRatio: 80 } }),
      /^Monitoring\.minPrefixCacheHitRatio: must be a number greater than 0 and at most 1, got 80$/],
    ['root as the vLLM UID', withOverrides(DEMO, { decode: { runAsUser: 0 } }),
      /^DecodePool\.runAsUser: must be an integer from 1 to 2147483647, got 0$/],
    ['a metrics source that is both a namespace and a CIDR', withOverrides(DEMO, { networkPolicy: { metricsSources: [{ namespace: 'monitoring', cidr: '10.0.0.0/8' } as never] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]: must set exactly one of namespace, namespaceLabels, podLabels alone \(pods of this namespace\) or cidr, got \{"namespace":"monitoring","cidr":"10\.0\.0\.0\/8"\}$/],
    ['an empty metrics source', withOverrides(DEMO, { networkPolicy: { metricsSources: [{} as never] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]: must set exactly one of/],
    ['a misspelled peer field', withOverrides(DEMO, { networkPolicy: { metricsSources: [{ namespace: 'monitoring', podLabel: { app: 'x' } } as never] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]: .*unknown field "podLabel"/],
    ['an upper-case monitoring namespace', withOverrides(DEMO, { networkPolicy: { metricsSources: [{ namespace: 'Monitoring' }] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]\.namespace: must be a DNS-1123 label/],
    ['an empty pod selector, which would select every pod', withOverrides(DEMO, { networkPolicy: { healthSources: [{ podLabels: {} }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.podLabels: must be a non-empty map of Kubernetes labels/],
    ['a label value with a space', withOverrides(DEMO, { networkPolicy: { metricsSources: [{ namespaceLabels: { team: 'obs team' } }] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]\.namespaceLabels: must be a non-empty map of Kubernetes labels/],
    ['a health source CIDR without a prefix length', withOverrides(DEMO, { networkPolicy: { healthSources: [{ cidr: '10.0.0.1' }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.cidr: must be an IPv4 or IPv6 CIDR such as "10\.0\.0\.0\/8" or "fd00::\/64", got "10\.0\.0\.1"$/],
    ['an IPv4 prefix longer than 32', withOverrides(DEMO, { networkPolicy: { healthSources: [{ cidr: '10.0.0.0/33' }] } }),
      /^EppNetworkPolicy\.healthSources\[0\]\.cidr: must be an IPv4 or IPv6 CIDR/],
    ['except on a namespace peer', withOverrides(DEMO, { networkPolicy: { metricsSources: [{ namespace: 'monitoring', except: ['10.0.0.0/8'] } as never] } }),
      /^EppNetworkPolicy\.metricsSources\[0\]: except applies to cidr peers only/],
    ['egress without the API server', withOverrides(DEMO, { networkPolicy: { egress: { apiServer: [] } } }),
      /^EppNetworkPolicy\.egress\.apiServer: must list the API server's addresses and ports/],
    ['an API server port out of range', withOverrides(DEMO, { networkPolicy: { egress: { apiServer: [{ cidrs: ['10.96.0.1/32'], ports: [0] }] } } }),
      /^EppNetworkPolicy\.egress\.apiServer\[0\]\.ports\[0\]: must be an integer from 1 to 65535, got 0$/],
    ['an API server address that is not a CIDR', withOverrides(DEMO, { networkPolicy: { egress: { apiServer: [{ cidrs: ['kubernetes.default'], ports: [443] }] } } }),
      /^EppNetworkPolicy\.egress\.apiServer\[0\]\.cidrs\[0\]: must be an IPv4 or IPv6 CIDR/],
    ['egress with no DNS server', withOverrides(DEMO, { networkPolicy: { egress: { apiServer: [{ cidrs: ['10.96.0.1/32'], ports: [443] }], dns: [] } } }),
      /^EppNetworkPolicy\.egress\.dns: must name at least one DNS server peer, got \[\]$/],
    ['two EPP replicas with central KV events', withOverrides(DEMO, { decode: { kvEvents: { mode: 'central' } }, endpointPicker: { replicas: 2 } }),
      /^EndpointPicker\.replicas: must be 1 with central KV events \(each vLLM publishes to one subscriber\); use per-pod events for more, got 2$/],
    ['eleven EPP replicas', withOverrides(DEMO, { endpointPicker: { replicas: 11 } }),
      /^EndpointPicker\.replicas: must be an integer from 1 to 10, got 11$/],
    ['an unknown node spread', withOverrides(DEMO, { endpointPicker: { replicas: 2, nodeSpread: 'strict' as never } }),
      /^EndpointPicker\.nodeSpread: must be one of "preferred", "required", got "strict"$/],
    ['both session store forms', withOverrides(DEMO, { sessionStore: { deploy: {}, existing: { host: 'redis' } } as never }),
      /^KvAwareRouting\.sessionStore: must set exactly one of deploy \(a Valkey kvroute deploys\) or existing \(host, port, passwordSecret\)/],
    ['a misspelled session store form', withOverrides(DEMO, { sessionStore: { valkey: {} } as never }),
      /^KvAwareRouting\.sessionStore: must set exactly one of deploy/],
    ['an existing store host with a scheme', withOverrides(DEMO, { sessionStore: { existing: { host: 'redis://cache:6379' } } }),
      /^SessionStore\.existing\.host: must be a host name or IPv4 address/],
    ['an existing store port out of range', withOverrides(DEMO, { sessionStore: { existing: { host: 'cache', port: 0 } } }),
      /^SessionStore\.existing\.port: must be an integer from 1 to 65535, got 0$/],
    ['a password Secret key with a slash', withOverrides(DEMO, { sessionStore: { existing: { host: 'cache', passwordSecret: { name: 'auth', key: 'a/b' } } } }),
      /^SessionStore\.existing\.passwordSecret\.key: must be a Secret key \(at most 253 alphanumerics, '-', '_' or '\.'; not '\.', not starting with '\.\.'\), got "a\/b"$/],
    ['a password given inline instead of a Secret', withOverrides(DEMO, { sessionStore: { deploy: { passwordSecret: { name: 'auth', value: 'hunter2' } as never } } }),
      /^SessionStore\.deploy\.passwordSecret: must be \{ name, key\? \}; unknown field "value"/],
    ['Valkey memory with a unit Valkey does not read', withOverrides(DEMO, { sessionStore: { deploy: { maxMemory: '200mib' } } }),
      /^SessionStore\.deploy\.maxMemory: must be Valkey memory, bytes or a number with k, kb, m, mb, g or gb .*, at least 16mb, got "200mib"$/],
    ['an existing store\'s network peer that is both a namespace and a CIDR', withOverrides(DEMO, { sessionStore: { existing: { host: 'cache', networkPeer: { namespace: 'cache', cidr: '10.0.0.0/8' } as never } } }),
      /^SessionStore\.existing\.networkPeer: must set exactly one of namespace, namespaceLabels, podLabels alone/],
    ['a token-signing Secret with an upper-case name', withOverrides(DEMO, { endpointPicker: { sessionTokenSigning: { keySecret: { name: 'Token' } } } }),
      /^EndpointPicker\.sessionTokenSigning\.keySecret\.name: must be a DNS-1123 subdomain/],
    ['a floating Valkey image', withOverrides(DEMO, { sessionStore: { deploy: { image: 'valkey/valkey:latest' } } }),
      /^SessionStore\.deploy\.image: must be an image reference with an explicit tag/],
  ])('%s', (_what, props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  test('a session store needs the config\'s session-affinity-filter, and renders its sessionStore itself', () => {
    const config = defaultEndpointPickerConfig();
    const withoutFilter = { ...config, plugins: config.plugins.filter((p) => p.type !== 'session-affinity-filter'), schedulingProfiles: config.schedulingProfiles.map((sp) => ({ ...sp, plugins: sp.plugins.filter((r) => r.pluginRef !== 'session-affinity-filter') })) };
    expect(() => build(withOverrides(DEMO, { endpointPicker: { config: withoutFilter }, sessionStore: { deploy: {} } })))
      .toThrow(/^EndpointPicker\.config: must have exactly one session-affinity-filter to share its bindings through sessionStore \(found 0\)/);
    const preset = { ...config, plugins: config.plugins.map((p) => (p.type === 'session-affinity-filter' ? { ...p, parameters: { ...p.parameters, sessionStore: { address: 'redis:6379' } } } : p)) };
    expect(() => build(withOverrides(DEMO, { endpointPicker: { config: preset }, sessionStore: { deploy: {} } })))
      .toThrow(/^EndpointPicker\.config: must not set the session-affinity-filter's sessionStore when sessionStore is given/);
  });

  test('an EPP config the EPP itself would reject fails synth, naming the config field', () => {
    const props = withOverrides(DEMO, {
      endpointPicker: {
        config: {
          apiVersion: 'inference.networking.x-k8s.io/v1alpha1',
          kind: 'EndpointPickerConfig',
          plugins: [{ type: 'no-such-scorer' } as never],
          schedulingProfiles: [],
        },
      },
    });
    expect(() => build(props)).toThrow(/^EndpointPicker\.config: must be a valid EndpointPickerConfig \(.*plugins\[0\]\.type.*no-such-scorer.*prefix-cache-scorer/s);
  });

  // llm-d-router v0.10.0 deploy/config/pd-epp-config.yaml's shape: P/D needs prefill pods and the routing sidecar reading
  // x-prefiller-host-port, which the /v1 route removes (Envoy applies a route's request_headers_to_remove at the router,
  // after ext_proc): such a config would synthesize and never disaggregate.
  test.each(['disagg-profile-handler', 'pd-profile-handler'])('an EPP config with the P/D %s is refused: no prefill pool, and the route removes x-prefiller-host-port', (handler) => {
    const config = parseEndpointPickerConfig(`apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: ${handler}
- type: prefix-based-pd-decider
- type: prefix-cache-scorer
- type: max-score-picker
schedulingProfiles:
- name: prefill
  plugins: [{pluginRef: prefix-cache-scorer}, {pluginRef: max-score-picker}]
- name: decode
  plugins: [{pluginRef: prefix-cache-scorer}, {pluginRef: max-score-picker}]
`);
    expect(() => build(withOverrides(DEMO, { endpointPicker: { config } })))
      .toThrow(new RegExp(`^EndpointPicker\\.config: must not disaggregate prefill and decode \\(${handler} "${handler}"\\): these manifests deploy no prefill pool, and the /v1 HTTPRoute removes x-prefiller-host-port and x-prefiller-url`));
  });

  test('a PYTHONHASHSEED CPython 3.11 starts with (strtoul: leading whitespace, a sign, leading zeros, -0) builds and reaches vLLM as written, which vLLM hashes', () => {
    for (const seed of ['0', '007', ' 42', '+42', '-0', '4294967295']) {
      const m = synthProps(withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256', pythonHashSeed: seed } }));
      expect(container(one(m, 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').env).toContainEqual({ name: 'PYTHONHASHSEED', value: seed });
    }
  });

  test('vLLM\'s priority scheduling: the flag with schedulingPolicy "priority", none by default; the EPP config with prefill-priority builds on such a pool', () => {
    const args = (props: KvAwareRoutingProps): string[] => container(one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args;
    expect(args(DEMO).some((a) => a.startsWith('--scheduling-policy'))).toBe(false);
    const priority = withOverrides(DEMO, { decode: { schedulingPolicy: 'priority' }, endpointPicker: { config: withPrefillPriority(defaultEndpointPickerConfig()) } });
    expect(args(priority)).toContain('--scheduling-policy=priority');
    const epp = one(synthProps(priority), 'ConfigMap', 'ms-llm-d-modelservice-epp');
    expect(JSON.stringify(epp.data)).toContain('prefill-priority');
  });

  test('maxNumSeqs writes --max-num-seqs and tells the EPP\'s latency-scorer the same (it predicts the wait for a slot); unset, neither is written and the scorer keeps vLLM\'s largest default, 1024; not into a config given', () => {
    const args = (props: KvAwareRoutingProps): string[] => container(one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args;
    const slots = (props: KvAwareRoutingProps): unknown => {
      const text = String(one(synthProps(props), 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
      return (parseEndpointPickerConfig(text).plugins.find((p) => p.type === 'latency-scorer')?.parameters as { maxNumSeqs?: number } | undefined)?.maxNumSeqs;
    };
    expect(args(DEMO).some((a) => a.startsWith('--max-num-seqs'))).toBe(false);
    expect(slots(DEMO)).toBe(1024);
    const sized = withOverrides(DEMO, { decode: { maxNumSeqs: 64 } });
    expect(args(sized)).toContain('--max-num-seqs=64');
    expect(args(withOverrides(DEMO, { decode: { maxNumSeqs: 4096, extraArgs: ['--max-num-batched-tokens', '8192'] } }))).toContain('--max-num-seqs=4096');
    expect(slots(sized)).toBe(64);
    // Precise routing's config has the latency scorer too.
    expect(slots(withOverrides(DEMO, { decode: { maxNumSeqs: 64, kvEvents: { mode: 'central' } } }))).toBe(64);
    // Without a pool value the EPP's own is taken; a config given is taken as written when the pool sets none, and must
    // agree with it when it does.
    expect(slots(withOverrides(DEMO, { endpointPicker: { maxNumSeqs: 32 } }))).toBe(32);
    expect(slots(withOverrides(DEMO, { endpointPicker: { config: defaultEndpointPickerConfig() } }))).toBe(1024);
    expect(slots(withOverrides(DEMO, { decode: { maxNumSeqs: 64 }, endpointPicker: { config: withMaxNumSeqs(defaultEndpointPickerConfig(), 64) } }))).toBe(64);
    expect(slots(withOverrides(DEMO, { decode: { maxNumSeqs: 64 }, endpointPicker: { maxNumSeqs: 64 } }))).toBe(64);
  });

  test('a session store: with precise scoring, sessions the store cannot place while down are left to the scorers (replicas agree from the shared KV events); with approximate scoring the EPP\'s rendezvous default', () => {
    const store = (props: KvAwareRoutingProps) => {
      const text = String(one(synthProps(props), 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
      return (parseEndpointPickerConfig(text).plugins.find((p) => p.type === 'session-affinity-filter')?.parameters as { sessionStore?: { unavailablePlacement?: string } }).sessionStore;
    };
    expect(store(withOverrides(DEMO, { sessionStore: { deploy: {} }, endpointPicker: { replicas: 2 } }))?.unavailablePlacement).toBe('rendezvous');
    expect(store(withOverrides(DEMO, { decode: { kvEvents: { mode: 'per-pod' } }, sessionStore: { deploy: {} }, endpointPicker: { replicas: 2 } }))?.unavailablePlacement).toBe('scorers');
  });

  test('LoRA adapters: --enable-lora, --max-loras when set and --lora-modules name=path as separate arguments (vLLM\'s nargs="+"); none by default', () => {
    const args = (props: KvAwareRoutingProps): string[] => container(one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args;
    expect(args(DEMO).some((a) => a.includes('lora'))).toBe(false);
    const lora = args(withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/sql-lora' }, { name: 'chat', path: '/adapters/chat' }], maxLoras: 2, maxLoraRank: 64 } }));
    const at = lora.indexOf('--enable-lora');
    expect(lora.slice(at)).toEqual(['--enable-lora', '--max-loras=2', '--max-lora-rank=64', '--lora-modules', 'sql=org/sql-lora', 'chat=/adapters/chat']);
    expect(args(withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/sql-lora' }] } })).some((a) => a.startsWith('--max-loras'))).toBe(false);
  });

  test('extraArgs that no option writes are appended after kvroute\'s own, as given', () => {
    const args = container(one(synthProps(withOverrides(DEMO, { decode: { extraArgs: ['--enforce-eager', '--max-num-batched-tokens', '8192', '--seed=-1'] } })), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args as string[];
    expect(args.slice(-4)).toEqual(['--enforce-eager', '--max-num-batched-tokens', '8192', '--seed=-1']);
    // The tensor parallel size is the pod's GPU count unless a layout says otherwise (4 GPUs as tensor 2 × pipeline 2).
    const layout = container(one(synthProps(withOverrides(DEMO, { decode: { gpusPerPod: 4, extraArgs: ['-tp', '2', '--pipeline-parallel-size=2'] } })), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args as string[];
    expect(layout.slice(-3)).toEqual(['-tp', '2', '--pipeline-parallel-size=2']);
    // The layout is vLLM's to read: no second --tensor-parallel-size of kvroute's (argparse keeps the last one).
    expect(layout.filter((a) => a.startsWith('--tensor-parallel-size'))).toEqual([]);
    const gpus4 = container(one(synthProps(withOverrides(DEMO, { decode: { gpusPerPod: 4 } })), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args as string[];
    expect(gpus4.filter((a) => a.startsWith('--tensor-parallel-size'))).toEqual(['--tensor-parallel-size=4']);
    // An empty toleration operator is Equal, as the API server reads it.
    expect(() => synthProps(withOverrides(DEMO, { decode: { tolerations: [{ key: 'gpu', operator: '', value: 'a100', effect: 'NoSchedule' }] } }))).not.toThrow();
    // A data-parallel size is not read from --data-parallel-size-local's own spelling, and the other way round.
    const dpl = container(one(synthProps(withOverrides(DEMO, { decode: { gpusPerPod: 2, extraArgs: ['--data-parallel-size=4', '--data-parallel-size-local=2'] } })), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args as string[];
    expect(dpl.filter((a) => a.startsWith('--tensor-parallel-size'))).toEqual([]);
  });

  test('LoRA adapters beyond the GPU slots stay in CPU memory: --max-cpu-loras is the number of adapters when that exceeds maxLoras (vLLM\'s default is max_loras: a reload from storage at every switch), as given when set, absent otherwise', () => {
    const args = (props: KvAwareRoutingProps): string[] => container(one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args;
    const three = [{ name: 'sql', path: 'org/sql' }, { name: 'chat', path: 'org/chat' }, { name: 'summarize', path: 'org/sum' }];
    const cpu = (decode: Partial<NonNullable<KvAwareRoutingProps['decode']>>) => args(withOverrides(DEMO, { decode })).filter((a) => a.startsWith('--max-cpu-loras'));
    expect(cpu({ loraAdapters: three })).toEqual(['--max-cpu-loras=3']);
    expect(cpu({ loraAdapters: three, maxLoras: 2 })).toEqual(['--max-cpu-loras=3']);
    expect(cpu({ loraAdapters: three, maxLoras: 3 })).toEqual([]);
    expect(cpu({ loraAdapters: three.slice(0, 1) })).toEqual([]);
    expect(cpu({ loraAdapters: three, maxLoras: 2, maxCpuLoras: 8 })).toEqual(['--max-cpu-loras=8']);
    expect(cpu({ loraAdapters: three, maxCpuLoras: 1 })).toEqual(['--max-cpu-loras=1']);
  });

  test('LoRA adapters put kvroute\'s lora-room-filter, for their names, after the last filter of the built-in EPP config; not without adapters, not with an empty list, not into a config given', () => {
    const eppConfig = (props: KvAwareRoutingProps): string => String(one(synthProps(props), 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
    const adapters = { loraAdapters: [{ name: 'sql', path: 'org/sql-lora' }] };
    expect(eppConfig(DEMO)).not.toContain('lora-room-filter');
    const lora = eppConfig(withOverrides(DEMO, { decode: adapters }));
    expect(lora).toMatch(/- type: lora-room-filter\n\s+parameters:\n\s+adapters:\n\s+- sql\n/);
    expect(lora).toMatch(/- pluginRef: session-affinity-filter\n\s+- pluginRef: lora-room-filter\n/);
    expect(eppConfig(withOverrides(DEMO, { decode: adapters, endpointPicker: { loraAdapters: [] } }))).not.toContain('lora-room-filter');
    expect(eppConfig(withOverrides(DEMO, { decode: adapters, endpointPicker: { config: defaultEndpointPickerConfig() } }))).not.toContain('lora-room-filter');
  });

  test('LoRA adapters with KV events: the precise scorer gets their names in --lora-modules order (vLLM from #27728 to #27577 names a LoRA block by that position only), whatever the filter\'s list; no loraAdapters without adapters', () => {
    const eppConfig = (props: KvAwareRoutingProps) => {
      const text = String(one(synthProps(props), 'ConfigMap', 'ms-llm-d-modelservice-epp').data['epp-config.yaml']);
      return parseEndpointPickerConfig(text).plugins.find((p) => p.type === 'precise-prefix-cache-scorer')?.parameters as { loraAdapters?: string[] } | undefined;
    };
    const loraAdapters = [{ name: 'sql', path: 'org/sql-lora' }, { name: 'chat', path: '/adapters/chat' }];
    const image = 'registry.example.com/vllm:0.11.2';
    expect(eppConfig(withOverrides(DEMO, { decode: { kvEvents: {}, loraAdapters, image } }))?.loraAdapters).toEqual(['sql', 'chat']);
    // A filter list of the user's (another order, a subset) does not change the ids' names.
    expect(eppConfig(withOverrides(DEMO, { decode: { kvEvents: {}, loraAdapters, image }, endpointPicker: { loraAdapters: ['chat'] } }))?.loraAdapters).toEqual(['sql', 'chat']);
    const vllmArgs = container(one(synthProps(withOverrides(DEMO, { decode: { kvEvents: {}, loraAdapters, image } })), 'Deployment', 'ms-llm-d-modelservice-decode'), 'vllm').args as string[];
    expect(vllmArgs.slice(vllmArgs.indexOf('--lora-modules') + 1, vllmArgs.indexOf('--lora-modules') + 3)).toEqual(['sql=org/sql-lora', 'chat=/adapters/chat']);
    expect(eppConfig(withOverrides(DEMO, { decode: { kvEvents: {} } }))?.loraAdapters).toEqual([]);
  });

  test('the routing sidecar: a plain container by default (Kubernetes 1.28); "native" makes it an init container with restartPolicy Always, as llm-d-modelservice renders it, so it outlives vLLM\'s drain', () => {
    const pod = (props: KvAwareRoutingProps) => one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-decode').spec.template.spec;
    const plain = pod(DEMO);
    expect(plain.initContainers).toBeUndefined();
    expect(plain.containers.map((c: { name: string }) => c.name)).toEqual(['vllm', 'routing-proxy']);
    const native = pod(withOverrides(DEMO, { decode: { routingSidecar: 'native' } }));
    expect(native.containers.map((c: { name: string }) => c.name)).toEqual(['vllm']);
    expect(native.initContainers).toHaveLength(1);
    const { restartPolicy, ...sidecar } = native.initContainers[0];
    expect(restartPolicy).toBe('Always');
    // The same container otherwise: image, args, port, probe, security context.
    expect(sidecar).toEqual(plain.containers[1]);
    // The Service reaches it by number: named ports of init containers resolve only from Kubernetes 1.32 (#127976).
    const service = (props: KvAwareRoutingProps) => one(synthProps(props), 'Service', 'ms-llm-d-modelservice-decode').spec.ports[0].targetPort;
    expect(service(DEMO)).toBe('http');
    expect(service(withOverrides(DEMO, { decode: { routingSidecar: 'native' } }))).toBe(8000);
  });

  test('the InferencePool API follows the Istio with EnvoyFilter routing too: v1alpha2 on 1.27, v1 from 1.28 (GIE v1.5.0 ships no v1alpha2 pool CRD), unless poolApiGroup says otherwise', () => {
    const pool = (props: KvAwareRoutingProps) => one(synthProps(props), 'InferencePool').apiVersion;
    expect(pool(DEMO)).toBe('inference.networking.x-k8s.io/v1alpha2');
    expect(pool(withOverrides(DEMO, { istioVersion: '1.28' }))).toBe('inference.networking.k8s.io/v1');
    expect(pool(withOverrides(DEMO, { istioVersion: '1.29', endpointPicker: { poolApiGroup: 'inference.networking.x-k8s.io' } }))).toBe('inference.networking.x-k8s.io/v1alpha2');
  });

  test('the decode rollout surges one pod by default (never below the ready count), and rolls in place where the profile has no spare GPU', () => {
    const strategy = (props: KvAwareRoutingProps) => one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-decode').spec.strategy;
    expect(strategy(DEMO)).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    const shared = CLUSTERS.find((c) => c.name === 'prod-shared-gpus')!.routing;
    expect(strategy(shared)).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
  });

  test('the pool\'s failureMode and the EnvoyFilter\'s failure_mode_allow are one intent: either alone sets both, a disagreement is refused naming both', () => {
    const modes = (props: KvAwareRoutingProps) => {
      const m = synthProps(props);
      const filter = one(m, 'EnvoyFilter', 'ms-llm-d-modelservice-epp-ext-proc').spec.configPatches[0].patch.value.typed_config;
      return [one(m, 'InferencePool').spec.extensionRef.failureMode, filter.failure_mode_allow];
    };
    expect(modes(DEMO)).toEqual(['FailOpen', true]);
    expect(modes(withOverrides(DEMO, { extProc: { failureModeAllow: false } }))).toEqual(['FailClose', false]);
    expect(modes(withOverrides(DEMO, { poolFailureMode: 'FailClose' }))).toEqual(['FailClose', false]);
    expect(modes(withOverrides(DEMO, { poolFailureMode: 'FailOpen', extProc: { failureModeAllow: true } }))).toEqual(['FailOpen', true]);
    expect(() => build(withOverrides(DEMO, { poolFailureMode: 'FailOpen', extProc: { failureModeAllow: false } })))
      .toThrow('KvAwareRouting.poolFailureMode: must agree with extProc.failureModeAllow (false): "FailClose", or leave one of them unset to follow the other, got "FailOpen"');
    expect(() => build(withOverrides(DEMO, { poolFailureMode: 'Open' as never }))).toThrow(/KvAwareRouting\.poolFailureMode: must be one of "FailOpen", "FailClose"/);
  });

  test('gateway timeouts that outlast the EPP\'s hold build, as do any without a max_message_timeout (full-duplex, native, "0s")', () => {
    const builds = [
      withOverrides(DEMO, { extProc: { maxMessageTimeout: '90s' }, gateway: { requestReceiveTimeout: '100.001s', idleTimeout: '90.001s' } }),
      withOverrides(DEMO, { extProc: { maxMessageTimeout: '90s' }, gateway: { requestReceiveTimeout: '0s', idleTimeout: '0s' } }),
      withOverrides(DEMO, { extProc: { maxMessageTimeout: '0s' }, gateway: { requestReceiveTimeout: '5s', idleTimeout: '20s' } }),
      withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' }, gateway: { idleTimeout: '20s' } }),
      withOverrides(DEMO, { istioVersion: '1.28', inferenceRouting: 'native', gateway: { idleTimeout: '20s' } }),
    ];
    for (const props of builds) expect(() => synthProps(props)).not.toThrow();
  });

  test('refreshMetricsInterval: the lib refuses exactly the intervals the EPP refuses at start-up (0), and writes the others for it', () => {
    const eppArgs = (refreshMetricsInterval: string): string[] =>
      container(one(synthProps(withOverrides(DEMO, { endpointPicker: { refreshMetricsInterval } })), 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp').args;
    for (const interval of ['1ms', '0.5ms', '50ms', '1m30s']) {
      expect(parseArgs(eppArgs(interval))!.refreshMetricsIntervalMs).toBeGreaterThan(0);
    }
    expect(() => parseArgs(['--pool-name=p', '--refresh-metrics-interval=0s'])).toThrow(/^--refresh-metrics-interval: must be positive, got "0s"$/);
    expect(() => eppArgs('0s')).toThrow(/^EndpointPicker\.refreshMetricsInterval: must be a duration above 0/);
  });

  test('the defaults build without error', () => {
    expect(() => build(DEMO)).not.toThrow();
  });
});

describe('npm run synth on a bad profile', () => {
  test('stops with one line naming the profile and the field, no stack trace, exit status 1, and leaves the output folder as it was', () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-bad-'));
    const out = path.join(tmp, 'dist');
    // The committed manifests of an earlier synth.
    fs.mkdirSync(path.join(out, 'good'), { recursive: true });
    fs.writeFileSync(path.join(out, 'good', 'kustomization.yaml'), 'committed\n');
    const profiles = [{ name: 'good', description: 'the seed', routing: DEMO }];
    const status = synthClusters(
      [...profiles, { name: 'eu-a100', description: 'x', routing: withOverrides(DEMO, { decode: { gpuMemoryUtilization: 1.2 } }) }],
      out,
      { log: (l) => lines.push(l), error: (l) => errors.push(l) },
      'lib/clusters.ts',
    );
    // A program of the user's own that names no source gets the line without one.
    const ownErrors: string[] = [];
    synthClusters([{ name: 'mine', description: 'x', routing: withOverrides(DEMO, { decode: { replicas: -1 } }) }], out, { log: () => undefined, error: (l) => ownErrors.push(l) });
    const after = fs.readdirSync(tmp);
    const kept = fs.readFileSync(path.join(out, 'good', 'kustomization.yaml'), 'utf8');
    // A good run replaces the folder: its profiles only, fresh; and clears what an interrupted synth left beside it.
    fs.mkdirSync(path.join(tmp, '.dist.synth-interrupted', 'good'), { recursive: true });
    expect(synthClusters(profiles, out, { log: (l) => lines.push(l), error: (l) => errors.push(l) })).toBe(0);
    const beside = fs.readdirSync(tmp);
    const replaced = fs.readdirSync(out);
    const fresh = fs.readFileSync(path.join(out, 'good', 'kustomization.yaml'), 'utf8');
    fs.rmSync(tmp, { recursive: true, force: true });
    expect(status).toBe(1);
    expect(errors).toEqual([expect.stringMatching(/^synth failed: cluster profile "eu-a100" \(lib\/clusters\.ts\): DecodePool\.gpuMemoryUtilization: must be a number greater than 0 and at most 1, got 1\.2 \(nothing written: .*dist\/ is as it was\)$/)]);
    expect(ownErrors).toEqual([expect.stringMatching(/^synth failed: cluster profile "mine": DecodePool\.replicas: /)]);
    expect(after).toEqual(['dist']);
    expect(kept).toBe('committed\n');
    expect(lines).toEqual([expect.stringMatching(/^good: \d+ manifests -> .*dist\/good$/)]);
    expect(replaced).toEqual(['good']);
    expect(beside).toEqual(['dist']);
    expect(fresh).toMatch(/^# Generated by `npm run synth`/);
  });

  test('an argument (`npm run synth -- --profile x`) is refused with exit status 2, not ignored while every profile is written', () => {
    const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', 'main.ts', '--profile', 'x'], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 60_000 });
    expect({ status: run.status, stderr: run.stderr, stdout: run.stdout }).toEqual({
      status: 2,
      stderr: 'npm run synth takes no arguments, got "--profile" "x": it writes every profile in lib/clusters.ts into dist/<name>/\n',
      stdout: '',
    });
  });

  test('an option npm keeps for itself (`npm run synth --profile=x`, no `--`: only npm_config_profile reaches the script) is refused the same way', () => {
    const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', 'main.ts'], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 60_000, env: { ...process.env, npm_config_profile: 'x' } });
    expect({ status: run.status, stderr: run.stderr, stdout: run.stdout }).toEqual({
      status: 2,
      stderr: 'npm run synth takes no arguments, got --profile="x" (npm read it as its own setting, npm_config_profile): it writes every profile in lib/clusters.ts into dist/<name>/\n',
      stdout: '',
    });
  });

  test('a profile name that is not a DNS label, or names a second profile, stops synth before anything is written (audit s36: a duplicate replaced the first profile\'s folder, ".." emptied the folder holding dist/)', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-names-'));
    const out = path.join(tmp, 'dist');
    fs.writeFileSync(path.join(tmp, 'CANARY'), 'kept\n');
    const tryNames = (...names: string[]) => {
      const errors: string[] = [];
      const status = synthClusters(names.map((name) => ({ name, description: 'x', routing: DEMO })), out, { log: () => undefined, error: (l) => errors.push(l) });
      return { status, errors };
    };
    const duplicate = tryNames('demo', 'demo');
    const results = ['..', '.', 'prod/eu', 'Prod-EU', ''].map((n) => tryNames(n));
    const left = fs.readdirSync(tmp);
    fs.rmSync(tmp, { recursive: true, force: true });
    expect(duplicate).toEqual({ status: 1, errors: ['synth failed: ClusterProfile.name: must be unique among the profiles (it names the folder under dist/), got "demo" (nothing written)'] });
    for (const r of results) {
      expect(r.status).toBe(1);
      expect(r.errors).toEqual([expect.stringMatching(/^synth failed: ClusterProfile\.name: must be a DNS-1123 label/)]);
    }
    expect(left).toEqual(['CANARY']);
    // synthCluster alone checks the name before it clears the folder it is given.
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-own-'));
    fs.writeFileSync(path.join(own, 'CANARY'), 'kept\n');
    expect(() => synthCluster({ name: 'Bad Name', description: 'x', routing: DEMO }, own)).toThrow(/ClusterProfile\.name: must be a DNS-1123 label/);
    const ownLeft = fs.readdirSync(own);
    fs.rmSync(own, { recursive: true, force: true });
    expect(ownLeft).toEqual(['CANARY']);
  });
});

describe('the EPP\'s CPU request follows the pool size', () => {
  const cpuOf = (props: KvAwareRoutingProps): string => {
    const epp = container(one(synthProps(props), 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp');
    return String(epp.resources.requests.cpu);
  };

  test(`1 CPU up to ${LARGE_POOL_REPLICAS} decode pods, 2 beyond (the scrape worker thread's core), endpointPicker.cpu over both`, () => {
    expect(cpuOf(DEMO)).toBe('1');
    expect(cpuOf(withOverrides(DEMO, { decode: { replicas: LARGE_POOL_REPLICAS } }))).toBe('1');
    expect(cpuOf(withOverrides(DEMO, { decode: { replicas: LARGE_POOL_REPLICAS + 1 } }))).toBe('2');
    expect(cpuOf(withOverrides(DEMO, { decode: { replicas: 256 }, endpointPicker: { cpu: '3' } }))).toBe('3');
    expect(cpuOf(withOverrides(DEMO, { endpointPicker: { cpu: '500m' } }))).toBe('500m');
  });
});

describe('the EnvoyFilter and the EPP agree on the body modes', () => {
  // ExtProcRouting beside a second EPP whose flags disagree with the filter: each mismatch is refused by name.
  const build = (picker: Partial<ConstructorParameters<typeof EndpointPicker>[2]>, extProc: { requestBodyMode?: 'buffered' | 'full-duplex' } = {}): void => {
    const routing = new KvAwareRouting(Testing.app(), 'test', DEMO);
    const epp = new EndpointPicker(routing, 'Other', { namespace: 'llm-d', name: 'other-epp', poolName: 'other', extProcMaxMessageTimeout: '30s', ...picker });
    new ExtProcRouting(routing, 'OtherExtProc', { istio: routing.istio, gateway: routing.gateway, decodePool: routing.decodePool, endpointPicker: epp, ...extProc });
  };

  test('the filter sends no response body, so an EPP told to expect one (native routing\'s full-duplex) is refused', () => {
    expect(() => build({ responseBodyMode: 'none' })).not.toThrow();
    expect(() => build({ responseBodyMode: 'full-duplex' })).toThrow(
      /^ExtProcRouting\.endpointPicker: must assume response bodies "none" \(its responseBodyMode\), as this filter sends none to it; got "full-duplex"/);
  });

  test('the request body mode must be the EPP\'s', () => {
    expect(() => build({ requestBodyMode: 'full-duplex' }, { requestBodyMode: 'buffered' })).toThrow(/^ExtProcRouting\.requestBodyMode: must be the mode the EndpointPicker assumes \("full-duplex"\)/);
  });

  test('an unknown response body mode is refused by name', () => {
    expect(() => build({ responseBodyMode: 'streamed' as never })).toThrow(/^EndpointPicker\.responseBodyMode: must be one of "none", "full-duplex", got "streamed"$/);
  });

  test('a standalone EPP\'s extProcMaxMessageTimeout is refused where the EPP\'s flag would refuse it (0, above 1h), not in the pod', () => {
    const picker = (v: string) => () => new EndpointPicker(new KvAwareRouting(Testing.app(), 'test', DEMO), 'Other', { namespace: 'llm-d', name: 'other-epp', poolName: 'other', extProcMaxMessageTimeout: v });
    for (const v of ['0s', '0ms', '61m', '1h1s']) {
      expect(picker(v)).toThrow(new RegExp(`^EndpointPicker\\.extProcMaxMessageTimeout: must be above 0 and at most 1h .*got "${v}"$`));
    }
    for (const v of ['1s', '30s', '1h', '59m59s']) expect(picker(v)).not.toThrow();
  });
});

describe('one stack per namespace', () => {
  test('a second KvAwareRouting in the same App and namespace is refused, naming the field and the first stack; another namespace builds', () => {
    const app = new App();
    new KvAwareRouting(app, 'pool-a', withOverrides(DEMO, { namespace: 'shared', name: 'pool-a' }));
    expect(() => new KvAwareRouting(app, 'pool-b', withOverrides(DEMO, { namespace: 'shared', name: 'pool-b', createNamespace: false, gateway: { name: 'gw-b' } })))
      .toThrow(/^KvAwareRouting\.namespace: must differ from every other KvAwareRouting's in the app: kvroute supports one stack per namespace, and stack "pool-a" already uses this one \(a second release needs its own namespace\), got "shared"$/);
    expect(() => new KvAwareRouting(app, 'pool-c', withOverrides(DEMO, { namespace: 'other', name: 'pool-c' }))).not.toThrow();
  });

  test.each(['default', 'kube-system', 'kube-public', 'kube-node-lease'])('in Kubernetes\'s own namespace %s no Namespace object is emitted, and createNamespace: true is refused naming the field', (namespace) => {
    const namespaces = (props: KvAwareRoutingProps) => synthProps(props).filter((m) => m.kind === 'Namespace').map((m) => m.metadata?.name);
    expect(namespaces(withOverrides(DEMO, { namespace }))).toEqual([]);
    expect(namespaces(withOverrides(DEMO, { namespace, createNamespace: false }))).toEqual([]);
    expect(() => synthProps(withOverrides(DEMO, { namespace, createNamespace: true })))
      .toThrow(new RegExp(`^KvAwareRouting\\.createNamespace: must be false or unset with namespace "${namespace}", which Kubernetes creates and keeps itself .*, got true$`));
    // Any other namespace is emitted unless turned off.
    expect(namespaces(withOverrides(DEMO, { namespace: 'kube-systemx' }))).toEqual(['kube-systemx']);
  });

  // Argo CD (docs/user-guide/sync-options.md: "Resources such as Namespaces are critical and should not be pruned")
  // and Flux (kustomize.toolkit.fluxcd.io/prune: disabled) prune what leaves the rendered set; deleting a Namespace
  // deletes everything in it (kube-controller-manager's namespace controller). Review rev-gitops69.
  test('the emitted Namespace is never pruned by Argo CD or Flux, so createNamespace: false later leaves the running stack\'s namespace in place', () => {
    for (const profile of CLUSTERS) {
      const [ns] = synthProps(profile.routing, profile.name).filter((m) => m.kind === 'Namespace');
      expect(ns?.metadata?.annotations).toEqual({ 'argocd.argoproj.io/sync-options': 'Prune=false', 'kustomize.toolkit.fluxcd.io/prune': 'disabled' });
    }
  });

  test('stacks nested below other constructs are found too', () => {
    const app = Testing.app();
    const team = new Chart(app, 'team');
    new KvAwareRouting(team, 'first', DEMO);
    expect(() => new KvAwareRouting(app, 'second', DEMO)).toThrow(/stack "team\/first" already uses this one/);
  });

  test('every cluster profile builds on its own App, as synth builds them (profiles are clusters, not releases)', () => {
    for (const profile of CLUSTERS) expect(() => new KvAwareRouting(Testing.app(), profile.name, profile.routing)).not.toThrow();
  });

  test('the README and the construct say so where name and namespace are described', () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    expect(readme).toMatch(/one stack per namespace/i);
    expect(readme).toMatch(/second release needs its own namespace/);
    const source = fs.readFileSync(path.join(__dirname, '..', 'lib', 'kv-aware-routing.ts'), 'utf8');
    expect(source).toMatch(/One stack per namespace/);
  });
});

describe('names that become Service names and pod labels', () => {
  test(`a deployed session store's StatefulSet name leaves its pod's controller-revision-hash label (<StatefulSet>-<10-character hash>) within 63 characters`, () => {
    expect(SessionStore.MAX_NAME_LENGTH).toBe(52);
    const longest = 'n'.repeat(SessionStore.MAX_NAME_LENGTH - '-session-store'.length);
    const m = synthProps(withOverrides(DEMO, { name: longest, sessionStore: { deploy: {} } }));
    const sts = one(m, 'StatefulSet');
    expect(`${sts.metadata.name}-${'9'.repeat(10)}`.length).toBe(63);
    // Without a deployed store the decode pool's Service name, <name>-decode, bounds it (56).
    expect(() => synthProps(withOverrides(DEMO, { name: 'n'.repeat(56) }))).not.toThrow();
    expect(() => new SessionStore(Testing.chart(), 'Store', { namespace: 'llm-d', name: 's'.repeat(53) }))
      .toThrow(/^SessionStore\.name: must be a DNS-1035 label .*at most 52 characters/);
  });

  // istio/istio pilot/pkg/config/kube/gateway/inferencepool_collection.go @ 1.28.0-1.30.0: for every InferencePool a
  // Gateway routes to, Istio creates the Service `InferencePoolServiceName(pool)` labelled `istio.io/inferencepool-name:
  // <pool>`. The name is cut to 63 characters but keeps the pool name's dots and leading digit, and the API server
  // refuses a Service name that is not a DNS-1035 label (pkg/apis/core/validation ValidateServiceName) and a label
  // value over 63 characters: the Service is never created and the route has no endpoints.
  const istioShadowServiceName = (pool: string): string => {
    const hash = createHash('sha256').update(pool).digest('hex').slice(0, 8);
    const name = `${pool}-ip-${hash}`;
    return name.length > 63 ? `${pool.slice(0, 63 - '-ip-'.length - 8)}-ip-${hash}` : name;
  };
  const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

  test.each([
    ['a dot', 'qwen3-0.6b'],
    ['a leading digit', '1pool'],
    ['64 characters', `p${'o'.repeat(62)}l`],
  ])('with native routing a poolName with %s, which Istio cannot make its shadow Service or label from, is refused (Istio 1.28-1.30 inferencepool_collection.go InferencePoolServiceName)', (_what, poolName) => {
    expect(dns1035Label.test(istioShadowServiceName(poolName)) && poolName.length <= 63).toBe(false);
    const native = withOverrides(DEMO, { istioVersion: '1.30', inferenceRouting: 'native', poolName });
    expect(() => build(native)).toThrow(new RegExp(`^KvAwareRouting\\.poolName: must be a DNS-1035 label \\(lower-case alphanumerics and '-', starting with a letter, at most 63 characters\\) with "native" routing: Istio creates the pool's shadow Service "<poolName>-ip-<8 hex>" .* labelled istio\\.io/inferencepool-name=<poolName>.*, got "${poolName.replace(/\./g, '\\.')}"$`));
    // Through kvroute's EnvoyFilter only the EPP reads the pool: any InferencePool name goes.
    expect(() => build(withOverrides(DEMO, { poolName }))).not.toThrow();
  });

  test('with native routing the longest poolName Istio accepts, 63 characters, gives a valid shadow Service name', () => {
    const poolName = `p${'o'.repeat(61)}l`;
    expect(dns1035Label.test(istioShadowServiceName(poolName)) && istioShadowServiceName(poolName).length <= 63).toBe(true);
    const m = synthProps(withOverrides(DEMO, { istioVersion: '1.30', inferenceRouting: 'native', poolName }));
    expect(one(m, 'InferencePool').metadata.name).toBe(poolName);
  });

  // kubernetes/kubernetes pkg/apis/core/validation/validation.go ValidateConfigMapName = NameIsDNSSubdomain (at most 253
  // characters; a PrometheusRule's name too), while the InferencePool's name, poolName, may itself be 253 characters.
  test('a poolName that would name the dashboard ConfigMap <poolName>-kvroute-dashboard past 253 characters (ValidateConfigMapName) is refused with monitoring on; without monitoring the pool takes 253', () => {
    // A one-letter namespace, so that the rule file key (below) allows more than the dashboard's name does.
    expect(() => build(withOverrides(DEMO, { namespace: 'a', poolName: 'p'.repeat(236) })))
      .toThrow(/^Monitoring\.endpointPicker\.poolName: must be at most 235 characters with monitoring on: the dashboard ConfigMap's name "<poolName>-kvroute-dashboard" would be 254 characters, over the 253 Kubernetes allows \(a DNS-1123 subdomain\), got "p{236}"$/);
    const unmonitored = synthProps(withOverrides(DEMO, { poolName: 'p'.repeat(253), monitoring: { enabled: false } }));
    expect(one(unmonitored, 'InferencePool').metadata.name).toHaveLength(253);
  });

  // prometheus-operator pkg/operator/rules.go PrometheusRuleSelector.Select @ v0.84.0 (unchanged at v0.93.0) keys each
  // selected rule "<namespace>-<name>-<uid>.yaml" in the rule ConfigMaps it creates (pkg/prometheus/server/rules.go
  // createOrUpdateRuleConfigMaps deletes the current ones first), and apimachinery validation.IsConfigMapKey refuses a key
  // over 253 characters: the operator's ConfigMap create then fails for every rule of that Prometheus.
  const ruleFileKey = (namespace: string, ruleName: string): string => `${namespace}-${ruleName}-${'0'.repeat(36)}.yaml`;
  test.each([
    ['"llm-d"', 197, 'llm-d'],
    ['of 63 characters', 139, 'n'.repeat(63)],
    ['"a"', 201, 'a'],
  ])('in a namespace %s the longest poolName with monitoring on is %i characters: its PrometheusRule\'s rule file key "<namespace>-<poolName>-kvroute-<uid>.yaml" is then 253 (IsConfigMapKey), one more is refused naming the field', (_what, longest, namespace) => {
    const m = synthProps(withOverrides(DEMO, { namespace, poolName: 'p'.repeat(longest) }));
    const rule = one(m, 'PrometheusRule');
    expect(rule.metadata.name).toBe(`${'p'.repeat(longest)}-kvroute`);
    expect(ruleFileKey(namespace, rule.metadata.name)).toHaveLength(253);
    expect(() => build(withOverrides(DEMO, { namespace, poolName: 'p'.repeat(longest + 1) })))
      .toThrow(new RegExp(`^Monitoring\\.endpointPicker\\.poolName: must be at most ${longest} characters with monitoring on in namespace "${namespace}": the Prometheus Operator stores the PrometheusRule "<poolName>-kvroute" as the rule file "<namespace>-<name>-<36-character uid>\\.yaml", a ConfigMap key of at most 253 characters, and that key would be 254 .*, got "p{${longest + 1}}"$`));
    // Without monitoring there is no PrometheusRule: the InferencePool's own limit, 253, holds.
    expect(() => build(withOverrides(DEMO, { namespace, poolName: 'p'.repeat(longest + 1), monitoring: { enabled: false } }))).not.toThrow();
  });

  // Grafana takes uids of at most 40 characters (pkg/util/shortid_generator.go MaxUIDLength) and, finding one uid
  // twice among a provider's dashboards, takes that provider's database write permission away
  // (pkg/services/provisioning/dashboards/validator.go duplicateValidator): the kube-prometheus-stack sidecar's one
  // provider then stops updating every dashboard it loads.
  test('two stacks whose long namespaces share their first 32 characters get two dashboard uids, each at most 40 characters (Grafana MaxUIDLength; a duplicate uid freezes the sidecar provider)', () => {
    const uidOf = (namespace: string): string =>
      JSON.parse(one(synthProps(withOverrides(DEMO, { namespace })), 'ConfigMap', 'ms-llm-d-modelservice-kvroute-dashboard').data['kvroute.json']).uid;
    const east = uidOf('llm-inference-team-a-production-us-east-1');
    const west = uidOf('llm-inference-team-a-production-us-west-2');
    expect(east).not.toBe(west);
    for (const uid of [east, west, uidOf('n'.repeat(63))]) expect({ uid, valid: /^[a-zA-Z0-9_-]{1,40}$/.test(uid) }).toEqual({ uid, valid: true });
    // A namespace that fits keeps the readable uid.
    expect(uidOf('llm-d')).toBe('kvroute-llm-d');
    expect(uidOf('n'.repeat(32))).toBe(`kvroute-${'n'.repeat(32)}`);
  });

  test('the longest gateway name with the default class makes a 63-character Service name', () => {
    const routing = new KvAwareRouting(Testing.app(), 'test', withOverrides(DEMO, { gateway: { name: 'g'.repeat(57) } }));
    expect(routing.gateway.serviceName).toHaveLength(63);
  });

  test('the EPP alone refuses a name that is no Service name, and a central KV-event port it already listens on', () => {
    expect(() => new EndpointPicker(Testing.chart(), 'Epp', { namespace: 'llm-d', name: '1epp', poolName: 'pool' }))
      .toThrow(/^EndpointPicker\.name: must be a DNS-1035 label/);
    const precise = { mode: 'central' as const, blockSize: 16, modelName: 'Qwen/Qwen3-0.6B', zmqEndpoint: 'tcp://*:9003' };
    expect(() => new EndpointPicker(Testing.chart(), 'Epp', { namespace: 'llm-d', name: 'epp', poolName: 'pool', precise }))
      .toThrow(/^EndpointPicker\.precise\.zmqEndpoint: must not use a port the EPP already listens on/);
    expect(() => new EndpointPicker(Testing.chart(), 'Epp', { namespace: 'llm-d', name: 'epp', poolName: 'pool', precise: { ...precise, zmqEndpoint: 'tcp://*:70000' } }))
      .toThrow(/^EndpointPicker\.precise\.zmqEndpoint: must be a ZMQ endpoint "tcp:\/\/<host>:<port>" with a port from 1 to 65535/);
    // ZMQ writes an IPv6 address in brackets; the EPP binds it.
    const ipv6 = new EndpointPicker(Testing.chart(), 'Epp', { namespace: 'llm-d', name: 'epp', poolName: 'pool', precise: { ...precise, zmqEndpoint: 'tcp://[::]:5557' } });
    expect(ipv6.kvEventsPort).toBe(5557);
  });
});

describe('the gateway hostname is a Gateway API Hostname', () => {
  test('a wildcard hostname goes to the listener, the routes and the vhost names', () => {
    const routing = new KvAwareRouting(Testing.app(), 'test', withOverrides(DEMO, { gateway: { hostname: '*.llm.example.com' } }));
    const m = Testing.synth(routing);
    expect(one(m, 'Gateway').spec.listeners[0].hostname).toBe('*.llm.example.com');
    expect(one(m, 'HTTPRoute', 'llm-d-gateway').spec.hostnames).toEqual(['*.llm.example.com']);
    expect(routing.gateway.vhostName).toBe('*.llm.example.com:80');
  });
});

describe('durations and quantities are checked against what the API server enforces', () => {
  /** The `pattern` at a path of a CRD's v1 schema (the first version that has one). */
  const crdPattern = (file: string, ...keys: string[]): RegExp => {
    const crd = YAML.parse(fs.readFileSync(path.join(CRDS, file), 'utf8'));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let node: any = crd.spec.versions.find((v: { name: string }) => v.name === 'v1').schema.openAPIV3Schema;
    for (const k of keys) node = k === '[]' ? node.items : node.properties[k];
    return new RegExp(node.pattern);
  };
  const httpRouteTimeout = crdPattern('gateway-api-v1.3.0-standard-httproutes.yaml', 'spec', 'rules', '[]', 'timeouts', 'request');
  const podMonitorInterval = crdPattern('prometheus-operator-v0.84.0-podmonitors.monitoring.coreos.com.yaml', 'spec', 'podMetricsEndpoints', '[]', 'interval');
  const serviceMonitorInterval = crdPattern('prometheus-operator-v0.84.0-servicemonitors.monitoring.coreos.com.yaml', 'spec', 'endpoints', '[]', 'interval');
  const candidates = ['0s', '1s', '1.5s', '7.5s', '500ms', '1500ms', '15s', '99999s', '100000s', '1m30s', '30s1m', '1h30m', '1h1m1s1ms', '1h1m1s1ms1h', '2h', '1d', '0', '', '10', '1m0s', '0.5m'];
  const accepts = (check: (scope: string, field: string, value: string) => string, value: string): boolean => {
    try {
      check('S', 'f', value);
      return true;
    } catch {
      return false;
    }
  };

  test('every duration the HTTPRoute check accepts matches the CRD\'s pattern, and it refuses the Go forms the CRD does not take', () => {
    for (const value of candidates) {
      if (accepts(checkGatewayApiDuration, value)) expect({ value, crd: httpRouteTimeout.test(value) }).toEqual({ value, crd: true });
    }
    for (const value of ['1.5s', '100000s']) expect({ value, go: accepts(checkDuration, value), gateway: accepts(checkGatewayApiDuration, value) }).toEqual({ value, go: true, gateway: false });
    for (const value of ['0s', '300s', '1500ms', '1h30m']) expect({ value, gateway: accepts(checkGatewayApiDuration, value) }).toEqual({ value, gateway: true });
  });

  test('every duration the Prometheus check accepts matches the PodMonitor and ServiceMonitor patterns, and it refuses fractions and unordered units', () => {
    for (const value of candidates) {
      if (accepts(checkPrometheusDuration, value)) {
        expect({ value, podMonitor: podMonitorInterval.test(value), serviceMonitor: serviceMonitorInterval.test(value) }).toEqual({ value, podMonitor: true, serviceMonitor: true });
      }
    }
    for (const value of ['7.5s', '30s1m', '']) expect({ value, prometheus: accepts(checkPrometheusDuration, value) }).toEqual({ value, prometheus: false });
    for (const value of ['15s', '1m30s', '500ms', '0s']) expect({ value, prometheus: accepts(checkPrometheusDuration, value) }).toEqual({ value, prometheus: true });
  });

  test('accepted scrape intervals and request timeouts reach the objects as given', () => {
    const m = synthProps(withOverrides(DEMO, { gateway: { requestTimeout: '1h30m' }, monitoring: { vllmScrapeInterval: '1m10s', eppScrapeInterval: '500ms' } }));
    expect(one(m, 'HTTPRoute', 'llm-d-gateway').spec.rules[0].timeouts.request).toBe('1h30m');
    expect(one(m, 'PodMonitor', 'ms-llm-d-modelservice-decode-vllm').spec.podMetricsEndpoints[0].interval).toBe('1m10s');
    expect(one(m, 'ServiceMonitor').spec.endpoints[0].interval).toBe('500ms');
  });

  test('durations convert in exact decimal: one parser for Envoy\'s seconds and for milliseconds, equal spellings equal', () => {
    const cases: [string, bigint, string, number][] = [
      ['0s', 0n, '0s', 0], ['500ms', 500_000_000n, '0.5s', 500], ['0.3s', 300_000_000n, '0.3s', 300], ['300ms', 300_000_000n, '0.3s', 300],
      ['1m30s', 90_000_000_000n, '90s', 90_000], ['1.5s', 1_500_000_000n, '1.5s', 1500], ['1.005s', 1_005_000_000n, '1.005s', 1005], ['0.1ms', 100_000n, '0.0001s', 0.1],
      ['1h1m1s1ms', 3_661_001_000_000n, '3661.001s', 3_661_001], ['0.5m', 30_000_000_000n, '30s', 30_000], ['2h', 7_200_000_000_000n, '7200s', 7_200_000],
      // Past Envoy's nine decimals: rounded half up to the nanosecond.
      ['1.0000000005s', 1_000_000_001n, '1.000000001s', 1000.000001], ['1.0000000004s', 1_000_000_000n, '1s', 1000],
    ];
    for (const [value, ns, proto, ms] of cases) {
      expect({ value, ns: durationNanos(value), proto: toProtoDuration(value), ms: durationMs(value) }).toEqual({ value, ns, proto, ms });
    }
    // A maxMessageTimeout equal to the messageTimeout in another spelling is not below it; a nanosecond less is.
    expect(() => synthProps(withOverrides(DEMO, { extProc: { messageTimeout: '0.3s', maxMessageTimeout: '300ms' } }))).not.toThrow();
    expect(() => synthProps(withOverrides(DEMO, { extProc: { messageTimeout: '300ms', maxMessageTimeout: '0.299999999s' } }))).toThrow(/maxMessageTimeout/);
  });

  test('quantities: the API server\'s grammar, not negative', () => {
    for (const value of ['4', '500m', '32Gi', '1.5G', '0.5', '.5', '2e3', '1E-3', '1e+3', '100n', '64Ki', '0', '+1', '1.']) {
      expect({ value, ok: accepts(checkQuantity, value) }).toEqual({ value, ok: true });
    }
    for (const value of ['lots', '32 GB', '', '-1', '+-1', '1GB', '1gi', '1.2.3', 'Gi', '1Gi ', '1e1.5', '1e.5', '1e']) {
      expect({ value, ok: accepts(checkQuantity, value) }).toEqual({ value, ok: false });
    }
  });

  test('image references: distribution/reference\'s grammar (regexp.go), pinned by a tag other than latest or a digest', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    for (const value of ['vllm/vllm-openai:v0.10.0', 'Registry.Example.com:5000/platform/kvroute-epp:0.1.0', 'localhost:5000/a__b/c-d.e:1', `[fd00::1]:5000/img@${digest}`,
      `ghcr.io/llm-d/llm-d:latest@${digest}`, 'busybox:1.36', 'a---b/c:V_1.0']) {
      expect({ value, ok: accepts(checkImage, value) }).toEqual({ value, ok: true });
    }
    for (const value of ['busybox', 'busybox:latest', 'https://ghcr.io/x:1', 'ghcr.io/x/:1', 'ghcr.io//x:1', 'ghcr.io/X:1', 'x-:1', 'x:1 ', 'ghcr.io/x:.1', `x@sha256:${'a'.repeat(63)}`, '']) {
      expect({ value, ok: accepts(checkImage, value) }).toEqual({ value, ok: false });
    }
  });
});

describe('precise scoring needs the model\'s tokenizer in the EPP', () => {
  const llama = { decode: { model: 'meta-llama/Llama-3.1-8B-Instruct', kvEvents: { mode: 'per-pod' as const } } };
  test('a claim with the tokenizer\'s cache, or a Qwen3 model the image carries, synthesizes; the claim is mounted', () => {
    const m = synthProps(withOverrides(DEMO, { ...llama, endpointPicker: { tokenizerCacheClaim: 'hf-cache' } }));
    expect(one(m, 'Deployment', 'ms-llm-d-modelservice-epp').spec.template.spec.volumes).toContainEqual(expect.objectContaining({ persistentVolumeClaim: { claimName: 'hf-cache', readOnly: true } }));
    expect(() => synthProps(withOverrides(DEMO, { decode: { model: 'Qwen/Qwen3-8B', kvEvents: { mode: 'per-pod' } } }))).not.toThrow();
  });
  test('without KV events a model\'s tokenizer is not needed', () => {
    expect(() => synthProps(withOverrides(DEMO, { decode: { model: 'meta-llama/Llama-3.1-8B-Instruct' } }))).not.toThrow();
  });
});
