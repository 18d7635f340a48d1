import { CharactersPerTokenEstimate, DEFAULT_CHARACTERS_PER_TOKEN_OPTIONS } from '../src/scheduling/plugins/characters-per-token';

/** Routes `n` prompts of `characters` each. */
function route(estimate: CharactersPerTokenEstimate, n: number, characters: number): void {
  for (let i = 0; i < n; i++) estimate.recordRouted(characters);
}

describe('CharactersPerTokenEstimate (vllm:request_prompt_tokens, vllm/v1/metrics/loggers.py @ v0.10.0)', () => {
  it('is the mean characters routed over the mean prompt tokens the pods finished', () => {
    const estimate = new CharactersPerTokenEstimate();
    estimate.observePod('a', 0, 0);
    estimate.observePod('b', 0, 0);
    route(estimate, 100, 4800);
    // 60 requests of 1,000 tokens on a, 40 on b.
    estimate.observePod('a', 60, 60_000);
    estimate.observePod('b', 40, 40_000);
    expect(estimate.value()).toBeCloseTo(4.8, 10);
    expect(estimate.stats()).toEqual({ routedRequests: 100, meanCharacters: 4800, servedRequests: 100, meanTokens: 1000 });
  });

  it('keeps GIE\'s 4 until both sides have counted 16 requests', () => {
    const estimate = new CharactersPerTokenEstimate();
    estimate.observePod('a', 0, 0);
    route(estimate, 15, 600);
    estimate.observePod('a', 200, 200 * 100);
    expect(estimate.value()).toBe(4);
    route(estimate, 1, 600);
    expect(estimate.value()).toBeCloseTo(6, 10);
    const fewServed = new CharactersPerTokenEstimate();
    fewServed.observePod('a', 0, 0);
    route(fewServed, 500, 600);
    fewServed.observePod('a', 15, 1500);
    expect(fewServed.value()).toBe(4);
  });

  it('with several EPP replicas each routing part of what the pods serve, the ratio holds (means, not totals)', () => {
    const estimate = new CharactersPerTokenEstimate();
    estimate.observePod('a', 0, 0);
    route(estimate, 100, 2000); // this replica's half
    estimate.observePod('a', 200, 200 * 1000); // both replicas' requests
    expect(estimate.value()).toBeCloseTo(2, 10);
  });

  it('takes a pod\'s first reading as its baseline, and a count that went down (vLLM restarted) as a new one', () => {
    const estimate = new CharactersPerTokenEstimate();
    // A pod that served 10,000 short requests before this EPP started does not count them.
    estimate.observePod('a', 10_000, 10_000 * 50);
    route(estimate, 100, 4000);
    estimate.observePod('a', 10_100, 10_000 * 50 + 100 * 1000);
    expect(estimate.value()).toBeCloseTo(4, 10);
    // Restarted: 30 requests since; not a negative delta.
    estimate.observePod('a', 30, 30 * 500);
    expect(estimate.stats().servedRequests).toBe(100);
    estimate.observePod('a', 130, 30 * 500 + 100 * 1000);
    expect(estimate.stats()).toMatchObject({ servedRequests: 200, meanTokens: 1000 });
    // Forgotten (the pod left), its next reading is a baseline again.
    estimate.forget('a');
    estimate.observePod('a', 5000, 5000 * 10);
    expect(estimate.stats()).toMatchObject({ servedRequests: 200, meanTokens: 1000 });
  });

  it('follows a change of workload within a few windows, as both sides are halved together', () => {
    const estimate = new CharactersPerTokenEstimate();
    let count = 0;
    let sum = 0;
    estimate.observePod('a', count, sum);
    const serve = (n: number, tokens: number) => {
      count += n;
      sum += n * tokens;
      estimate.observePod('a', count, sum);
    };
    for (let i = 0; i < 20; i++) {
      route(estimate, 500, 4000);
      serve(500, 1000);
    }
    expect(estimate.value()).toBeCloseTo(4, 10);
    // Code: 2 characters a token from now on.
    for (let i = 0; i < 40; i++) {
      route(estimate, 500, 2000);
      serve(500, 1000);
    }
    expect(estimate.value()).toBeGreaterThan(1.95);
    expect(estimate.value()).toBeLessThan(2.1);
    expect(estimate.stats().routedRequests).toBeLessThanOrEqual(DEFAULT_CHARACTERS_PER_TOKEN_OPTIONS.window);
  });

  it('clamps to [0.25, 16] and ignores prompts without characters and unreadable counters', () => {
    const dense = new CharactersPerTokenEstimate();
    dense.observePod('a', 0, 0);
    route(dense, 100, 10);
    dense.observePod('a', 100, 100 * 1000);
    expect(dense.value()).toBe(0.25);
    const sparse = new CharactersPerTokenEstimate();
    sparse.observePod('a', 0, 0);
    route(sparse, 100, 100_000);
    sparse.observePod('a', 100, 100 * 10);
    expect(sparse.value()).toBe(16);
    const empty = new CharactersPerTokenEstimate();
    route(empty, 100, 0);
    empty.observePod('a', undefined, undefined);
    empty.observePod('a', Number.NaN, 5);
    expect(empty.stats()).toEqual({ routedRequests: 0, meanCharacters: 0, servedRequests: 0, meanTokens: 0 });
  });
});
