import type { BlockRemoved, BlockStored } from '@kvroute/protocol/kv-events';
import { blockKey, rootKey } from '../src/scheduling/plugins/prefix-hash';

/** The prefix index's key for a request's empty prefix (no LoRA, no salt). */
export const ROOT = rootKey('');

/** `n` consecutive token ids from `from`: prompts that share nothing unless their ranges overlap. */
export const tokens = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/**
 * Builders for a KvBlockIndex test at block size `bs`: the index keys of a prompt's full blocks (chained from `root`),
 * and vLLM's `BlockStored` / `BlockRemoved` events (vllm/distributed/kv_events.py @ v0.10.0, without LoRA or parent).
 */
export function blockFixtures(bs: number) {
  return {
    requestKeys(ids: readonly number[], root = ROOT): number[] {
      const keys: number[] = [];
      let parent = root;
      for (let i = 0; i + bs <= ids.length; i += bs) keys.push((parent = blockKey(parent, ids, i, i + bs)));
      return keys;
    },
    stored: (hashes: string[], ids: number[]): BlockStored => ({ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: ids, blockSize: bs, loraId: null }),
    removed: (hashes: string[]): BlockRemoved => ({ type: 'BlockRemoved', blockHashes: hashes }),
  };
}
