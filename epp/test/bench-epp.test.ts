import { execFile, type ExecFileException } from 'node:child_process';
import * as path from 'node:path';
import { redisServerAvailable, requireRedisServerInCi } from './redis-server';

// The benchmark itself, shrunk to two small pools so it cannot rot: it starts the metrics servers, the floor server and
// the real kvroute-epp binaries (dist/main.js: `npm test` builds it first) and drives them all with the same client. Nothing
// here is about speed; the limit only bounds a hung run. The first run below took 138 s alone on one core shared with
// a busy loop, and was killed at a 200 s limit with two jest workers on that core: each run gets 420 s.
const RUN_LIMIT_MS = 420_000;
jest.setTimeout(RUN_LIMIT_MS + 60_000);

/** execFile's callback for a bench run: a run killed at the limit says so (its message otherwise reads as a failure). */
const settle = (resolve: (out: string) => void, reject: (e: Error) => void) => (err: ExecFileException | null, stdout: string, stderr: string) => {
  if (err === null) resolve(stdout);
  else reject(new Error(`${err.killed ? `killed (${err.signal}) at the ${RUN_LIMIT_MS / 1000} s limit: ` : ''}${err.message}\n${stderr}`));
};

test('npm run bench -w epp runs end to end: EPPs, floor and metrics servers in their own processes, in paired rounds', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--require', 'ts-node/register/transpile-only', path.join(__dirname, '..', 'bench', 'epp-bench.ts'), '--quick'],
      {
        cwd: path.join(__dirname, '..'),
        timeout: RUN_LIMIT_MS,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, BENCH_ENDPOINTS: '4,8', BENCH_PROMPTS: '2048', BENCH_MODES: 'worker', BENCH_SECONDS: '0.2', BENCH_ROUNDS: '2', BENCH_WARM_MS: '100', BENCH_SCHEDULE_SAMPLES: '20' },
      },
      settle(resolve, reject),
    );
  });
  const rows = out.split('\n').filter((l) => l.startsWith('{"endpoints"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(rows.map((r) => r.endpoints)).toEqual([4, 8]);
  const row = rows[0] as Record<string, number | string>;
  expect(row).toMatchObject({ endpoints: 4, mode: 'worker', expectedScrapesPerSec: 80, scrapeFailures: 0, refreshIntervalMs: 50 });
  for (const r of rows as Record<string, number | string>[]) {
    // Every measured quantity came from a real exchange or a real scrape.
    for (const k of ['rps', 'floorRps', 'serialP50Ms', 'floorSerialP50Ms', 'scrapesPerSec', 'rssMiB', 'heapUsedMiB', 'scheduled', 'clientCpuUsPerRequest', 'floorClientCpuUsPerRequest', 'settleMsMedian']) {
      expect(r[k]).toBeGreaterThan(0);
    }
    expect(r.loopUtilization).toBeGreaterThan(0);
    expect(r.loopUtilization).toBeLessThanOrEqual(1);
    // Paired rounds: one requests/s per round for the EPP and for the floor slices paired with it, nothing rejected,
    // no pod stale or failing in a measured slice after the settles, and no CPU used while paused.
    expect((r.roundRps as unknown as number[]).length).toBe(2);
    expect((r.roundFloorRps as unknown as number[]).every((x) => x > 0)).toBe(true);
    expect(r).toMatchObject({ rejected: 0, floorRejected: 0, staleExclusions: 0, scrapeFailureExclusions: 0, cpuWhilePausedMs: 0 });
    expect(r.ratioToFloorRounds).toMatchObject({ n: 2 });
  }
  const big = rows[1] as { vsEndpoints: number; ratioToSmallestRounds: { n: number; median: number }; ratioToSmallestThroughFloorsRounds: { n: number; min: number; max: number; median: number } };
  expect(big.vsEndpoints).toBe(4);
  expect(big.ratioToSmallestRounds.n).toBe(2);
  expect(big.ratioToSmallestThroughFloorsRounds.median).toBeGreaterThanOrEqual(big.ratioToSmallestThroughFloorsRounds.min);
  expect(big.ratioToSmallestThroughFloorsRounds.median).toBeLessThanOrEqual(big.ratioToSmallestThroughFloorsRounds.max);
  const result = JSON.parse(out.split('\n').find((l) => l.startsWith('RESULT '))?.slice('RESULT '.length) ?? 'null') as { rows: number; goals: { goal: string; rounds?: { n: number }; verdict?: string }[] } | null;
  expect(result?.rows).toBe(2);
  expect(result?.goals.map((g) => g.goal)).toEqual(expect.arrayContaining(['throughput at 8 ≥ 0.9× at 4 (2 KB), through the floors and raw', 'throughput at 8 ≥ 0.8× the floor (2 KB)', 'no request rejected for want of fresh metrics (any cell)']));
  const scaling = result?.goals.find((g) => g.goal === 'throughput at 8 ≥ 0.9× at 4 (2 KB), through the floors and raw');
  expect(scaling?.rounds?.n).toBe(2);
  expect(['met', 'missed', 'straddles']).toContain(scaling?.verdict);
  expect(out).not.toContain('written'); // a shrunk run is never recorded
});

