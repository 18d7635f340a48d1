import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  decodeEventBatch,
  decodeSeq,
  encodeEventBatch,
  encodeSeq,
  isReplayEnd,
  KvEventDecodeError,
  parseKvTopic,
  REPLAY_END_SEQ,
  type DecodeSkips,
} from '../src/kv-events';

/** Payloads written by python3-msgpack exactly as vLLM's msgspec writes them (see vectors/kv-events.py). */
const VECTORS: Record<string, string> = JSON.parse(fs.readFileSync(path.join(__dirname, 'vectors', 'kv-events.json'), 'utf8'));
const payload = (name: string) => Buffer.from(VECTORS[name]!, 'hex');
const H1 = '9442596223568401980';
const H2 = '10401597220457154048';
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('vLLM KV-event payloads (vllm/distributed/kv_events.py @ v0.10.0, v0.10.2, #42892 / v0.26.0)', () => {
  test('v0.10.0 positional: BlockStored with uint64 hashes, BlockRemoved, AllBlocksCleared', () => {
    const batch = decodeEventBatch(payload('v0.10.0-stored-removed-cleared'));
    expect(batch).toEqual({
      ts: 1753400000.25,
      dataParallelRank: 0,
      events: [
        { type: 'BlockStored', blockHashes: [H1, H2], parentBlockHash: null, tokenIds: range(1, 33), blockSize: 16, loraId: null },
        { type: 'BlockRemoved', blockHashes: [H1] },
        { type: 'AllBlocksCleared' },
      ],
    });
  });

  test('hashes in any msgpack integer form: a small fixint, a negative builtin hash', () => {
    const [stored] = decodeEventBatch(payload('v0.10.0-builtin-small-and-negative')).events;
    expect(stored).toMatchObject({ blockHashes: ['7', '-4209875623087421111'], parentBlockHash: '6', loraId: 3 });
  });

  test('v0.10.2 appends medium to both events', () => {
    expect(decodeEventBatch(payload('v0.10.2-medium')).events).toEqual([
      { type: 'BlockStored', blockHashes: [H2], parentBlockHash: H1, tokenIds: range(17, 33), blockSize: 16, loraId: null, medium: 'GPU' },
      { type: 'BlockRemoved', blockHashes: [H2], medium: 'CPU' },
    ]);
  });

  test('newer trailing fields are read where known and counted where not; unknown event types are skipped and counted', () => {
    const skips: DecodeSkips = { unknownEvents: 0, unknownFields: 0 };
    const batch = decodeEventBatch(payload('newer-positional-extra-fields'), skips);
    expect(batch.events).toEqual([{
      type: 'BlockStored', blockHashes: [H1], parentBlockHash: null, tokenIds: range(1, 17), blockSize: 16, loraId: null,
      medium: 'GPU', loraName: 'adapter-a', extraKeys: [null], groupIdx: 0, kvCacheSpecKind: 'full_attention', kvCacheSpecSlidingWindow: null,
    }]);
    expect(skips).toEqual({ unknownEvents: 1, unknownFields: 1 });
  });

  test('map-encoded events (#42892) in a positional batch, and a batch that is itself a map', () => {
    const skips: DecodeSkips = { unknownEvents: 0, unknownFields: 0 };
    const events = decodeEventBatch(payload('map-events'), skips).events;
    expect(events.map((e) => e.type)).toEqual(['BlockStored', 'BlockRemoved', 'AllBlocksCleared']);
    expect(events[0]).toMatchObject({ blockHashes: [H1], tokenIds: range(1, 17), medium: 'GPU', loraName: null });
    expect(skips).toEqual({ unknownEvents: 0, unknownFields: 1 });
    expect(decodeEventBatch(payload('map-batch'))).toEqual({ ts: 1781000001, events: [{ type: 'AllBlocksCleared' }], dataParallelRank: 2 });
  });

  test('v0.26 map events (after #42892): every field vLLM main declares, defaults omitted, per-block extra keys', () => {
    const skips: DecodeSkips = { unknownEvents: 0, unknownFields: 0 };
    const batch = decodeEventBatch(payload('v0.26-map-lora-salt'), skips);
    expect(skips).toEqual({ unknownEvents: 0, unknownFields: 0 });
    expect(batch).toEqual({
      ts: 1789095808.8378847,
      dataParallelRank: 0,
      events: [
        {
          type: 'BlockStored', blockHashes: [H1, H2], parentBlockHash: null, tokenIds: range(1, 33), blockSize: 16, loraId: 1, medium: 'GPU',
          loraName: 'sql-lora', extraKeys: [['sql-lora', 'tenant-a'], ['sql-lora', ['mm-hash-1', 3]]], groupIdx: 0, kvCacheSpecKind: 'full_attention',
        },
        {
          type: 'BlockStored', blockHashes: ['7'], parentBlockHash: H2, tokenIds: range(33, 49), blockSize: 16, loraId: null, medium: 'GPU',
          loraName: null, extraKeys: [null], groupIdx: 0, kvCacheSpecKind: 'full_attention',
        },
        { type: 'BlockRemoved', blockHashes: [H1], medium: 'GPU', groupIdx: 0 },
        { type: 'AllBlocksCleared' },
      ],
    });
  });

  test('map encoding writes the bytes vLLM v0.26 writes (msgspec: tag first, declaration order, omit_defaults)', () => {
    const bytes = Buffer.from(encodeEventBatch(decodeEventBatch(payload('v0.26-map-lora-salt')), 'map'));
    expect(bytes.toString('hex')).toBe(VECTORS['v0.26-map-lora-salt']);
  });

  test('encoding writes the bytes vLLM writes, for 0.10.0 and 0.10.2', () => {
    for (const [name, encoding] of [['v0.10.0-stored-removed-cleared', 'positional-v0.10.0'], ['v0.10.0-builtin-small-and-negative', 'positional-v0.10.0'], ['v0.10.2-medium', 'positional-v0.10.2']] as const) {
      const bytes = Buffer.from(encodeEventBatch(decodeEventBatch(payload(name)), encoding));
      expect({ name, hex: bytes.toString('hex') }).toEqual({ name, hex: VECTORS[name] });
    }
  });

  test('map encoding round-trips; lora_name, a field without a default, is always written', () => {
    const batch = decodeEventBatch(payload('v0.10.2-medium'));
    const [stored, removed] = batch.events;
    expect(decodeEventBatch(encodeEventBatch(batch, 'map'))).toEqual({ ...batch, events: [{ ...stored, loraName: null }, removed] });
  });

  test.each<[string, Buffer, RegExp]>([
    ['not msgpack', Buffer.from([0xc1]), /not msgpack/],
    ['a bare integer', Buffer.from([0x05]), /must be an array or a map/],
    ['events not an array', Buffer.from('92cb3ff000000000000005', 'hex'), /batch events: must be an array/],
    ['a hash that is a string', Buffer.from('92cb3ff00000000000009192ac426c6f636b52656d6f76656491a178', 'hex'), /block_hashes\[0\]: a block hash must be an integer or bytes/],
  ])('a malformed payload (%s) is an error naming the problem, never a crash', (_what, bytes, message) => {
    expect(() => decodeEventBatch(bytes)).toThrow(KvEventDecodeError);
    expect(() => decodeEventBatch(bytes)).toThrow(message);
  });
});

