/**
 * A short end-to-end run of the routing benchmark through the real processes (built simulators, EPP and gateway; the
 * SGLang-style director behind this process's ext_proc server): two policies on a tiny shared-prefix workload, plus a
 * one-repetition overhead check, in seconds.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ENTRY, stopAll } from '../src/processes';
import { DEFAULT_ROUTING_OPTIONS, routingExitStatus, runRoutingBench, type RoutingBenchOptions } from '../src/routing-bench';

const built = Object.values(ENTRY).every((f) => fs.existsSync(f));

(built ? describe : describe.skip)('bench:routing, end to end', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-routing-'));
  afterAll(async () => {
    await stopAll();
    fs.rmSync(out, { recursive: true, force: true });
  });

  test('the SGLang-style director beats round robin on a shared-prefix set, and the report is written', async () => {
    const options: RoutingBenchOptions = {
      ...DEFAULT_ROUTING_OPTIONS,
      pods: 2,
      concurrency: 3,
      workloads: ['high-cache'],
      capacities: ['ample'],
      policies: ['sglang', 'round-robin'],
      outputTokens: 4,
      highCache: { groups: 4, promptsPerGroup: 3, systemTokens: 160, questionTokens: 16 },
      sim: { ...DEFAULT_ROUTING_OPTIONS.sim, timeScale: 4 },
      overhead: { enabled: true, requests: 6, concurrency: 2, reps: 1, promptTokens: 64, outputTokens: 2 },
      warmUp: false,
      // The matrix only: the load ladder has its own end-to-end test (load-ladder.test.ts).
      only: 'matrix',
      outDir: out,
      quiet: true,
    };
    // An earlier run's results, which a reader still holds (a hard link stands for it): the new results replace the
    // name by a rename (bench/src/out-files.ts), so the earlier file is never rewritten in place, never half-written.
    fs.writeFileSync(path.join(out, 'results.json'), '{"earlier":true}\n');
    fs.linkSync(path.join(out, 'results.json'), path.join(out, 'earlier-results.json'));
    const report = await runRoutingBench(options);
    expect(fs.readFileSync(path.join(out, 'earlier-results.json'), 'utf8')).toBe('{"earlier":true}\n');
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(report.cells).toHaveLength(1);
    const cell = report.cells[0];
    const [sglang, rr] = cell.policies;
    expect(sglang.policy).toBe('sglang');
    expect(rr.policy).toBe('round-robin');
    expect(sglang.successRate).toBe(1);
    expect(rr.successRate).toBe(1);
    // Each group of 3 lands on one pod: every group's prefix is computed once, the best possible.
    expect(cell.best).toBeGreaterThan(0.5);
    expect(sglang.hitRate).toBeCloseTo(cell.best!, 2);
    expect(sglang.hitRate).toBeGreaterThan(rr.hitRate);
    expect(rr.vsBaseline.hitRate).toBe(1);
    // The analytic bounds come from the measured shape and bracket what was measured.
    expect(cell.bounds!.hStar).toBeCloseTo(cell.best!, 2);
    expect(cell.bounds!.hRR).toBeLessThan(cell.bounds!.hStar);
    // The director reports its own decisions.
    const sglangRun = cell.runs.find((r) => r.policy === 'sglang')!;
    const decisions = (sglangRun.director as { decisions: Record<string, number> }).decisions;
    expect(decisions['prefix-match'] + decisions['least-load'] + decisions.imbalanced).toBe(12);
    expect(decisions['smallest-tree']).toBe(0);
    // The overhead check ran every path.
    expect(report.overhead!.variants.map((v) => v.name)).toEqual(['gateway round-robin', 'gateway + kvroute EPP', 'gateway + ext_proc RR director']);
    for (const v of report.overhead!.variants) expect(v.successRate).toBe(1);
    // Every cell served: the command's exit status is 0.
    expect(routingExitStatus(report, (line) => { throw new Error(`unexpected: ${line}`); })).toBe(0);

    const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(json.cells[0].policies).toHaveLength(2);
    expect(json.workloads[0].stats.workingSetBlocks).toBeGreaterThan(0);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('h_RR');
    expect(html).toContain('EPP overhead');
  }, 120_000);

  test('kvroute-precise routes an open-loop Poisson set from the pods\' KV events, as well as the best any router could', async () => {
    const options: RoutingBenchOptions = {
      ...DEFAULT_ROUTING_OPTIONS,
      pods: 2,
      workloads: ['poisson-groups'],
      capacities: ['ample'],
      // The precise scorer from the pods' events, without the default's session-load-scorer: every request here is a
      // user's first (its own x-session-id), which that scorer spreads by the sessions each pod carries (on 12
      // requests over 2 pods it read 0.49 of the prompt tokens cached against the oracle's 0.56 in two runs of three).
      policies: ['kvroute-precise-no-session-load', 'round-robin'],
      poisson: { groups: 4, promptsPerGroup: 3, systemTokens: 160, questionTokens: 16, outputTokens: 4, rate: 20, passes: 1, maxWallRps: 24 },
      sim: { ...DEFAULT_ROUTING_OPTIONS.sim, timeScale: 4 },
      overhead: { ...DEFAULT_ROUTING_OPTIONS.overhead, enabled: false },
      warmUp: false,
      // The matrix only: the load ladder has its own end-to-end test (load-ladder.test.ts).
      only: 'matrix',
      outDir: out,
      quiet: true,
    };
    const report = await runRoutingBench(options);
    expect(report.workloads[0]!.arrivalRate).toBe(20);
    const cell = report.cells[0]!;
    const [precise, rr] = cell.policies;
    expect(precise!.policy).toBe('kvroute-precise-no-session-load');
    expect(precise!.successRate).toBe(1);
    expect(rr!.successRate).toBe(1);
    expect(precise!.hitRate).toBeGreaterThan(rr!.hitRate);
    expect(precise!.hitRate).toBeGreaterThanOrEqual(0.9 * cell.best!);
    // The EPP routed from the pods' events: it applied them, saw no gap, and predicted hits the pods then counted.
    const stats = cell.runs.find((r) => r.policy === 'kvroute-precise-no-session-load')!.precise!;
    expect(stats.eventsApplied).toBeGreaterThan(0);
    expect(stats.eventsApplied).toBe(stats.eventsReceived);
    expect(stats.sequenceGaps).toBe(0);
    expect(stats.predictedHitRate).toBeGreaterThan(0);
    expect(cell.runs.find((r) => r.policy === 'round-robin')!.precise).toBeUndefined();
  }, 120_000);

  test('poisson-groups as llm-d runs it: each stage sends the prompts from the first, Poisson stages ramped to the pool\'s saturation, TTFT per stage, goals checked', async () => {
    const options: RoutingBenchOptions = {
      ...DEFAULT_ROUTING_OPTIONS,
      pods: 2,
      workloads: ['poisson-groups'],
      capacities: ['constrained'],
      capacityRatio: 2,
      policies: ['kvroute-precise', 'kvroute'],
      // 12 passes: each stage sends the list from its first prompt (inference-perf v0.6.1 run_stage), and at 144
      // requests the top stages (12-13) are long enough to send all 12 prompts, so the working set is the whole list's.
      poisson: { groups: 4, promptsPerGroup: 3, systemTokens: 160, questionTokens: 16, outputTokens: 4, passes: 12, maxWallRps: 30 },
      overhead: { ...DEFAULT_ROUTING_OPTIONS.overhead, enabled: false },
      warmUp: false,
      only: 'matrix',
      outDir: out,
      quiet: true,
    };
    const report = await runRoutingBench(options);
    const cell = report.cells[0]!;
    // The load was set from the pool before any policy ran: the saturation of the ideal placement, the top within the
    // wall-clock budget.
    expect(cell.ramp!.stages).toHaveLength(17);
    expect(cell.ramp!.capacity.topRps).toBeGreaterThan(0);
    expect(cell.ramp!.stages[16]!.rateRps).toBeCloseTo(cell.ramp!.capacity.topRps, 9);
    expect(cell.ramp!.stages[16]!.rateRps * cell.ramp!.timeScale).toBeLessThanOrEqual(30 + 1e-9);
    // Each stage sends int(rate × duration) of the 4 × 3 × 12 = 144 requests (inference-perf run_stage @ 3788ed5): a few fewer.
    const offered = cell.ramp!.stages.reduce((a, s) => a + s.requests, 0);
    expect(offered).toBeLessThanOrEqual(144);
    expect(offered).toBeGreaterThan(144 - 17);
    for (const run of cell.runs) {
      expect(run.requests).toBe(offered);
      // Every request belongs to the stage it was sent in; no session header, so the session filter never pins a user.
      expect(run.stages!.map((s) => s.requests)).toEqual(cell.ramp!.stages.map((s) => s.requests));
      expect(run.ttftP99).toBeGreaterThanOrEqual(run.ttftP90!);
    }
    for (const p of cell.policies) expect(p.stageP90s).toHaveLength(17);
    expect(cell.goals).toMatchObject({ p90VsSglang: null, p90GoalMet: null });
    expect(cell.goals!.p90VsApproximate).toBeGreaterThan(0);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('ramp:');
  }, 240_000);
});
