/**
 * Two kvroute stacks (one per namespace, as the README requires) sharing one platform Redis or Valkey through
 * `sessionStore: { existing: … }`, the README's own example, with one key prefix: configs written by hand that keep the
 * EPP's default `keyPrefix` (the cdk8s app renders one per stack since the replicas review, rev-replicas, found every
 * stack rendering "kvroute:session:"). A session id both stacks see (one client conversation sent to two models, a
 * cookie from `session-id-producer`) is then one key for both. Each stack read the other's binding (`ns-b/p1`), found
 * no such candidate, counted a re-pin and overwrote it (a re-pin away from a hit is a plain SET, not NX): hard affinity
 * no longer held in either stack. Now a binding naming another namespace is another pool's: read as none, and the
 * pick written with NX. Real redis-server on loopback.
 */
import { INTEGRATION_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { RedisServer, redisServerAvailable, requireRedisServerInCi } from './redis-server';
import { PODS, Replica, sessionStoreConfig as config } from './replica';

requireRedisServerInCi();

/** Moves a replica's four pods into another namespace (another stack's pool), `favourite` with the shortest queue. */
function moveToNamespace(replica: Replica, namespace: string, favourite: string): void {
  for (const [i, name] of PODS.entries()) {
    const address = `10.1.0.${i + 1}`;
    replica.datastore.removeEndpoint(`10.0.0.${i + 1}:8000`);
    replica.datastore.upsertEndpoint({ key: `${address}:8000`, name, namespace, address, port: 8000, labels: {} });
    replica.datastore.setMetrics(`${address}:8000`, { waitingQueueSize: name === favourite ? 0 : 5, updateTime: Date.now() });
  }
}

function setFavourite(replica: Replica, prefix: string, favourite: string): void {
  for (const [i, name] of PODS.entries()) {
    replica.datastore.setMetrics(`${prefix}.${i + 1}:8000`, { waitingQueueSize: name === favourite ? 0 : 5, updateTime: Date.now() });
  }
}

(redisServerAvailable ? describe : describe.skip)('two stacks sharing one session store ', () => {
  jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

  it('a session of stack A keeps its pod (hard affinity) whatever stack B, in another namespace, does with the same session id', async () => {
    const redis = await RedisServer.start();
    const a = await Replica.start(config(redis.url), 'p0'); // stack A, namespace "ns"
    const b = await Replica.start(config(redis.url), 'p1'); // stack B, namespace "ns-b"
    moveToNamespace(b, 'ns-b', 'p1');
    try {
      await waitFor(async () => (await a.connected()) && (await b.connected()), 'both connected');
      expect(await a.route('conversation-7')).toBe('p0');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':1', 'A\'s binding stored');
      expect(await a.route('conversation-7')).toBe('p0');
      // Stack B serves a request of the same conversation (another model).
      expect(await b.route('conversation-7')).toBe('p1');
      await new Promise((r) => setTimeout(r, 200)); // B's write lands
      // A's p0 gets busier than p2: with hard stickiness (the default) only health moves a session.
      setFavourite(a, '10.0.0', 'p2');
      const picks: string[] = [];
      for (let i = 0; i < 3; i++) picks.push(await a.route('conversation-7'));
      const repins = await a.count('kvroute_epp_session_affinity_total', { outcome: 'repin' });
      expect(picks).toEqual(['p0', 'p0', 'p0']);
      expect(repins).toBe(0);
      // A's binding stays in the store; B keeps its own pod through its table, its NX write leaving A's alone.
      const [key] = await redis.commandLines('KEYS', '*');
      expect(await redis.command('GET', key!)).toBe('ns/p0');
      expect(await b.route('conversation-7')).toBe('p1');
      expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'write', outcome: 'exists' })).toBeGreaterThanOrEqual(1);
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  });
});
