/**
 * A session store behind a failover address (a Kubernetes Service, a managed Redis/Valkey
 * "primary endpoint", a VIP) whose primary is demoted to a read-only replica while the EPP's connection to it stays
 * open. Real redis-servers and a real TCP forwarder on loopback: connections opened after the failover reach the new
 * primary, the open one stays on the demoted node, as conntrack keeps it.
 *
 * Redis refuses every write command on a read-only replica with `-READONLY You can't write against a read only
 * replica.` (redis/redis src/server.c processCommand, `shared.roslaveerr`), and GETEX is a write command
 * (src/commands/getex.json: "WRITE"); SET too. The connection itself stays healthy, so a client that does not drop it on
 * READONLY (ioredis' documented `reconnectOnError` for exactly this failover) never reaches the new primary. Found by the
 * replicas review (rev-replicas).
 */
import * as net from 'node:net';
import { INTEGRATION_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { RedisSessionStore, type SessionStoreEvents } from '../src/sessions/store';
import { RedisServer, redisServerAvailable, requireRedisServerInCi } from './redis-server';

requireRedisServerInCi();

/** A TCP forwarder whose target can be switched: new connections go to the current target, open ones stay. */
async function forwarder(initialTarget: number): Promise<{ port: number; retarget(port: number): void; close(): Promise<void> }> {
  let target = initialTarget;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    retarget: (p) => { target = p; },
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

(redisServerAvailable ? describe : describe.skip)('session store failover to a new primary ', () => {
  jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

  it('a primary demoted to a read-only replica: reads recover on the new primary behind the same address', async () => {
    const oldPrimary = await RedisServer.start();
    const newPrimary = await RedisServer.start();
    const proxy = await forwarder(oldPrimary.port);
    const outcomes: string[] = [];
    const events: SessionStoreEvents = {
      read: (o) => outcomes.push(`read ${o}`), write: (o) => outcomes.push(`write ${o}`), connected: () => undefined,
      reconnect: (reason) => outcomes.push(`reconnect ${reason}`), log: () => undefined,
    };
    const store = new RedisSessionStore({ address: `redis://127.0.0.1:${proxy.port}`, keyPrefix: 't:', timeoutMs: 200, ttlMs: 60_000 }, events);
    try {
      await store.start();
      await waitFor(() => store.connected, 'connected through the forwarder');
      store.write('session-1', 'ns/pod-a', false);
      await waitFor(async () => (await store.read('session-1')).status === 'hit', 'the binding written and read on the old primary');

      // Failover: the new primary holds the data (replicated before the switch), the address now leads to it, and the
      // old primary becomes its replica (read-only).
      expect(await newPrimary.command('SET', 't:session-1', 'ns/pod-a', 'PX', '60000')).toBe('+OK');
      proxy.retarget(newPrimary.port);
      expect(await oldPrimary.command('REPLICAOF', '127.0.0.1', String(newPrimary.port))).toBe('+OK');
      await waitFor(async () => (await oldPrimary.command('GETEX', 't:session-1', 'PX', '1000')).startsWith('-READONLY'), 'the old primary read-only');

      // What a replica of the EPP sees from now on: every read refused, the connection kept ("connected").
      const first = await store.read('session-1');

      // Within 10 s (five of the store's own 2 s reconnect back-offs) reads should answer from the new primary.
      let last: unknown;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        last = await store.read('session-1');
        if ((last as { status: string }).status === 'hit') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(last).toEqual({ status: 'hit', value: 'ns/pod-a' });
      // The refused read failed (a fall-back, counted as an error) and dropped the connection once, counted.
      expect(first).toEqual({ status: 'unavailable', reason: 'error' });
      expect(outcomes.filter((o) => o.startsWith('reconnect'))).toEqual(['reconnect readonly']);
    } finally {
      await store.close();
      await proxy.close();
      await oldPrimary.stop();
      await newPrimary.stop();
    }
  });
});
