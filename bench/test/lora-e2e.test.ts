/**
 * LoRA affinity, black box, over the whole local path: simulated vLLM pods with `--enable-lora` exporting
 * `vllm:lora_requests_info` as vLLM 0.10 does (vllm/v1/metrics/loggers.py @ 6eca337ce), the EPP configured with GIE's
 * `lora-affinity-scorer` (pkg/epp/framework/plugins/scheduling/scorer/loraaffinity @ v1.5.0) reading it from its scrapes,
 * and the gateway in front. A request for the adapter a pod is running goes there; a request for another adapter
 * avoids the pod whose `--max-loras` is used up and goes where there is room.
 */
import { defaultEndpointPickerConfig, renderEndpointPickerConfig, withLoraRoomFilter } from '@kvroute/epp/config';
import { freePort, waitFor } from '@kvroute/testkit';
import { HUNG, post, startLocalPath, stopLocalPath, type LocalPath } from './support/local-path';

jest.setTimeout(120_000);
const completion = (model: string, maxTokens: number, i: number) => ({ model, max_tokens: maxTokens, prompt: `Request ${i} for ${model}: list the open tickets.` });

/** vLLM's flags: LoRA on, two adapters, one adapter at a time (--max-loras 1, vLLM's default). */
const loraPods = () => ({ servedModelNames: ['base'], enableLora: true, maxLoras: 1, loraModules: ['sql', 'chat'], timeScale: 1 });

/**
 * Pod A runs sql for `sqlTokens` (sent to it directly, bypassing the EPP; `stop` cuts it), pod B has served the base
 * model once, and the EPP has scraped both pods' LoRA state. `servedBy` sends one request through the gateway.
 */
async function aRunsSql(path: LocalPath, sqlTokens: number) {
  const { epp, sims, gateway } = path;
  const a = sims[0]!;
  const b = sims[1]!;
  const lora = (port: number) => epp.datastore.snapshot().find((e) => e.endpoint.port === port)?.metrics.lora;
  const cut = new AbortController();
  const long = post(`${a.url}/v1/completions`, completion('sql', sqlTokens, 0), { signal: cut.signal }).catch(() => undefined);
  expect((await post(`${b.url}/v1/completions`, completion('base', 2, 0))).status).toBe(200);
  await waitFor(() => lora(a.port)?.running.includes('sql') === true && lora(b.port) !== undefined, 'the EPP to scrape both pods\' LoRA state', HUNG);
  const servedBy = async (model: string, i: number): Promise<string> => {
    const r = await post(`http://127.0.0.1:${gateway.port}/v1/completions`, completion(model, 2, i));
    expect(r.status).toBe(200);
    return String(r.headers['x-gateway-destination-endpoint-served']);
  };
  const stop = async () => {
    cut.abort();
    await long;
  };
  return { a, b, lora, servedBy, stop };
}

describe('LoRA affinity through the gateway, from the pods\' vllm:lora_requests_info', () => {
  let path: LocalPath | undefined;

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
    path = await startLocalPath(ports, config, loraPods);
  });

  afterAll(() => stopLocalPath(path));

  test('sql requests follow the pod running sql; chat requests go to the pod with room for an adapter', async () => {
    // A runs sql for the whole test (2,000 tokens at 20 ms, cut at the end).
    const { a, b, lora, servedBy, stop } = await aRunsSql(path!, 2000);
    expect(lora(a.port)).toEqual({ running: ['sql'], waiting: [], maxLora: 1 });
    expect(lora(b.port)).toEqual({ running: [], waiting: [], maxLora: 1 });

    // Scores (GIE's): the pod running the adapter 1, a pod with room 0.8, a pod at --max-loras without it 0. Ties
    // would be broken at random, so six in a row on one pod each are no accident.
    const sql: string[] = [];
    const chat: string[] = [];
    for (let i = 1; i <= 6; i++) {
      sql.push(await servedBy('sql', i));
      chat.push(await servedBy('chat', i));
    }
    expect(sql).toEqual(Array(6).fill(`127.0.0.1:${a.port}`));
    expect(chat).toEqual(Array(6).fill(`127.0.0.1:${b.port}`));
    // Still running sql: the picks above were made against it, not against a pod that had finished.
    expect(lora(a.port)?.running).toContain('sql');
    await stop();
  });
});

describe('kvroute\'s default config with lora-room-filter (as the manifests render it for a pool with adapters), through the gateway', () => {
  /** The default config plus the filter for `filtered`, two pods with adapter slots for one adapter each; pod A runs sql. */
  async function chatTargets(filtered: string[], sqlTokens: number): Promise<{ chat: string[]; base: Set<string>; a: string; b: string; sqlRanThrough: boolean }> {
    const ports = [await freePort(), await freePort()];
    const config = renderEndpointPickerConfig(withLoraRoomFilter(defaultEndpointPickerConfig(), filtered));
    const path = await startLocalPath(ports, config, loraPods);
    try {
      const { a, b, lora, servedBy, stop } = await aRunsSql(path, sqlTokens);
      // All eight at once, so every pick is made while A's one slot holds sql.
      const chat = await Promise.all(Array.from({ length: 8 }, (_, i) => servedBy('chat', i + 1)));
      const base = new Set<string>();
      for (let i = 1; i <= 8; i++) base.add(await servedBy('base', 100 + i));
      // Still running sql on A: every pick above was made against a full A.
      const sqlRanThrough = lora(a.port)?.running.includes('sql') === true;
      await stop();
      return { chat, base, a: `127.0.0.1:${a.port}`, b: `127.0.0.1:${b.port}`, sqlRanThrough };
    } finally {
      await stopLocalPath(path);
    }
  }

  test('cold chat requests never go to the pod whose one adapter slot sql holds; base-model requests still spread', async () => {
    // sql runs 2,000 tokens (40 s), longer than the test.
    const { chat, base, b, sqlRanThrough } = await chatTargets(['sql', 'chat'], 2000);
    expect(sqlRanThrough).toBe(true);
    expect(chat).toEqual(Array(8).fill(b));
    expect(base.size).toBe(2);
  });

  test('control: with chat not among the filter\'s adapters, the default scorers (the no-hit LRU) send some of them to the full pod', async () => {
    // sql runs 100 tokens (2 s): a chat request sent to A waits for it (vLLM's --max-loras 1), so not 40 s.
    const { chat, a } = await chatTargets(['sql'], 100);
    expect(chat.filter((t) => t === a).length).toBeGreaterThan(0);
  });
});
