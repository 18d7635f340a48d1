import * as path from 'path';
import { capacityBlocks, DEFAULT_ROUTING_OPTIONS, parseRoutingArgs, QUICK_OVERRIDES, ROUTING_USAGE, summarize } from '../src/routing-bench';
import type { RunRecord } from '../src/routing-report';
import type { BenchWorkload, WorkloadStats } from '../src/routing-workloads';

describe('bench:routing flags', () => {
  test('defaults, --help and --quick', () => {
    expect(parseRoutingArgs(['--help'])).toBeUndefined();
    expect(parseRoutingArgs(['--pods', '3', '-h'])).toBeUndefined();
    expect(parseRoutingArgs([])).toEqual(DEFAULT_ROUTING_OPTIONS);
    const quick = parseRoutingArgs(['--quick'])!;
    expect(quick.quick).toBe(true);
    expect(quick.highCache).toEqual(QUICK_OVERRIDES.highCache);
    // Other flags still apply, before or after --quick.
    const q2 = parseRoutingArgs(['--groups', '5', '--quick', '--policies', 'kvroute,sglang'])!;
    expect(q2.highCache).toEqual({ ...QUICK_OVERRIDES.highCache, groups: 5 });
    expect(q2.policies).toEqual(['kvroute', 'sglang']);
    expect(ROUTING_USAGE).toContain('--capacity-ratio');
  });

  test('values land in the options', () => {
    const o = parseRoutingArgs([
      '--pods', '3', '--workloads', 'multi-turn,high-cache', '--capacities', 'constrained', '--repeats', '2', '--capacity-ratio', '5.5',
      '--time-scale', '2', '--low-question-tokens', '300', '--sessions', '9', '--overhead-reps', '2', '--no-overhead', '--no-warm-up',
      '--sglang-abs-threshold', '8', '--sglang-rel-threshold', '2', '--sglang-cache-threshold', '0.5', '--sglang-miss-routing', 'smallest-tree', '--out', 'somewhere', '--quiet',
      '--poisson-groups', '30', '--rate', '7.5', '--poisson-output-tokens', '64', '--max-num-seqs', '32',
    ])!;
    expect(o.poisson).toEqual({ ...DEFAULT_ROUTING_OPTIONS.poisson, groups: 30, rate: 7.5, outputTokens: 64 });
    // Without --rate, poisson-groups is the ramp; --poisson-passes and --poisson-max-wall-rps shape it.
    expect(DEFAULT_ROUTING_OPTIONS.poisson.rate).toBeUndefined();
    expect(parseRoutingArgs(['--poisson-passes', '3', '--poisson-max-wall-rps', '12'])!.poisson)
      .toEqual({ ...DEFAULT_ROUTING_OPTIONS.poisson, passes: 3, maxWallRps: 12 });
    expect(o.sim.maxNumSeqs).toBe(32);
    expect(o.pods).toBe(3);
    expect(o.workloads).toEqual(['multi-turn', 'high-cache']);
    expect(o.capacities).toEqual(['constrained']);
    expect(o.repeats).toBe(2);
    expect(o.capacityRatio).toBe(5.5);
    expect(o.sim.timeScale).toBe(2);
    expect(o.lowCache.questionTokens).toBe(300);
    expect(o.chat.sessions).toBe(9);
    expect(o.overhead).toMatchObject({ enabled: false, reps: 2 });
    expect(o.warmUp).toBe(false);
    expect(o.sglang).toMatchObject({ balanceAbsThreshold: 8, balanceRelThreshold: 2, cacheThreshold: 0.5, missRouting: 'smallest-tree' });
    expect(o.outDir).toBe(path.resolve('somewhere'));
    expect(o.quiet).toBe(true);
    // The defaults were not touched.
    expect(DEFAULT_ROUTING_OPTIONS.sim.timeScale).toBe(1);
    expect(DEFAULT_ROUTING_OPTIONS.chat.sessions).toBe(16);
  });

  test.each<[string[], RegExp]>([
    [['--pods', '1'], /^--pods: must be an integer from 2 to 16, got "1"$/],
    [['--pods'], /^--pods: must be an integer from 2 to 16, got nothing$/],
    [['--concurrency', '2.5'], /^--concurrency: must be an integer/],
    [['--policies', 'kvroute,magic'], /^--policies: unknown value "magic"; known: kvroute, kvroute-precise, kvroute-untold, kvroute-precise-untold, kvroute-latency, kvroute-latency-active, kvroute-prefix-first, kvroute-active2, kvroute-sessions, kvroute-no-session-load, kvroute-no-lru, kvroute-soft, kvroute-filter, kvroute-precise-filter, kvroute-precise-prefix-first, kvroute-precise-latency4, kvroute-precise-64, kvroute-precise-no-session-load, kvroute-precise-lru, kvroute-prefill-priority, kvroute-session-load16, kvroute-session-headroom, kvroute-learnt-cpt, kvroute-page-queue, kvroute-slot-wait-all, kvroute-long-prefill-256, kvroute-own-prefill2, kvroute-own-prefill2-peers, kvroute-slot-wait-sessions, kvroute-slot-wait-imbalanced, kvroute-slot-wait-avoidable, kvroute-no-flow-control, kvroute-latency2, kvroute-no-keep-holder, kvroute-precise-no-keep-holder, approx-prefix, sglang, round-robin, round-robin-extproc, random, least-request, session-hash$/],
    [['--policies', 'kvroute,kvroute'], /lists a value twice/],
    [['--workloads', ''], /^--workloads: expects at least one of/],
    [['--capacities', 'huge'], /^--capacities: unknown value "huge"/],
    [['--capacity-ratio', '1'], /^--capacity-ratio: must be a number above 1/],
    [['--capacity-ratio', 'x'], /^--capacity-ratio: must be a number above 1/],
    [['--time-scale', '0'], /^--time-scale: must be a number above 0/],
    [['--sglang-cache-threshold', '1.5'], /^--sglang-cache-threshold: must be a number from 0 to 1/],
    [['--sglang-rel-threshold', '0.5'], /^--sglang-rel-threshold: must be a number from 1/],
    [['--sglang-miss-routing', 'random'], /^--sglang-miss-routing: must be one of least-load, smallest-tree, got "random"$/],
    [['--prompts-per-group', '1'], /^--prompts-per-group: must be at least 2/],
    [['--poisson-prompts-per-group', '1'], /^--poisson-prompts-per-group: must be at least 2/],
    [['--rate', '0'], /^--rate: must be a number above 0/],
    [['--poisson-passes', '0'], /^--poisson-passes: must be an integer/],
    [['--poisson-max-wall-rps', '0'], /^--poisson-max-wall-rps: must be a number above 0/],
    [['--ample-blocks', '100', '--constrained-blocks', '200'], /^--ample-blocks \(100\) must be larger than --constrained-blocks \(200\)$/],
    [['--out'], /^--out: expects a directory$/],
    [['--pods', '3', '--pods', '4'], /^--pods: given more than once$/],
    [['--nope'], /^unknown flag --nope; see --help$/],
    [['stray'], /^unexpected argument "stray"/],
  ])('%j is refused', (argv, message) => {
    expect(() => parseRoutingArgs(argv)).toThrow(message);
  });
});

