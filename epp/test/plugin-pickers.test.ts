import { resolvePluginParameters } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState, type CycleContext, type ProfileOutcome, type ScoredEndpoint } from '../src/scheduling/framework';
import { MaxScorePicker } from '../src/scheduling/plugins/max-score-picker';
import { RandomPicker } from '../src/scheduling/plugins/random-picker';
import { WeightedRandomPicker } from '../src/scheduling/plugins/weighted-random-picker';
import { SingleProfileHandler } from '../src/scheduling/plugins/single-profile-handler';
import { SchedulingError } from '../src/scheduling/types';

function pod(name: string): EndpointSnapshot {
  return {
    endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} },
    metrics: EMPTY_METRICS,
    activeRequests: 0,
  };
}

const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };
const scored = (...entries: [string, number][]): ScoredEndpoint[] => entries.map(([name, score]) => ({ endpoint: pod(name), score }));
const names = (endpoints: readonly EndpointSnapshot[]) => endpoints.map((e) => e.endpoint.name);
/** An RNG that replays the given draws. */
const draws = (...values: number[]) => () => values.shift() ?? 0;

describe('max-score-picker', () => {
  const one = resolvePluginParameters('max-score-picker', undefined);

  it('picks the highest total', () => {
    const picker = new MaxScorePicker('max', one, draws());
    expect(names(picker.pick(cycle, scored(['a', 1.5], ['b', 3.2], ['c', 0])))).toEqual(['b']);
  });

  it('breaks ties with the injected RNG', () => {
    const candidates = scored(['a', 1], ['b', 2], ['c', 2], ['d', 2]);
    expect(names(new MaxScorePicker('max', one, draws(0)).pick(cycle, candidates))).toEqual(['b']);
    expect(names(new MaxScorePicker('max', one, draws(0.5)).pick(cycle, candidates))).toEqual(['c']);
    expect(names(new MaxScorePicker('max', one, draws(0.99)).pick(cycle, candidates))).toEqual(['d']);
  });

  it('spreads ties evenly with a uniform RNG', () => {
    let state = 7;
    const lcg = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const picker = new MaxScorePicker('max', one, lcg);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const [chosen] = names(picker.pick(cycle, scored(['a', 1], ['b', 1], ['c', 1])));
      counts.set(chosen!, (counts.get(chosen!) ?? 0) + 1);
    }
    for (const name of ['a', 'b', 'c']) expect(counts.get(name)).toBeGreaterThan(800);
  });

  it('returns maxNumOfEndpoints best first, ties in random order', () => {
    const picker = new MaxScorePicker('max', resolvePluginParameters('max-score-picker', { maxNumOfEndpoints: 3 }), draws(0, 0, 0));
    expect(names(picker.pick(cycle, scored(['a', 1], ['b', 5], ['c', 3], ['d', 0])))).toEqual(['b', 'c', 'a']);
  });

  it('returns nothing for no candidates', () => {
    expect(new MaxScorePicker('max', one, Math.random).pick(cycle, [])).toEqual([]);
  });

  it('pickFromTotals makes the same choice as pick, with the same draws, for one or several endpoints', () => {
    // The scheduler calls pickFromTotals (no ScoredEndpoint per candidate); pick is what other callers and the
    // interface define. Random totals with many ties, replayed through both with the same RNG sequence.
    let state = 11;
    const lcg = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (const maxNumOfEndpoints of [1, 3]) {
      const params = resolvePluginParameters('max-score-picker', { maxNumOfEndpoints });
      for (let round = 0; round < 300; round++) {
        const n = 1 + Math.floor(lcg() * 12);
        const entries = Array.from({ length: n }, (_, i): [string, number] => [`p${i}`, Math.floor(lcg() * 3) * 0.5]);
        const list = scored(...entries);
        const seed = Math.floor(lcg() * 1e9);
        const rngA = (() => { let s = seed; return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32); })();
        const rngB = (() => { let s = seed; return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32); })();
        const viaPick = new MaxScorePicker('max', params, rngA).pick(cycle, list);
        const viaTotals = new MaxScorePicker('max', params, rngB).pickFromTotals(cycle, list.map((e) => e.endpoint), Float64Array.from(list, (e) => e.score));
        expect(names(viaTotals)).toEqual(names(viaPick));
      }
    }
    expect(new MaxScorePicker('max', one, Math.random).pickFromTotals(cycle, [], new Float64Array(0))).toEqual([]);
  });
});

