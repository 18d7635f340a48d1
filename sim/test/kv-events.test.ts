/**
 * KV events on real ZMQ sockets over loopback, read back with an independent msgpack reader (@msgpack/msgpack, not
 * the protocol package's codec). vllm-project/vllm: vllm/distributed/kv_events.py @ v0.10.0 (frames, replay,
 * bind/connect) and vllm/v1/core/block_pool.py @ v0.10.0 (when events are emitted).
 */
import { decode } from '@msgpack/msgpack';
import { encodeEventBatch } from '@kvroute/protocol/kv-events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Dealer } from 'zeromq';
import { ManualClock } from '../src/clock';
import { startSimulator, type Simulator } from '../src/server';
import { http, waitFor } from './helpers';
import { KvEventCollector as Collector } from './kv-event-collector';

const MODEL = 'Qwen/Qwen3-0.6B';
const TOPIC = 'kv@sim-0@Qwen/Qwen3-0.6B';

/** The vectors python3-cbor2 wrote (sim/test/vectors/block-hash.py): tokens 1..40, seed "42", block size 16. */
const VECTORS = JSON.parse(readFileSync(join(__dirname, 'vectors', 'block-hash.json'), 'utf8')) as {
  cases: { name: string; tokens: number[]; '0.10.0': { blocks: { event: string }[] }; '0.10.2': { blocks: { event: string }[] } }[];
};
const GOLDEN = VECTORS.cases.find((c) => c.name === 'seed 42, tokens 1..40, block 16')!;
/** The vectors of vLLM main's extra keys (LoRA by name, #27577). */
const MAIN = (JSON.parse(readFileSync(join(__dirname, 'vectors', 'block-hash.json'), 'utf8')) as {
  main_cases: { name: string; seed: string; tokens: number[]; cache_salt: string; main: { blocks: { event: string; extra_keys: unknown }[] } }[];
}).main_cases;
const P = GOLDEN.tokens; // 40 tokens: two full blocks and a partial one

/** Decodes a payload with @msgpack/msgpack alone; 64-bit ints come back as bigint. */
const raw = (payload: Uint8Array): unknown[] => decode(payload, { useBigInt64: true }) as unknown[];
const str = (v: unknown): string => String(v);

async function complete(sim: Simulator, clock: ManualClock, prompt: number[], maxTokens = 1): Promise<any> {
  const r = http(sim.url, 'POST', '/v1/completions', { model: MODEL, prompt, max_tokens: maxTokens });
  await waitFor(() => sim.engine.stats().running + sim.engine.stats().waiting > 0, 'the request to reach the engine');
  clock.runAll();
  return (await r).json();
}

const tokensFrom = (start: number, n: number): number[] => Array.from({ length: n }, (_, i) => start + i);

