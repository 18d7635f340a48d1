/**
 * A short end-to-end run of the whole local request path (built simulators, EPP and gateway as separate processes):
 * kvroute against round robin on the same small workload, in seconds.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseDemoArgs, runDemo } from '../src/demo';
import { ENTRY, stopAll } from '../src/processes';

const built = Object.values(ENTRY).every((f) => fs.existsSync(f));

(built ? describe : describe.skip)('the validator loop, end to end', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-demo-'));
  afterAll(async () => {
    await stopAll();
    fs.rmSync(out, { recursive: true, force: true });
  });

  test('kvroute keeps sessions on one pod and beats round robin on prefix-cache hits', async () => {
    const options = parseDemoArgs(['--quiet', '--out', out, '--policies', 'kvroute,round-robin', '--pods', '3',
      '--sessions', '6', '--turns', '3', '--rag', '6', '--documents', '2', '--system-prompts', '2', '--system-words', '250',
      '--document-words', '500', '--max-tokens', '8', '--concurrency', '4', '--time-scale', '10'])!;
    const { results } = await runDemo(options);
    const [kv, rr] = results;
    expect(kv.policy).toBe('kvroute');
    expect(kv.successRate).toBe(1);
    expect(rr.successRate).toBe(1);
    expect(kv.requestStickiness).toBe(1);
    expect(kv.hitRate).toBeGreaterThan(rr.hitRate);
    expect(kv.bestHitRate).toBeGreaterThan(0);
    expect(kv.hitRate).toBeLessThanOrEqual(kv.bestHitRate! + 1e-9);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(json.results).toHaveLength(2);
    expect(fs.readFileSync(path.join(out, 'report.html'), 'utf8')).toContain('<svg');
  }, 120_000);
});

test('demo flags are validated', () => {
  expect(() => parseDemoArgs(['--pods', '1'])).toThrow(/--pods: must be an integer >= 2/);
  expect(() => parseDemoArgs(['--policies', 'magic'])).toThrow(/^--policies: unknown value "magic"; known: kvroute, round-robin, session-hash$/);
  expect(() => parseDemoArgs(['--nope'])).toThrow(/unknown flag --nope/);
  // The simulator refuses more than 2^26 blocks (sim/src/cli.ts): refused here, not by every pod once the run started.
  expect(() => parseDemoArgs(['--kv-cache-blocks', String(2 ** 26 + 1)])).toThrow(/^--kv-cache-blocks: must be an integer from 1024 to 67108864, got "67108865"$/);
  expect(parseDemoArgs(['--kv-cache-blocks', String(2 ** 26)])!.sim.kvCacheBlocks).toBe(2 ** 26);
  expect(parseDemoArgs(['--help'])).toBeUndefined();
});
