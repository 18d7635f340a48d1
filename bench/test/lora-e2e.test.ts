/**
 * LoRA affinity, black box, over the whole local path: simulated vLLM pods with `--enable-lora` exporting
 * `vllm:lora_requests_info` as vLLM 0.10 does (vllm/v1/metrics/loggers.py @ 6eca337ce), the EPP configured with GIE's
 * `lora-affinity-scorer` (pkg/epp/framework/plugins/scheduling/scorer/loraaffinity @ v1.5.0) reading it from its scrapes,
 * and the gateway in front. A request for the adapter a pod is running goes there; a request for another adapter
 * avoids the pod whose `--max-loras` is used up and goes where there is room.
 */
import * as http from 'node:http';
import { parseArgs, startEpp, type RunningEpp } from '@kvroute/epp';
import { startGateway, type Gateway } from '@kvroute/gateway';
import { startSimulator, type Simulator } from '@kvroute/sim';
import { freePort, waitFor } from '@kvroute/testkit';

jest.setTimeout(120_000);
/** Bounds a hung wait only: on a loaded 2-core machine loading the tokenizer and starting two sims can take seconds. */
const HUNG = { limitMs: 60_000 };

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function post(url: string, body: unknown, signal?: AbortSignal): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, signal }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const completion = (model: string, maxTokens: number, i: number) => ({ model, max_tokens: maxTokens, prompt: `Request ${i} for ${model}: list the open tickets.` });

describe('LoRA affinity through the gateway, from the pods\' vllm:lora_requests_info', () => {
  let epp: RunningEpp;
  let sims: Simulator[];
  let gateway: Gateway;

  beforeAll(async () => {
    const ports = [await freePort(), await freePort()];
    const config = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: lora-affinity-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: lora-affinity-scorer
  - pluginRef: max-score-picker
`;
    epp = await startEpp(parseArgs(['--endpoints', ports.map((p) => `127.0.0.1:${p}`).join(','), '--grpc-port', '0', '--grpc-health-port', '0',
      '--metrics-port', '0', '--host', '127.0.0.1', '--refresh-metrics-interval', '50ms', '--config-text', config])!, quiet);
    // vLLM's flags: LoRA on, two adapters, one adapter at a time (--max-loras 1, vLLM's default).
    sims = await Promise.all(ports.map((port) => startSimulator({
      host: '127.0.0.1', port, servedModelNames: ['base'], enableLora: true, maxLoras: 1, loraModules: ['sql', 'chat'], timeScale: 1,
    })));
    gateway = await startGateway({ endpoints: ports.map((p) => `127.0.0.1:${p}`), extProc: `127.0.0.1:${epp.grpcPort}`, port: 0 });
    await waitFor(() => epp.serving, 'the EPP to serve', HUNG);
  });

  afterAll(async () => {
    await gateway?.close();
    await Promise.all((sims ?? []).map((s) => s.close()));
    await epp?.stop();
  });

  test('sql requests follow the pod running sql; chat requests go to the pod with room for an adapter', async () => {
    const [a, b] = sims;
    const lora = (port: number) => epp.datastore.snapshot().find((e) => e.endpoint.port === port)?.metrics.lora;
    // Directly, bypassing the EPP: A runs sql for the whole test (2,000 tokens at 20 ms, cut at the end), B serves the
    // base model once.
    const cut = new AbortController();
    const long = post(`${a!.url}/v1/completions`, completion('sql', 2000, 0), cut.signal).catch(() => undefined);
    expect((await post(`${b!.url}/v1/completions`, completion('base', 2, 0))).status).toBe(200);
    await waitFor(() => lora(a!.port)?.running.includes('sql') === true && lora(b!.port) !== undefined, 'the EPP to scrape both pods\' LoRA state', HUNG);
    expect(lora(a!.port)).toEqual({ running: ['sql'], waiting: [], maxLora: 1 });
    expect(lora(b!.port)).toEqual({ running: [], waiting: [], maxLora: 1 });

    const servedBy = async (model: string, i: number): Promise<string> => {
      const r = await post(`http://127.0.0.1:${gateway.port}/v1/completions`, completion(model, 2, i));
      expect(r.status).toBe(200);
      return String(r.headers['x-gateway-destination-endpoint-served']);
    };
    // Scores (GIE's): the pod running the adapter 1, a pod with room 0.8, a pod at --max-loras without it 0. Ties
    // would be broken at random, so six in a row on one pod each are no accident.
    const sql: string[] = [];
    const chat: string[] = [];
    for (let i = 1; i <= 6; i++) {
      sql.push(await servedBy('sql', i));
      chat.push(await servedBy('chat', i));
    }
    expect(sql).toEqual(Array(6).fill(`127.0.0.1:${a!.port}`));
    expect(chat).toEqual(Array(6).fill(`127.0.0.1:${b!.port}`));
    // Still running sql: the picks above were made against it, not against a pod that had finished.
    expect(lora(a!.port)?.running).toContain('sql');
    cut.abort();
    await long;
  });
});