describe('KV events over ZMQ (positional, vLLM 0.10.0, sha256_cbor_64bit)', () => {
  let sim: Simulator;
  let clock: ManualClock;
  let sub: Collector;

  beforeAll(async () => {
    clock = new ManualClock();
    // POST /reset_prefix_cache below is a dev-mode route (vllm/entrypoints/openai/api_server.py @ v0.10.0): read from
    // the environment when the simulator starts, as vLLM reads it when its API server module is imported.
    const saved = process.env.VLLM_SERVER_DEV_MODE;
    process.env.VLLM_SERVER_DEV_MODE = '1';
    // 9 blocks of 16 (8 usable); PUB on an ephemeral port (contains "*": bound), ROUTER for replay.
    sim = await startSimulator({
      port: 0,
      clock,
      kvCacheBlocks: 9,
      maxModelLen: 128,
      prefixCachingHashAlgo: 'sha256_cbor_64bit',
      pythonHashSeed: '42',
      kvEventsConfig: {
        enable_kv_cache_events: true,
        publisher: 'zmq',
        endpoint: 'tcp://127.0.0.1:*',
        replay_endpoint: 'tcp://127.0.0.1:*',
        buffer_steps: 3,
        hwm: 1000,
        max_queue_size: 1000,
        topic: TOPIC,
      },
    }).finally(() => {
      if (saved === undefined) delete process.env.VLLM_SERVER_DEV_MODE;
      else process.env.VLLM_SERVER_DEV_MODE = saved;
    });
    sub = new Collector('kv@');
    sub.sub.connect(sim.kvEvents!.endpoint);
    await sub.ready();
  });

  afterAll(async () => {
    await sub.close();
    await sim.close();
  });

  it('a prompt is stored, a flood evicts it block by block, a reset clears everything; every frame decodes independently', async () => {
    expect(sim.kvEvents!.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);

    // 1. The prompt: one step, one BlockStored for its two full blocks, hashes as python3-cbor2 computes them.
    await complete(sim, clock, P);
    await waitFor(() => sub.got.length === 1, 'the first batch');
    const [first] = sub.got;
    expect(first.topic).toBe(TOPIC);
    expect(first.seq).toBe(0n);
    const [ts, events, rank] = raw(first.payload) as [number, unknown[][], number];
    expect(typeof ts).toBe('number');
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(3600); // wall-clock seconds, not model time
    expect(rank).toBe(0);
    expect(events).toHaveLength(1);
    const stored = events[0];
    expect(stored).toHaveLength(6); // v0.10.0: no `medium`
    expect(stored[0]).toBe('BlockStored');
    expect((stored[1] as unknown[]).map(str)).toEqual(GOLDEN['0.10.0'].blocks.map((b) => b.event));
    expect(stored[2]).toBeNull(); // parent of a chain that starts at block 0
    expect(stored[3]).toEqual(P.slice(0, 32));
    expect(stored[4]).toBe(16);
    expect(stored[5]).toBeNull(); // lora_id

    // 2. The flood: two 120-token prompts (8 blocks each). The free queue holds the 5 never-used blocks first, then
    // P's 3 blocks tail first; each cached block that is reused yields one BlockRemoved, in the same step's batch.
    await complete(sim, clock, tokensFrom(5000, 120));
    await complete(sim, clock, tokensFrom(9000, 120));
    await waitFor(() => sub.got.length === 3, 'the two flood batches');
    const flood = sub.got.slice(1).map((m) => raw(m.payload)[1] as unknown[][]);
    const removed = flood.flat().filter((e) => e[0] === 'BlockRemoved');
    expect(removed.every((e) => e.length === 2 && (e[1] as unknown[]).length === 1)).toBe(true);
    // The first flood takes P's partial block (no hash, no event), then its second block, then its first.
    expect(flood[0].filter((e) => e[0] === 'BlockRemoved').map((e) => str((e[1] as unknown[])[0]))).toEqual([
      GOLDEN['0.10.0'].blocks[1].event,
      GOLDEN['0.10.0'].blocks[0].event,
    ]);
    // The second flood evicts the first flood's 7 cached blocks.
    expect(flood[1].filter((e) => e[0] === 'BlockRemoved')).toHaveLength(7);
    expect(removed).toHaveLength(9);
    // Each flood batch ends with that request's BlockStored of 7 full blocks.
    for (const batch of flood) {
      expect(batch.at(-1)?.[0]).toBe('BlockStored');
      expect((batch.at(-1)?.[1] as unknown[]).length).toBe(7);
    }

    // 3. Reset (idle engine: allowed). vLLM drains events in schedule() only, so AllBlocksCleared leaves with the next step.
    const reset = await http(sim.url, 'POST', '/reset_prefix_cache');
    expect(reset.status).toBe(200);
    expect(reset.headers['x-kvroute-prefix-cache-reset']).toBe('done');
    expect(sub.got).toHaveLength(3);
    await complete(sim, clock, P);
    await waitFor(() => sub.got.length === 4, 'the batch after the reset');
    const after = raw(sub.got[3].payload)[1] as unknown[][];
    expect(after.map((e) => e[0])).toEqual(['AllBlocksCleared', 'BlockStored']);
    expect(after[0]).toEqual(['AllBlocksCleared']);
    // No BlockRemoved for blocks whose hashes the reset dropped, and P is stored again under the same hashes.
    expect((after[1][1] as unknown[]).map(str)).toEqual(GOLDEN['0.10.0'].blocks.map((b) => b.event));

    // Sequence numbers: 0, 1, 2, 3 with no gap.
    expect(sub.got.map((m) => m.seq)).toEqual([0n, 1n, 2n, 3n]);
  });

  it('replay: buffered batches from the requested sequence number, then the end marker (ff×8, empty payload)', async () => {
    const dealer = new Dealer({ linger: 0 });
    dealer.connect(sim.kvEvents!.replayEndpoint!);
    try {
      const replay = async (start: bigint): Promise<Buffer[][]> => {
        const seq = Buffer.alloc(8);
        seq.writeBigUInt64BE(start);
        await dealer.send([Buffer.alloc(0), seq]);
        const out: Buffer[][] = [];
        for (;;) {
          const frames = await dealer.receive();
          out.push(frames);
          if (frames[1].equals(Buffer.alloc(8, 0xff))) return out;
        }
      };
      // buffer_steps is 3: batches 1, 2 and 3 are kept.
      const all = await replay(0n);
      expect(all.map((f) => f.length)).toEqual([3, 3, 3, 3]);
      expect(all.map((f) => f[0].length)).toEqual([0, 0, 0, 0]); // the empty delimiter
      expect(all.slice(0, 3).map((f) => f[1].readBigUInt64BE(0))).toEqual([1n, 2n, 3n]);
      expect(all.slice(0, 3).map((f) => f[2])).toEqual(sub.got.slice(1).map((m) => m.payload));
      expect(all[3][2]).toHaveLength(0);
      const fromThree = await replay(3n);
      expect(fromThree.map((f) => (f[1].equals(Buffer.alloc(8, 0xff)) ? 'END' : f[1].readBigUInt64BE(0)))).toEqual([3n, 'END']);
      const beyond = await replay(100n);
      expect(beyond).toHaveLength(1);
      expect(beyond[0][2]).toHaveLength(0);
    } finally {
      dealer.close();
    }
  });
});

