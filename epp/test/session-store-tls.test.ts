/**
 * The shared session store over TLS (`rediss://`), against a real `redis-server` serving TLS on loopback (Debian's
 * package is built with TLS; .ci/run installs it) with a certificate `openssl` makes for the test: the store's
 * certificate is verified against `caFile`, for the address the EPP was given, which may be an IP address.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, INTEGRATION_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { RedisSessionStore, type SessionStoreEvents } from '../src/sessions/store';
import { RedisServer, redisServerAvailable, requireRedisServerInCi } from './redis-server';
import { sessionStoreConfig } from './replica';

requireRedisServerInCi();

const main = path.join(__dirname, '..', 'dist', 'main.js');
const built = spawnSync('node', [main, '--help']).status === 0;
const opensslAvailable = spawnSync('openssl', ['version']).status === 0;

/** A self-signed certificate (its own CA) for the subject alternative names given, e.g. `IP:127.0.0.1`. */
function certificate(dir: string, name: string, altNames: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-addext', `subjectAltName=${altNames}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/** A redis-server that also serves TLS on `tlsPort` with `cert`, clients not asked for certificates. */
async function tlsRedis(cert: { cert: string; key: string }, tlsPort: number): Promise<RedisServer> {
  return RedisServer.start(['--tls-port', String(tlsPort), '--tls-cert-file', cert.cert, '--tls-key-file', cert.key,
    '--tls-ca-cert-file', cert.cert, '--tls-auth-clients', 'no']);
}

/** A start-up grace the store is given and never waits out: `startHoldingGrace` holds its timer. */
const HELD_GRACE_MS = 600_000;

/**
 * Starts the store holding its start-up grace timer (the one it arms in start() for HELD_GRACE_MS), and returns what
 * ends the grace: the test decides when it has run out, after what it waits for, instead of racing it. The rest of the
 * store (ioredis's connect timeout and retries, TLS, the socket) runs on real timers and I/O.
 */
async function startHoldingGrace(store: RedisSessionStore): Promise<() => void> {
  const realSetTimeout = global.setTimeout as (fn: () => void, ms?: number, ...args: unknown[]) => NodeJS.Timeout;
  let grace: (() => void) | undefined;
  const spy = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number, ...args: unknown[]) => {
    if (ms !== HELD_GRACE_MS || grace !== undefined) return realSetTimeout(fn, ms, ...args);
    grace = fn;
    return realSetTimeout(() => undefined, 0);
  }) as typeof setTimeout);
  try {
    await store.start();
  } finally {
    spy.mockRestore();
  }
  if (grace === undefined) throw new Error('the store armed no start-up grace timer');
  return grace;
}

