/**
 * How the session store's client was chosen: GET round trips against a real `redis-server` on loopback for each
 * maintained Node client the issue names (`iovalkey`, `ioredis`, `redis`), in one invocation, interleaved in rounds so
 * a noisy neighbour hits all of them alike. Only the chosen client is a dependency; to rerun the comparison install the
 * the others in a scratch directory and point NODE_PATH at it (how the recorded numbers were taken):
 *
 *   (mkdir -p /tmp/clients && cd /tmp/clients && npm init -y && npm i iovalkey ioredis redis)
 *   NODE_PATH=/tmp/clients/node_modules npm run bench:redis-clients -w epp
 *
 * Two shapes are measured: one GET at a time (a pick's latency when the EPP is idle) and 32 GETs in flight on the
 * one connection (a busy EPP: the client pipelines them). Results in µs, p50 and p99 per client.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { REDIS_SERVER, RedisServer } from '../test/redis-server';

interface Client {
  get(key: string): Promise<string | null>;
  close(): Promise<void>;
}

type Factory = (url: string, port: number) => Promise<Client>;

/** The module if installed (a plain require: the candidates are CommonJS, and absent ones are skipped). */
async function load(name: string): Promise<unknown> {
  try {
    return require(name) as unknown;
  } catch {
    return undefined;
  }
}

type IoModule = (new (options: object) => IoClient) & { default?: new (options: object) => IoClient };

const CANDIDATES: Record<string, () => Promise<Factory | undefined>> = {
  async iovalkey() {
    const mod = (await load('iovalkey')) as IoModule | undefined;
    return mod && ioStyle(mod.default ?? mod);
  },
  async ioredis() {
    const mod = (await load('ioredis')) as IoModule | undefined;
    return mod && ioStyle(mod.default ?? mod);
  },
  async redis() {
    const mod = (await load('redis')) as {
      createClient(options: object): { connect(): Promise<unknown>; get(key: string): Promise<string | null>; quit(): Promise<unknown> };
    } | undefined;
    if (mod === undefined) return undefined;
    return async (url) => {
      const client = mod.createClient({ url, disableOfflineQueue: true });
      await client.connect();
      return { get: (key) => client.get(key), close: async () => { await client.quit(); } };
    };
  },
};

interface IoClient {
  connect(): Promise<void>;
  get(key: string): Promise<string | null>;
  quit(): Promise<unknown>;
}

function ioStyle(Ctor: new (options: object) => IoClient): Factory {
  return async (_url, port) => {
    const client = new Ctor({ host: '127.0.0.1', port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    await client.connect();
    return { get: (key) => client.get(key), close: async () => { await client.quit(); } };
  };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function sequential(client: Client, n: number, out: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await client.get(`kvroute:s:${i % 1000}`);
    out.push(Number(process.hrtime.bigint() - t) / 1000);
  }
}

async function concurrent(client: Client, n: number, inFlight: number, out: number[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) {
      const i = next++;
      const t = process.hrtime.bigint();
      await client.get(`kvroute:s:${i % 1000}`);
      out.push(Number(process.hrtime.bigint() - t) / 1000);
    }
  }));
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rounds = quick ? 2 : 5;
  const perRound = quick ? 2000 : 5000;
  const server = await RedisServer.start();
  try {
    for (let i = 0; i < 1000; i++) await server.command('SET', `kvroute:s:${i}`, `ns/pod-${i % 8}`);
    const clients: [string, Client][] = [];
    for (const [name, factory] of Object.entries(CANDIDATES)) {
      const f = await factory();
      if (f === undefined) {
        console.log(`${name}: not installed (see this script's header), skipped`);
        continue;
      }
      clients.push([name, await f(server.url, server.port)]);
    }
    const seq = new Map<string, number[]>(clients.map(([n]) => [n, []]));
    const conc = new Map<string, number[]>(clients.map(([n]) => [n, []]));
    for (const [, c] of clients) await sequential(c, 2000, []); // warm-up: JIT, connection
    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round so no client always runs first or last.
      const order = clients.map((_, i) => clients[(i + r) % clients.length]!);
      for (const [name, c] of order) {
        await sequential(c, perRound, seq.get(name)!);
        await concurrent(c, perRound, 32, conc.get(name)!);
      }
    }
    const cpus = os.cpus();
    const redisVersion = spawnSync(REDIS_SERVER, ['--version']).stdout.toString().split(' ').slice(0, 3).join(' ');
    console.log(`machine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown'}, node ${process.version}, ${redisVersion} on loopback; shared with other work, so compare ratios within this run`);
    console.log(`${rounds} rounds × ${perRound} GETs per client and shape, interleaved; µs per GET`);
    console.log('| client | version | 1 in flight p50 | p99 | 32 in flight p50 | p99 |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: |');
    for (const [name] of clients) {
      const s = seq.get(name)!.sort((a, b) => a - b);
      const c = conc.get(name)!.sort((a, b) => a - b);
      const version = ((await load(`${name}/package.json`)) as { version?: string } | undefined)?.version ?? '?';
      console.log(`| ${name} | ${version} | ${quantile(s, 0.5).toFixed(1)} | ${quantile(s, 0.99).toFixed(1)} | ${quantile(c, 0.5).toFixed(1)} | ${quantile(c, 0.99).toFixed(1)} |`);
    }
    for (const [, c] of clients) await c.close();
  } finally {
    await server.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
