#!/usr/bin/python3
"""Golden vectors for sim/test/block-hash.test.ts, computed with real Python and cbor2 (Debian python3-cbor2).

The functions below are vLLM's, restated from its source (they need cbor2 and hashlib only, not vLLM):
  - v0.10.0 / v0.10.1: vllm-project/vllm vllm/utils/__init__.py @ v0.10.0 (sha256_cbor_64bit),
    vllm/v1/core/kv_cache_utils.py @ v0.10.0 (init_none_hash, hash_block_tokens, hash_request_tokens,
    generate_block_hash_extra_keys)
  - v0.10.2: vllm/utils/__init__.py and vllm/v1/core/kv_cache_utils.py @ 82dfb12e5 (#23673: sha256_cbor, bytes chain,
    maybe_convert_block_hash)
  - main: vllm/v1/core/kv_cache_utils.py @ 001cabc1 (the same hash; LoRA keyed by name, multimodal (identifier, offset)
    tuples, prompt-embedding digests): the "main_cases"

Run: /usr/bin/python3 sim/test/vectors/block-hash.py   (rewrites block-hash.json beside this file)
"""
import hashlib
import json
import os

import cbor2


# --- vLLM v0.10.0 -------------------------------------------------------------------------------------------------
def sha256_cbor_64bit(input) -> int:
    input_bytes = cbor2.dumps(input, canonical=True)
    full_hash = int.from_bytes(hashlib.sha256(input_bytes).digest(), byteorder="big")
    return full_hash & ((1 << 64) - 1)


def hash_block_tokens_v0100(hash_function, none_hash, parent_block_hash, curr_block_token_ids, extra_keys=None):
    if not parent_block_hash:
        parent_block_hash = none_hash
    curr_block_token_ids_tuple = tuple(curr_block_token_ids)
    return hash_function((parent_block_hash, curr_block_token_ids_tuple, extra_keys))


# --- vLLM v0.10.2 -------------------------------------------------------------------------------------------------
def sha256_cbor(input) -> bytes:
    return hashlib.sha256(cbor2.dumps(input, canonical=True)).digest()


def hash_block_tokens_v0102(hash_function, none_hash, parent_block_hash, curr_block_token_ids, extra_keys=None):
    if not parent_block_hash:
        parent_block_hash = none_hash
    curr_block_token_ids_tuple = tuple(curr_block_token_ids)
    return hash_function((parent_block_hash, curr_block_token_ids_tuple, extra_keys))


def maybe_convert_block_hash(hash_bytes: bytes) -> int:
    return int.from_bytes(hash_bytes, byteorder="big") & ((1 << 64) - 1)


# --- shared: generate_block_hash_extra_keys (text only: LoRA + cache_salt) -----------------------------------------
def extra_keys(start_token_idx, lora_int_id, cache_salt):
    lora_extra_keys = [lora_int_id] if lora_int_id is not None else []
    mm_extra_keys = []
    cache_salt_keys = [cache_salt] if (start_token_idx == 0 and cache_salt) else []
    keys = lora_extra_keys + mm_extra_keys + cache_salt_keys
    return tuple(keys) if keys else None


def chain(version, seed, tokens, block_size, lora_int_id=None, cache_salt=None):
    if version == "0.10.0":
        fn, hbt = sha256_cbor_64bit, hash_block_tokens_v0100
    else:
        fn, hbt = sha256_cbor, hash_block_tokens_v0102
    none_hash = fn(seed)  # init_none_hash with PYTHONHASHSEED=seed
    need_extra = lora_int_id is not None or cache_salt is not None
    out = []
    parent = None
    for start in range(0, len(tokens), block_size):
        block = tokens[start:start + block_size]
        if len(block) < block_size:
            break
        ek = extra_keys(start, lora_int_id, cache_salt) if need_extra else None
        h = hbt(fn, none_hash, parent, block, ek)
        cbor_in = cbor2.dumps((parent if parent else none_hash, tuple(block), ek), canonical=True)
        if version == "0.10.0":
            out.append({"event": str(h), "cbor": cbor_in.hex() if start == 0 else None})
        else:
            out.append({"event": str(maybe_convert_block_hash(h)), "digest": h.hex(), "cbor": cbor_in.hex() if start == 0 else None})
        parent = h
    nh = {"none_hash": str(none_hash)} if version == "0.10.0" else {"none_hash": none_hash.hex()}
    return {**nh, "seed_cbor": cbor2.dumps(seed, canonical=True).hex(), "blocks": out}


