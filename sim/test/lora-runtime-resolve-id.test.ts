/**
 * With VLLM_ALLOW_RUNTIME_LORA_UPDATING, a request naming a model vLLM does not serve goes through
 * OpenAIServingModels.resolve_lora before its 404 (serving_engine.py `_check_model` @ v0.10.0:
 * `envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING and request.model and (load_result := await self.models.resolve_lora(...))`),
 * and resolve_lora takes `unique_id = self.lora_id_counter.inc(1)` before it tries the resolvers (none registered: the
 * 404 "LoRA adapter x does not exist", which _check_model turns into "The model `x` does not exist."). So the id is
 * spent: the next adapter loaded through /v1/load_lora_adapter gets lora_int_id 2, not 1, which vLLM reports as
 * BlockStored.lora_id (and, up to #27577, hashes into every block of the adapter's requests).
 * Real HTTP and ZMQ on loopback.
 */
import { decode } from '@msgpack/msgpack';
import { ManualClock } from '../src/clock';
import { startSimulator } from '../src/server';
import { http, waitFor } from './helpers';
import { KvEventCollector } from './kv-event-collector';

const raw = (payload: Uint8Array): unknown[] => decode(payload, { useBigInt64: true }) as unknown[];
const PROMPT = Array.from({ length: 40 }, (_, i) => 1 + i);

/**
 * The lora_id BlockStored reports for the first adapter loaded at run time, after `before` has sent its requests.
 */
async function firstRuntimeLoraId(encoding: 'map' | 'positional', before: (url: string) => Promise<void>): Promise<number> {
  const clock = new ManualClock();
  const sim = await startSimulator({
    port: 0,
    clock,
    prefixCachingHashAlgo: 'sha256_cbor',
    pythonHashSeed: '42',
    ...(encoding === 'map' ? { kvEventsEncoding: 'map' as const } : {}),
    enableLora: true,
    allowRuntimeLoraUpdating: true,
    kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*' },
  });
  const sub = new KvEventCollector('');
  sub.sub.connect(sim.kvEvents!.endpoint);
  try {
    await sub.ready();
    await before(sim.url);
    const load = await http(sim.url, 'POST', '/v1/load_lora_adapter', { lora_name: 'sql-lora', lora_path: '/adapters/sql' });
    expect(load.status).toBe(200);
    const r = http(sim.url, 'POST', '/v1/completions', { model: 'sql-lora', prompt: PROMPT, max_tokens: 1 });
    await waitFor(() => sim.engine.stats().running + sim.engine.stats().waiting > 0, 'the request to reach the engine');
    clock.runAll();
    expect((await r).status).toBe(200);
    await waitFor(() => sub.got.length >= 1, 'the LoRA batch');
    const [, events] = raw(sub.got[0]!.payload) as [number, unknown[]];
    const stored = events[0]!;
    // map: {type, ..., lora_id}; positional 0.10: ['BlockStored', hashes, parent, tokens, block_size, lora_id].
    return Number(encoding === 'map' ? (stored as Record<string, unknown>).lora_id : (stored as unknown[])[5]);
  } finally {
    await sub.close();
    await sim.close();
  }
}

describe('resolve_lora spends a lora_int_id on an unknown model (VLLM_ALLOW_RUNTIME_LORA_UPDATING)', () => {
  for (const encoding of ['map', 'positional'] as const) {
    it(`${encoding}: after a 404 for an unknown model, the first adapter loaded at run time is lora_id 2`, async () => {
      const loraId = await firstRuntimeLoraId(encoding, async (url) => {
        // An unknown model: 404 as vLLM answers it (resolve_lora ran, and took id 1).
        const nope = await http(url, 'POST', '/v1/completions', { model: 'nope', prompt: PROMPT, max_tokens: 1 });
        expect(nope.status).toBe(404);
      });
      expect(loraId).toBe(2);
    });
  }

  // vLLM v0.10.0 api_server.py `detokenize(request: DetokenizeRequest, raw_request)`: FastAPI validates the body
  // (protocol.py DetokenizeRequest, `tokens: list[int]` required) before serving_tokenization.py create_detokenize's
  // `_check_model`, so a body without tokens is the body's 400 whatever its model, and resolve_lora never runs.
  it('a /detokenize body without tokens naming an unknown model is a 400 that spends no id: the first adapter is lora_id 1', async () => {
    const loraId = await firstRuntimeLoraId('map', async (url) => {
      const r = await http(url, 'POST', '/detokenize', { model: 'nope' });
      expect(r.status).toBe(400);
      // sha256_cbor simulates 0.10.2, which nests the error under "error".
      expect(r.json().error.message).toBe("[{'type': 'missing', 'loc': ('body', 'tokens'), 'msg': 'Field required', 'input': {'model': 'nope'}}]");
    });
    expect(loraId).toBe(1);
  });
});
