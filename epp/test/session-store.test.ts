/**
 * Session bindings shared through a real `redis-server` on loopback (Debian's package; .ci/run installs it): two EPP
 * replicas — each its own datastore, scheduler and request control, so nothing is shared but the store — agree on a
 * session's pod; the store killed, paused or absent at start never stops a pick (local bindings, counted); the store
 * back, sharing resumes. Every wait is a poll with a generous limit, nothing asserts speed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, INTEGRATION_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import { ConfigError } from '../src/config/errors';
import { MAX_SESSION_ID_LENGTH, unboundTimeoutMs } from '../src/scheduling/plugins/session-affinity-filter';
import { parseStoreAddress, RedisSessionStore, socketTimeoutMs, type SessionStoreEvents, type SessionStoreReadOutcome, type SessionStoreWriteOutcome } from '../src/sessions/store';
import { RedisServer, redisServerAvailable, requireRedisServerInCi } from './redis-server';
import { Replica, sessionStoreConfig } from './replica';

requireRedisServerInCi();

/**
 * Bytes that arrived on this machine's IPv4 TCP connections to `port` and are not read yet (Linux /proc/net/tcp
 * rx_queue), read synchronously: how a test with its event loop blocked sees that a reply has reached its socket.
 * Without /proc it reports 1, and the caller's minimum wait alone applies.
 */
function unreadBytesFrom(port: number): number {
  let table: string;
  try {
    table = fs.readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return 1;
  }
  const remote = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let unread = 0;
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 4 && fields[2]!.endsWith(remote)) unread += parseInt(fields[4]!.split(':')[1]!, 16);
  }
  return unread;
}

function config(storeAddress: string, extra = ''): string {
  return sessionStoreConfig(storeAddress, { keyPrefix: 'test:s:', extra });
}

