import { seededRandom } from '@kvroute/testkit';
import { defaultEndpointPickerConfig, parseEndpointPickerConfig, prefixFirstEndpointPickerConfig, withoutSessionLoad, validateEndpointPickerConfig, type EndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import type { SessionLoadScorer } from '../src/scheduling/plugins/session-load-scorer';
import { sessionKeyOf } from '../src/scheduling/plugins/session-affinity-filter';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';
import { CycleState, type ProfileRunResult } from '../src/scheduling/framework';
import type { LLMRequest } from '../src/scheduling/types';

const MINUTE = 60_000;

/**
 * The prefix-first config (kvroute's default until the latency scorer joined it, 2026-11-30, and what the
 * `kvroute-sessions` candidate runs) with `session-load-scorer` added to its profile at `weight`.
 */
function withSessionLoad(weight: number, parameters: object = {}): EndpointPickerConfig {
  const base = prefixFirstEndpointPickerConfig();
  return validateEndpointPickerConfig({
    ...base,
    plugins: [...base.plugins, { type: 'session-load-scorer', parameters }],
    schedulingProfiles: base.schedulingProfiles.map((p) => ({
      ...p,
      plugins: [...p.plugins.filter((r) => r.pluginRef !== 'max-score-picker'), { pluginRef: 'session-load-scorer', weight }, { pluginRef: 'max-score-picker' }],
    })),
  });
}

class Pool {
  now = 1_700_000_000_000;
  readonly scheduler: Scheduler;
  readonly pods: EndpointSnapshot[];

  constructor(config: EndpointPickerConfig, n = 4) {
    this.scheduler = buildScheduler(config, { now: () => this.now, random: seededRandom(7) });
    this.pods = Array.from({ length: n }, (_, i) => this.pod(`p${i}`));
  }

  pod(name: string): EndpointSnapshot {
    return { endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: {} }, metrics: { ...EMPTY_METRICS, updateTime: this.now }, activeRequests: 0 };
  }

  /** Requests in flight per pod name (the EPP's own count); none unless a test sets it. */
  readonly inFlight = new Map<string, number>();

  /** Fresh snapshots (the saturation filter drops stale metrics), idle unless `inFlight` says otherwise. */
  snapshot(): EndpointSnapshot[] {
    return this.pods.map((p) => ({ ...p, metrics: { ...p.metrics, updateTime: this.now }, activeRequests: this.inFlight.get(p.endpoint.name) ?? 0 }));
  }

  send(prompt: string, session?: string): string {
    const request: LLMRequest = { requestId: 'r', model: 'm', prompt, headers: session ? { 'x-session-id': session } : {} };
    return this.scheduler.schedule(request, this.snapshot()).target.endpoint.name;
  }

  get scorer(): SessionLoadScorer {
    return this.scheduler.plugin('session-load-scorer') as SessionLoadScorer;
  }
}

/** One system prompt every conversation shares (a thousand characters, many 64-character blocks), as in issue 9. */
const SYSTEM = 'You are a helpful assistant for the kvroute project. '.repeat(20);
const firstTurn = (i: number) => `${SYSTEM}\nuser: question ${i}`;