describe('KV events: bind vs connect, encodings, publisher "null"', () => {
  it('connects when the endpoint has no wildcard: the subscriber binds, the simulator dials it', async () => {
    const sub = new Collector('');
    await sub.sub.bind('tcp://127.0.0.1:*');
    const endpoint = sub.sub.lastEndpoint as string;
    expect(endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const clock = new ManualClock();
    const sim = await startSimulator({
      port: 0,
      clock,
      prefixCachingHashAlgo: 'sha256_cbor',
      pythonHashSeed: '42',
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint },
    });
    try {
      expect(sim.kvEvents!.endpoint).toBe(endpoint);
      await sub.ready();
      await complete(sim, clock, P);
      await waitFor(() => sub.got.length === 1, 'a batch through the connected PUB');
      expect(sub.got[0].topic).toBe(''); // vLLM's default topic: an empty first frame
      const [, events] = raw(sub.got[0].payload) as [number, unknown[][]];
      // v0.10.2 (sha256_cbor): events carry the low 64 bits of the digest, and `medium` after lora_id.
      expect(events[0]).toHaveLength(7);
      expect((events[0][1] as unknown[]).map(str)).toEqual(GOLDEN['0.10.2'].blocks.map((b) => b.event));
      expect(events[0][6]).toBe('GPU');
    } finally {
      await sim.close();
      await sub.close();
    }
  });

  it('--kv-events-encoding map: the events of vLLM v0.26 (#42892 maps; lora_name, per-block extra_keys, group_idx, kv_cache_spec_kind) in a positional batch', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({
      port: 0,
      clock,
      prefixCachingHashAlgo: 'sha256_cbor',
      pythonHashSeed: '42',
      kvEventsEncoding: 'map',
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*' },
    });
    const sub = new Collector('');
    sub.sub.connect(sim.kvEvents!.endpoint);
    try {
      await sub.ready();
      await complete(sim, clock, P);
      await waitFor(() => sub.got.length === 1, 'a map-encoded batch');
      const batch = raw(sub.got[0].payload) as [number, Record<string, unknown>[], number];
      expect(batch).toHaveLength(3); // the batch stays positional: [ts, events, data_parallel_rank]
      const [, events, rank] = batch;
      expect(rank).toBe(0);
      // msgspec writes the tag first, then the fields in declaration order, leaving out None defaults
      // (vllm/distributed/kv_events.py @ 0181ea31); lora_id, medium and lora_name have no default.
      expect(Object.keys(events[0])).toEqual([
        'type', 'block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium', 'lora_name', 'extra_keys', 'group_idx', 'kv_cache_spec_kind',
      ]);
      expect(events[0]).toMatchObject({
        type: 'BlockStored', parent_block_hash: null, token_ids: P.slice(0, 32), block_size: 16, lora_id: null, medium: 'GPU', lora_name: null,
        extra_keys: [null, null], group_idx: 0, kv_cache_spec_kind: 'full_attention',
      });
      expect((events[0].block_hashes as unknown[]).map(str)).toEqual(GOLDEN['0.10.2'].blocks.map((b) => b.event));
    } finally {
      await sub.close();
      await sim.close();
    }
  });

  it('--kv-events-encoding map: a LoRA request is hashed with the adapter\'s name (#27577) and reported with it', async () => {
    // sim/test/vectors/block-hash.py main_cases: seed "42", tokens 1..44, LoRA "sql-lora", cache_salt "tenant-a".
    const want = MAIN.find((c) => c.name.startsWith('LoRA by name and cache_salt'))!;
    const clock = new ManualClock();
    const sim = await startSimulator({
      port: 0,
      clock,
      prefixCachingHashAlgo: 'sha256_cbor',
      pythonHashSeed: want.seed,
      kvEventsEncoding: 'map',
      loraModules: ['sql-lora'],
      enableLora: true,
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*' },
    });
    const sub = new Collector('');
    sub.sub.connect(sim.kvEvents!.endpoint);
    try {
      await sub.ready();
      const r = http(sim.url, 'POST', '/v1/completions', { model: 'sql-lora', prompt: want.tokens, max_tokens: 1, cache_salt: want.cache_salt });
      await waitFor(() => sim.engine.stats().running + sim.engine.stats().waiting > 0, 'the request to reach the engine');
      clock.runAll();
      expect((await r).status).toBe(200);
      await waitFor(() => sub.got.length === 1, 'the LoRA batch');
      const [, events] = raw(sub.got[0].payload) as [number, Record<string, unknown>[]];
      expect(events[0]).toMatchObject({ type: 'BlockStored', lora_id: 1, lora_name: 'sql-lora', extra_keys: want.main.blocks.map((b) => b.extra_keys) });
      expect((events[0].block_hashes as unknown[]).map(str)).toEqual(want.main.blocks.map((b) => b.event));
    } finally {
      await sub.close();
      await sim.close();
    }
  });

  it('--no-enable-prefix-caching: the publisher is up but no BlockStored or BlockRemoved is ever sent; a reset still sends AllBlocksCleared', async () => {
    // vllm/v1/core/kv_cache_manager.py @ v0.10.0 (6eca337ce): allocate_slots returns before cache_blocks when not
    // enable_caching; block_pool.py: get_new_blocks calls _maybe_evict_cached_block only when enable_caching, and
    // only those two queue BlockStored / BlockRemoved. reset_prefix_cache queues AllBlocksCleared either way.
    const clock = new ManualClock();
    const sim = await startSimulator({
      port: 0,
      clock,
      kvCacheBlocks: 9,
      maxModelLen: 128,
      enablePrefixCaching: false,
      serverDevMode: true,
      prefixCachingHashAlgo: 'sha256_cbor_64bit',
      kvEventsConfig: { enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*' },
    });
    const sub = new Collector('');
    sub.sub.connect(sim.kvEvents!.endpoint);
    try {
      await sub.ready();
      // The prompt twice (no hit), then a flood that reuses every block.
      expect((await complete(sim, clock, P)).usage.prompt_tokens).toBe(40);
      await complete(sim, clock, P);
      await complete(sim, clock, tokensFrom(5000, 120));
      expect(sim.engine.stats().cachedBlocks).toBe(0);
      expect(sim.kvEvents!.sent).toBe(0);
      const reset = await http(sim.url, 'POST', '/reset_prefix_cache');
      expect(reset.headers['x-kvroute-prefix-cache-reset']).toBe('done');
      await complete(sim, clock, P);
      await waitFor(() => sub.got.length === 1, 'the AllBlocksCleared batch');
      expect(raw(sub.got[0].payload)[1]).toEqual([['AllBlocksCleared']]);
      await new Promise((r) => setTimeout(r, 50));
      expect(sub.got).toHaveLength(1);
    } finally {
      await sub.close();
      await sim.close();
    }
  });

  it('ts is always a msgpack float64 (0xcb), as msgspec writes time.time(), even on a whole second', () => {
    // vllm/v1/core/sched/scheduler.py @ v0.10.0 line 580: KVEventBatch(ts=time.time(), ...); EventBatch.ts: float.
    // @msgpack/msgpack alone would write 1753344000 as a uint32 (ce 68 81 e8 00).
    for (const encoding of ['positional-v0.10.0', 'positional-v0.10.2', 'map'] as const) {
      const whole = Buffer.from(encodeEventBatch({ ts: 1753344000, events: [{ type: 'AllBlocksCleared' }], dataParallelRank: 0 }, encoding));
      const frac = Buffer.from(encodeEventBatch({ ts: 1753344000.125, events: [], dataParallelRank: 0 }, encoding));
      const cleared = encoding === 'map' ? '81a474797065b0416c6c426c6f636b73436c6561726564' : '91b0416c6c426c6f636b73436c6561726564';
      // [ts, [event], 0]: 93, then cb + the IEEE 754 double, then the events, then the rank.
      expect(whole.toString('hex')).toBe(`93cb41da207a0000000091${cleared}00`);
      expect(frac.toString('hex')).toBe('93cb41da207a000800009000');
      expect(raw(whole)).toEqual([1753344000, [encoding === 'map' ? { type: 'AllBlocksCleared' } : ['AllBlocksCleared']], 0]);
    }
    // No data_parallel_rank (None): still 3 elements, the rank nil, as msgspec 0.22.0 encodes vLLM's EventBatch
    // (array_like structs ignore omit_defaults): EventBatch(ts=1.0, events=[]) is 93 cb3ff0000000000000 90 c0.
    expect(Buffer.from(encodeEventBatch({ ts: 1, events: [], dataParallelRank: null }, 'positional-v0.10.0')).toString('hex')).toBe('93cb3ff000000000000090c0');
  });

  it('publisher "null" opens no socket; "zmq" without enable_kv_cache_events opens one that stays silent', async () => {
    const nullSim = await startSimulator({ port: 0, kvEventsConfig: { enable_kv_cache_events: true, publisher: 'null' } });
    expect(nullSim.kvEvents).toBeNull();
    await nullSim.close();
    const quiet = await startSimulator({ port: 0, kvEventsConfig: { publisher: 'zmq', endpoint: 'tcp://127.0.0.1:*' } });
    try {
      expect(quiet.kvEvents).not.toBeNull();
      await http(quiet.url, 'POST', '/v1/completions', { model: MODEL, prompt: P, max_tokens: 1 });
      expect(quiet.kvEvents!.sent).toBe(0);
    } finally {
      await quiet.close();
    }
  });
});