(redisServerAvailable ? describe : describe.skip)(
  redisServerAvailable
    ? 'sessions shared through a real redis-server'
    : 'sessions shared through a real redis-server (skipped: no redis-server binary; apt-get install redis-server)',
  () => {
    jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);
    let redis: RedisServer;
    const replicas: Replica[] = [];
    const replica = async (favourite: string, configText = config(redis.url)) => {
      const r = await Replica.start(configText, favourite);
      replicas.push(r);
      await waitFor(() => r.connected(), 'the replica to connect to the store');
      return r;
    };

    beforeEach(async () => { redis = await RedisServer.start(); });
    afterEach(async () => {
      for (const r of replicas.splice(0)) await r.stop();
      await redis.stop();
    });

    it('two replicas share a binding: a session first picked by A is routed by B to the same pod', async () => {
      const a = await replica('p0');
      const b = await replica('p3');
      expect(await b.route(undefined)).toBe('p3'); // B's own choice for a request without a session
      expect(await a.route('chat-1')).toBe('p0');
      // The write is fire-and-forget: wait until it landed, then B must follow it rather than its own favourite.
      await waitFor(async () => (await redis.command('KEYS', 'test:s:*')) === '*1', 'the binding in the store');
      for (let i = 0; i < 20; i++) expect(await b.route('chat-1')).toBe('p0');
      expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'hit' })).toBe(20);
      expect(await b.count('kvroute_epp_session_affinity_total', { outcome: 'hit' })).toBe(20);
      // Hits are refreshed by the read itself (GETEX): B wrote nothing.
      expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'write' })).toBe(0);
    });

    it('stores the pod identity under prefix + a fixed-length digest, with the filter\'s TTL', async () => {
      const a = await replica('p1');
      await a.route('user-42');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':1', 'one key');
      const key = await scanOne(redis, 'test:s:*');
      expect(key).toMatch(/^test:s:[A-Za-z0-9_-]{22}$/);
      expect(await redis.command('GET', key)).toBe('ns/p1');
      const pttl = Number((await redis.command('PTTL', key)).slice(1));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(30 * 60_000);
    });

    it('a re-pin on one replica moves the session on the others (the shared binding wins over a stale local one)', async () => {
      const a = await replica('p0');
      const b = await replica('p3');
      expect(await a.route('s')).toBe('p0');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':1', 'the binding');
      expect(await b.route('s')).toBe('p0');
      // p0 leaves B's view (gone or saturated there): B re-pins to its favourite and shares it.
      b.datastore.removeEndpoint('10.0.0.1:8000');
      expect(await b.route('s')).toBe('p3');
      await waitFor(async () => (await redis.command('GET', await scanOne(redis, 'test:s:*'))) === 'ns/p3', 'the re-pin in the store');
      expect(await a.route('s')).toBe('p3');
      expect(await b.count('kvroute_epp_session_affinity_total', { outcome: 'repin' })).toBe(1);
      // For A the shared binding is simply where the session is now: a hit on p3, and nothing for A to write.
      expect(await a.count('kvroute_epp_session_affinity_total', { outcome: 'hit' })).toBe(1);
      expect(await a.count('kvroute_epp_session_store_operations_total', { operation: 'write' })).toBe(1);
    });

    it('store killed: picks continue from local state and the fallback counter rises; store back: sharing resumes', async () => {
      const a = await replica('p0');
      const b = await replica('p3');
      const scorers = config(redis.url, '      unavailablePlacement: scorers');
      const c = await replica('p0', scorers);
      const d = await replica('p3', scorers);
      expect(await a.route('before')).toBe('p0');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':1', 'the binding');
      expect(await b.route('before')).toBe('p0');

      await redis.kill();
      await waitFor(async () => !(await a.connected()) && !(await b.connected()), 'both replicas to see the store down');
      const fallbacksBefore = await b.fallbacks();
      // B knows "before" locally (it routed it while the store was up) and keeps it; new sessions still get a pod.
      for (let i = 0; i < 10; i++) expect(await b.route('before')).toBe('p0');
      // A new session: both replicas hash it to the same pod (unavailablePlacement: rendezvous, the default), however
      // their scores differ; placed by the scorers instead, each replica sends it to its own favourite, and a session
      // alternating between them would alternate pods for the whole outage (session 29's replicas audit, F3).
      const during = await b.route('during');
      expect(await a.route('during')).toBe(during);
      for (let i = 0; i < 4; i++) expect([await a.route('during'), await b.route('during')]).toEqual([during, during]);
      const placed = new Map<string, string>();
      for (let i = 0; i < 12; i++) {
        const pod = await a.route(`new-${i}`);
        expect(await b.route(`new-${i}`)).toBe(pod);
        placed.set(`new-${i}`, pod);
      }
      expect(new Set(placed.values()).size).toBeGreaterThan(1); // a hash, not one pod for everything
      expect(await c.route('during')).toBe('p0');
      expect(await d.route('during')).toBe('p3');
      expect(await b.fallbacks()).toBe(fallbacksBefore + 10 + 1 + 4 + 12);

      await redis.startProcess(); // same port, empty (no persistence)
      await waitFor(async () => (await a.connected()) && (await b.connected()), 'both replicas to reconnect');
      // A's local binding the empty store lacks is written back on A's next request of it (a repair), then shared.
      expect(await a.route('before')).toBe('p0');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':1', 'the repaired binding');
      const newReplica = await replica('p2');
      expect(await newReplica.route('before')).toBe('p0');
      // And a session begun after the restart is shared as before.
      expect(await b.route('after')).toBe('p3');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':2', 'the new binding');
      expect(await a.route('after')).toBe('p3');
    });

    it('a store that hangs (SIGSTOP) never holds a pick: it is made from local state and counted as a timeout', async () => {
      const a = await replica('p0');
      expect(await a.route('s')).toBe('p0');
      redis.pause();
      try {
        const timeouts = () => a.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'timeout' });
        expect(await a.route('s')).toBe('p0');
        expect(await a.route('new')).toBe('p0');
        expect(await timeouts()).toBe(2);
        expect(await a.count('kvroute_epp_session_affinity_total', { outcome: 'hit' })).toBe(1);
      } finally {
        redis.resume();
      }
      // Resumed: reads answer again (the replies to the timed-out commands are consumed in order first).
      await waitFor(async () => {
        await a.route('s');
        return (await a.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'hit' })) > 0;
      }, 'reads to succeed after the store resumed');
    });

    it('a read that times out never overwrites the binding it failed to return (the write after it is SET NX)', async () => {
      const a = await replica('p0');
      const b = await replica('p3');
      expect(await a.route('s')).toBe('p0');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':1', 'the binding');
      redis.pause();
      try {
        // B cannot read the binding in time and places the session itself; its write waits in the socket meanwhile.
        expect(await b.route('s')).toBe('p3');
        expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'timeout' })).toBe(1);
      } finally {
        redis.resume();
      }
      await waitFor(async () => (await b.count('kvroute_epp_session_store_operations_total', { operation: 'write' })) === 1, 'B\'s write to finish');
      expect(await redis.command('GET', await scanOne(redis, 'test:s:*'))).toBe('ns/p0');
      expect(await a.route('s')).toBe('p0');
      expect(await b.route('s')).toBe('p0'); // and B follows the shared binding from the next request
    });

    it('a session this replica never saw waits past timeout for the store (unboundTimeout) instead of moving for one request (audit 29, replicas F4)', async () => {
      const short = config(redis.url).replace('timeout: 1s', 'timeout: 50ms\n      unboundTimeout: 500ms');
      expect(short).toContain('unboundTimeout: 500ms');
      const a = await replica('p0', short);
      const b = await replica('p3', short);
      expect(await a.route('s')).toBe('p0');
      expect(await a.route('known')).toBe('p0');
      await waitFor(async () => (await redis.command('DBSIZE')) === ':2', 'the bindings');
      expect(await b.route('known')).toBe('p0'); // B now holds a binding of its own for 'known', not for 's'
      redis.pause();
      let resumed = false;
      const resume = setTimeout(() => { redis.resume(); resumed = true; }, 150);
      try {
        // Unbound on B: the read waits for the store (paused 150 ms, less than the 500 ms allowed) and follows it.
        expect(await b.route('s')).toBe('p0');
        expect(resumed).toBe(true);
        expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'late_hit' })).toBe(1);
        expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'timeout' })).toBe(0);
      } finally {
        clearTimeout(resume);
        redis.resume();
      }
      // Bound on B: a store as slow as that is not waited for past timeout; the local binding decides.
      redis.pause();
      try {
        expect(await b.route('known')).toBe('p0');
        expect(await b.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'timeout' })).toBe(1);
      } finally {
        redis.resume();
      }
    });

    it('a read never waits past unboundTimeout in all: a store paused longer ends it as a timeout (not a dropped connection)', async () => {
      const reads: SessionStoreReadOutcome[] = [];
      let up = false;
      const store = new RedisSessionStore(
        { address: redis.url, keyPrefix: 'late:', timeoutMs: 20, ttlMs: 60_000 },
        { read: (o) => reads.push(o), write: () => undefined, connected: (c) => { up = c; }, reconnect: () => undefined, log: () => undefined },
      );
      await store.start();
      try {
        await waitFor(() => up, 'the store to connect');
        redis.pause();
        try {
          const started = performance.now();
          expect(await store.read('s', 200)).toEqual({ status: 'unavailable', reason: 'timeout' });
          expect(performance.now() - started).toBeGreaterThanOrEqual(190);
          expect(reads).toEqual(['timeout']);
          expect(up).toBe(true); // well inside the connection's 1 s
        } finally {
          redis.resume();
        }
      } finally {
        await store.close();
      }
    });

    // reconnectOnError drops the connection for READONLY only (a demoted primary, test/session-store-failover.test.ts):
    // ioredis 6.0.0 reconnects on whatever that function returns true for (README.md "Reconnect on Error", whose example
    // reconnects "Only ... when the error contains READONLY"), and a reply
    // error that says nothing about the node (WRONGTYPE on a key something else wrote, a command the store refuses)
    // would otherwise drop every command in flight on the connection and leave the store down for its reconnect.
    it('a reply error other than READONLY (WRONGTYPE) fails that read as an error and keeps the connection', async () => {
      const reads: SessionStoreReadOutcome[] = [];
      const ups: boolean[] = [];
      const reconnects: string[] = [];
      const store = new RedisSessionStore(
        { address: redis.url, keyPrefix: 'wrongtype:', timeoutMs: 1000, ttlMs: 60_000 },
        { read: (o) => reads.push(o), write: () => undefined, connected: (c) => ups.push(c), reconnect: (r) => reconnects.push(r), log: () => undefined },
      );
      await store.start();
      try {
        await waitFor(() => store.connected, 'the store to connect');
        await redis.command('RPUSH', `wrongtype:${'a'.repeat(8)}`, 'not-a-binding');
        expect(await store.read('a'.repeat(8))).toEqual({ status: 'unavailable', reason: 'error' });
        // Written again at each poll: a write on a connection being dropped is not resent.
        await waitFor(async () => {
          store.write('b'.repeat(8), 'p1', false);
          return (await store.read('b'.repeat(8))).status === 'hit';
        }, 'a binding written after the error to be read back');
        expect(reconnects).toEqual([]);
        expect(ups).toEqual([true]);
        expect(reads[0]).toBe('error');
        expect(reads.at(-1)).toBe('hit');
      } finally {
        await store.close();
      }
    });

    it('unboundTimeout: ten times timeout by default, at most 250ms; refused below timeout or above 500ms; rendered only when set', () => {
      expect(unboundTimeoutMs({ address: 'r:1' })).toBe(50);
      expect(unboundTimeoutMs({ address: 'r:1', timeout: '20ms' })).toBe(200);
      expect(unboundTimeoutMs({ address: 'r:1', timeout: '100ms' })).toBe(250);
      expect(unboundTimeoutMs({ address: 'r:1', timeout: '400ms' })).toBe(400);
      expect(unboundTimeoutMs({ address: 'r:1', timeout: '5ms', unboundTimeout: '30ms' })).toBe(30);
      const withUnbound = (value: string) => config('redis://127.0.0.1:6379').replace('      timeout: 1s\n', `      timeout: 100ms\n      unboundTimeout: ${value}\n`);
      expect(() => parseEndpointPickerConfig(withUnbound('50ms'))).toThrow(/sessionStore\.unboundTimeout: must be at least timeout \(100ms\) and at most 500ms, got "50ms"/);
      expect(() => parseEndpointPickerConfig(withUnbound('1s'))).toThrow(/sessionStore\.unboundTimeout: must be at least timeout \(100ms\) and at most 500ms, got "1s"/);
      const parsed = parseEndpointPickerConfig(withUnbound('400ms'));
      const storeOf = (c: typeof parsed) => (c.plugins[0]!.parameters as { sessionStore: Record<string, unknown> }).sessionStore;
      expect(storeOf(parsed).unboundTimeout).toBe('400ms');
      expect(storeOf(parseEndpointPickerConfig(config('redis://127.0.0.1:6379')))).not.toHaveProperty('unboundTimeout');
    });

    it('writes are counted when the store answers: a SET NX that found a binding is "exists", a write held up by a hung store is "ok" once it lands (audit 29, replicas F8)', async () => {
      const writes: SessionStoreWriteOutcome[] = [];
      let up = false;
      const store = new RedisSessionStore(
        { address: redis.url, keyPrefix: 'w:', timeoutMs: 5, ttlMs: 60_000 },
        { read: () => undefined, write: (o) => writes.push(o), connected: (c) => { up = c; }, reconnect: () => undefined, log: () => undefined },
      );
      await store.start();
      try {
        await waitFor(() => up, 'the store to connect');
        store.write('s', 'ns/p0', true);
        await waitFor(() => writes.length === 1, 'the first write');
        store.write('s', 'ns/p1', true); // another replica's NX, too late
        await waitFor(() => writes.length === 2, 'the second write');
        expect(writes).toEqual(['ok', 'exists']);
        expect(await redis.command('GET', 'w:s')).toBe('ns/p0');
        redis.pause();
        try {
          store.write('t', 'ns/p2', false);
          await new Promise((r) => setTimeout(r, 100)); // twenty times the timeout: once a "timeout", though it ran
          expect(writes).toHaveLength(2);
        } finally {
          redis.resume();
        }
        await waitFor(() => writes.length === 3, 'the held write to land');
        expect(writes[2]).toBe('ok');
        expect(await redis.command('GET', 'w:t')).toBe('ns/p2');
      } finally {
        await store.close();
      }
    });

    it('a reply that arrived while the event loop was busy past the deadline is read, not counted as a timeout', async () => {
      const reads: SessionStoreReadOutcome[] = [];
      let up = false;
      const store = new RedisSessionStore(
        { address: redis.url, keyPrefix: 'busy:', timeoutMs: 5, ttlMs: 60_000 },
        { read: (o) => reads.push(o), write: () => undefined, connected: (c) => { up = c; }, reconnect: () => undefined, log: () => undefined },
      );
      await store.start();
      try {
        await waitFor(() => up, 'the store to connect');
        for (let i = 0; i < 5; i++) {
          const pending = store.read(`busy-${i}`);
          // The loop is blocked far past the 5 ms deadline while loopback redis answers: with a timer that decides
          // in the timers phase (ioredis's commandTimeout), every one of these reads was a timeout. Blocked until the
          // reply is in the socket, not for a fixed 150 ms: a redis-server not scheduled for that long on a loaded
          // machine has not answered yet, and then a timeout is the right verdict.
          const until = Date.now() + 150;
          const limit = Date.now() + 10_000;
          while (Date.now() < until || (unreadBytesFrom(redis.port) === 0 && Date.now() < limit)) { /* busy, as a tokenization or a GC pause would be */ }
          expect((await pending).status).toBe('miss');
        }
        expect(reads).toEqual(['miss', 'miss', 'miss', 'miss', 'miss']);
      } finally {
        await store.close();
      }
    });

    it('a hung store cannot pile up commands: past the outstanding bound reads fall back and writes drop at once; the dead connection is replaced', async () => {
      const reads: SessionStoreReadOutcome[] = [];
      const writes: SessionStoreWriteOutcome[] = [];
      let up = false;
      const store = new RedisSessionStore(
        { address: redis.url, keyPrefix: 'bound:', timeoutMs: 20, ttlMs: 60_000, maxOutstanding: 10 },
        { read: (o) => reads.push(o), write: (o) => writes.push(o), connected: (c) => { up = c; }, reconnect: () => undefined, log: () => undefined },
      );
      await store.start();
      try {
        await waitFor(() => up, 'the store to connect');
        redis.pause();
        try {
          // 30 reads at once: 10 are sent and time out; the 20 beyond the bound never reach the client's queue.
          await Promise.all(Array.from({ length: 30 }, (_, i) => store.read(`s${i}`)));
          expect(reads.filter((o) => o === 'timeout')).toHaveLength(10);
          expect(reads.filter((o) => o === 'unavailable')).toHaveLength(20);
          // Those 10 still wait for replies, so the bound holds after their callers gave up: nothing more is queued.
          store.write('w', 'ns/p0', true);
          expect(writes).toEqual(['dropped']);
          // Up but slow: told apart from a store that is down, so the filter leaves such a session to the scorers.
          expect(await store.read('late')).toEqual({ status: 'unavailable', reason: 'saturated' });
          // With no reply for socketTimeoutMs(20) = 1 s, the connection is dropped and its commands failed.
          expect(socketTimeoutMs(20)).toBe(1000);
          await waitFor(() => !up, 'the silent connection to be dropped');
        } finally {
          redis.resume();
        }
        await waitFor(async () => (await store.read('again')).status === 'miss', 'reads to work after the store resumed');
      } finally {
        await store.close();
      }
    });

    it('store down with soft stickiness: replicas still agree on a new session (the rendezvous pick is kept, not left to the scores)', async () => {
      const port = await freePort();
      const soft = config(`redis://127.0.0.1:${port}`).replace('    ttl: 30m\n', '    ttl: 30m\n    stickiness: soft\n');
      expect(soft).toContain('stickiness: soft');
      const a = await Replica.start(soft, 'p0');
      const b = await Replica.start(soft, 'p3');
      replicas.push(a, b);
      const pods = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const pod = await a.route(`soft-${i}`);
        expect(await b.route(`soft-${i}`)).toBe(pod);
        pods.add(pod);
      }
      expect(pods.size).toBeGreaterThan(1);
    });

    it('a store down when the EPP starts is not fatal: picks use local state until it comes up, then bindings are shared', async () => {
      const port = await freePort();
      const address = `redis://127.0.0.1:${port}`;
      const a = await Replica.start(config(address, '      unavailablePlacement: scorers'), 'p0');
      replicas.push(a);
      expect(await a.connected()).toBe(false);
      expect(await a.route('s')).toBe('p0');
      expect(await a.count('kvroute_epp_session_store_operations_total', { operation: 'read', outcome: 'unavailable' })).toBe(1);
      expect(await a.count('kvroute_epp_session_store_operations_total', { operation: 'write', outcome: 'unavailable' })).toBe(1);

      const late = await RedisServer.startOn(port);
      try {
        await waitFor(() => a.connected(), 'the replica to connect once the store is up');
        await a.route('s2');
        await waitFor(async () => (await late.command('DBSIZE')) === ':1', 'the binding written once connected');
        const b = await Replica.start(config(address), 'p3');
        replicas.push(b);
        await waitFor(() => b.connected(), 'B to connect');
        expect(await b.route('s2')).toBe('p0');
      } finally {
        for (const r of replicas.splice(0)) await r.stop();
        await late.stop();
      }
    });

    it('keys stay bounded: 300 unique 4 KiB ids make 300 keys of prefix + 22 characters; longer ids make none', async () => {
      const a = await replica('p0');
      for (let i = 0; i < 300; i++) await a.route(`${i}:${'x'.repeat(MAX_SESSION_ID_LENGTH - 8)}`);
      await a.route('y'.repeat(MAX_SESSION_ID_LENGTH + 1));
      await waitFor(async () => (await redis.command('DBSIZE')) === ':300', '300 keys');
      const keys = await allKeys(redis);
      expect(keys).toHaveLength(300);
      expect(new Set(keys.map((k) => k.length))).toEqual(new Set(['test:s:'.length + 22]));
    });

    it('authenticates with a password read from a file; a wrong password falls back instead of failing', async () => {
      await redis.stop();
      redis = await RedisServer.start(['--requirepass', 's3cret']);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-store-pw-'));
      try {
        fs.writeFileSync(path.join(dir, 'good'), 's3cret\n');
        fs.writeFileSync(path.join(dir, 'bad'), 'nope\n');
        const good = await replica('p1', config(redis.url, `      passwordFile: ${path.join(dir, 'good')}`));
        expect(await good.route('s')).toBe('p1');
        await waitFor(async () => (await good.count('kvroute_epp_session_store_operations_total', { operation: 'write', outcome: 'ok' })) === 1, 'the write');
        process.env.KVROUTE_TEST_STORE_PASSWORD = 's3cret';
        const alsoGood = await replica('p3', config(redis.url, '      passwordEnv: KVROUTE_TEST_STORE_PASSWORD'));
        expect(await alsoGood.route('s')).toBe('p1');
        expect(await redis.command('DBSIZE')).toMatch(/^-NOAUTH/); // the store really requires the password
        const bad = await Replica.start(config(redis.url, `      passwordFile: ${path.join(dir, 'bad')}\n      unavailablePlacement: scorers`), 'p2');
        replicas.push(bad);
        expect(await bad.route('s')).toBe('p2');
        expect(await bad.fallbacks()).toBe(1);
        await expect(Replica.start(config(redis.url, `      passwordFile: ${path.join(dir, 'missing')}`), 'p2'))
          .rejects.toThrow(/sessionStore.passwordFile: cannot read/);
      } finally {
        delete process.env.KVROUTE_TEST_STORE_PASSWORD;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);

(redisServerAvailable ? describe : describe.skip)('session store logs (a real redis-server)', () => {
  jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);
  const sink = () => {
    const logs: string[] = [];
    const events = { read: () => undefined, write: () => undefined, connected: () => undefined, log: (_level: string, msg: string, fields?: Record<string, unknown>) => { logs.push(`${msg} ${String(fields?.error ?? '')}`); } };
    return { logs, events };
  };

  it('says why a store refuses the connection (a wrong password: WRONGPASS), once while it keeps refusing, where the log said only "Connection is closed" (audit 29)', async () => {
    const redis = await RedisServer.start(['--requirepass', 's3cret']);
    process.env.KVROUTE_TEST_WRONG_PASSWORD = 'nope';
    const { logs, events } = sink();
    const store = new RedisSessionStore({ address: redis.url, keyPrefix: 't:', timeoutMs: 1000, ttlMs: 60_000, passwordEnv: 'KVROUTE_TEST_WRONG_PASSWORD', startGraceMs: 60_000 }, events as unknown as SessionStoreEvents);
    try {
      await store.start();
      await waitFor(() => logs.some((l) => l.startsWith('session store refused the connection')), 'the refusal logged');
      // It keeps reconnecting (~2 s apart) and keeps being refused: the same reason is not logged again.
      await new Promise((r) => setTimeout(r, 4500));
      expect(logs.filter((l) => l.startsWith('session store refused the connection'))).toEqual([expect.stringMatching(/WRONGPASS/)]);
      expect(store.connected).toBe(false);
    } finally {
      delete process.env.KVROUTE_TEST_WRONG_PASSWORD;
      await store.close();
      await redis.stop();
    }
  });

  it('reports an unreachable store only once the start-up grace has passed, and not at all when it connects within it', async () => {
    const port = await freePort();
    const { logs, events } = sink();
    const store = new RedisSessionStore({ address: `redis://127.0.0.1:${port}`, keyPrefix: 't:', timeoutMs: 1000, ttlMs: 60_000, startGraceMs: 1500 }, events as unknown as SessionStoreEvents);
    try {
      await store.start();
      await new Promise((r) => setTimeout(r, 500));
      expect(logs).toEqual([]);
      await waitFor(() => logs.length > 0, 'the unreachable store reported');
      expect(logs).toEqual([expect.stringMatching(/^session store not reachable since start; picks use the local bindings until it is .*ECONNREFUSED/)]);
    } finally {
      await store.close();
    }
    const redis = await RedisServer.start();
    const quiet = sink();
    // A grace a loaded machine's first connection fits in (300 ms did not always), then waited out: nothing more is said.
    const grace = 3000;
    const reachable = new RedisSessionStore({ address: redis.url, keyPrefix: 't:', timeoutMs: 1000, ttlMs: 60_000, startGraceMs: grace }, quiet.events as unknown as SessionStoreEvents);
    try {
      const started = Date.now();
      await reachable.start();
      await waitFor(() => reachable.connected, 'connected');
      await new Promise((r) => setTimeout(r, Math.max(0, started + grace + 300 - Date.now())));
      expect(quiet.logs).toEqual(['session store connected ']);
    } finally {
      await reachable.close();
      await redis.stop();
    }
  });

  // go-redis v9 (llm-d's client: llm-d-kv-cache v0.8.1 pkg/kvcache/kvblock/redis.go) selects the database in each
  // connection's set-up and fails the connection when SELECT fails (redis.go (*baseClient).initConn: "failed to
  // initialize connection options"). ioredis only reports the refused SELECT and uses the connection in database 0, so
  // the EPP logged "refused the connection", then "connected", and shared bindings in a database it was not given.
  it('a database the store will not select (out of range, or an ACL user without SELECT) keeps the store down, reported once, instead of using database 0', async () => {
    const redis = await RedisServer.start(['--user', 'epp', 'on', '>pw', '~*', '+@all', '-select', '--user', 'full', 'on', '>pw', '~*', '+@all']);
    process.env.KVROUTE_TEST_ACL_PASSWORD = 'pw';
    const reads: SessionStoreReadOutcome[] = [];
    const open = async (address: string) => {
      const { logs, events } = sink();
      let up = false;
      const store = new RedisSessionStore({ address, keyPrefix: 'db:', timeoutMs: 1000, ttlMs: 60_000, passwordEnv: 'KVROUTE_TEST_ACL_PASSWORD', startGraceMs: 60_000 },
        { ...events, read: (o: SessionStoreReadOutcome) => reads.push(o), connected: (c: boolean) => { up = c; } } as unknown as SessionStoreEvents);
      await store.start();
      return { store, logs, up: () => up };
    };
    const connections = async () => Number(/total_connections_received:(\d+)/.exec(await redis.bulk('INFO', 'stats'))![1]);
    try {
      for (const address of [`redis://epp@127.0.0.1:${redis.port}/2`, `redis://full@127.0.0.1:${redis.port}/20`]) {
        const before = await connections();
        const { store, logs, up } = await open(address);
        try {
          await waitFor(() => logs.length > 0, `${address}: the refusal logged`);
          // Several reconnections later (each refused again) it is still down, said once, and nothing was written anywhere.
          await new Promise((r) => setTimeout(r, 2500));
          expect(logs).toEqual([expect.stringMatching(/^session store refused the connection; picks use the local bindings until it accepts (NOPERM .*'select'|ERR DB index is out of range)/)]);
          expect(up()).toBe(false);
          expect(store.connected).toBe(false);
          expect(await store.read('s')).toEqual({ status: 'unavailable', reason: 'unavailable' });
          store.write('s', 'ns/p0', true);
          // Reconnecting with the backoff growing (50 ms, 100 ms … 2 s), not every 50 ms: six or seven attempts in these
          // ~3 s, where a delay restarted at each refusal makes thirty or more (a slower machine makes fewer).
          expect((await connections()) - before - 1).toBeLessThan(15);
        } finally {
          await store.close();
        }
      }
      expect(await redis.command('DBSIZE')).toBe(':0');
      // A database the user may select is used, and only it.
      const { store } = await open(`redis://full@127.0.0.1:${redis.port}/2`);
      try {
        await waitFor(() => store.connected, 'connected to database 2');
        store.write('s', 'ns/p0', true);
        await waitFor(async () => (await store.read('s')).status === 'hit', 'the binding in database 2');
        expect(await redis.command('DBSIZE')).toBe(':0');
      } finally {
        await store.close();
      }
    } finally {
      delete process.env.KVROUTE_TEST_ACL_PASSWORD;
      await redis.stop();
    }
  });

  it('a refusal is logged again when it comes back after the store accepted the connection in between (once per outage, not once per process)', async () => {
    const redis = await RedisServer.start(['--user', 'epp', 'on', '>pw', '~*', '+@all']);
    process.env.KVROUTE_TEST_ACL_PASSWORD = 'pw';
    const { logs, events } = sink();
    const store = new RedisSessionStore({ address: `redis://epp@127.0.0.1:${redis.port}`, keyPrefix: 't:', timeoutMs: 1000, ttlMs: 60_000, passwordEnv: 'KVROUTE_TEST_ACL_PASSWORD', startGraceMs: 60_000 },
      events as unknown as SessionStoreEvents);
    const refusals = () => logs.filter((l) => l.startsWith('session store refused the connection')).length;
    // The user turned off (an ACL change, a rotation gone wrong) and its connections killed: the reconnects are refused.
    const refuse = async () => {
      expect(await redis.command('ACL', 'SETUSER', 'epp', 'off')).toBe('+OK');
      await redis.command('CLIENT', 'KILL', 'USER', 'epp');
    };
    try {
      await store.start();
      await waitFor(() => store.connected, 'connected');
      await refuse();
      await waitFor(() => refusals() === 1, 'the first refusal logged');
      expect(await redis.command('ACL', 'SETUSER', 'epp', 'on')).toBe('+OK');
      await waitFor(() => store.connected, 'connected again');
      await refuse();
      await waitFor(() => !store.connected, 'the second loss');
      await waitFor(() => refusals() === 2, 'the second refusal logged');
      expect(logs.filter((l) => l.startsWith('session store refused the connection')))
        .toEqual([expect.stringMatching(/WRONGPASS/), expect.stringMatching(/WRONGPASS/)]);
    } finally {
      delete process.env.KVROUTE_TEST_ACL_PASSWORD;
      await store.close();
      await redis.stop();
    }
  });

  it('a store reached and then lost within the start-up grace is logged as lost once, not also as "not reachable since start" when the grace ends', async () => {
    const redis = await RedisServer.start();
    const { logs, events } = sink();
    const grace = 2000;
    const store = new RedisSessionStore({ address: redis.url, keyPrefix: 't:', timeoutMs: 1000, ttlMs: 60_000, startGraceMs: grace }, events as unknown as SessionStoreEvents);
    try {
      const started = Date.now();
      await store.start();
      await waitFor(() => store.connected, 'connected');
      await redis.kill(); // a store restarted by its operator, a node drained, in the EPP's first seconds
      await waitFor(() => !store.connected, 'the loss seen');
      await new Promise((r) => setTimeout(r, Math.max(0, started + grace + 500 - Date.now())));
      // Whatever a slow machine logged before the connection, nothing after it says the store was never reached: the
      // loss was logged as such, and the grace's report named a cause (ECONNREFUSED) and a history ("since start") that
      // were not the case. llm-d's Redis index says "failed to connect" only when its first PING fails
      // (llm-d-kv-cache v0.8.1 pkg/kvcache/kvblock/redis.go NewRedisIndex); the grace's report is kvroute's counterpart.
      const since = logs.indexOf('session store connected ');
      expect(since).toBeGreaterThanOrEqual(0);
      expect(logs.slice(since)).toEqual(['session store connected ', 'session store connection lost; picks use the local bindings, reconnecting ']);
    } finally {
      await store.close();
      await redis.stop();
    }
  });
});

describe('sessionStore configuration', () => {
  const load = (store: string) => parseEndpointPickerConfig(`apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-filter
  parameters:
    sessionStore: ${store}
`);
  const error = (store: string): string => {
    try {
      load(store);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error('no error');
  };

  it('accepts llm-d\'s address forms (redis-cache-manager kvblock/redis.go: bare host:port gets redis://) and valkey://', () => {
    expect(parseStoreAddress('redis.kvroute:6380')).toEqual({ host: 'redis.kvroute', port: 6380, db: 0, tls: false });
    expect(parseStoreAddress('rediss://epp@redis:6379/2')).toEqual({ host: 'redis', port: 6379, db: 2, tls: true, username: 'epp' });
    expect(parseStoreAddress('valkey://[fd00::1]')).toEqual({ host: 'fd00::1', port: 6379, db: 0, tls: false });
    expect(parseStoreAddress('valkeys://v:6379').tls).toBe(true);
    const config = load('{address: "redis://redis:6379"}');
    expect(config.plugins[0]!.parameters).toEqual({
      headers: ['x-session-id', 'x-session-token'], ttl: '30m', capacity: 65536,
      sessionStore: { address: 'redis://redis:6379', keyPrefix: 'kvroute:session:', timeout: '5ms', unavailablePlacement: 'rendezvous' },
    });
  });

  it('leaves the resolved config unchanged when no store is configured (rendered ConfigMaps stay as they were)', () => {
    const config = parseEndpointPickerConfig('apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: session-affinity-filter\n  parameters: {ttl: 30m}\n');
    expect(config.plugins[0]!.parameters).toEqual({ headers: ['x-session-id', 'x-session-token'], ttl: '30m', capacity: 65536 });
  });

  it.each([
    ['{address: "redis://:hunter2@redis:6379"}', 'plugins[0].parameters.sessionStore.address: must not hold a password (the config is a ConfigMap): use sessionStore.passwordFile or sessionStore.passwordEnv'],
    ['{address: "http://redis:6379"}', 'plugins[0].parameters.sessionStore.address: scheme must be redis://, rediss:// (TLS), valkey:// or valkeys:// (TLS), got "http://"'],
    ['{address: "redis://redis:6379/x"}', 'sessionStore.address: path must be a database number'],
    ['{}', 'plugins[0].parameters.sessionStore.address: must be a non-empty string, got nothing'],
    ['"redis:6379"', 'plugins[0].parameters.sessionStore: must be a map'],
    ['{address: "r:1", timeout: 5s}', 'sessionStore.timeout: must be at most 1s'],
    ['{address: "r:1", timeout: 0s}', 'sessionStore.timeout: must be longer than 0'],
    ['{address: "r:1", keyPrefix: "has space"}', 'sessionStore.keyPrefix: must be at most 334 characters without spaces'],
    ['{address: "r:1", unavailablePlacement: hash}', 'plugins[0].parameters.sessionStore.unavailablePlacement: must be "rendezvous" or "scorers", got "hash"'],
    ['{address: "r:1", passwordFile: /a, passwordEnv: B}', 'sessionStore.passwordEnv: set passwordFile or passwordEnv, not both'],
    ['{address: "r:1", passwordEnv: "not a name"}', 'sessionStore.passwordEnv: must be an environment variable name'],
    ['{address: "r:1", caFile: /ca.pem}', 'sessionStore.caFile: applies to TLS addresses only'],
    ['{address: "r:1", password: x}', 'plugins[0].parameters.sessionStore.password: unknown field; allowed: address, keyPrefix, timeout, unboundTimeout, passwordFile, passwordEnv, caFile, unavailablePlacement'],
  ])('rejects %s naming the field', (store, message) => {
    expect(error(store)).toContain(message);
  });
});

/** The one key matching `pattern` (SCAN through the test's own connection-less helper). */
async function scanOne(redis: RedisServer, pattern: string): Promise<string> {
  const keys = (await allKeys(redis)).filter((k) => k.startsWith(pattern.replace(/\*$/, '')));
  if (keys.length !== 1) throw new Error(`expected one key matching ${pattern}, got ${keys.length}`);
  return keys[0]!;
}

async function allKeys(redis: RedisServer): Promise<string[]> {
  return redis.commandLines('KEYS', '*');
}
