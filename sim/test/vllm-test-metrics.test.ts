import { startSimulator, type Simulator } from '../src/server';
import { http, metricValue, parsePrometheus } from './helpers';

// vllm-project/vllm tests/entrypoints/openai/test_metrics.py @ v0.10.0, test_metrics_counts: _NUM_REQUESTS sequential
// completions of one tokenized prompt with max_tokens=_NUM_GENERATION_TOKENS_PER_REQUEST, then EXPECTED_VALUES.
// Plus the prefix-cache counters those requests produce (kv_cache_manager.get_computed_blocks @ v0.10.0:
// queries += num_tokens, hits += block-aligned hit capped at num_tokens - 1). vllm:generation_tokens_total is N × G
// here, one per generated token as vllm:request_generation_tokens_sum; upstream's table writes
// _NUM_REQUESTS * _NUM_PROMPT_TOKENS_PER_REQUEST for it.
const N = 10;
const G = 10;
const PROMPT = Array.from({ length: 40 }, (_, i) => 1000 + i * 37);
const P = PROMPT.length;

describe('vLLM tests/entrypoints/openai/test_metrics.py @ v0.10.0 over HTTP', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, timeScale: 1000, model: 'm', kvCacheBlocks: 4096 });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('test_metrics_counts: EXPECTED_VALUES and the prefix-cache counters after 10 sequential requests', async () => {
    for (let i = 0; i < N; i++) {
      const r = await http(sim.url, 'POST', '/v1/completions', { model: 'm', prompt: PROMPT, max_tokens: G, ignore_eos: true });
      expect(r.status).toBe(200);
      expect(r.json().usage.prompt_tokens).toBe(P);
    }
    const s = parsePrometheus((await http(sim.url, 'GET', '/metrics')).text);
    const got: Record<string, number> = {};
    const want: Record<string, number> = {
      'vllm:time_to_first_token_seconds_count': N,
      'vllm:time_per_output_token_seconds_count': N * (G - 1),
      'vllm:e2e_request_latency_seconds_count': N,
      'vllm:request_queue_time_seconds_count': N,
      'vllm:request_inference_time_seconds_count': N,
      'vllm:request_prefill_time_seconds_count': N,
      'vllm:request_decode_time_seconds_count': N,
      'vllm:request_prompt_tokens_sum': N * P,
      'vllm:request_prompt_tokens_count': N,
      'vllm:request_generation_tokens_sum': N * G,
      'vllm:request_generation_tokens_count': N,
      'vllm:request_params_n_count': N,
      'vllm:request_params_max_tokens_sum': N * G,
      'vllm:request_params_max_tokens_count': N,
      'vllm:iteration_tokens_total_sum': N * (P + G),
      'vllm:iteration_tokens_total_count': N * G,
      'vllm:prompt_tokens_total': N * P,
      'vllm:generation_tokens_total': N * G,
      'vllm:prefix_cache_queries_total': N * P,
      'vllm:prefix_cache_hits_total': (N - 1) * Math.floor((P - 1) / 16) * 16,
      'vllm:num_preemptions_total': 0,
    };
    for (const k of Object.keys(want)) got[k] = metricValue(s, k);
    got['success'] = metricValue(s, 'vllm:request_success_total', { finished_reason: 'length' });
    want['success'] = N;
    expect(got).toEqual(want);
  });
});
