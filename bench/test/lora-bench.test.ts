/**
 * `kvroute-bench lora`, short: the workload is deterministic and skewed as documented, the flags are checked, and one
 * tiny run goes through real simulated pods, the EPP and the gateway for two policies. Numbers are not asserted here
 * (that is the benchmark's job, `npm run bench:lora`); only that every request is answered and counted.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { adapterNames, loraPolicy, loraWorkload, parseLoraArgs, runLoraBench, DEFAULT_LORA_OPTIONS } from '../src/lora-bench';
import { simArgs, DEFAULT_SIM } from '../src/stack';
import { parseCli } from '@kvroute/sim';

jest.setTimeout(180_000);

describe('lora bench', () => {
  test('the workload: deterministic from the seed, adapters drawn by Zipf popularity, a system prompt per adapter only when asked', () => {
    const o = { ...DEFAULT_LORA_OPTIONS, requests: 4000 };
    const a = loraWorkload(o);
    expect(loraWorkload(o)).toEqual(a);
    const counts = adapterNames(o.adapters).map((name) => a.filter((r) => r.adapter === name).length);
    // Shares ∝ 1/(i+1): adapter-0 about twice adapter-1 and eight times adapter-7.
    expect(counts[0]! / counts[1]!).toBeGreaterThan(1.6);
    expect(counts[0]! / counts[1]!).toBeLessThan(2.5);
    expect(counts[0]! / counts[7]!).toBeGreaterThan(5);
    expect(a.every((r) => r.messages.length === 1)).toBe(true);
    const withSystem = loraWorkload({ ...o, systemWords: 50 });
    expect(withSystem.every((r) => r.messages[0]!.role === 'system' && r.messages[0]!.content.startsWith(`You are the ${r.adapter} assistant.`))).toBe(true);
    expect(a.map((r) => r.atMs)).toEqual([...a.map((r) => r.atMs)].sort((x, y) => x - y));
  });

  test('flags: defaults, the quick run, and --max-loras above --adapters refused by name', () => {
    expect(parseLoraArgs([])).toMatchObject({ pods: 4, adapters: 8, maxLoras: 2, systemWords: 0, requests: 600 });
    expect(parseLoraArgs(['--quick'])).toMatchObject({ requests: 200 });
    expect(parseLoraArgs(['--help'])).toBeUndefined();
    expect(() => parseLoraArgs(['--adapters', '2', '--max-loras', '3'])).toThrow(/^--max-loras: at most --adapters \(2\)/);
    expect(() => parseLoraArgs(['--policies', 'kvroute,nope'])).toThrow(/--policies: unknown value "nope"/);
  });

  test('the pods get vLLM\'s LoRA flags, which the simulator parses as vLLM would', () => {
    const args = simArgs({ ...DEFAULT_SIM, lora: { adapters: ['a', 'b'], maxLoras: 1 } }, 'decode-0');
    const parsed = parseCli(args);
    expect(parsed.kind === 'run' && parsed.options).toMatchObject({ enableLora: true, maxLoras: 1, loraModules: ['a', 'b'] });
    // kvroute's policy is the default config with the filter for the adapters; the LoRA-blind one has none.
    const kvroute = loraPolicy('kvroute', ['a', 'b']);
    expect(kvroute.kind === 'epp' && kvroute.configText).toContain('lora-room-filter');
    const roomOnly = loraPolicy('kvroute-room-only', ['a', 'b']);
    expect(roomOnly.kind === 'epp' && roomOnly.configText).toMatch(/spillWaiting: 0/);
    const blind = loraPolicy('kvroute-no-lora-filter', ['a', 'b']);
    expect(blind.kind === 'epp' && blind.configText).not.toContain('lora-room-filter');
  });

  test('a tiny run through pods, EPP and gateway: every request answered, counted per policy, written to lora-results.json', async () => {
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-bench-'));
    const lines: string[] = [];
    const report = await runLoraBench({ ...DEFAULT_LORA_OPTIONS, pods: 2, adapters: 3, maxLoras: 1, requests: 12, rate: 20, outputTokens: 4, timeScale: 4, policies: ['kvroute', 'round-robin'], outDir }, (l) => lines.push(l));
    expect(report.results.map((r) => [r.policy, r.ok, r.errors])).toEqual([['kvroute', 12, 0], ['round-robin', 12, 0]]);
    for (const r of report.results) {
      expect(r.ttft.p50).toBeGreaterThan(0);
      expect(r.adaptersPerPod.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(3);
    }
    expect(JSON.parse(fs.readFileSync(path.join(outDir, 'lora-results.json'), 'utf8')).results).toHaveLength(2);
    expect(lines.join('\n')).toMatch(/\| kvroute \| .* \| 1\.00× \|/);
  });
});
