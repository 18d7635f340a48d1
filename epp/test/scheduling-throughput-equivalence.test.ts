/**
 * The per-request work was cut at 256 pods (epp/README.md "Benchmark", "Where the CPU goes") without changing a
 * decision: these tests compare each changed structure with the straightforward version it replaced, on randomized
 * pools from a seeded generator.
 */
import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { EndpointSnapshot } from '../src/datastore/types';
import { CycleState, SILENT_PLUGIN_LOGGER, type CycleContext, type PluginHandle } from '../src/scheduling/framework';
import { NOOP_SCHEDULING_METRICS, type SaturationExclusionReason } from '../src/scheduling/metrics-hooks';
import { ByLabelFilter, ROLE_LABEL } from '../src/scheduling/plugins/by-label';
import { hashPromptBlocks, hashPromptBlocksFromString } from '../src/scheduling/plugins/prefix-hash';
import { PrefixBlockIndex } from '../src/scheduling/plugins/prefix-index';
import { SaturationFilter } from '../src/scheduling/plugins/saturation-filter';
import type { PrefixCacheScorer } from '../src/scheduling/plugins/prefix-cache-scorer';
import { buildScheduler } from '../src/scheduling/scheduler';

const key = (i: number) => `10.0.${i >> 8}.${i & 255}:8000`;

/** What `snapshot()` returned before it was cached: fresh objects from the live state. */
function freshSnapshot(ds: Datastore): EndpointSnapshot[] {
  return ds.endpoints().map((endpoint) => ({
    endpoint, metrics: ds.metrics(endpoint.key)!, activeRequests: ds.activeRequests(endpoint.key), discoveredTime: ds.discoveredTime(endpoint.key),
    netPicksSinceScrape: ds.netPicksSinceScrape(endpoint.key),
  }));
}

describe('Datastore.snapshot() reused until something changes', () => {
  it('always equals a fresh snapshot of the live state, through random adds, removals, scrapes and picks', async () => {
    const random = seededRandom(11);
    const ds = new Datastore({ scrape: false });
    const live = new Set<number>();
    let previous = ds.snapshot();
    for (let step = 0; step < 1500; step++) {
      const i = Math.floor(random() * 40);
      const op = random();
      let touched: string | undefined;
      if (op < 0.1) {
        ds.upsertEndpoint({ key: key(i), name: `pod-${i}-${step % 3}`, namespace: 'ns', address: key(i).split(':')[0]!, port: 8000, labels: {} });
        live.add(i);
        touched = key(i);
      } else if (op < 0.15 && live.has(i)) {
        ds.removeEndpoint(key(i));
        live.delete(i);
        touched = key(i);
      } else if (op < 0.5 && live.has(i)) {
        ds.setMetrics(key(i), { waitingQueueSize: Math.floor(random() * 8), updateTime: step });
        touched = key(i);
      } else if (op < 0.75) {
        ds.acquire(key(i)); // also for keys not in the pool: in-flight counts outlive their pod
        touched = key(i);
      } else {
        ds.release(key(i));
        touched = key(i);
      }
      const snap = ds.snapshot();
      expect(snap).toEqual(freshSnapshot(ds));
      // The array is readonly by type only (a frozen array is ~5x slower to iterate in V8); its records are frozen.
      expect(ds.snapshot()).toBe(snap); // nothing changed in between: the same array
      // Records that did not change keep their frozen object; the changed one never shows a stale value.
      const before = new Map(previous.map((s) => [s.endpoint.key, s]));
      for (const s of snap) {
        expect(Object.isFrozen(s)).toBe(true);
        if (s.endpoint.key !== touched && before.has(s.endpoint.key)) expect(s).toBe(before.get(s.endpoint.key));
      }
      previous = snap;
    }
    await ds.stop();
  });
});

