#!/usr/bin/env python3
"""Reference payloads for kvroute's KV-event codec, written by the real msgpack library (Debian python3-msgpack).

vLLM encodes its events with msgspec (vllm/distributed/kv_events.py @ v0.10.0: EventBatch and the events are
`array_like=True` structs, the event class name first). For these types (lists, ints in the smallest format, floats
as float64, str, None) msgspec and msgpack-python write the same bytes, so this script reproduces vLLM's payloads
without vLLM. Run once, commit the output:  python3 kv-events.py > kv-events.json
"""
import json
import msgpack

H1 = 9442596223568401980          # > 2^63: uint64
H2 = 10401597220457154048
SMALL = 7                          # a hash that happens to be small: positive fixint
NEG = -4209875623087421111         # a `builtin` (Python hash()) value: int64

cases = {
    # vLLM 0.10.0: BlockStored(block_hashes, parent_block_hash, token_ids, block_size, lora_id)
    "v0.10.0-stored-removed-cleared": [1753400000.25, [
        ["BlockStored", [H1, H2], None, list(range(1, 33)), 16, None],
        ["BlockRemoved", [H1]],
        ["AllBlocksCleared"],
    ], 0],
    "v0.10.0-builtin-small-and-negative": [1753400001.5, [
        ["BlockStored", [SMALL, NEG], SMALL - 1, list(range(100, 132)), 16, 3],
    ], 0],
    # vLLM 0.10.2: medium appended to BlockStored and BlockRemoved
    "v0.10.2-medium": [1757700000.125, [
        ["BlockStored", [H2], H1, list(range(17, 33)), 16, None, "GPU"],
        ["BlockRemoved", [H2], "CPU"],
    ], 1],
    # Newer positional fields (lora_name, extra_keys, group_idx, kv_cache_spec_kind, kv_cache_spec_sliding_window), one
    # field no vLLM has yet, and an event type this decoder does not know.
    "newer-positional-extra-fields": [1767000000.5, [
        ["BlockStored", [H1], None, list(range(1, 17)), 16, None, "GPU", "adapter-a", [None], 0, "full_attention", None,
         "a-field-after-kv_cache_spec_sliding_window"],
        ["BlockTouched", [H1]],
    ], 0],
    # vLLM #42892: events as maps tagged by "type", the batch still positional.
    "map-events": [1781000000.75, [
        {"type": "BlockStored", "block_hashes": [H1], "parent_block_hash": None, "token_ids": list(range(1, 17)),
         "block_size": 16, "lora_id": None, "medium": "GPU", "lora_name": None, "future_field": 1},
        {"type": "BlockRemoved", "block_hashes": [H1], "medium": "GPU"},
        {"type": "AllBlocksCleared"},
    ], 0],
    # The whole batch as a map, as the stored newest kv_events.py would encode it.
    "map-batch": {"ts": 1781000001.0, "events": [{"type": "AllBlocksCleared"}], "data_parallel_rank": 2},
    # vLLM v0.26.0 (after #42892), what its block pool writes for a LoRA request with a cache_salt and then an eviction
    # (vllm/v1/core/block_pool.py cache_full_blocks / _maybe_evict_cached_block; struct field order and defaults from
    # vllm/distributed/kv_events.py @ 0181ea31): msgspec writes the tag first, then the fields in declaration order,
    # leaving out those equal to their default None (omit_defaults). lora_id, medium and lora_name have no default.
    # extra_keys: one entry per block, LoRA name first, the salt on block 0 only; a (identifier, offset) multimodal
    # tuple on block 1; group_idx 0 and kv_cache_spec_kind "full_attention" for a one-group model (as in the v0.26.0
    # capture of volcano-sh/kthena#1535).
    "v0.26-map-lora-salt": [1789095808.8378847, [
        {"type": "BlockStored", "block_hashes": [H1, H2], "parent_block_hash": None, "token_ids": list(range(1, 33)),
         "block_size": 16, "lora_id": 1, "medium": "GPU", "lora_name": "sql-lora",
         "extra_keys": [["sql-lora", "tenant-a"], ["sql-lora", ["mm-hash-1", 3]]], "group_idx": 0,
         "kv_cache_spec_kind": "full_attention"},
        {"type": "BlockStored", "block_hashes": [SMALL], "parent_block_hash": H2, "token_ids": list(range(33, 49)),
         "block_size": 16, "lora_id": None, "medium": "GPU", "lora_name": None, "extra_keys": [None], "group_idx": 0,
         "kv_cache_spec_kind": "full_attention"},
        {"type": "BlockRemoved", "block_hashes": [H1], "medium": "GPU", "group_idx": 0},
        {"type": "AllBlocksCleared"},
    ], 0],
}

print(json.dumps({name: msgpack.packb(value, use_bin_type=True).hex() for name, value in cases.items()}, indent=2))
