/**
 * GIE v1.5.0's hermetic EPP harness (kubernetes-sigs/gateway-api-inference-extension @ v1.5.0:
 * test/integration/epp/harness.go, common_tests.go, test/integration/util.go) played against kvroute's EPP: the whole
 * EPP in-process (`startEpp`), a fake Kubernetes API server holding GIE's base resources
 * (test/testdata/inferencepool-with-model-hermetic.yaml) and pods whose `/metrics` are real HTTP servers, and a real
 * gRPC client playing Envoy. (Not a test file itself: jest only runs *.test.ts.)
 *
 * GIE's pod i is `192.168.1.(i+1):8000`; here it is `127.0.0.(i+1):<port>`, every pod on the same port as a pool's
 * targetPort requires, so `endpoint(i)` stands where GIE's test names the address.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import type { AddressInfo } from 'net';
import { structToJson, type StructObject } from '@kvroute/protocol/envoy';
import { FakeKubeApiServer, fakeModelRewrite, fakeObjective, fakePod, fakePoolV1, renderVllmMetrics } from '@kvroute/testkit';
import { parseArgs } from '../src/cli';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';
import { FakeEnvoy, waitFor, type Json } from './extproc-harness';

export const POOL = 'vllm-qwen3-32b-pool';

/** test/integration/epp/testdata/default-config.yaml @ v1.5.0, verbatim. */
export const GIE_DEFAULT_CONFIG = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
  - type: queue-scorer
  - type: kv-cache-utilization-scorer
  - type: prefix-cache-scorer
  - type: lora-affinity-scorer
  - type: openai-parser
schedulingProfiles:
  - name: default
    plugins:
      - pluginRef: queue-scorer
      - pluginRef: kv-cache-utilization-scorer
      - pluginRef: prefix-cache-scorer
      - pluginRef: lora-affinity-scorer
parser:
  pluginRef: openai-parser
featureGates:
  - enableLegacyMetrics
