/**
 * `npm run bench:routing` exits 1 once its reports are written when a policy had no request succeed in a cell, so a CI
 * job running it fails on a broken build rather than passing with a table of failures; a cell with any success keeps
 * exit 0 (bench/src/routing-bench.ts routingExitStatus, which routingCommand returns).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ENTRY, stopAll } from '../src/processes';
import { DEFAULT_ROUTING_OPTIONS, routingExitStatus, runRoutingBench, type RoutingBenchOptions } from '../src/routing-bench';
import type { RoutingReport } from '../src/routing-report';

const built = Object.values(ENTRY).every((f) => fs.existsSync(f));

(built ? describe : describe.skip)('bench:routing exit status, from a real run', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-routing-exit-'));
  afterAll(async () => {
    await stopAll();
    fs.rmSync(out, { recursive: true, force: true });
  });

  test('every request of a cell failed (prompts longer than the pods\' --max-model-len: each a 400): reports written, exit 1 naming the cell; one success in it: exit 0', async () => {
    const options: RoutingBenchOptions = {
      ...DEFAULT_ROUTING_OPTIONS,
      pods: 2,
      concurrency: 2,
      workloads: ['high-cache'],
      capacities: ['ample'],
      policies: ['round-robin'],
      repeats: 1,
      outputTokens: 4,
      highCache: { groups: 2, promptsPerGroup: 2, systemTokens: 160, questionTokens: 16 },
      // vLLM answers 400 to a prompt longer than max_model_len, as the simulator does.
      sim: { ...DEFAULT_ROUTING_OPTIONS.sim, timeScale: 4, maxModelLen: 64 },
      overhead: { ...DEFAULT_ROUTING_OPTIONS.overhead, enabled: false },
      warmUp: false,
      only: 'matrix',
      outDir: out,
      quiet: true,
    };
    const report = await runRoutingBench(options);
    expect(report.cells[0]!.runs.map((r) => [r.requests, r.succeeded])).toEqual([[4, 0]]);
    expect(report.cells[0]!.runs[0]!.failures[0]!.status).toBe(400);
    // The reports come first: a CI job keeps them as artifacts of the failed run.
    expect(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).cells).toHaveLength(1);
    expect(fs.existsSync(path.join(out, 'report.html'))).toBe(true);

    const lines: string[] = [];
    expect(routingExitStatus(report, (l) => lines.push(l))).toBe(1);
    expect(lines).toEqual(['kvroute-bench routing: every request failed in 1 cell: high-cache × ample: round-robin\n']);

    // The same cell with one request answered is a measurement (of a bad policy, maybe), not a broken build.
    const oneServed: RoutingReport = { ...report, cells: [{ ...report.cells[0]!, runs: [{ ...report.cells[0]!.runs[0]!, succeeded: 1 }] }] };
    const none: string[] = [];
    expect(routingExitStatus(oneServed, (l) => none.push(l))).toBe(0);
    expect(none).toEqual([]);
  }, 120_000);
});