describe('random-picker', () => {
  it('ignores scores and follows the RNG', () => {
    const picker = new RandomPicker('random', resolvePluginParameters('random-picker', undefined), draws(0.99, 0.99));
    // Fisher–Yates with draws of 0.99 leaves the order unchanged; the first is taken.
    expect(names(picker.pick(cycle, scored(['low', 0], ['mid', 1], ['high', 9])))).toEqual(['low']);
  });

  it('returns maxNumOfEndpoints distinct endpoints', () => {
    const picker = new RandomPicker('random', resolvePluginParameters('random-picker', { maxNumOfEndpoints: 2 }), Math.random);
    const picked = names(picker.pick(cycle, scored(['a', 0], ['b', 0], ['c', 0])));
    expect(picked).toHaveLength(2);
    expect(new Set(picked).size).toBe(2);
  });
});

describe('single-profile-handler', () => {
  const handler = new SingleProfileHandler('single');

  it('runs every profile once', () => {
    expect(handler.pickProfiles(cycle, ['default'], new Map())).toEqual(['default']);
    const done = new Map<string, ProfileOutcome>([['default', { targets: [pod('a')], scores: new Map() }]]);
    expect(handler.pickProfiles(cycle, ['default'], done)).toEqual([]);
    expect(handler.processResults(cycle, done)).toEqual({ primaryProfile: 'default' });
  });

  it("re-throws the profile's SchedulingError", () => {
    const failure = new SchedulingError('saturated', 'all saturated');
    expect(() => handler.processResults(cycle, new Map([['default', failure]]))).toThrow(failure);
  });
});

describe('weighted-random-picker (GIE pkg/epp/scheduling/framework/plugins/picker/weighted_random_picker.go @ v1.0.0)', () => {
  const one = resolvePluginParameters('weighted-random-picker', undefined);

  it('takes the largest key u^(1/score): a draw that favours the lower score can still win, as A-Res sampling does', () => {
    // a: 0.5^(1/1) = 0.5; b: 0.25^(1/3) ≈ 0.63 → b. With draws 0.9 and 0.1: a 0.9, b ≈ 0.46 → a.
    expect(names(new WeightedRandomPicker('w', one, draws(0.5, 0.25)).pick(cycle, scored(['a', 1], ['b', 3])))).toEqual(['b']);
    expect(names(new WeightedRandomPicker('w', one, draws(0.9, 0.1)).pick(cycle, scored(['a', 1], ['b', 3])))).toEqual(['a']);
  });

  it('picks in proportion to the totals over many draws, never a zero-scored pod while another scores', () => {
    let state = 11;
    const lcg = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const picker = new WeightedRandomPicker('w', one, lcg);
    const counts = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const [chosen] = names(picker.pick(cycle, scored(['a', 1], ['b', 2], ['c', 3], ['z', 0])));
      counts.set(chosen!, (counts.get(chosen!) ?? 0) + 1);
    }
    expect(counts.get('z')).toBeUndefined();
    // Shares 1/6, 2/6, 3/6 = 1000, 2000, 3000 of 6000; the bound is loose so the check cannot flake on the LCG.
    expect(counts.get('a')!).toBeGreaterThan(800);
    expect(counts.get('a')!).toBeLessThan(1200);
    expect(counts.get('c')!).toBeGreaterThan(2700);
    expect(counts.get('c')!).toBeLessThan(3300);
  });

  it('picks uniformly when no total is positive, and returns maxNumOfEndpoints without repeats', () => {
    expect(names(new WeightedRandomPicker('w', one, draws(0)).pick(cycle, scored(['a', 0], ['b', 0], ['c', 0])))).toHaveLength(1);
    const three = new WeightedRandomPicker('w', resolvePluginParameters('weighted-random-picker', { maxNumOfEndpoints: 3 }), draws(0.5, 0.5, 0.5));
    expect(names(three.pick(cycle, scored(['a', 1], ['b', 4], ['c', 2], ['z', 0])))).toEqual(['b', 'c', 'a']);
  });
});
