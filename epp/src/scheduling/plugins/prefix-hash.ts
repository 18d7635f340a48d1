/**
 * Chained block hashes of a prompt, the keys of the approximate prefix index.
 *
 * Block i's hash covers block i and, through its seed, every block before it and the model name — so equal hashes
 * mean equal prefixes of the same model, and the model name costs no extra hash (unlike GIE v0.5.1, whose separate
 * model hash gave every pod that ever served the model a free 1/total; GIE v1.0 folds it in the same way).
 *
 * The hash is 64 bits wide as two 32-bit lanes computed with `Math.imul`, because Node has no built-in xxhash and
 * a 64-bit multiply through BigInt costs an allocation per step. Lane A is a MurmurHash3-style mix and lane B an
 * xxHash32-style round, each over pairs of UTF-16 code units, then cross-mixed through MurmurHash3's finalizer so
 * every output bit depends on both lanes. It is not cryptographic: clients could craft colliding prompts, which only
 * misleads their own routing. Blocks are counted in UTF-16 code units ("characters"); for ASCII prompts they equal
 * upstream's bytes.
 *
 * Index keys are the hash folded to 53 bits (lane A's top 21 bits, lane B's 32) so they stay exact JS numbers and
 * Map keys without boxing; with ~10^6 live keys the chance of any collision is ~10^-4, and one costs at most a
 * mis-scored block. The chain itself carries all 64 bits.
 */

const LANE_A_SEED = 0x9e3779b1;
const LANE_B_SEED = 0x85ebca77;

/** The lanes of the last `hashRange` call; module state instead of a returned pair to avoid an allocation per block. */
let laneA = 0;
let laneB = 0;

function finalMix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** Lane A: MurmurHash3's body step. */
function mixLaneA(a: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  a ^= Math.imul(k, 0x1b873593);
  a = (a << 13) | (a >>> 19);
  return (Math.imul(a, 5) + 0xe6546b64) | 0;
}

/** Lane B: an xxHash32 round. */
function mixLaneB(b: number, word: number): number {
  b = (b + Math.imul(word, 0x85ebca77)) | 0;
  b = (b << 13) | (b >>> 19);
  return Math.imul(b, 0x9e3779b1);
}

function hashRange(text: string, start: number, end: number, seedA: number, seedB: number): void {
  let a = seedA | 0;
  let b = seedB | 0;
  let i = start;
  for (; i + 1 < end; i += 2) {
    const word = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    a = mixLaneA(a, word);
    b = mixLaneB(b, word);
  }
  // An odd tail unit is a word of its own; the length mixed in below tells it apart from a pair ending in U+0000.
  if (i < end) {
    const word = text.charCodeAt(i);
    a = mixLaneA(a, word);
    b = mixLaneB(b, word);
  }
  const length = end - start;
  a = finalMix((a ^ length) + Math.imul(b, 0x27d4eb2f));
  b = finalMix(b ^ length ^ a);
  laneA = a;
  laneB = b;
}

/** `hashRange` over UTF-16 code units in an array instead of a string (the same words, so the same lanes). */
function hashUnits(units: Uint16Array, start: number, end: number, seedA: number, seedB: number): void {
  let a = seedA | 0;
  let b = seedB | 0;
  let i = start;
  for (; i + 1 < end; i += 2) {
    const word = units[i]! | (units[i + 1]! << 16);
    a = mixLaneA(a, word);
    b = mixLaneB(b, word);
  }
  if (i < end) {
    const word = units[i]!;
    a = mixLaneA(a, word);
    b = mixLaneB(b, word);
  }
  const length = end - start;
  a = finalMix((a ^ length) + Math.imul(b, 0x27d4eb2f));
  b = finalMix(b ^ length ^ a);
  laneA = a;
  laneB = b;
}

/** `hashUnits` over words [start, end) holding `length` code units (an even count): the same lanes. */
function hashWords(words: Uint32Array, start: number, end: number, length: number, seedA: number, seedB: number): void {
  let a = seedA | 0;
  let b = seedB | 0;
  for (let i = start; i < end; i++) {
    const word = words[i]!;
    a = mixLaneA(a, word);
    b = mixLaneB(b, word);
  }
  a = finalMix((a ^ length) + Math.imul(b, 0x27d4eb2f));
  b = finalMix(b ^ length ^ a);
  laneA = a;
  laneB = b;
}

const TWO_TO_32 = 4294967296;

/**
 * The prompt's code units are copied here (`Buffer.write`, native) before hashing: reading a typed array is the same
 * fast path whatever V8 made of the prompt string (a cons string from the chat template's concatenations, a slice of
 * the parsed body), where `charCodeAt` in the EPP measured several times slower than on a flat string in isolation
 * (epp/README.md, "Where the CPU goes"). Grown as needed, reused by every request. Little-endian hosts only (all that
 * Node's images run on); elsewhere the string is read directly.
 */
