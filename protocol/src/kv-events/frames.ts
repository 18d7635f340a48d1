/**
 * The ZMQ framing around vLLM's KV-event payloads.
 * @see vllm-project/vllm: vllm/distributed/kv_events.py @ v0.10.0 (`ZmqEventPublisher._publisher_thread`,
 *   `_service_replay`, `END_SEQ`)
 *
 * - Live (PUB → SUB): `[topic, seq as 8-byte big-endian unsigned, payload]`; `seq` counts from 0 per publisher.
 * - Replay (DEALER → ROUTER): the client sends `["", start seq]`; the publisher answers `["", seq, payload]` for every
 *   buffered batch from that sequence on, then `["", END_SEQ, ""]` where END_SEQ is -1 as a signed 8-byte integer.
 */

/** The replay stream's end marker: -1 as 8 big-endian bytes. */
export const REPLAY_END_SEQ = Buffer.alloc(8, 0xff);

export function encodeSeq(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, seq));
  return b;
}

/** The unsigned sequence number of a frame, or undefined when the frame is not 8 bytes. */
export function decodeSeq(frame: Uint8Array): bigint | undefined {
  if (frame.length !== 8) return undefined;
  return Buffer.from(frame.buffer, frame.byteOffset, 8).readBigUInt64BE();
}

export function isReplayEnd(frame: Uint8Array): boolean {
  return frame.length === 8 && Buffer.from(frame.buffer, frame.byteOffset, 8).equals(REPLAY_END_SEQ);
}

/** A live message's frames. */
export function liveFrames(topic: string, seq: bigint, payload: Uint8Array): [Buffer, Buffer, Uint8Array] {
  return [Buffer.from(topic, 'utf8'), encodeSeq(seq), payload];
}

/**
 * llm-d's topic convention, `kv@<pod>@<model>` (llm-d/llm-d-kv-cache-manager pkg/kvcache/kvevents/pool.go @ v0.2.0):
 * the pod and model a central subscriber attributes events to. Any first segment is read as `kv` is, as
 * llm-d-kv-cache's `parseTopic` splits any three-part topic (engineadapter/common.go @ v0.7.1); which prefixes are
 * received at all is the subscription's topic filter. Undefined for any other shape.
 */
export function parseKvTopic(topic: string): { readonly pod: string; readonly model: string } | undefined {
  const parts = topic.split('@');
  if (parts.length !== 3 || parts[1] === '') return undefined;
  return { pod: parts[1]!, model: parts[2]! };
}
