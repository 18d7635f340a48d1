/**
 * Which prompts each stage of the poisson-groups ramp sends, as inference-perf v0.6.1 sends them.
 *
 * Upstream: inference_perf/loadgen/load_generator.py @ v0.6.1 `run_stage` calls `self.datagen.get_data()` afresh for
 * every stage (the single-process `run` does the same), inference_perf/datagen/shared_prefix_datagen.py @ v0.6.1
 * `get_data` is a generator that starts at `i = 0` each time it is called, and `load_lazy_data` takes
 * `prompts[data_index % len(prompts)]` of the once-shuffled list. So request k of every stage is prompt k mod (G × P):
 * every stage starts again from the list's first prompt. (Found by review rev-iperf; before, the stages went on
 * through one list cycled `passes` times.)
 */
import { stagePrompts } from '../src/poisson-ramp';
import { buildBenchWorkload, DEFAULT_ROUTING_OPTIONS } from '../src/routing-bench';
import { buildSharedPrefix, type TokenizerLike } from '../src/routing-workloads';

/** One token per character (the neighbouring tests' stand-in tokenizer). */
const charTokenizer: TokenizerLike = {
  count: (t) => t.length,
  chatTokens: (messages) => Array.from(messages.map((m) => m.content).join(''), (c) => c.charCodeAt(0)),
  reply: (n) => ({ ids: Array(n).fill(1), text: 'x'.repeat(n) }),
};

test('each ramp stage sends prompts from the start of the shuffled list, as inference-perf re-creates get_data() per stage', () => {
  const o = DEFAULT_ROUTING_OPTIONS;
  const { rate: _, passes, maxWallRps: __, ...size } = o.poisson;
  const w = buildBenchWorkload('poisson-groups', o, charTokenizer);
  const list = buildSharedPrefix('poisson-groups', { seed: o.seed, ...size }, charTokenizer).requests.map((m) => JSON.stringify(m));
  const distinct = list.length;
  expect(distinct).toBe(o.poisson.groups * o.poisson.promptsPerGroup);
  const stageOf = w.ramp!.arrivals.stageOfRequest;
  const sentByStage = new Map<number, string[]>();
  w.requests.forEach((m, i) => {
    const s = stageOf[i]!;
    if (!sentByStage.has(s)) sentByStage.set(s, []);
    sentByStage.get(s)!.push(JSON.stringify(m));
  });
  // Upstream's expectation: stage s's k-th request is list[k mod (G × P)].
  const mismatched: string[] = [];
  for (const [s, sent] of sentByStage) {
    const firstOff = sent.findIndex((m, k) => m !== list[k % distinct]);
    if (firstOff >= 0) mismatched.push(`stage ${s}: request ${firstOff} of ${sent.length} is not prompt ${firstOff % distinct} of the list`);
  }
  expect(mismatched).toEqual([]);
  expect(sentByStage.size).toBe(w.ramp!.stages.length);
  // The stages' int(rate × duration) add up to a few requests short of passes × G × P; groups follow their prompts.
  expect(w.requests.length).toBeLessThanOrEqual(passes * distinct);
  expect(w.requests.length).toBeGreaterThan(passes * distinct - w.ramp!.stages.length);
  expect(w.workload.rag.map((p) => p.messages)).toEqual(w.requests);
  expect(w.workload.rag.every((p) => p.headers === undefined)).toBe(true);
  expect(w.groupOf).toEqual(w.workload.rag.map((p) => p.document));
});

test('a stage longer than the list wraps around to its first prompt, as load_lazy_data takes data_index mod len(prompts)', () => {
  expect(stagePrompts([0, 0, 0, 1, 1, 1, 1, 1, 2], 3)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 0]);
});