let scratch = Buffer.alloc(0);
let scratchUnits = new Uint16Array(0);
/** The same bytes as 32-bit words, two code units each (little-endian: the low unit first, as `hashUnits` pairs them). */
let scratchWords = new Uint32Array(0);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function codeUnits(text: string, length: number): Uint16Array {
  if (scratch.length < 2 * length) {
    // A length in whole words, from a buffer of its own (offset 0): the word view needs 4-byte alignment.
    scratch = Buffer.allocUnsafeSlow(4 * Math.ceil(Math.max(length, 8192) / 2));
    scratchUnits = new Uint16Array(scratch.buffer, scratch.byteOffset, scratch.length / 2);
    scratchWords = new Uint32Array(scratch.buffer, scratch.byteOffset, scratch.length / 4);
  }
  // utf16le writes each UTF-16 code unit as is, lone surrogates included: the same units charCodeAt reads.
  scratch.write(text.length === length ? text : text.slice(0, length), 0, 2 * length, 'utf16le');
  return scratchUnits;
}

/**
 * The index keys of `prompt`'s full blocks: `min(floor(length / blockSize), maxBlocks)` keys, block 0 seeded with
 * the hash of `model`. A prompt shorter than one block has no keys, and the partial last block is not hashed (GIE
 * v1.5.0 `approximateprefix/hashing.go`), unless `partialLastBlock`: then what is left past the full blocks is one more
 * key while the keys stay under `maxBlocks`, as llm-d-router v0.10.0 cuts its prompts (`prefixhash/hashing.go`
 * getKVCacheBlocksFromTokens yields the short last block), so a prompt shorter than one block has one key.
 */
export function hashPromptBlocks(model: string, prompt: string, blockSize: number, maxBlocks: number, partialLastBlock = false): number[] {
  const fullBlocks = Math.min(Math.floor(prompt.length / blockSize), maxBlocks);
  const hashedLength = partialLastBlock && fullBlocks < maxBlocks ? prompt.length : fullBlocks * blockSize;
  if (hashedLength <= 0) return [];
  if (!LITTLE_ENDIAN) return hashPromptBlocksFromString(model, prompt, blockSize, maxBlocks, partialLastBlock);
  const units = codeUnits(prompt, hashedLength);
  hashRange(model, 0, model.length, LANE_A_SEED, LANE_B_SEED);
  const keys = new Array<number>(Math.ceil(hashedLength / blockSize));
  if (blockSize % 2 === 0) {
    // Every block starts on a whole word: one 32-bit load per pair of code units instead of two 16-bit loads and a
    // shift, the same words (~25% off the hash, which at 16 KB prompts was the routing thread's largest function).
    const half = blockSize >> 1;
    for (let block = 0; block < fullBlocks; block++) {
      hashWords(scratchWords, block * half, block * half + half, blockSize, laneA, laneB);
      keys[block] = (laneA >>> 11) * TWO_TO_32 + (laneB >>> 0);
    }
  } else {
    for (let block = 0; block < fullBlocks; block++) {
      const start = block * blockSize;
      hashUnits(units, start, start + blockSize, laneA, laneB);
      keys[block] = (laneA >>> 11) * TWO_TO_32 + (laneB >>> 0);
    }
  }
  if (keys.length > fullBlocks) {
    hashUnits(units, fullBlocks * blockSize, hashedLength, laneA, laneB);
    keys[fullBlocks] = (laneA >>> 11) * TWO_TO_32 + (laneB >>> 0);
  }
  return keys;
}

/** `hashPromptBlocks` reading the string itself: the reference the fast path is tested against. */
export function hashPromptBlocksFromString(model: string, prompt: string, blockSize: number, maxBlocks: number, partialLastBlock = false): number[] {
  const fullBlocks = Math.min(Math.floor(prompt.length / blockSize), maxBlocks);
  const hashedLength = partialLastBlock && fullBlocks < maxBlocks ? prompt.length : fullBlocks * blockSize;
  if (hashedLength <= 0) return [];
  hashRange(model, 0, model.length, LANE_A_SEED, LANE_B_SEED);
  const keys = new Array<number>(Math.ceil(hashedLength / blockSize));
  for (let block = 0; block < keys.length; block++) {
    const start = block * blockSize;
    hashRange(prompt, start, Math.min(start + blockSize, hashedLength), laneA, laneB);
    keys[block] = (laneA >>> 11) * TWO_TO_32 + (laneB >>> 0);
  }
  return keys;
}

/**
 * The key of one KV block of token ids, chained on its parent's key: `blockKey(parent, tokens)` hashes the parent's
 * 53 bits and the block's ids (and, for block 0, any extra words such as a cache salt) through the same two lanes as
 * the text blocks above. Keys of equal token prefixes are equal whatever engine hash algorithm produced the blocks,
 * which is what lets the precise index work with vLLM's `builtin` hash and without `PYTHONHASHSEED` alignment.
 */
