/**
 * `kvroute-bench burst`, short: the workload is deterministic, the flags are checked, the summaries are what the table
 * says, and one tiny run goes through real simulated pods, the EPP and the gateway. Numbers are the benchmark's job
 * (`npm run bench:burst`), not asserted here.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { burstTable, burstWorkload, DEFAULT_BURST_OPTIONS, parseBurstArgs, runBurstBench, summarizeBurstPolicy, summarizeBurstRound } from '../src/burst-bench';
import type { ChatResult } from '../src/client';

jest.setTimeout(180_000);

describe('burst bench', () => {
  test('the workload: deterministic from the seed, one system prompt, a distinct turn per session and round', () => {
    const o = { sessions: 4, rounds: 2, systemWords: 50, userWords: 10 };
    const a = burstWorkload(o, 1);
    expect(burstWorkload(o, 1)).toEqual(a);
    expect(burstWorkload(o, 2).system).not.toBe(a.system);
    expect(a.turns).toHaveLength(4);
    expect(new Set(a.turns.flat()).size).toBe(8);
    expect(a.turns[3]![1]).toMatch(/^Session 3 round 1: /);
  });

  test('flags: defaults, the quick run, bad values refused by name', () => {
    expect(parseBurstArgs([])).toEqual(DEFAULT_BURST_OPTIONS);
    expect(DEFAULT_BURST_OPTIONS).toMatchObject({ sessions: 48, rounds: 3, maxNumSeqs: 16, seeds: [1, 2, 3] });
    expect(parseBurstArgs(['--quick'])).toMatchObject({ sessions: 16, rounds: 2, seeds: [1] });
    expect(parseBurstArgs(['--seeds', '4,5', '--max-num-seqs', '8', '--policies', 'kvroute,round-robin'])).toMatchObject({ seeds: [4, 5], maxNumSeqs: 8, policies: ['kvroute', 'round-robin'] });
    expect(parseBurstArgs(['--help'])).toBeUndefined();
    expect(() => parseBurstArgs(['--seeds', '1,x'])).toThrow('--seeds: must be an integer >= 0, got "x"');
    expect(() => parseBurstArgs(['--max-num-seqs', '0'])).toThrow(/^--max-num-seqs: must be an integer from 1 to 65536/);
    expect(() => parseBurstArgs(['--policies', 'nope'])).toThrow(/^--policies: /);
  });

  test('summaries: TTFT in simulated seconds, the responses\' hit rate, requests per pod, medians over seeds, the fullest pod\'s share', () => {
    const pods = ['a:1', 'b:1'];
    const r = (servedBy: string, ttft: number, cached: number): ChatResult => ({ ok: true, status: 200, servedBy, ttft, e2e: ttft, reply: '', promptTokens: 100, cachedTokens: cached });
    const round = summarizeBurstRound([r('a:1', 0.1, 90), r('a:1', 0.3, 90), r('b:1', 0.2, 0), { ok: false, status: 429, e2e: 0, reply: '' }], pods, 2);
    expect(round).toMatchObject({ ok: 3, errors: 1, perPod: [2, 1] });
    expect(round.ttftP50).toBeCloseTo(0.4, 12);
    expect(round.hitRate).toBeCloseTo(0.6, 12);
    const policy = summarizeBurstPolicy('p', [{ seed: 1, rounds: [round] }, { seed: 2, rounds: [{ ...round, ttftP90: 1, perPod: [3, 0] }] }], 3);
    expect(policy.maxPodShare).toBe(1);
    expect(policy.errors).toBe(2);
    // numpy's percentile (analysis.ts quantile): p90 of 0.2, 0.4, 0.6 s is 0.56 s, and the median of two seeds their mean.
    expect(round.ttftP90).toBeCloseTo(0.56, 12);
    expect(policy.medianP90[0]).toBeCloseTo(0.78, 12);
    expect(burstTable([policy], 1)).toContain('| p |');
  });

  test('a tiny run through pods, EPP and gateway: every request answered, each session on one pod for all its rounds', async () => {
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'burst-bench-'));
    const lines: string[] = [];
    const report = await runBurstBench({
      ...DEFAULT_BURST_OPTIONS, pods: 2, sessions: 6, rounds: 2, systemWords: 200, userWords: 10, outputTokens: 4, maxNumSeqs: 2,
      gapMs: 200, seeds: [1], timeScale: 2, policies: ['kvroute', 'round-robin'], outDir,
    }, (l) => lines.push(l));
    expect(report.results.map((r) => [r.policy, r.errors])).toEqual([['kvroute', 0], ['round-robin', 0]]);
    for (const result of report.results) {
      const [run] = result.runs;
      expect(run!.rounds.map((x) => x.ok)).toEqual([6, 6]);
      expect(run!.rounds.map((x) => x.perPod.reduce((a, b) => a + b, 0))).toEqual([6, 6]);
    }
    // kvroute's hard session affinity keeps every session where its first turn went.
    const kvroute = report.results[0]!.runs[0]!;
    expect(kvroute.rounds[1]!.perPod).toEqual(kvroute.rounds[0]!.perPod);
    expect(kvroute.rounds[1]!.hitRate!).toBeGreaterThan(0.5);
    expect(JSON.parse(fs.readFileSync(path.join(outDir, 'burst-results.json'), 'utf8')).results).toHaveLength(2);
    expect(lines.join('\n')).toContain('| round-robin |');
  });
});
