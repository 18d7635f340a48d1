/**
 * Precise prefix routing, black box, over the whole local path: simulated vLLM pods publishing KV events as vLLM does,
 * the EPP configured with llm-d's minimal `precise-prefix-cache-scorer` entry (central mode: the EPP binds, the pods
 * connect, as `--config-text` and static `--endpoints` would run it), and the gateway in front. What only precise routing
 * can do: a prefix cached on a pod by traffic that never passed through the EPP draws the next request with it; once
 * that pod evicts it, the EPP stops predicting it there.
 */
import type { RunningEpp } from '@kvroute/epp';
import type { Gateway } from '@kvroute/gateway';
import type { Simulator, StartOptions } from '@kvroute/sim';
import { freePort, waitFor } from '@kvroute/testkit';
import { HUNG, post, startLocalPath, stopLocalPath, type LocalPath } from './support/local-path';

jest.setTimeout(120_000);

const MODEL = 'Qwen/Qwen3-0.6B';

/** Sum of a metric's samples whose label set contains every `labels` pair (all samples when none are given). */
async function metric(epp: RunningEpp, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await epp.metrics.registry.metrics();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * ZMQ PUB drops what it publishes before its connection to the EPP's SUB is up (the slow joiner; real vLLM's publisher
 * does too, zmq_socket(3) ZMQ_PUB). Proves `pod`'s publisher is connected with a short probe prompt of its own,
 * repeated until its events arrive, before the warm-up whose events a test depends on.
 */
async function untilPublisherConnected(epp: RunningEpp, pod: Simulator): Promise<void> {
  const before = await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' });
  for (let k = 0; ; k++) {
    expect((await post(`${pod.url}/v1/chat/completions`, { model: MODEL, max_tokens: 1, messages: [{ role: 'user', content: `Probe ${k}: is the publisher connected yet, and are its events applied?` }] })).status).toBe(200);
    const applied = await waitFor(async () => (await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' })) > before, 'a probe\'s events', { limitMs: 1000 })
      .then(() => true, () => false);
    if (applied) return;
    if (k >= 30) throw new Error(`the KV events of ${pod.url} never reached the EPP`);
  }
}

/**
 * Two simulated pods publishing KV events to the EPP's bound socket (central mode), the EPP with the precise scorer
 * (`extraParameters`: more lines of its `parameters`), and the gateway. vLLM's own flags: events on, connect to the EPP
 * (which binds first), a topic naming the pod.
 */
async function startPrecisePath(extraParameters: string, pods: Partial<StartOptions>): Promise<LocalPath> {
  const zmqPort = await freePort();
  const ports = [await freePort(), await freePort()];
  const config = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:${zmqPort}", topicFilter: "kv@" }
    indexerConfig: { tokenProcessorConfig: { blockSize: 16 } }
${extraParameters}`;
  return startLocalPath(ports, config, (port) => ({
    model: MODEL, maxModelLen: 2048, timeScale: 20, ...pods,
    kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: `tcp://127.0.0.1:${zmqPort}`, topic: `kv@127.0.0.1:${port}@${MODEL}` },
  }));
}

const manual = `You are the support assistant for the Orion ticketing system. ${'The manual says: every ticket has an owner, a queue, a priority and a history of changes that auditors review each quarter. '.repeat(14)}`;
const chat = (question: string) => ({ model: MODEL, max_tokens: 2, messages: [{ role: 'system', content: manual }, { role: 'user', content: question }] });
const unrelated = (i: number) => ({ model: MODEL, max_tokens: 2, messages: [{ role: 'user', content: `Unrelated document ${i}: ${`filler sentence number ${i} about weather, rivers and mountains. `.repeat(40)}` }] });