(redisServerAvailable && opensslAvailable ? describe : describe.skip)('the session store over TLS (a real redis-server serving TLS)', () => {
  jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-store-tls-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  // Node's tls.connect: `servername` "must be a host name, and not an IP address" (doc/api/tls.md, Node v20), and
  // setting one is deprecated (DEP0123), a warning Node prints to stderr as plain text. The EPP passed the address's
  // host as the servername whatever it was, so `rediss://10.0.0.5:6379` (an `existing` store given by address) put two
  // lines that are not JSON in a log that is JSON lines throughout (the --zap-encoder help: "logs are always JSON
  // lines"). Left out for an IP, Node sends no SNI and verifies the certificate for the IP, as Go's crypto/tls does for
  // llm-d's `rediss://` (llm-d-kv-cache v0.8.1 pkg/kvcache/kvblock/redis.go: go-redis ParseURL's ServerName).
  (built ? it : it.skip)('rediss:// to an IP address: the EPP binary connects with caFile and its stderr stays JSON lines (no DEP0123 warning)', async () => {
    const tlsPort = await freePort();
    const redis = await tlsRedis(certificate(dir, 'store', 'IP:127.0.0.1'), tlsPort);
    const config = sessionStoreConfig(`rediss://127.0.0.1:${tlsPort}`, { extra: `      caFile: ${path.join(dir, 'store.crt')}` });
    const child = spawn('node', [main, '--endpoints', '127.0.0.1:1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--config-text', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await waitFor(() => /"event":"listening"/.test(stdout), 'the EPP to listen');
      const { metricsPort } = JSON.parse(stdout.split('\n').find((l) => l.includes('"event":"listening"'))!) as { metricsPort: number };
      await waitFor(async () => /^kvroute_epp_session_store_connected 1$/m.test(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()),
        'the EPP to connect to the store over TLS');
      child.kill('SIGTERM');
      await exited;
      const notJson = stderr.split('\n').filter((line) => {
        if (line === '') return false;
        try {
          JSON.parse(line);
          return false;
        } catch {
          return true;
        }
      });
      expect(notJson).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      await redis.stop();
    }
  });

  // ioredis 6.0.0 listens to its socket with once('error') (built/Redis.js connect, StandaloneConnector), so a socket's
  // second error was an unhandled 'error' event, which ends the EPP's process (redis/ioredis#1183; this test's first
  // runs met it as "SSL alert number 50" from redis-server). A TLS session that reads a record it cannot decrypt and is
  // then reset emits two: "decryption failed or bad record mac", then "read ECONNRESET".
  it('a TLS connection that reads a corrupt record and is then reset is lost and reconnected, not an unhandled error that ends the process', async () => {
    const tlsPort = await freePort();
    const redis = await tlsRedis(certificate(dir, 'store', 'IP:127.0.0.1'), tlsPort);
    // A TCP hop in front of the store: it forwards bytes until told to corrupt the sessions it carries.
    const clients = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect(tlsPort, '127.0.0.1');
      client.pipe(upstream);
      upstream.pipe(client);
      for (const s of [client, upstream]) s.on('error', () => undefined);
      clients.add(client);
      client.on('close', () => { clients.delete(client); upstream.destroy(); });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const logs: string[] = [];
    const ups: boolean[] = [];
    const events = {
      read: () => undefined, write: () => undefined, reconnect: () => undefined,
      connected: (up: boolean) => { ups.push(up); },
      log: (_level: string, msg: string) => { logs.push(msg); },
    };
    const store = new RedisSessionStore({ address: `rediss://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, keyPrefix: 't:', timeoutMs: 1000, ttlMs: 60_000,
      caFile: path.join(dir, 'store.crt') }, events as SessionStoreEvents);
    try {
      await store.start();
      await waitFor(() => store.connected, 'the store to connect over TLS');
      const [first] = [...clients];
      // An application-data record the session's keys did not seal, then a reset, as a failing middlebox or node sends.
      first!.unpipe();
      first!.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]));
      await new Promise((r) => setTimeout(r, 50));
      first!.resetAndDestroy();
      await waitFor(() => ups.filter((u) => u).length === 2 && store.connected, 'the store to reconnect after the corrupt session');
      expect(ups).toEqual([true, false, true]);
      expect(logs).toEqual(['session store connected', 'session store connection lost; picks use the local bindings, reconnecting', 'session store connected']);
    } finally {
      await store.close();
      for (const c of clients) c.destroy();
      await new Promise((r) => proxy.close(r));
      await redis.stop();
    }
  });

  it('the certificate is still verified for the address: one for another name or IP is refused, and without caFile a private CA is refused', async () => {
    const tlsPort = await freePort();
    const redis = await tlsRedis(certificate(dir, 'elsewhere', 'DNS:localhost,IP:127.0.0.2'), tlsPort);
    const attempt = async (address: string, caFile: string | undefined): Promise<string> => {
      const errors: string[] = [];
      const events = {
        read: () => undefined, write: () => undefined, connected: () => undefined, reconnect: () => undefined,
        log: (_level: string, msg: string, fields?: Record<string, unknown>) => { errors.push(`${msg}: ${String(fields?.error ?? '')}`); },
      };
      // timeoutMs sets the connect timeout too (at least 1 s): 10 s, so a redis-server stalled past 1 s still gives the
      // handshake's verdict rather than ETIMEDOUT.
      const store = new RedisSessionStore({ address, keyPrefix: 't:', timeoutMs: 10_000, ttlMs: 60_000, startGraceMs: HELD_GRACE_MS, ...(caFile !== undefined ? { caFile } : {}) },
        events as SessionStoreEvents);
      try {
        // The grace ends once the first attempt has (refused, or connected), as the EPP's 5 s grace follows its 1 s
        // connect timeout. A real 300 ms grace raced the TLS handshake with redis-server, another process: one not
        // scheduled for 300 ms (a loaded machine) left the report without its cause ("...until it is: ").
        const endGrace = await startHoldingGrace(store);
        let refused = false;
        (store as unknown as { client: EventEmitter }).client.once('error', () => { refused = true; });
        await waitFor(() => refused || store.connected, `${address}: the first attempt's outcome`);
        endGrace();
        return errors[0]!;
      } finally {
        await store.close();
      }
    };
    try {
      const ca = path.join(dir, 'elsewhere.crt');
      expect(await attempt(`rediss://127.0.0.1:${tlsPort}`, ca)).toMatch(/^session store not reachable since start.*IP: 127\.0\.0\.1 is not in the cert's list/);
      expect(await attempt(`rediss://localhost:${tlsPort}`, undefined)).toMatch(/^session store not reachable since start.*self.signed certificate/);
      expect(await attempt(`rediss://localhost:${tlsPort}`, ca)).toBe('session store connected: ');
    } finally {
      await redis.stop();
    }
  });
});
