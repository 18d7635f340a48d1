import { headerMapToMap, HeaderMapView, headerValue, type HeaderMap, type HeaderValue } from '../src/envoy';

/** A 32-bit LCG, so the cases are the same on every run. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const NAMES = ['content-type', 'Content-Type', 'CONTENT-TYPE', ':status', 'x-request-id', 'x-a', 'X-A', '', 'constructor', '__proto__', 'ü-h'];
const VALUES = ['application/json', 'text/event-stream; charset=utf-8', '', 'a,b', 'ü', ' spaced '];

function randomHeaders(random: () => number): HeaderMap {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const headers: HeaderValue[] = [];
  const n = Math.floor(random() * 7);
  for (let i = 0; i < n; i++) {
    const h: HeaderValue = {};
    if (random() < 0.95) h.key = pick(NAMES);
    const r = random();
    // raw_value (what Envoy sends), value, both (raw_value wins unless empty), or neither.
    if (r < 0.5) h.raw_value = Buffer.from(pick(VALUES));
    else if (r < 0.75) h.value = pick(VALUES);
    else if (r < 0.9) { h.raw_value = Buffer.from(pick(VALUES)); h.value = pick(VALUES); }
    headers.push(h);
  }
  return { headers };
}

describe('reading Envoy header maps without building a Map', () => {
  it('headerValue and HeaderMapView answer every name exactly as headerMapToMap does (case, repeats, raw_value/value, empty keys)', () => {
    const random = lcg(3);
    let matched = 0;
    for (let i = 0; i < 2000; i++) {
      const map = randomHeaders(random);
      const reference = headerMapToMap(map);
      const view = new HeaderMapView(map);
      for (const name of [...NAMES, 'absent']) {
        expect(headerValue(map, name)).toBe(reference.get(name));
        expect(view.get(name)).toBe(reference.get(name));
        expect(view.has(name)).toBe(reference.has(name));
        if (reference.has(name)) matched++;
      }
      // Everything else a ReadonlyMap offers is the Map's, in its order.
      expect(view.size).toBe(reference.size);
      expect([...view]).toEqual([...reference]);
      expect(Object.fromEntries(view)).toEqual(Object.fromEntries(reference));
      expect([...view.keys()]).toEqual([...reference.keys()]);
      expect([...view.values()]).toEqual([...reference.values()]);
      expect([...view.entries()]).toEqual([...reference.entries()]);
      const seen: [string, string][] = [];
      view.forEach((v, k, m) => { seen.push([k, v]); expect(m).toBe(view); });
      expect(seen).toEqual([...reference]);
      // And `get` after the map was built.
      for (const name of NAMES) expect(view.get(name)).toBe(reference.get(name));
    }
    expect(matched).toBeGreaterThan(1000);
  });

  it('reads null and missing header maps as empty', () => {
    for (const map of [null, undefined, {}, { headers: [] }] as (HeaderMap | null | undefined)[]) {
      expect(headerValue(map, 'content-type')).toBeUndefined();
      expect(new HeaderMapView(map).size).toBe(0);
    }
  });
});