CASES = [
    {"name": "seed 42, tokens 1..40, block 16", "seed": "42", "tokens": list(range(1, 41)), "block_size": 16},
    {"name": "seed 0, tokens 1..32, block 16", "seed": "0", "tokens": list(range(1, 33)), "block_size": 16},
    {"name": "seed 42, Qwen3-sized ids (3-byte CBOR heads), block 4", "seed": "42",
     "tokens": [151643, 151644, 872, 198, 9707, 0, 23, 24, 255, 256, 65535, 65536, 100000, 151935, 7, 8], "block_size": 4},
    {"name": "seed 'random' (hashed as a string), block 8", "seed": "random", "tokens": list(range(500, 524)), "block_size": 8},
    {"name": "non-ASCII seed, block 16", "seed": "sé€d", "tokens": list(range(16, 48)), "block_size": 16},
    {"name": "cache_salt on block 0 only", "seed": "42", "tokens": list(range(1, 41)), "block_size": 16, "cache_salt": "tenant-a"},
    {"name": "empty cache_salt is no salt", "seed": "42", "tokens": list(range(1, 33)), "block_size": 16, "cache_salt": ""},
    {"name": "LoRA 1 on every block", "seed": "42", "tokens": list(range(1, 33)), "block_size": 16, "lora_int_id": 1},
    {"name": "LoRA 3 and cache_salt", "seed": "42", "tokens": list(range(1, 33)), "block_size": 16, "lora_int_id": 3, "cache_salt": "s"},
]


# --- vLLM main (vllm/v1/core/kv_cache_utils.py @ 001cabc1): the extra keys of newer releases ---------------------
# hash_block_tokens and sha256_cbor are unchanged from v0.10.2; what changed is what goes into extra_keys:
#   lora_extra_keys    = [lora_request.lora_name]              (#27577; lora_int_id before)
#   mm_extra_keys      = [(identifier, offset - start)] per item in the block  (_gen_mm_extra_hash_keys)
#   cache_salt_keys    = [cache_salt] on the block starting at token 0, if non-empty
#   prompt_embeds_keys = [sha256(block's embeddings tensor bytes).digest()]  (the tensor's bytes are given here)
def gen_mm_extra_keys(mm, start, end, start_mm_idx):
    """_gen_mm_extra_hash_keys restated; mm = [(identifier, offset, length)] sorted by offset."""
    keys = []
    if not mm:
        return keys, start_mm_idx
    last_offset, last_length = mm[-1][1], mm[-1][2]
    if last_offset + last_length <= start:
        return keys, start_mm_idx
    if start_mm_idx < 0:
        start_mm_idx = len(mm) + start_mm_idx
    idx = start_mm_idx
    while idx < len(mm):
        identifier, offset, length = mm[idx]
        if end > offset:
            if start >= offset + length:
                idx += 1
                continue
            keys.append((identifier, offset - start))
            if end >= offset + length:
                idx += 1
            else:
                break
        else:
            break
    return keys, idx


def extra_keys_main(start, end, mm_idx, lora_name, mm, cache_salt, embeds):
    mm_keys, mm_idx = gen_mm_extra_keys(mm, start, end, mm_idx)
    lora_keys = [lora_name] if lora_name is not None else []
    salt_keys = [cache_salt] if (start == 0 and cache_salt) else []
    embeds_keys = [hashlib.sha256(embeds[start:end]).digest()] if embeds is not None else []
    keys = lora_keys + mm_keys + salt_keys + embeds_keys
    return (tuple(keys) if keys else None), mm_idx


def json_key(k):
    """An extra key in JSON: tuples as lists, bytes as {"bytes": hex}."""
    if isinstance(k, tuple):
        return [json_key(x) for x in k]
    if isinstance(k, bytes):
        return {"bytes": k.hex()}
    return k