describe('ZMQ frames', () => {
  test('sequence numbers are 8-byte big-endian; the replay end marker is -1', () => {
    expect(encodeSeq(258n).toString('hex')).toBe('0000000000000102');
    expect(decodeSeq(encodeSeq(2n ** 63n + 1n))).toBe(2n ** 63n + 1n);
    expect(decodeSeq(Buffer.alloc(4))).toBeUndefined();
    expect(isReplayEnd(REPLAY_END_SEQ)).toBe(true);
    expect(isReplayEnd(encodeSeq(5n))).toBe(false);
    expect(encodeSeq(-1n).equals(REPLAY_END_SEQ)).toBe(true);
  });

  test('llm-d topics name the pod and the model', () => {
    expect(parseKvTopic('kv@10.0.0.7:8000@Qwen/Qwen3-0.6B')).toEqual({ pod: '10.0.0.7:8000', model: 'Qwen/Qwen3-0.6B' });
    expect(parseKvTopic('kv@10.0.0.7@m')).toEqual({ pod: '10.0.0.7', model: 'm' });
    expect(parseKvTopic('')).toBeUndefined();
    expect(parseKvTopic('kv@pod')).toBeUndefined();
    // Any first segment, as llm-d-kv-cache's parseTopic (engineadapter/common.go @ v0.7.1) splits any three parts.
    expect(parseKvTopic('vllm@10.0.0.7@m')).toEqual({ pod: '10.0.0.7', model: 'm' });
    expect(parseKvTopic('kv@@m')).toBeUndefined();
  });
});