describe('session-load-scorer', () => {
  it('the prefix-first config alone herds new sessions that share a system prompt onto the pod that caches it (the issue)', () => {
    const pool = new Pool(prefixFirstEndpointPickerConfig());
    const placed = Array.from({ length: 8 }, (_, i) => pool.send(firstTurn(i), `s${i}`));
    expect(new Set(placed).size).toBe(1);
  });

  it('spreads new sessions over the pods by the live sessions each carries, prefix notwithstanding', () => {
    const pool = new Pool(withSessionLoad(4));
    const placed = Array.from({ length: 8 }, (_, i) => pool.send(firstTurn(i), `s${i}`));
    const perPod = new Map<string, number>();
    for (const p of placed) perPod.set(p, (perPod.get(p) ?? 0) + 1);
    expect([...perPod.values()]).toEqual([2, 2, 2, 2]);
    expect(pool.scorer.liveSessions()).toEqual(new Map(pool.pods.map((p) => [p.endpoint.key, 2])));
  });

  it('hard stickiness stays: every later turn of a session goes to its pod, whatever the session counts say', () => {
    const pool = new Pool(withSessionLoad(4));
    const home = Array.from({ length: 8 }, (_, i) => pool.send(firstTurn(i), `s${i}`));
    for (let turn = 1; turn < 4; turn++) {
      for (let i = 0; i < 8; i++) expect(pool.send(`${firstTurn(i)}\nassistant: answer ${turn}\nuser: more ${turn}`, `s${i}`)).toBe(home[i]);
    }
  });

  it('requests without a session, and bound sessions, are scored alike everywhere: prefix and load decide as before', () => {
    const pool = new Pool(withSessionLoad(4));
    for (let i = 0; i < 3; i++) pool.send(firstTurn(i), `s${i}`);
    expect([...pool.scorer.liveSessions().values()]).toEqual([1, 1, 1]);
    const score = (headers: Record<string, string>) =>
      pool.scorer.score({ request: { requestId: 'r', model: 'm', prompt: 'x', headers }, state: new CycleState() }, pool.snapshot());
    expect(score({})).toEqual([1, 1, 1, 1]);
    expect(score({ 'x-session-id': 's0' })).toEqual([1, 1, 1, 1]);
    // A new session: only the pod without a live session scores.
    expect(score({ 'x-session-id': 'new' }).filter((x) => x === 1)).toHaveLength(1);
  });

  it('a session idle past liveWindow no longer weighs on its pod; a pod that leaves the pool forgets its sessions', () => {
    const pool = new Pool(withSessionLoad(4, { liveWindow: '2m' }));
    for (let i = 0; i < 4; i++) pool.send(firstTurn(i), `s${i}`);
    expect([...pool.scorer.liveSessions().values()]).toEqual([1, 1, 1, 1]);
    pool.now += 1 * MINUTE;
    pool.send(`${firstTurn(0)}\nuser: still here`, 's0');
    pool.now += 1.5 * MINUTE;
    // s1..s3 were last seen 2.5 minutes ago: only s0 (1.5 minutes) is live.
    const live = pool.scorer.liveSessions();
    expect([...live.values()]).toEqual([1]);
    const home0 = [...live.keys()][0]!;
    pool.scorer.removeEndpoint(home0);
    expect(pool.scorer.liveSessions().size).toBe(0);
  });

  it('headroom: one live session against none no longer outweighs a prefix hit while every count is small', () => {
    // The start of traffic where every request carries an id of its own (a shared-prefix set): with headroom 0 the
    // second request of a new prefix leaves the pod that took the first (1 − 1/1 = 0 there, 1 elsewhere: the full
    // weight 4 against a prefix hit's 3); with headroom 4 the swing is 4 · 1/5 and the prefix keeps it.
    const plain = new Pool(withSessionLoad(4));
    const first = plain.send(firstTurn(0), 'u0');
    expect(plain.send(firstTurn(1), 'u1')).not.toBe(first);
    const roomy = new Pool(withSessionLoad(4, { headroom: 4 }));
    const home = roomy.send(firstTurn(0), 'u0');
    expect(roomy.send(firstTurn(1), 'u1')).toBe(home);
    // Sessions still spread once the holder carries clearly more than the others.
    const placed = Array.from({ length: 12 }, (_, i) => roomy.send(firstTurn(10 + i), `c${i}`));
    expect(new Set(placed).size).toBeGreaterThan(1);
  });

  it('with minRequests 2 only sessions that came back count: single-request sessions leave placement to the prefix', () => {
    // Eight one-question users sharing a system prompt (a shared-prefix set): with minRequests 1 they spread like
    // conversations, losing the prefix; with 2 none of them counts, and the prefix keeps them together.
    const once = new Pool(withSessionLoad(4));
    expect(new Set(Array.from({ length: 8 }, (_, i) => once.send(firstTurn(i), `u${i}`))).size).toBe(4);
    const returning = new Pool(withSessionLoad(4, { minRequests: 2 }));
    expect(new Set(Array.from({ length: 8 }, (_, i) => returning.send(firstTurn(i), `u${i}`))).size).toBe(1);
    expect(returning.scorer.liveSessions().size).toBe(0);
    // Conversations that do return count from their second turn, and then spread the next new sessions.
    const home = returning.send(`${firstTurn(0)}\nassistant: a\nuser: more`, 'u0');
    returning.send(`${firstTurn(1)}\nassistant: a\nuser: more`, 'u1');
    expect(returning.scorer.liveSessions()).toEqual(new Map([[`${home}:8000`, 2]]));
    expect(returning.send(firstTurn(100), 'new')).not.toBe(home);
  });

  describe('the share of sessions that come back, learnt (a single-request session weighs it)', () => {
    const SECOND = 1000;

    it('ids that never come back stop weighing once judged lapsed: new sessions follow the prefix again, even at weight 16', () => {
      const placeNewSessions = (wait: number) => {
        const pool = new Pool(withSessionLoad(16));
        // 64 one-question users with prompts of their own, spread over the pods.
        const first = Array.from({ length: 64 }, (_, i) => pool.send(`question ${i}: ${'unrelated words '.repeat(10 + i)}`, `u${i}`));
        expect([...pool.scorer.liveSessions().values()].reduce((a, b) => a + b, 0)).toBe(64);
        expect(new Set(first).size).toBe(4);
        pool.now += wait;
        // Then eight more sharing a system prompt.
        const placed = Array.from({ length: 8 }, (_, i) => pool.send(firstTurn(i), `v${i}`));
        return { placed: new Set(placed).size, stats: pool.scorer.returnStats(), share: pool.scorer.returnShare() };
      };
      // At once, nothing is known: every session weighs 1 and they spread like conversations.
      const unknown = placeNewSessions(0);
      expect(unknown).toMatchObject({ stats: { returned: 0, lapsed: 0, dueMs: 5 * SECOND }, share: 1 });
      expect(unknown.placed).toBeGreaterThanOrEqual(3);
      // Five seconds on (the least due time) none came back: the share falls to 16 / 80 and the prefix keeps them together.
      const judged = placeNewSessions(5 * SECOND);
      expect(judged).toMatchObject({ placed: 1, stats: { returned: 0, lapsed: 64, dueMs: 5 * SECOND } });
      expect(judged.share).toBeCloseTo(16 / 80, 10);
    });

    it('the share starts from 16 returns: a few conversations lapsing before their first think time is learnt leave it high', () => {
      const pool = new Pool(withSessionLoad(4));
      for (let i = 0; i < 6; i++) pool.send(firstTurn(i), `s${i}`);
      pool.now += 6 * SECOND;
      pool.send(firstTurn(9), 'x');
      expect(pool.scorer.returnStats()).toMatchObject({ lapsed: 6 });
      expect(pool.scorer.returnShare()).toBeCloseTo(16 / 22, 10);
    });

    it('sessions that come back keep the share at 1, and spread new sessions as before', () => {
      const pool = new Pool(withSessionLoad(16));
      const home = Array.from({ length: 4 }, (_, i) => pool.send(firstTurn(i), `s${i}`));
      pool.now += 2 * SECOND;
      for (let i = 0; i < 4; i++) expect(pool.send(`${firstTurn(i)}\nassistant: a\nuser: b`, `s${i}`)).toBe(home[i]);
      pool.now += 10 * SECOND;
      const later = Array.from({ length: 4 }, (_, i) => pool.send(firstTurn(10 + i), `t${i}`));
      expect(pool.scorer.returnStats()).toEqual({ returned: 4, lapsed: 0, dueMs: 5 * SECOND });
      expect(pool.scorer.returnShare()).toBe(1);
      expect(new Set(later).size).toBe(4);
    });

    it('a session judged lapsed that comes back late counts as returned, and long gaps lengthen the due time (2 × p90, at most liveWindow)', () => {
      const pool = new Pool(withSessionLoad(4, { liveWindow: '2m' }));
      for (let i = 0; i < 4; i++) pool.send(firstTurn(i), `s${i}`);
      pool.now += 6 * SECOND;
      pool.send(firstTurn(9), 'x'); // judges s0..s3
      expect(pool.scorer.returnStats()).toMatchObject({ returned: 0, lapsed: 4 });
      // Users thinking for 40 s: each comes back, un-lapsed (x, judged at the first of them, stays lapsed).
      pool.now += 34 * SECOND;
      for (let i = 0; i < 4; i++) pool.send(`${firstTurn(i)}\nassistant: a\nuser: b`, `s${i}`);
      expect(pool.scorer.returnStats()).toEqual({ returned: 4, lapsed: 1, dueMs: 80 * SECOND });
      // y is not judged before it is 80 s old.
      pool.send(firstTurn(10), 'y');
      pool.now += 79 * SECOND;
      pool.send(firstTurn(11), 'z');
      expect(pool.scorer.returnStats()).toMatchObject({ lapsed: 1 });
      pool.now += 1 * SECOND;
      pool.send(firstTurn(12), 'zz');
      expect(pool.scorer.returnStats()).toMatchObject({ lapsed: 2 });
      // Gaps past liveWindow / 2 put the due time at liveWindow.
      for (let i = 0; i < 8; i++) pool.send(firstTurn(20 + i), `w${i}`);
      pool.now += 100 * SECOND;
      for (let i = 0; i < 8; i++) pool.send(`${firstTurn(20 + i)}\nassistant: a\nuser: b`, `w${i}`);
      expect(pool.scorer.returnStats().dueMs).toBe(2 * MINUTE);
    });

    it('a session still live is judged however many of the queue\'s entries before it were forgotten (pods removed)', () => {
      const pool = new Pool(withSessionLoad(4, { capacity: 4 }));
      const home = pool.send(firstTurn(0), 's1');
      let n = 0;
      for (let round = 0; round < 3; round++) {
        const others = pool.pods.filter((p) => p.endpoint.name !== home);
        // Three new sessions placed on another pod (the scorer's own score and post-cycle), then that pod removed.
        for (let i = 0; i < 3; i++) {
          const cycle = { request: { requestId: 'r', model: 'm', prompt: 'x', headers: { 'x-session-id': `b${n++}` } }, state: new CycleState() };
          pool.scorer.score(cycle, pool.snapshot());
          pool.scorer.postCycle(cycle, { targets: [others[0]!] } as unknown as ProfileRunResult);
        }
        pool.scorer.removeEndpoint(others[0]!.endpoint.key);
      }
      pool.now += 6 * SECOND;
      pool.send(firstTurn(1), 'late');
      expect(pool.scorer.returnStats().lapsed).toBe(1); // s1
    });

    it('a late return takes off what its lapse weighs after the halvings since, not a whole lapse', () => {
      const pool = new Pool(withSessionLoad(4, { capacity: 10_000 }));
      pool.send(firstTurn(0), 'early');
      pool.now += 6 * SECOND;
      // 4,096 one-request ids judged lapsed (the early one among them): the counts are halved once.
      for (let i = 0; i < 4096; i++) pool.send('y', `once${i}`);
      pool.now += 6 * SECOND;
      pool.send('y', 'judge');
      const before = pool.scorer.returnStats();
      expect(before.lapsed).toBeGreaterThan(2000);
      expect(before.lapsed).toBeLessThan(4096);
      pool.send(`${firstTurn(0)}\nassistant: a\nuser: b`, 'early');
      const after = pool.scorer.returnStats();
      expect(before.lapsed - after.lapsed).toBe(0.5);
      expect(after.returned).toBe(1);
    });

    it('a flood of unique ids keeps the queue of requests to judge bounded by the session capacity', () => {
      const pool = new Pool(withSessionLoad(4, { capacity: 100 }));
      for (let i = 0; i < 5000; i++) pool.send('x', `flood${i}`);
      const queued = (pool.scorer as unknown as { firstRequests: unknown[]; firstHead: number });
      expect(queued.firstRequests.length - queued.firstHead).toBeLessThanOrEqual(200);
      pool.now += 5 * SECOND;
      pool.send('x', 'last');
      // Only the 100 sessions still tracked were judged; the forgotten ones count neither way.
      expect(pool.scorer.returnStats().lapsed).toBe(100);
    });
  });

  describe('in the default config (session 31: weight 4, minRequests 1)', () => {
    /**
     * Conversations that share one system prompt start one after another, and each comes back for a second turn
     * before the next starts, with gen29's long chats' proportions (a 300-word system prompt, 150-word turns: the first
     * turn is a third of its prompt). A live conversation keeps a request in flight on its pod (its turns decode one
     * after another), as the EPP's own count shows.
     */
    function conversations(config: EndpointPickerConfig): Map<string, number> {
      const pool = new Pool(config);
      const perPod = new Map<string, number>();
      const system = 'a helpful assistant. '.repeat(86); // 1,806 characters
      const turn = (i: number, t: number) => `user ${i}, turn ${t}: ${'routing question '.repeat(52)}`; // ~900
      for (let i = 0; i < 8; i++) {
        const home = pool.send(`${system}\n${turn(i, 0)}`, `c${i}`);
        expect(pool.send(`${system}\n${turn(i, 0)}\nassistant: answer\n${turn(i, 1)}`, `c${i}`)).toBe(home);
        perPod.set(home, (perPod.get(home) ?? 0) + 1);
        pool.inFlight.set(home, perPod.get(home)!);
      }
      return perPod;
    }

    it('spreads conversations that came back over the pods, where the default without it stacks them on the system prompt\'s pod', () => {
      expect([...conversations(defaultEndpointPickerConfig()).values()]).toEqual([2, 2, 2, 2]);
      expect([...conversations(withoutSessionLoad(defaultEndpointPickerConfig())).values()]).toEqual([8]);
    });

    it('on an idle pool a long shared prompt\'s lead still keeps new sessions (a shared-prefix set\'s users, one question each) on its pod', () => {
      const pool = new Pool(defaultEndpointPickerConfig());
      const placed = Array.from({ length: 8 }, (_, i) => pool.send(firstTurn(i), `u${i}`));
      expect(new Set(placed).size).toBe(1);
    });
  });

  it('is bounded: beyond capacity the least recently active sessions are forgotten', () => {
    const pool = new Pool(withSessionLoad(1, { capacity: 3 }));
    for (let i = 0; i < 10; i++) pool.send(firstTurn(i), `s${i}`);
    expect([...pool.scorer.liveSessions().values()].reduce((a, b) => a + b, 0)).toBe(3);
  });

  it('keeps its sessions least recently active first without walking or re-keying its table: no iterator per request, no delete and set per refresh', () => {
    // Two ways a Map used as an LRU costs O(sessions tracked) in V8: a new iterator walks every hole deletions left at
    // the table's start (`keys().next()` for the oldest: 29 µs a request at 65,536), and `delete(k); set(k, …)` leaves
    // a dead copy of k in its hash chain until the table rehashes, so one chatty session's lookups walk a table's worth
    // of them (26 µs). The order is kept in a list through the sessions' nodes instead.
    const pool = new Pool(withSessionLoad(1, { capacity: 300, liveWindow: '10s' }));
    const scorer = pool.scorer as unknown as { sessions: Map<string, unknown>; keysByActivity(): string[] };
    const sessions = scorer.sessions;
    let walks = 0;
    const mutations: string[] = [];
    for (const method of ['keys', 'values', 'entries', Symbol.iterator] as const) {
      const own = (sessions[method] as (...args: unknown[]) => unknown).bind(sessions);
      Object.defineProperty(sessions, method, { value: (...args: unknown[]) => { walks++; return own(...args); } });
    }
    for (const method of ['set', 'delete'] as const) {
      const own = (sessions[method] as (key: string, ...rest: unknown[]) => unknown).bind(sessions);
      Object.defineProperty(sessions, method, { value: (key: string, ...rest: unknown[]) => { mutations.push(`${method} ${key}`); return own(key, ...rest); } });
    }
    // What the table must hold: least recently active first, at most `capacity`, none idle past the window.
    const reference = new Map<string, number>();
    let expired = 0;
    let evicted = 0;
    for (let i = 0; i < 6000; i++) {
      // Unique ids, some sessions coming back, one chatty session (every 7th request), and pauses that let the older
      // part of the table expire, or all of it.
      pool.now += i % 1000 === 500 ? 9_000 : i % 1000 === 0 && i > 0 ? 12_000 : 3;
      const id = i % 7 === 3 ? 'agent' : i % 5 === 4 ? `s${i - 400}` : `s${i}`;
      for (const [key, lastSeen] of reference) {
        if (pool.now - lastSeen <= 10_000) break;
        reference.delete(key);
        expired++;
      }
      pool.send('x', id);
      reference.delete(id);
      reference.set(id, pool.now);
      while (reference.size > 300) {
        reference.delete(reference.keys().next().value!);
        evicted++;
      }
    }
    const headers = ['x-session-id'];
    const keyOf = (id: string) => sessionKeyOf({ requestId: 'r', model: 'm', prompt: 'x', headers: { 'x-session-id': id } }, headers);
    expect(walks).toBe(0);
    expect(scorer.keysByActivity()).toEqual([...reference.keys()].map(keyOf));
    expect(new Set(sessions.keys())).toEqual(new Set(scorer.keysByActivity()));
    // The chatty session was set once each time it was new (at the start, and after each pause that expired it), never
    // deleted and set again per request.
    const agent = keyOf('agent');
    expect(mutations.filter((m) => m === `set ${agent}`).length).toBeLessThanOrEqual(7);
    expect(mutations.filter((m) => m === `delete ${agent}`).length).toBeLessThanOrEqual(6);
    // Both ways out were taken many times: over capacity and idle past the window.
    expect(evicted).toBeGreaterThan(1000);
    expect(expired).toBeGreaterThan(1000);
    // Fresh ids after every tracked one expired: the table empties, then fills again.
    pool.now += 60_000;
    for (let i = 0; i < 3; i++) pool.send('x', `late${i}`);
    expect([...pool.scorer.liveSessions().values()].reduce((a, b) => a + b, 0)).toBe(3);
    expect(scorer.keysByActivity()).toEqual(['late0', 'late1', 'late2'].map(keyOf));
  });

  it('its parameters are checked and defaulted like every plugin\'s', () => {
    const yaml = (params: string) => `apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: session-load-scorer\n  parameters: ${params}\n`;
    expect(parseEndpointPickerConfig(yaml('{}')).plugins[0]).toEqual({
      type: 'session-load-scorer', name: 'session-load-scorer', parameters: { headers: ['x-session-id', 'x-session-token'], liveWindow: '5m', capacity: 65536, minRequests: 1 },
    });
    expect(() => parseEndpointPickerConfig(yaml('{minRequests: 0}'))).toThrow('plugins[0].parameters.minRequests: must be an integer');
    expect(parseEndpointPickerConfig(yaml('{headroom: 4}')).plugins[0]!.parameters).toMatchObject({ headroom: 4 });
    expect(() => parseEndpointPickerConfig(yaml('{headroom: -1}'))).toThrow('plugins[0].parameters.headroom');
    expect(() => parseEndpointPickerConfig(yaml('{capacity: 0}'))).toThrow('plugins[0].parameters.capacity: must be an integer >= 1, got 0');
    expect(() => parseEndpointPickerConfig(yaml('{window: 5m}'))).toThrow('plugins[0].parameters.window: unknown field; allowed: headers, liveWindow, capacity, minRequests');
  });
});