export function blockKey(parentKey: number, tokens: ArrayLike<number>, start: number, end: number, extra?: ArrayLike<number>): number {
  let a = mixLaneA(LANE_A_SEED, parentKey >>> 0);
  let b = mixLaneB(LANE_B_SEED, Math.floor(parentKey / TWO_TO_32));
  for (let i = start; i < end; i++) {
    a = mixLaneA(a, tokens[i]! | 0);
    b = mixLaneB(b, tokens[i]! | 0);
  }
  const extraLength = extra?.length ?? 0;
  for (let i = 0; i < extraLength; i++) {
    a = mixLaneA(a, extra![i]! | 0);
    b = mixLaneB(b, extra![i]! | 0);
  }
  const length = end - start + extraLength * 0x10000;
  a = finalMix((a ^ length) + Math.imul(b, 0x27d4eb2f));
  b = finalMix(b ^ length ^ a);
  return (a >>> 11) * TWO_TO_32 + (b >>> 0);
}

/**
 * `blockKey` computed piecewise, for tokens that arrive in pieces (vLLM's engine blocks smaller than the configured
 * ones): the lanes after the parent key and the tokens so far, and how many tokens that is. A piece costs what its
 * tokens cost in `blockKey`, and the state is three numbers, so no token needs keeping between pieces.
 */
export interface PartialBlockKey {
  readonly a: number;
  readonly b: number;
  /** Tokens hashed so far. */
  readonly length: number;
}

/** A block key's state before any token: the parent's key only. */
export function beginBlockKey(parentKey: number): PartialBlockKey {
  return { a: mixLaneA(LANE_A_SEED, parentKey >>> 0), b: mixLaneB(LANE_B_SEED, Math.floor(parentKey / TWO_TO_32)), length: 0 };
}

/** The state after `tokens[start, end)` more. */
export function extendBlockKey(partial: PartialBlockKey, tokens: ArrayLike<number>, start: number, end: number): PartialBlockKey {
  let { a, b } = partial;
  for (let i = start; i < end; i++) {
    a = mixLaneA(a, tokens[i]! | 0);
    b = mixLaneB(b, tokens[i]! | 0);
  }
  return { a, b, length: partial.length + end - start };
}

/** The key: `blockKey(parent, all the tokens, extra)`. */
export function endBlockKey(partial: PartialBlockKey, extra?: ArrayLike<number>): number {
  let { a, b } = partial;
  const extraLength = extra?.length ?? 0;
  for (let i = 0; i < extraLength; i++) {
    a = mixLaneA(a, extra![i]! | 0);
    b = mixLaneB(b, extra![i]! | 0);
  }
  const length = partial.length + extraLength * 0x10000;
  a = finalMix((a ^ length) + Math.imul(b, 0x27d4eb2f));
  b = finalMix(b ^ length ^ a);
  return (a >>> 11) * TWO_TO_32 + (b >>> 0);
}

/** The root a chain of block keys starts from: a hash of the LoRA adapter's name ('' for the base model). */
export function rootKey(adapter: string): number {
  hashRange(adapter, 0, adapter.length, LANE_A_SEED, LANE_B_SEED);
  return (laneA >>> 11) * TWO_TO_32 + (laneB >>> 0);
}

/** Words of a string, for `blockKey`'s extra keys (a cache salt). */
export function stringWords(s: string): number[] {
  const words: number[] = [];
  for (let i = 0; i < s.length; i += 2) words.push(s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
  words.push(s.length);
  return words;
}

/** Probes past the window at most, so a prompt of any length costs a bounded number of one-block hashes. */
export const MAX_TAIL_PROBES = 40;

/**
 * Sparse evidence past the compared window of a long prompt: one-block keys at `windowChars + blockChars × 2^k` and at
 * the prompt's last full block `− blockChars × 2^k` (k = 0, 1, …), in ascending order, each chained to the previous key
 * (the first to the window's last, `windowKey`), so a pod's consecutive matching probes say how far past the window it
 * held the same text. `ends[i]` is where probe `i`'s block ends, in characters. Dense near both ends: past the window
 * (a shared prefix that goes on a little) and before the end (a long shared document before a short question).
 */
export function hashTailProbes(
  windowKey: number,
  prompt: string,
  windowChars: number,
  blockChars: number,
  /** Reads characters `[start, end)` of `prompt` (a reader that does not flatten a long prompt's rope). */
  slice: (start: number, end: number) => string = (start, end) => prompt.slice(start, end),
): { keys: number[]; ends: number[] } {
  const lastEnd = Math.floor(prompt.length / blockChars) * blockChars;
  const ends = new Set<number>();
  for (let step = blockChars; windowChars + step <= lastEnd; step *= 2) ends.add(windowChars + step);
  for (let step = 0; lastEnd - step > windowChars; step = step === 0 ? blockChars : step * 2) ends.add(lastEnd - step);
  const sorted = [...ends].sort((a, b) => a - b).slice(0, MAX_TAIL_PROBES);
  const keys = new Array<number>(sorted.length);
  let previous = windowKey;
  for (let i = 0; i < sorted.length; i++) {
    const end = sorted[i]!;
    previous = hashPromptBlocks(String(previous), slice(end - blockChars, end), blockChars, 1)[0]!;
    keys[i] = previous;
  }
  return { keys, ends: sorted };
}