test('npm run bench -w epp -- --only replicas runs end to end: replicas driven round robin, then the session store against redis-server', async () => {
  requireRedisServerInCi();
  if (!redisServerAvailable) {
    console.warn('skipped: no redis-server binary here (the Debian package "redis-server")');
    return;
  }
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--require', 'ts-node/register/transpile-only', path.join(__dirname, '..', 'bench', 'epp-bench.ts'), '--only', 'replicas', '--quick'],
      {
        cwd: path.join(__dirname, '..'),
        timeout: RUN_LIMIT_MS,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, BENCH_REPLICAS: '1,2', BENCH_SECONDS: '0.4' },
      },
      settle(resolve, reject),
    );
  });
  expect(out).not.toContain('{"endpoints"'); // the cells were skipped
  const rows = out.split('\n').filter((l) => l.startsWith('{"section":"replicas"')).map((l) => JSON.parse(l) as Record<string, number>);
  expect(rows.map((r) => r.replicas)).toEqual([1, 2]);
  for (const r of rows) {
    // Every number came from real exchanges with real replicas.
    expect(r.rps).toBeGreaterThan(0);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.eppCpuMsPerRequest).toBeGreaterThan(0);
  }
  expect(rows[0]?.ratioToOne).toBe(1);
  const result = JSON.parse(out.split('\n').find((l) => l.startsWith('REPLICAS '))?.slice('REPLICAS '.length) ?? 'null') as { storeRows: number; goals: { goal: string }[] } | null;
  expect(result?.storeRows).toBe(4);
  expect(result?.goals.map((g) => g.goal)).toContain('the shared store adds ≤ 0.5 ms to a pick\'s p99 on loopback (one pick at a time)');
  expect(out).not.toContain('written');
});

test('--only takes cells or replicas and names them when given anything else', async () => {
  const err = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--require', 'ts-node/register/transpile-only', path.join(__dirname, '..', 'bench', 'epp-bench.ts'), '--only', 'floor'],
      { cwd: path.join(__dirname, '..'), timeout: 60_000 }, (_e, _stdout, stderr) => resolve(stderr));
  });
  expect(err).toContain('--only: must be one of cells, replicas, got "floor"');
});

test('BENCH_NODE_ARGS takes only flags and names the variable when given anything else', async () => {
  const err = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--require', 'ts-node/register/transpile-only', path.join(__dirname, '..', 'bench', 'epp-bench.ts'), '--only', 'cells'],
      { cwd: path.join(__dirname, '..'), timeout: 60_000, env: { ...process.env, BENCH_NODE_ARGS: '--initial-old-space-size=128 128' } }, (_e, _stdout, stderr) => resolve(stderr));
  });
  expect(err).toContain('BENCH_NODE_ARGS: each flag must start with --, got 128');
});

test('BENCH_WARM_MS takes whole milliseconds from 0 and names the variable when given anything else', async () => {
  for (const bad of ['-5', '0.5', 'soon']) {
    const err = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--require', 'ts-node/register/transpile-only', path.join(__dirname, '..', 'bench', 'epp-bench.ts'), '--only', 'cells'],
        { cwd: path.join(__dirname, '..'), timeout: 60_000, env: { ...process.env, BENCH_WARM_MS: bad } }, (_e, _stdout, stderr) => resolve(stderr));
    });
    expect(err).toContain(`BENCH_WARM_MS: must be an integer 0-60000 (milliseconds), got ${bad}`);
  }
});