def chain_main(seed, tokens, block_size, lora_name=None, mm=None, cache_salt=None, embeds=None):
    none_hash = sha256_cbor(seed)
    need_extra = bool(mm) or lora_name is not None or cache_salt is not None or embeds is not None
    out, parent, mm_idx = [], None, 0
    for start in range(0, len(tokens), block_size):
        block = tokens[start:start + block_size]
        if len(block) < block_size:
            break  # only full blocks are hashed: the partial last block never is
        ek = None
        if need_extra:
            ek, mm_idx = extra_keys_main(start, start + block_size, mm_idx, lora_name, mm, cache_salt, embeds)
        h = hash_block_tokens_v0102(sha256_cbor, none_hash, parent, block, ek)
        out.append({"extra_keys": None if ek is None else [json_key(k) for k in ek], "digest": h.hex(),
                    "event": str(maybe_convert_block_hash(h)),
                    "cbor": cbor2.dumps((parent if parent else none_hash, tuple(block), ek), canonical=True).hex()})
        parent = h
    return {"none_hash": none_hash.hex(), "blocks": out}


MAIN_CASES = [
    {"name": "LoRA by name and cache_salt (#27577), partial last block", "seed": "42", "tokens": list(range(1, 45)),
     "block_size": 16, "lora_name": "sql-lora", "cache_salt": "tenant-a"},
    {"name": "two images: (identifier, offset) keys, one spanning blocks 0-1, one inside block 2", "seed": "42",
     "tokens": list(range(100, 148)), "block_size": 16,
     "mm": [("img-hash-a", 10, 12), ("img-hash-b", 36, 4)]},
    {"name": "LoRA name, an image and a salt together on block 0", "seed": "7", "tokens": list(range(1, 33)),
     "block_size": 16, "lora_name": "chat", "mm": [("img-x", 0, 20)], "cache_salt": "s"},
    {"name": "prompt embeddings: one sha256 digest per block", "seed": "42", "tokens": [0] * 32, "block_size": 16,
     "embeds": bytes(range(256)) * 1},
]


def main():
    vectors = []
    for c in CASES:
        entry = {k: c[k] for k in ("name", "seed", "tokens", "block_size")}
        entry["lora_int_id"] = c.get("lora_int_id")
        entry["cache_salt"] = c.get("cache_salt")
        for version in ("0.10.0", "0.10.2"):
            entry[version] = chain(version, c["seed"], c["tokens"], c["block_size"], c.get("lora_int_id"), c.get("cache_salt"))
        vectors.append(entry)
    main_cases = []
    for c in MAIN_CASES:
        entry = {k: c[k] for k in ("name", "seed", "tokens", "block_size")}
        entry["lora_name"] = c.get("lora_name")
        entry["cache_salt"] = c.get("cache_salt")
        entry["mm"] = [list(m) for m in c.get("mm", [])]
        entry["embeds"] = c["embeds"].hex() if "embeds" in c else None
        entry["main"] = chain_main(c["seed"], c["tokens"], c["block_size"], c.get("lora_name"), c.get("mm"),
                                   c.get("cache_salt"), c.get("embeds"))
        main_cases.append(entry)
    doc = {
        "generator": "sim/test/vectors/block-hash.py",
        "cbor2": getattr(cbor2, "__version__", None) or _cbor2_version(),
        "cases": vectors,
        "main_cases": main_cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "block-hash.json")
    # One case per line: diffs stay readable when a case is added.
    cases = ",\n  ".join(json.dumps(c, separators=(",", ":")) for c in doc["cases"])
    mains = ",\n  ".join(json.dumps(c, separators=(",", ":")) for c in doc["main_cases"])
    with open(path, "w") as f:
        f.write('{"generator":%s,"cbor2":%s,"cases":[\n  %s\n],"main_cases":[\n  %s\n]}\n'
                % (json.dumps(doc["generator"]), json.dumps(doc["cbor2"]), cases, mains))


def _cbor2_version():
    try:
        from importlib.metadata import version
        return version("cbor2")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    main()
