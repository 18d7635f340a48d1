/**
 * The shared session store: session bindings kept in Redis or Valkey so every EPP replica routes a session to the same
 * pod. Only the session-affinity filter uses it (`parameters.sessionStore`); without one, bindings stay in the
 * filter's in-memory table, which is all a single replica needs.
 *
 * What it promises the filter: a read never takes longer than `timeout` (or the longer patience its caller gives it)
 * and never throws (an answer, or "unavailable"
 * with the reason, which the filter turns into a fall-back to its local table); a write never blocks anything (fired
 * and forgotten); at most MAX_OUTSTANDING_COMMANDS wait on the store at once, the rest answered "unavailable" or
 * dropped at once and counted, so a hung store cannot pile up memory; a store that is down when the
 * EPP starts, dies or hangs costs affinity across replicas, never a pick and never the process. Reconnection runs in
 * the background with capped exponential backoff.
 *
 * One connection per replica, pipelined (the client keeps many commands in flight on it and Redis answers in order):
 * for single-key GETEX/SET a pool would add sockets, not throughput.
 *
 * Client: ioredis, chosen by measurement (`npm run bench:redis-clients -w epp`, numbers in the README): on loopback
 * its GET round trip matched iovalkey's at the median and had the lowest p99 with 32 commands in flight; node-redis
 * was slower on both. It speaks RESP to Redis and Valkey alike and downloads nothing at install time.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { Redis, ReplyError, type RedisOptions, type StandaloneConnectionOptions } from 'ioredis';
import StandaloneConnector from 'ioredis/built/connectors/StandaloneConnector';
import type { ConnectionOptions } from 'node:tls';

/**
 * ioredis's own connector, but every socket it opens keeps an 'error' listener for its whole life. ioredis listens
 * with `once('error')` (ioredis 6.0.0 built/Redis.js connect, and its StandaloneConnector), so a socket's second
 * error is an unhandled 'error' event, which ends the process: a TLS session that reads a bad record or an alert and
 * is then reset emits both ("decryption failed or bad record mac", then "read ECONNRESET"; reported upstream as
 * redis/ioredis#1183, the fix #961/#962 closed unmerged). The first error still reaches ioredis, which reconnects on
 * the 'close' that follows; later ones change nothing and need no log of their own.
 */
class StreamErrorGuardConnector extends StandaloneConnector {
  // ioredis constructs its connector with the client's whole options (ConnectorConstructor takes `unknown`).
  constructor(options: unknown) {
    super(options as StandaloneConnectionOptions);
  }

  override async connect(emit: Parameters<StandaloneConnector['connect']>[0]): ReturnType<StandaloneConnector['connect']> {
    const stream = await super.connect(emit);
    // Attached before any I/O callback can run: the stream was created in the tick this promise resolved in.
    stream.on('error', () => undefined);
    return stream;
  }
}

/**
 * Commands sent and not yet answered, at most: beyond it a read is answered "unavailable" and a write dropped, both at
 * once and counted. It counts the client's own queue, not our callers: a command whose caller gave up at the timeout
 * still waits there for the store's reply, so this is what bounds memory while a store hangs.
 */
export const MAX_OUTSTANDING_COMMANDS = 2048;
/**
 * No reply at all for this long while commands wait (a hung store, a silently dropped connection): the connection is
 * dropped, its commands failed, and reconnection starts. At least 1 s; ten times the read timeout when longer.
 */
export function socketTimeoutMs(timeoutMs: number): number {
  return Math.max(1000, 10 * timeoutMs);
}
/** Longest value read back: an endpoint identity (`namespace/pod`); anything longer is not ours and is ignored. */
export const MAX_VALUE_LENGTH = 512;

/**
 * `late_hit` and `late_miss`: answered after `timeout`, within the longer wait a read may be given (`patienceMs`: a
 * session the replica has no binding of its own for, where falling back would place it afresh). Not fall-backs.
 */
export type SessionStoreReadOutcome = 'hit' | 'miss' | 'late_hit' | 'late_miss' | 'timeout' | 'error' | 'unavailable';
/**
 * Counted when the store answers, however late (nobody waits for a write, so there is no deadline to miss): `ok`
 * written, `exists` a SET NX that found a binding already there (another replica's, or one a slow read did not
 * return) and left it, `error` refused or lost with the connection; `unavailable` and `dropped` never sent.
 */