describe('PrefixBlockIndex.longestPrefixMatches without a candidate set', () => {
  it('gives every candidate the count it gets when asked with the set (random index, random subsets)', () => {
    const random = seededRandom(7);
    const index = new PrefixBlockIndex({ defaultCapacityPerEndpoint: 200 });
    const pods = Array.from({ length: 64 }, (_, i) => `p${i}`);
    const prompts = Array.from({ length: 12 }, (_, f) => Array.from({ length: 40 }, (_, b) => f * 1000 + b));
    for (let r = 0; r < 2000; r++) {
      const prompt = prompts[Math.floor(random() * prompts.length)]!;
      index.record(pods[Math.floor(random() * pods.length)]!, prompt.slice(0, 1 + Math.floor(random() * prompt.length)));
    }
    for (let q = 0; q < 300; q++) {
      const prompt = prompts[Math.floor(random() * prompts.length)]!;
      const blocks = prompt.slice(0, 1 + Math.floor(random() * prompt.length));
      const subset = new Set(pods.filter(() => random() < 0.5));
      const all = index.longestPrefixMatches(blocks);
      const restricted = index.longestPrefixMatches(blocks, subset);
      expect(new Map([...all].filter(([k]) => subset.has(k)))).toEqual(restricted);
    }
  });
});

const NOW = 1_700_000_000_000;

function randomPod(random: () => number, i: number): EndpointSnapshot {
  const roles = [undefined, 'decode', 'both', 'prefill'];
  const role = roles[Math.floor(random() * roles.length)];
  return {
    endpoint: { key: key(i), name: `pod-${i}`, namespace: 'ns', address: key(i).split(':')[0]!, port: 8000, labels: role ? { [ROLE_LABEL]: role } : {} },
    metrics: {
      waitingQueueSize: Math.floor(random() * 8),
      runningQueueSize: Math.floor(random() * 16),
      kvCacheUsagePercent: random(),
      updateTime: random() < 0.1 ? NOW - 5000 : NOW,
      consecutiveFailures: random() < 0.05 ? 5 : 0,
    },
    activeRequests: Math.floor(random() * 4),
  };
}

describe('filters that hand the candidates on uncopied when they keep all of them', () => {
  it('keep exactly what Array.filter with their rule kept, and count the same exclusions', () => {
    const random = seededRandom(3);
    const counted: SaturationExclusionReason[] = [];
    const handle: PluginHandle = {
      now: () => NOW, random, logger: SILENT_PLUGIN_LOGGER,
      metrics: { ...NOOP_SCHEDULING_METRICS, countSaturationExclusion: (r) => counted.push(r) },
    };
    const saturation = new SaturationFilter('s', { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.9, metricsStalenessThreshold: '1s', maxConsecutiveScrapeFailures: 3 }, handle);
    const decode = new ByLabelFilter('d', { label: ROLE_LABEL, validValues: ['decode', 'both'], allowsNoLabel: true });
    const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };
    let uncopied = 0;
    for (let round = 0; round < 500; round++) {
      const size = Math.floor(random() * 20);
      // Some rounds where every pod passes, so the uncopied path is exercised too.
      const easy = round % 3 === 0;
      const pods = Array.from({ length: size }, (_, i) => {
        const p = randomPod(random, i);
        return easy ? { ...p, endpoint: { ...p.endpoint, labels: {} }, metrics: { ...p.metrics, waitingQueueSize: 0, kvCacheUsagePercent: 0.1, updateTime: NOW, consecutiveFailures: 0 } } : p;
      });
      counted.length = 0;
      const kept = saturation.filter(cycle, pods);
      const expectedReasons = pods.map((p) => saturation.exclusionReason(p, NOW)).filter((r) => r !== undefined);
      expect(kept).toEqual(pods.filter((p) => saturation.exclusionReason(p, NOW) === undefined));
      expect(counted).toEqual(expectedReasons);
      const decoded = decode.filter(cycle, pods);
      expect(decoded).toEqual(pods.filter((p) => {
        const role = p.endpoint.labels[ROLE_LABEL];
        return role === undefined || role === 'decode' || role === 'both';
      }));
      if (kept === pods && decoded === pods) uncopied++;
    }
    expect(uncopied).toBeGreaterThan(100);
  });
});