`;

/** common_tests.go podState / P(idx, queue, kv, models...). */
export interface PodState { index: number; queue: number; kv: number; models: string[] }
export const P = (index: number, queue: number, kv: number, ...models: string[]): PodState => ({ index, queue, kv, models });

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Run modes of hermetic_test.go: Standard (CRDs), Standalone-NoCRD (--endpoint-selector: no pool, no objectives). */
export type Mode = 'standard' | 'standalone-nocrd';

export class Harness {
  private constructor(
    readonly epp: RunningEpp,
    readonly envoy: FakeEnvoy,
    readonly port: number,
    private readonly servers: http.Server[],
    private readonly api: FakeKubeApiServer | undefined,
    private readonly kubeconfig: string | undefined,
  ) {}

  endpoint(i: number): string {
    return `127.0.0.${i + 1}:${this.port}`;
  }

  static async start(pods: PodState[], opts: { mode?: Mode; configText?: string; extraArgs?: string[] } = {}): Promise<Harness> {
    const mode = opts.mode ?? 'standard';
    // One port for every pod (a pool has one targetPort): take a free one on 127.0.0.1, reuse it on 127.0.0.2, ...
    const servers: http.Server[] = [];
    let port = 0;
    const listen = (host: string, page: string) => new Promise<http.Server>((resolve, reject) => {
      const s = http.createServer((req, res) => {
        if (req.url !== '/metrics') { res.writeHead(404).end(); return; }
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(page);
      });
      s.once('error', reject);
      s.listen(port, host, () => resolve(s));
    });
    if (pods.length === 0) {
      const probe = await listen('127.0.0.1', '');
      port = (probe.address() as AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
    }
    for (const p of pods) {
      // harness.go WithPods sets ActiveModels and WaitingModels but no MaxActiveModels: max_lora 0, so a pod without
      // the adapter has no room for it (lora_affinity.go scores it 0, not 0.8).
      const page = renderVllmMetrics({
        engines: [{ waiting: p.queue, running: 0, kvUsage: p.kv }],
        ...(p.models.length > 0 ? { runningLoraAdapters: p.models } : {}),
      }).replace('max_lora="4"', 'max_lora="0"');
      const s = await listen(`127.0.0.${p.index + 1}`, page);
      if (port === 0) port = (s.address() as AddressInfo).port;
      servers.push(s);
    }
    const common = ['--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--host', '127.0.0.1',
      '--refresh-metrics-interval', '20ms', '--shutdown-grace-period', '1s', '--config-text', opts.configText ?? GIE_DEFAULT_CONFIG,
      ...(opts.extraArgs ?? [])];
    let api: FakeKubeApiServer | undefined;
    let kubeconfig: string | undefined;
    let epp: RunningEpp;
    if (mode === 'standard') {
      api = await FakeKubeApiServer.start();
      kubeconfig = api.writeKubeconfig();
      api.upsertPool(fakePoolV1(POOL, { app: POOL }, port));
      // test/testdata/inferencepool-with-model-hermetic.yaml @ v1.5.0
      api.upsertObjective(fakeObjective('sql-lora', POOL, 2));
      api.upsertObjective(fakeObjective('sql-lora-sheddable', POOL));
      api.upsertObjective(fakeObjective('my-model', POOL, 2));
      api.upsertObjective(fakeObjective('direct-model', POOL, 2));
      api.upsertObjective(fakeObjective('inference-objective-with-priority-4', POOL, 4));
      api.upsertModelRewrite(fakeModelRewrite('rewrite-test', POOL, [{ matches: [{ model: { value: 'model-to-be-rewritten' } }], targets: [{ modelRewrite: 'rewritten-model' }] }]));
      for (const p of pods) api.upsertPod(fakePod({ name: `pod-${p.index}`, ip: `127.0.0.${p.index + 1}`, labels: { app: POOL } }));
      epp = await startEpp(parseArgs(['--pool-name', POOL, '--kubeconfig', kubeconfig, ...common])!, quiet);
    } else {
      // Standalone-NoCRD as hermetic_test.go runs it: no InferencePool and no objectives, the pods found by
      // --endpoint-selector (llm-d-router v0.10.0 and GIE v1.5.0's standalone mode), the pool named from $POD_NAME.
      api = await FakeKubeApiServer.start();
      kubeconfig = api.writeKubeconfig();
      for (const p of pods) api.upsertPod(fakePod({ name: `pod-${p.index}`, ip: `127.0.0.${p.index + 1}`, labels: { app: POOL } }));
      epp = await startEpp(parseArgs(['--endpoint-selector', `app=${POOL}`, '--endpoint-target-ports', String(port), '--kubeconfig', kubeconfig, ...common],
        { POD_NAME: 'epp-standalone-5c4d8f9b7-x2x9k' })!, quiet);
    }
    const h = new Harness(epp, new FakeEnvoy(`127.0.0.1:${epp.grpcPort}`), port, servers, api, kubeconfig);
    // harness.go WaitForSync + WaitForReadyPodsMetric: every pod known and scraped.
    await waitFor(() => epp.datastore.snapshot().length === pods.length && epp.datastore.snapshot().every((s) => s.metrics.updateTime > 0), 'pods synced');
    if (mode === 'standard') await waitFor(async () => (await h.metrics()).includes(`inference_pool_ready_pods{name="${POOL}"} ${pods.length}`), 'ready pods metric');
    // The objectives are listed with the pool; give the watch a moment to have delivered them.
    if (mode === 'standard') await new Promise((r) => setTimeout(r, 100));
    return h;
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.epp.metricsPort}/metrics`)).text();
  }

  /** util.go StreamedRequest: send every message, then read `expected` responses (fewer if the stream ends). */
  async streamed(requests: Json[], expected: number, timeoutMs = 5000): Promise<Json[]> {
    const s = this.envoy.open();
    for (const r of requests) s.send(r);
    const out: Json[] = [];
    const deadline = Date.now() + timeoutMs;
    try {
      while (out.length < expected) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        let timer: NodeJS.Timeout | undefined;
        const m = await Promise.race([s.next(), new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), left); })])
          .catch(() => undefined)
          .finally(() => clearTimeout(timer)); // an answered wait's timer would keep jest alive for up to timeoutMs
        if (m === undefined) break;
        out.push(m);
      }
    } finally {
      // Fewer answers than asked for (a request waiting in flow control): Envoy resets the stream at its timeout.
      if (out.length < expected) s.cancel();
      else s.end();
    }
    return out;
  }

  async stop(): Promise<void> {
    this.envoy.close();
    await this.epp.stop();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
    await this.api?.close();
    if (this.kubeconfig) fs.rmSync(path.dirname(this.kubeconfig), { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// util.go request builders. GIE's request headers carry `value` (not `raw_value`); its response headers `raw_value`.

const hv = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, value })) });
const hraw = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) });

/** util.go GenerateRequestMetadata: `envoy.lb.subset_hint` {x-gateway-destination-endpoint-subset: [...]}, or none. */
function subsetMetadata(subset: string[] | undefined): Json {
  if (subset === undefined) return {};
  return { metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: {
    'x-gateway-destination-endpoint-subset': { listValue: { values: subset.map((s) => ({ stringValue: s })) } },
  } } } } };
}

/** Go's json.Marshal of util.go GenerateRequest's map: keys sorted. */
export function llmBody(prompt: string, model: string, stream = false): string {
  const j: Json = { max_tokens: 100, ...(model !== '' ? { model } : {}), prompt, ...(stream ? { stream: true } : {}), temperature: 0 };
  return JSON.stringify(j);
}