export type SessionStoreWriteOutcome = 'ok' | 'exists' | 'error' | 'unavailable' | 'dropped';

export type SessionStoreRead =
  | { readonly status: 'hit'; readonly value: string }
  | { readonly status: 'miss' }
  /**
   * Timed out, failed (a reply error such as NOAUTH, a dropped connection), not connected (`unavailable`) or too many
   * commands waiting for replies (`saturated`: the store is up but slow): the filter falls back to its local table.
   */
  | { readonly status: 'unavailable'; readonly reason: 'timeout' | 'error' | 'unavailable' | 'saturated' };

/** Where the store reports what happened, so the filter's handle can count it (`kvroute_epp_session_store_*`). */
export interface SessionStoreEvents {
  read(outcome: SessionStoreReadOutcome): void;
  write(outcome: SessionStoreWriteOutcome): void;
  connected(up: boolean): void;
  /** The connection was dropped to reach another node: `readonly`, the store answered READONLY (a demoted primary). */
  reconnect(reason: 'readonly'): void;
  log(level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void;
}

/** The resolved `sessionStore` parameters (see the filter's parameter docs). */
export interface SessionStoreOptions {
  /** `redis://[user@]host:port[/db]`, `rediss://` (TLS), `valkey://`, `valkeys://`, or a bare `host:port`. */
  readonly address: string;
  readonly keyPrefix: string;
  /** How long a read waits for its reply (unless its caller gives it more patience); writes are not waited for. */
  readonly timeoutMs: number;
  /** Binding lifetime in milliseconds: set on writes, restarted on every read that finds the binding. */
  readonly ttlMs: number;
  /** A file holding the password (a mounted Secret), read at start. */
  readonly passwordFile?: string;
  /** An environment variable holding the password. */
  readonly passwordEnv?: string;
  /** With TLS: a PEM file of the CA that signed the store's certificate (else the system's roots). */
  readonly caFile?: string;
  /** @default MAX_OUTSTANDING_COMMANDS (tests lower it) */
  readonly maxOutstanding?: number;
  /** How long after start a store still unreachable is reported. @default START_GRACE_MS (tests lower it) */
  readonly startGraceMs?: number;
}

/** The parts of `address`, checked: the config loader calls this so a bad address fails when the config loads. */
export interface ParsedAddress {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly tls: boolean;
  readonly username?: string;
}

const SCHEMES: Readonly<Record<string, boolean>> = { 'redis:': false, 'valkey:': false, 'rediss:': true, 'valkeys:': true };

/**
 * Parses a store address the way llm-d's Redis index reads its `address` (llm-d-kv-cache-manager
 * `pkg/kvcache/kvblock/redis.go`: a bare `host:port` gets `redis://`; `rediss://` is TLS; later versions add
 * `valkey://`). A password in the URL is refused: the address sits in a ConfigMap, so secrets come from a file or the
 * environment. Throws an Error saying what is wrong.
 */
export function parseStoreAddress(address: string): ParsedAddress {
  const withScheme = /^[a-z]+:\/\//i.test(address) ? address : `redis://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`must be a URL like "redis://redis.kvroute:6379" or "host:port", got ${JSON.stringify(address)}`);
  }
  const tls = SCHEMES[url.protocol];
  if (tls === undefined) {
    throw new Error(`scheme must be redis://, rediss:// (TLS), valkey:// or valkeys:// (TLS), got ${JSON.stringify(url.protocol.replace(/:$/, '://'))}`);
  }
  if (url.password !== '') {
    throw new Error('must not hold a password (the config is a ConfigMap): use sessionStore.passwordFile or sessionStore.passwordEnv');
  }
  if (url.hostname === '') throw new Error(`names no host: ${JSON.stringify(address)}`);
  const port = url.port === '' ? 6379 : Number(url.port);
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,2}$/.test(path)) throw new Error(`path must be a database number like "/0", got ${JSON.stringify(url.pathname)}`);
  if (url.search !== '' || url.hash !== '') throw new Error(`must not carry a query or fragment, got ${JSON.stringify(address)}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port,
    db: path === '' ? 0 : Number(path),
    tls,
    ...(url.username !== '' ? { username: decodeURIComponent(url.username) } : {}),
  };
}

/** Reconnect delay after the n-th failed attempt: 50 ms doubling to 2 s, plus up to 100 ms of jitter so replicas spread. */
export function reconnectDelayMs(attempt: number, random: () => number = Math.random): number {
  return Math.min(2000, 50 * 2 ** Math.max(0, Math.min(attempt - 1, 6))) + Math.floor(random() * 100);
}

/** How long after start an unreachable store is reported (its later state changes are logged as they happen). */
export const START_GRACE_MS = 5000;

export class RedisSessionStore {
  private client: Redis | undefined;
  private up = false;
  /** Connected at least once: a store lost after that is reported as lost (setUp), not as never reached. */
  private reached = false;
  private closed = false;
  /** The first failing command after each connect is logged (NOAUTH, a Redis without GETEX…); the rest only counted. */
  private errorLogged = false;
  /** This connection is being dropped for a READONLY reply: the commands refused with it do not count it again. */
  private readonlyDropping = false;
  /** Connections in a row dropped after their set-up because it refused SELECT: they keep the reconnect backoff growing. */
  private refusedConnections = 0;

  constructor(
    private readonly options: SessionStoreOptions,
    private readonly events: SessionStoreEvents,
  ) {}

  /** The key a session digest is stored under: the prefix and the fixed-length digest, so keys are bounded. */
  keyOf(sessionDigest: string): string {
    return this.options.keyPrefix + sessionDigest;
  }

  /**
   * Reads the password and opens the connection in the background. Only unusable configuration throws (a password
   * file that cannot be read, an unset variable); a store that is down is not an error: reads fall back until it is up.
   */
  async start(): Promise<void> {
    const address = parseStoreAddress(this.options.address);
    const password = this.password();
    // No servername for an IP address: Node's tls.connect takes a host name only there (doc/api/tls.md) and prints a
    // plain-text DEP0123 warning for an IP; left out, Node sends no SNI and verifies the certificate for the IP.
    const tls: ConnectionOptions | undefined = address.tls
      ? {
        ...(net.isIP(address.host) === 0 ? { servername: address.host } : {}),
        ...(this.options.caFile !== undefined ? { ca: readSecretFile(this.options.caFile, 'sessionStore.caFile', false) } : {}),
      }
      : undefined;
    const options: RedisOptions = {
      host: address.host,
      port: address.port,
      db: address.db,
      ...(address.username !== undefined ? { username: address.username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(tls !== undefined ? { tls } : {}),
      lazyConnect: true,
      // Never queue commands while disconnected: a read must answer now (from the local table) rather than wait.
      enableOfflineQueue: false,
      // Commands lost with a connection fail at once instead of being replayed later, when nobody waits for them.
      maxRetriesPerRequest: 0,
      // No commandTimeout: its timer fires in the timers phase, before the poll phase reads a reply that arrived while
      // the event loop was busy, and turned ~10% of reads into timeouts on a busy EPP (the 2-replica demo). The
      // per-call deadline is `withDeadline` below; a store that stops answering is dropped by the socket timeout.
      connectTimeout: Math.max(1000, this.options.timeoutMs),
      socketTimeout: socketTimeoutMs(this.options.timeoutMs),
      // ioredis restarts `attempt` at every connection it completes, which includes one dropped for a refused SELECT.
      retryStrategy: (attempt) => (this.closed ? null : reconnectDelayMs(attempt + this.refusedConnections)),
      // A primary demoted to a replica by a failover behind one address (a Service, a managed store's primary
      // endpoint) keeps the open connection and refuses every write command on it with READONLY, GETEX included
      // (Redis flags it "write": src/commands/getex.json), so without this every read would fail for as long as the
      // connection lives. Dropping it reconnects through the address to the new primary, as ioredis documents
      // `reconnectOnError` for; the refused command fails (counted as an error), it is not resent.
      reconnectOnError: (e) => {
        if (!e.message.startsWith('READONLY')) return false;
        if (!this.readonlyDropping) {
          this.readonlyDropping = true;
          this.events.reconnect('readonly');
          this.events.log('warn', 'session store answered READONLY (a replica, after a failover?); reconnecting to reach the primary', { address: this.options.address, error: e.message });
        }
        return true;
      },
      connectionName: 'kvroute-epp-sessions',
      Connector: StreamErrorGuardConnector,
      enableReadyCheck: false,
    };
    const client = new Redis(options);
    this.client = client;
    // A refused SELECT (a database out of range, an ACL user without SELECT): ioredis reports it and goes on in
    // database 0, where bindings would be shared in a database the config does not name. Such a connection is dropped
    // before it is used, as go-redis fails a connection whose set-up fails (redis.go (*baseClient).initConn, v9).
    let selectRefused = false;
    // The last refusal logged: the same one is not logged again while the store keeps refusing (every ~2 s), but is
    // once the store has accepted a connection since, as the start of another outage.
    let lastRefusal: string | undefined;
    client.on('connect', () => { selectRefused = false; });
    client.on('ready', () => {
      if (selectRefused) {
        this.refusedConnections++;
        client.disconnect(true);
        return;
      }
      this.refusedConnections = 0;
      lastRefusal = undefined;
      this.setUp(true);
    });
    client.on('close', () => this.setUp(false));
    // ioredis reports every failed attempt as an 'error' event; the state change is logged once in setUp instead. A
    // reply error during the handshake (HELLO/AUTH, SELECT: a wrong or missing password, ACLs, a database out of range;
    // ioredis drops a refused CLIENT SETNAME without a word) is why the store stays down, reconnecting every ~2 s: logged
    // whenever it changes, since the connection error alone says only that it closed.
    let lastError: string | undefined;
    client.on('error', (e: Error) => {
      lastError = e.message;
      if (!(e instanceof ReplyError)) return;
      if (client.status === 'connect' && (e as Error & { command?: { name?: string } }).command?.name === 'select') selectRefused = true;
      if (e.message === lastRefusal) return;
      lastRefusal = e.message;
      this.events.log('warn', 'session store refused the connection; picks use the local bindings until it accepts', { address: this.options.address, error: e.message });
    });
    client.connect().catch((e: Error) => {
      lastError ??= e.message;
    });
    // A first attempt can fail only because start-up work kept the event loop busy past the connect timeout (a
    // tokenizer loading): the store is reported unreachable only if it still is a few seconds later.
    // Only a store never reached: one reached and lost within the grace has had its loss logged, and "since start"
    // would send an operator after an address or a password that worked.
    setTimeout(() => {
      if (this.reached || this.closed) return;
      this.events.log('warn', 'session store not reachable since start; picks use the local bindings until it is', { address: this.options.address, ...(lastError !== undefined ? { error: lastError } : {}) });
    }, this.options.startGraceMs ?? START_GRACE_MS).unref();
  }

  get connected(): boolean {
    return this.up;
  }

  /**
   * The binding of a session digest, restarting its TTL in the same round trip (GETEX … PX, Redis 6.2+ and every
   * Valkey): a session in use never expires, and a hit costs no extra write.
   */
  async read(sessionDigest: string, patienceMs?: number): Promise<SessionStoreRead> {
    const client = this.client;
    if (client === undefined || client.status !== 'ready' || !this.up) {
      this.events.read('unavailable');
      return { status: 'unavailable', reason: 'unavailable' };
    }
    if (this.saturated(client)) {
      this.events.read('unavailable');
      return { status: 'unavailable', reason: 'saturated' };
    }
    const startedMs = performance.now();
    let late = false;
    try {
      const command = client.getex(this.keyOf(sessionDigest), 'PX', this.options.ttlMs);
      let value: string | null;
      try {
        value = await withDeadline(command, this.options.timeoutMs);
      } catch (e) {
        // A caller with nothing to fall back on waits on for the same reply, up to its patience in all.
        const left = patienceMs === undefined ? 0 : patienceMs - (performance.now() - startedMs);
        if (!isTimeout(e) || left <= 0) throw e;
        late = true;
        value = await withDeadline(command, left);
      }
      if (value === null || value.length === 0 || value.length > MAX_VALUE_LENGTH) {
        this.events.read(late ? 'late_miss' : 'miss');
        return { status: 'miss' };
      }
      this.events.read(late ? 'late_hit' : 'hit');
      return { status: 'hit', value };
    } catch (e) {
      const reason = isTimeout(e) ? 'timeout' : 'error';
      if (reason === 'error') this.logFirstError(e);
      this.events.read(reason);
      return { status: 'unavailable', reason };
    }
  }

  /**
   * Binds a session digest to an endpoint identity with the TTL; never waits, never throws. `onlyIfAbsent` (SET NX)
   * leaves a binding already there alone: the caller did not see one (a miss, or a read that timed out) and must not
   * overwrite one another replica made meanwhile or that a slow read failed to return.
   */
  write(sessionDigest: string, value: string, onlyIfAbsent: boolean): void {
    const client = this.client;
    // `up` too: the client is 'ready' a tick before its 'ready' event, where a connection that refused SELECT is dropped.
    if (client === undefined || client.status !== 'ready' || !this.up) {
      this.events.write('unavailable');
      return;
    }
    if (this.saturated(client)) {
      this.events.write('dropped');
      return;
    }
    const key = this.keyOf(sessionDigest);
    // No deadline: a write past one would still run on the store, so counting it a timeout would misreport it (audit
    // 29, replicas F8). The outstanding bound and the socket timeout keep a hung store's writes bounded.
    const done = onlyIfAbsent ? client.set(key, value, 'PX', this.options.ttlMs, 'NX') : client.set(key, value, 'PX', this.options.ttlMs);
    done.then(
      // SET … NX answers nil when the key exists: the binding there was kept (https://redis.io/docs/latest/commands/set/).
      (reply) => this.events.write(reply === null ? 'exists' : 'ok'),
      (e: unknown) => {
        this.logFirstError(e);
        this.events.write('error');
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    // QUIT waits for the store; a store that is down or paused must not hold up shutdown.
    client.disconnect(false);
    this.setUp(false);
  }

  /** Too many commands already wait for the store's replies. */
  private saturated(client: Redis): boolean {
    return client.commandQueue.length >= (this.options.maxOutstanding ?? MAX_OUTSTANDING_COMMANDS);
  }

  private logFirstError(e: unknown): void {
    if (this.errorLogged) return;
    this.errorLogged = true;
    this.events.log('warn', 'session store command failed; picks use the local bindings (further failures are only counted)', {
      address: this.options.address, error: e instanceof Error ? e.message : String(e),
    });
  }

  private setUp(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    if (up) {
      this.reached = true;
      this.errorLogged = false;
      this.readonlyDropping = false;
    }
    this.events.connected(up);
    if (up) this.events.log('info', 'session store connected', { address: this.options.address });
    else if (!this.closed) this.events.log('warn', 'session store connection lost; picks use the local bindings, reconnecting', { address: this.options.address });
  }

  private password(): string | undefined {
    if (this.options.passwordFile !== undefined) return readSecretFile(this.options.passwordFile, 'sessionStore.passwordFile', true);
    if (this.options.passwordEnv !== undefined) {
      const value = process.env[this.options.passwordEnv];
      if (value === undefined || value === '') throw new Error(`sessionStore.passwordEnv: environment variable ${this.options.passwordEnv} is not set`);
      return value;
    }
    return undefined;
  }
}

function isTimeout(e: unknown): boolean {
  return e instanceof StoreDeadlineError || (e instanceof Error && /timed out/i.test(e.message));
}

/** A secret file's bytes, a read failure named after the config field. */
export function readSecretBytes(file: string, field: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${field}: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** A secret or certificate file's text; `trim` drops the trailing newline Secrets often carry. */
export function readSecretFile(file: string, field: string, trim: boolean): string {
  const text = readSecretBytes(file, field).toString('utf8');
  const value = trim ? text.trim() : text;
  if (value === '') throw new Error(`${field}: ${file} is empty`);
  return value;
}

/** The error a call past its deadline rejects with (`isTimeout` recognises it). */
export class StoreDeadlineError extends Error {
  constructor(timeoutMs: number) {
    super(`session store did not answer within ${timeoutMs} ms`);
    this.name = 'StoreDeadlineError';
  }
}

/**
 * `command`'s answer, or a StoreDeadlineError once `timeoutMs` passed *and* the event loop has read the replies that
 * arrived meanwhile. The timer only schedules the verdict for the check phase (`setImmediate`), which runs after the
 * poll phase: a reply that arrived while this process was busy (a prompt's tokenization, a GC pause) is read and wins,
 * so a busy EPP does not mistake its own lag for a slow store. The command itself is left to finish or fail; the
 * outstanding bound (`maxOutstanding`) and the socket timeout keep what it holds bounded.
 */
export function withDeadline<T>(command: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => setImmediate(() => {
      if (settled) return;
      settled = true;
      reject(new StoreDeadlineError(timeoutMs));
    }), timeoutMs);
    command.then(
      (v) => { if (settled) return; settled = true; clearTimeout(timer); resolve(v); },
      (e: unknown) => { if (settled) return; settled = true; clearTimeout(timer); reject(e); },
    );
  });
}