describe('by-label remembering its verdict per position', () => {
  it('keeps what the label rule keeps while endpoints at a position are replaced, reordered, added and removed', () => {
    const random = seededRandom(41);
    const decode = new ByLabelFilter('d', { label: ROLE_LABEL, validValues: ['decode', 'both'], allowsNoLabel: true });
    const cycle: CycleContext = { request: { requestId: 'r', model: 'm', prompt: '', headers: {} }, state: new CycleState() };
    let pool = Array.from({ length: 32 }, (_, i) => randomPod(random, i));
    for (let round = 0; round < 2000; round++) {
      const op = random();
      const i = Math.floor(random() * Math.max(1, pool.length));
      if (op < 0.2 && pool.length > 0) pool[i] = randomPod(random, i); // discovery replaced the endpoint (new labels)
      else if (op < 0.25) pool = [...pool].reverse();
      else if (op < 0.3) pool = [...pool, randomPod(random, pool.length)];
      else if (op < 0.35) pool = pool.filter((_, j) => j !== i);
      else if (op < 0.6 && pool.length > 0) pool[i] = { ...pool[i]!, activeRequests: pool[i]!.activeRequests + 1 }; // same endpoint object
      const expected = pool.filter((p) => {
        const role = p.endpoint.labels[ROLE_LABEL];
        return role === undefined || role === 'decode' || role === 'both';
      });
      expect(decode.filter(cycle, pool)).toEqual(expected);
    }
  });
});

describe('the default config picks the same with the reused snapshot as with fresh copies', () => {
  it('same target and scores for 1,500 requests on a random 256-pod pool', () => {
    const pods = 256;
    const poolRandom = seededRandom(5);
    const pool = Array.from({ length: pods }, (_, i) => randomPod(poolRandom, i));
    const schedulers = [0, 1].map(() => buildScheduler(defaultEndpointPickerConfig(), { now: () => NOW, random: seededRandom(99) }));
    const families = Array.from({ length: 16 }, (_, f) => `family ${f} `.repeat(60));
    const random = seededRandom(21);
    for (let r = 0; r < 1500; r++) {
      // Load moves between requests as scrapes and picks land.
      const j = Math.floor(random() * pods);
      pool[j] = { ...pool[j]!, metrics: { ...pool[j]!.metrics, waitingQueueSize: Math.floor(random() * 7) }, activeRequests: Math.floor(random() * 4) };
      const frozen = Object.freeze([...pool]);
      const copies = pool.map((p) => ({ endpoint: { ...p.endpoint }, metrics: { ...p.metrics }, activeRequests: p.activeRequests }));
      const prompt = families[Math.floor(random() * families.length)]! + `question ${r}`;
      const request = (state: CycleState) => ({ requestId: `r${r}`, model: 'm', prompt, headers: {}, attributes: state });
      const a = schedulers[0]!.schedule(request(new CycleState()), frozen);
      const b = schedulers[1]!.schedule(request(new CycleState()), copies);
      expect(a.target.endpoint.key).toBe(b.target.endpoint.key);
      expect(new Map(a.scores)).toEqual(new Map(b.scores));
    }
    // The prefix index took part: some picks had cached blocks to score.
    const scorer = schedulers[0]!.plugin('prefix-cache-scorer') as PrefixCacheScorer;
    expect(scorer.stats().hitRatio).toBeGreaterThan(0);
    expect(hashPromptBlocks('m', families[0]!, 64, 256).length).toBeGreaterThan(0);
  });
});

describe('hashPromptBlocks over copied code units', () => {
  it('gives the keys the string-reading version gives, for ASCII, non-ASCII, surrogates and lone surrogates', () => {
    const random = seededRandom(31);
    const alphabet = ['a', 'b', ' ', 'é', 'ß', '中', '文', '😀', '\ud800', '\udfff', '\u0000', '\uffff'];
    for (let i = 0; i < 300; i++) {
      const length = Math.floor(random() * 3000);
      let prompt = '';
      while (prompt.length < length) prompt += alphabet[Math.floor(random() * alphabet.length)]!;
      // Cons strings too, as the chat template's concatenations make them.
      const consed = prompt.slice(0, length >> 1) + prompt.slice(length >> 1);
      const blockSize = 1 + Math.floor(random() * 80);
      const maxBlocks = 1 + Math.floor(random() * 300);
      const model = random() < 0.5 ? 'Qwen/Qwen3-0.6B' : 'm';
      const partialLastBlock = random() < 0.5;
      expect(hashPromptBlocks(model, consed, blockSize, maxBlocks, partialLastBlock)).toEqual(hashPromptBlocksFromString(model, prompt, blockSize, maxBlocks, partialLastBlock));
    }
  });
});