/** util.go GenerateStreamedRequestSet (ReqLLM when subset is undefined; common_tests.go ReqSubset otherwise). */
export function reqLLM(prompt: string, model: string, target: string, subset?: string[]): Json[] {
  const headers: Record<string, string> = { hi: 'mom', 'x-request-id': 'test-request-id' };
  if (model !== '') headers['x-gateway-inference-objective'] = model;
  if (target !== '') headers['x-gateway-model-name-rewrite'] = target;
  return [
    { request_headers: { headers: hv(headers) }, ...subsetMetadata(subset) },
    { request_body: { body: Buffer.from(llmBody(prompt, model)), end_of_stream: true }, ...subsetMetadata(subset) },
  ];
}

/** util.go ReqRaw. */
export function reqRaw(headers: Record<string, string>, ...chunks: string[]): Json[] {
  return [
    { request_headers: { headers: hv(headers) } },
    ...chunks.map((c, i) => ({ request_body: { body: Buffer.from(c), end_of_stream: i === chunks.length - 1 } })),
  ];
}

/** util.go ReqHeaderOnly. */
export function reqHeaderOnly(headers: Record<string, string>): Json[] {
  return [{ request_headers: { headers: hv(headers), end_of_stream: true } }];
}

/** common_tests.go ReqResponseOnly. */
export function reqResponseOnly(headers: Record<string, string>, ...chunks: string[]): Json[] {
  return [
    { response_headers: { headers: hraw(headers) } },
    ...chunks.map((c, i) => ({ response_body: { body: Buffer.from(c), end_of_stream: i === chunks.length - 1 } })),
  ];
}

// ---------------------------------------------------------------------------------------------------------------------
// Responses, normalised for comparison: what GIE's cmp.Diff compares, as plain JSON.

export type Norm =
  | { requestHeaders: { clearRouteCache: boolean; set: Record<string, string>; remove: string[]; metadata: unknown } }
  | { requestBody: { body: string; eos: boolean } }
  | { responseHeaders: { set: Record<string, string>; remove: string[] } }
  | { responseBody: { body: string; eos: boolean } }
  | { immediate: { status: number; body: string; headers: Record<string, string> } }
  | { other: string };

function sets(mutation: Json | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of mutation?.set_headers ?? []) out[h.header.key] = h.header.raw_value?.length > 0 ? h.header.raw_value.toString() : h.header.value;
  return out;
}

/** envoy.type.v3.StatusCode: the loader gives enum names. */
const STATUS: Record<string, number> = { OK: 200, BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, TooManyRequests: 429,
  InternalServerError: 500, BadGateway: 502, ServiceUnavailable: 503, GatewayTimeout: 504 };
const statusCode = (c: string | number): number => (typeof c === 'number' ? c : STATUS[c] ?? -1);

export function normalise(m: Json): Norm {
  const body = (r: Json) => {
    const sr = r?.response?.body_mutation?.streamed_response;
    if (sr) return { body: Buffer.from(sr.body ?? []).toString(), eos: sr.end_of_stream === true };
    const b = r?.response?.body_mutation?.body;
    return { body: b ? `<buffered>${Buffer.from(b).toString()}` : '<no mutation>', eos: false };
  };
  switch (m.response) {
    case 'request_headers': {
      const r = m.request_headers.response ?? {};
      return { requestHeaders: { clearRouteCache: r.clear_route_cache === true, set: sets(r.header_mutation), remove: r.header_mutation?.remove_headers ?? [],
        metadata: m.dynamic_metadata ? structToJson(m.dynamic_metadata as StructObject) : null } };
    }
    case 'request_body': return { requestBody: body(m.request_body) };
    case 'response_headers': {
      const r = m.response_headers.response ?? {};
      return { responseHeaders: { set: sets(r.header_mutation), remove: r.header_mutation?.remove_headers ?? [] } };
    }
    case 'response_body': return { responseBody: body(m.response_body) };
    case 'immediate_response': return { immediate: { status: statusCode(m.immediate_response.status.code), body: Buffer.from(m.immediate_response.body ?? []).toString(), headers: sets(m.immediate_response.headers) } };
    default: return { other: String(m.response) };
  }
}

// GIE's expectations (util.go NewRequestBufferedResponse, common_tests.go ExpectRouteTo/ExpectReject/...), normalised.

/** util.go NewRequestBufferedResponse with common_tests.go's echoed `hi` and `x-request-id`. */
export function expectRouteToRaw(endpoint: string, body: string): Norm[] {
  return [
    { requestHeaders: { clearRouteCache: true, set: { 'x-gateway-destination-endpoint': endpoint, 'Content-Length': String(Buffer.byteLength(body)), hi: 'mom', 'x-request-id': 'test-request-id' }, remove: [],
      metadata: { 'envoy.lb': { 'x-gateway-destination-endpoint': endpoint } } } },
    { requestBody: { body, eos: true } },
  ];
}

/** common_tests.go ExpectRouteTo. */
export const expectRouteTo = (endpoint: string, targetModel: string, prompt: string): Norm[] => expectRouteToRaw(endpoint, llmBody(prompt, targetModel));

/** common_tests.go ExpectReject. */
export const expectReject = (status: number, body: string): Norm[] => [{ immediate: { status, body, headers: {} } }];
