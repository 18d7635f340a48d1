import { seededRandom } from '@kvroute/testkit';
import { KeyLru } from '../src/kvindex/key-lru';

describe('KeyLru (a pod\'s keys in the KV block index, least recently stored or used first)', () => {
  it('keeps the order of a Map refreshed by delete and set, through 20,000 random uses, refreshes and deletes, reusing freed slots', () => {
    const rnd = seededRandom(7);
    const lru = new KeyLru(2);
    const model = new Map<number, true>();
    for (let step = 0; step < 20_000; step++) {
      const r = rnd();
      // Keys of both signs and beyond 2^32 (the index's own keys are 53-bit, engine keys negative).
      const key = Math.floor(rnd() * 400) * (rnd() < 0.5 ? -1 : 1) * 2 ** 40 + 3;
      if (r < 0.45) {
        lru.use(key);
        model.delete(key);
        model.set(key, true);
      } else if (r < 0.7) {
        expect(lru.refresh(key)).toBe(model.has(key));
        if (model.delete(key)) model.set(key, true);
      } else if (r < 0.9) {
        expect(lru.delete(key)).toBe(model.delete(key));
      } else if (model.size > 0) {
        const oldest = model.keys().next().value!;
        expect(lru.oldest()).toBe(oldest);
        lru.delete(oldest);
        model.delete(oldest);
      }
      expect(lru.size).toBe(model.size);
      if (step % 97 === 0) {
        expect(lru.keysOldestFirst()).toEqual([...model.keys()]);
        expect(new Set(lru.keys())).toEqual(new Set(model.keys()));
      }
    }
    // Slots freed are reused: the arrays never grew past the most keys held at once (≤ 800), rounded up to a power of two.
    expect((lru as unknown as { keyAt: Float64Array }).keyAt.length).toBeLessThanOrEqual(1024);
  });

  it('an empty LRU has no oldest key, and emptying one leaves it usable', () => {
    const lru = new KeyLru();
    expect(lru.oldest()).toBeUndefined();
    expect(lru.refresh(1)).toBe(false);
    expect(lru.delete(1)).toBe(false);
    lru.use(1);
    lru.use(2);
    lru.use(1);
    expect(lru.keysOldestFirst()).toEqual([2, 1]);
    lru.delete(2);
    lru.delete(1);
    expect(lru.oldest()).toBeUndefined();
    expect(lru.size).toBe(0);
    lru.use(5);
    expect(lru.keysOldestFirst()).toEqual([5]);
    expect(lru.oldest()).toBe(5);
  });
  it('useBefore puts a key just below another (a block just below its parent), adding or moving it; the newest when the other is not held', () => {
    const lru = new KeyLru(2);
    lru.useBefore(1, 99); // 99 not held: 1 is the newest
    lru.useBefore(2, 1);
    lru.useBefore(3, 2);
    expect(lru.keysOldestFirst()).toEqual([3, 2, 1]);
    expect(lru.oldest()).toBe(3);
    lru.use(4);
    lru.useBefore(5, 4);
    expect(lru.keysOldestFirst()).toEqual([3, 2, 1, 5, 4]);
    // A held key moves; one already just below stays.
    lru.useBefore(3, 4);
    expect(lru.keysOldestFirst()).toEqual([2, 1, 5, 3, 4]);
    lru.useBefore(3, 4);
    expect(lru.keysOldestFirst()).toEqual([2, 1, 5, 3, 4]);
    lru.useBefore(4, 2);
    expect(lru.keysOldestFirst()).toEqual([4, 2, 1, 5, 3]);
    expect(lru.oldest()).toBe(4);
    lru.delete(4);
    lru.delete(3);
    lru.useBefore(6, 5);
    expect(lru.keysOldestFirst()).toEqual([2, 1, 6, 5]);
    expect(lru.size).toBe(4);
  });
});