describe('precise routing through the gateway, from the pods\' own KV events', () => {
  let path: LocalPath | undefined;
  let epp: RunningEpp;
  let sims: Simulator[];
  let gateway: Gateway;

  beforeAll(async () => {
    // llm-d's minimal entry, as the issue's operators would write it; discoverPods stated, since unset it would also
    // dial every endpoint at port 5557 as llm-d v0.8.0 does (and hear whatever binds it here).
    path = await startPrecisePath('', { kvCacheBlocks: 160 });
    ({ epp, sims, gateway } = path);
  });

  afterAll(() => stopLocalPath(path));

  test('a prefix cached on pod B by direct traffic draws the next request there; after B evicts it, nothing predicts it', async () => {
    const [, b] = sims;
    await untilPublisherConnected(epp, b!);
    // Warm B directly, bypassing the gateway and the EPP. Its events reach the EPP's index.
    const probed = await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' });
    expect((await post(`${b!.url}/v1/chat/completions`, chat('Who owns a ticket?'))).status).toBe(200);
    await waitFor(async () => (await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' })) > probed, 'B\'s events to reach the EPP', HUNG);

    const served: string[] = [];
    const predictedBefore = await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total');
    for (let i = 0; i < 4; i++) {
      const r = await post(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, chat(`Question ${i}: which queue?`));
      expect(r.status).toBe(200);
      served.push(String(r.headers['x-gateway-destination-endpoint-served']));
      // The first request can only have been predicted from B's events (later ones also from its own speculative entry).
      if (i === 0) expect(await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total')).toBeGreaterThan(predictedBefore);
    }
    expect(served).toEqual(Array(4).fill(`127.0.0.1:${b!.port}`));
    expect(await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total')).toBeGreaterThan(predictedBefore);

    // Flood B directly with other prompts until it has evicted the manual (its cache holds 160 blocks).
    const appliedBefore = await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' });
    for (let i = 0; i < 6; i++) expect((await post(`${b!.url}/v1/chat/completions`, unrelated(i))).status).toBe(200);
    await waitFor(async () => (await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' })) > appliedBefore + 6, 'the flood\'s events (and B\'s removals) to be applied', HUNG);

    // The EPP no longer predicts the manual cached anywhere: a new request's predicted hit is nothing but what the
    // speculative entries of the four routed requests still cover (they lapse after 2 s; wait them out).
    await new Promise((r) => setTimeout(r, 2500));
    const before = await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total');
    expect((await post(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, chat('A fresh question?'))).status).toBe(200);
    expect(await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total')).toBe(before);
  });
});

describe('precise routing for LoRA adapters from events that name the adapter by lora_id only (vLLM #27728 to #27577)', () => {
  let path: LocalPath | undefined;

  beforeAll(async () => {
    // The scorer told the pods' --lora-modules order (vLLM numbers start-up adapters 1, 2, … in it: serving_models.py
    // @ v0.10.0), as the manifests write it from decode.loraAdapters. The simulator's 0.10 mode publishes lora_id, no
    // lora_name and no extra_keys, as vLLM does from #27728 (which fixed 0.10's failure on LoRA blocks) until #27577.
    path = await startPrecisePath('    loraAdapters: [sql, support]\n', { kvCacheBlocks: 400, servedModelNames: [MODEL], enableLora: true, maxLoras: 2, loraModules: ['sql', 'support'] });
  });

  afterAll(() => stopLocalPath(path));

  test('a prefix pod B cached for the support adapter draws that adapter\'s requests to B; the same tokens for another adapter predict nothing', async () => {
    const { epp, sims, gateway } = path!;
    const b = sims[1]!;
    await untilPublisherConnected(epp, b);
    const support = (question: string) => ({ ...chat(question), model: 'support' });
    const applied = await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' });
    expect((await post(`${b.url}/v1/chat/completions`, support('Who owns a ticket?'))).status).toBe(200);
    await waitFor(async () => (await metric(epp, 'kvroute_epp_kv_events_total', { outcome: 'applied' })) > applied, 'B\'s support-adapter events to reach the EPP', HUNG);

    // The sql adapter's request shares every token but was hashed by vLLM with another lora_int_id: nothing predicted.
    const beforeSql = await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total');
    expect((await post(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, { ...chat('Which queue?'), model: 'sql' })).status).toBe(200);
    expect(await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total')).toBe(beforeSql);

    const before = await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total');
    const r = await post(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, support('Which queue holds it?'));
    expect(r.status).toBe(200);
    expect(String(r.headers['x-gateway-destination-endpoint-served'])).toBe(`127.0.0.1:${b.port}`);
    expect(await metric(epp, 'kvroute_epp_precise_predicted_hit_tokens_total')).toBeGreaterThan(before);
  });
});