describe('capacities', () => {
  const stats = (workingSetBlocks: number, maxSequenceTokens: number): WorkloadStats => ({
    requests: 10, promptTokens: 0, meanPromptTokens: 0, maxPromptTokens: 0, maxSequenceTokens, workingSetBlocks, reusedBlocks: 0, replayHitRate: 0,
  });
  const w = { name: 'high-cache', kind: 'shared-prefix' } as BenchWorkload;

  test('constrained = working set / ratio; ample holds it all plus the live requests', () => {
    const c = capacityBlocks(w, stats(1664, 1119), DEFAULT_ROUTING_OPTIONS);
    expect(c.constrained).toBe(416);
    expect(c.ample).toBe(Math.ceil(1664 * 1.25) + 16 * Math.ceil(1119 / 16));
    expect(capacityBlocks(w, stats(100, 100), DEFAULT_ROUTING_OPTIONS).ample).toBe(1024);
    expect(capacityBlocks(w, stats(1664, 1119), { ...DEFAULT_ROUTING_OPTIONS, ampleBlocks: 5000, constrainedBlocks: 300 })).toEqual({ ample: 5000, constrained: 300 });
  });

  test('a constrained capacity that cannot hold two sequences is an error that says what to change', () => {
    expect(() => capacityBlocks(w, stats(400, 1119), DEFAULT_ROUTING_OPTIONS))
      .toThrow('high-cache: constrained KV capacity of 100 blocks per pod cannot hold two of its longest sequences (1119 tokens = 70 blocks each); '
        + 'the working set is 400 blocks, so lower --capacity-ratio (4) or make the workload larger');
  });
});

describe('summaries', () => {
  const run = (policy: string, repeat: number, hitRate: number, ttft: number, rps: number, ok = 10): RunRecord => ({
    policy, repeat, requests: 10, succeeded: ok, hitRate, ttftP50: ttft, ttftP90: ttft * 2, throughputRps: rps, wallSeconds: 1, balance: 1,
    perEndpoint: {}, failures: [],
  });

  test('medians over repeats and ratios against the baseline', () => {
    const runs = [
      run('round-robin', 0, 0.2, 0.4, 10), run('round-robin', 1, 0.3, 0.6, 12), run('round-robin', 2, 0.25, 0.5, 11),
      run('kvroute', 0, 0.8, 0.1, 20), run('kvroute', 1, 0.7, 0.3, 22, 9), run('kvroute', 2, 0.75, 0.2, 21),
    ];
    const [kv, rr] = summarize(['kvroute', 'round-robin'], runs, 0.8, 'round-robin');
    expect(rr).toMatchObject({ policy: 'round-robin', runs: 3, hitRate: 0.25, ttftP50: 0.5, throughputRps: 11, successRate: 1 });
    expect(kv).toMatchObject({ policy: 'kvroute', hitRate: 0.75, ttftP50: 0.2, ttftP90: 0.4, throughputRps: 21, successRate: 1 });
    expect(kv.hitRateOfBest).toBeCloseTo(0.75 / 0.8, 12);
    expect(kv.vsBaseline.hitRate).toBeCloseTo(3, 12);
    expect(kv.vsBaseline.ttftP50).toBeCloseTo(0.4, 12);
    expect(kv.vsBaseline.throughput).toBeCloseTo(21 / 11, 12);
    expect(rr.vsBaseline.hitRate).toBe(1);
  });

  test('--repeats 2: the median of the two runs is their mean (np.median, as vLLM serve.py @ 009e6d4 calculate_metrics), not the lower one', () => {
    const [kv] = summarize(['kvroute'], [run('kvroute', 0, 0.6, 1.0, 10), run('kvroute', 1, 0.8, 3.0, 20)], null, 'kvroute');
    expect(kv!.ttftP50).toBeCloseTo(2.0, 9);
    expect(kv!.hitRate).toBeCloseTo(0.7, 9);
    expect(kv!.throughputRps).toBeCloseTo(15, 9);
  });
});
