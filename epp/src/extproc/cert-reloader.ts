/**
 * `--enable-cert-reload`: the ext_proc port's certificate follows `--cert-path`, as GIE v1.5.0's `NewCertReloader`
 * (`pkg/common/certs.go`, used by `pkg/epp/server/runserver.go`) does: the directory is watched, and 250 ms after its
 * last change `tls.crt` and `tls.key` are loaded again; new connections get the new pair. A pair that fails to load
 * (unreadable, or a key that does not match the certificate, as mid-rotation) is logged and the previous one stays.
 * It reaches grpc-js as a `CertificateProvider` (`@grpc/grpc-js` experimental), whose server credentials re-arm the
 * listening socket's secure context on each update.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tls from 'tls';
import type { experimental } from '@grpc/grpc-js';
import type { ExtProcLogger } from './stream';

type IdentityUpdate = experimental.IdentityCertificateUpdate;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/** GIE's `debounceDelay`: the kubelet swaps a Secret's files in several steps. */
export const CERT_RELOAD_DEBOUNCE_MS = 250;

/**
 * `tls.crt` and `tls.key` that cannot serve TLS. The message names the directory and the file, and says what is wrong in
 * words as well as OpenSSL's: its own ("error:05800074:x509 certificate routines::key values mismatch") reached the
 * operator as the reason the ext_proc port could not be listened on.
 */
export class CertificatePairError extends Error {
  constructor(readonly dir: string, message: string) {
    super(message);
    this.name = 'CertificatePairError';
  }
}

/** OpenSSL's reasons for the mistakes a mounted Secret makes most, in words. */
const OPENSSL_REASONS: readonly [RegExp, string][] = [
  [/key values mismatch/, 'tls.key is not the private key of tls.crt\'s certificate'],
  [/no start line|bad base64 decode|bad end line/, 'tls.crt or tls.key is not PEM (-----BEGIN ...----- blocks)'],
];

/**
 * Reads `tls.crt` and `tls.key` from `dir`; throws a CertificatePairError when they are unreadable or do not make a
 * usable pair, as Go's tls.LoadX509KeyPair refuses them (GIE v1.5.0 / llm-d-router v0.10.0 pkg/epp/server/runserver.go).
 */
export function loadCertificatePair(dir: string): IdentityUpdate {
  const read = (file: string): Buffer => {
    try {
      return fs.readFileSync(path.join(dir, file));
    } catch (e) {
      throw new CertificatePairError(dir, `cannot read ${file} in ${dir}: ${(e as Error).message}`);
    }
  };
  const certificate = read('tls.crt');
  const privateKey = read('tls.key');
  // What Go's tls.LoadX509KeyPair checks: both parse and the key is the certificate's.
  try {
    tls.createSecureContext({ cert: certificate, key: privateKey });
  } catch (e) {
    const message = (e as Error).message;
    const reason = OPENSSL_REASONS.find(([pattern]) => pattern.test(message))?.[1];
    throw new CertificatePairError(dir, `tls.crt and tls.key in ${dir} are not a usable certificate and key${reason ? `: ${reason}` : ''} (${message})`);
  }
  return { certificate, privateKey };
}

export class CertReloader implements experimental.CertificateProvider {
  private current: IdentityUpdate;
  private readonly listeners = new Set<IdentityListener>();
  private readonly watcher: fs.FSWatcher;
  private debounce: NodeJS.Timeout | undefined;

  /** Loads the pair now (throwing, as a start-up without reload would) and starts watching `dir`. */
  constructor(private readonly dir: string, private readonly logger: ExtProcLogger) {
    this.current = loadCertificatePair(dir);
    this.watcher = fs.watch(dir, () => this.changed());
    this.watcher.on('error', (err) => logger.warn('the TLS certificate directory can no longer be watched; the current certificate stays', { dir, error: err.message }));
  }

  private changed(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reload(), CERT_RELOAD_DEBOUNCE_MS);
  }

  private reload(): void {
    try {
      this.current = loadCertificatePair(this.dir);
    } catch (e) {
      this.logger.warn('cannot reload the TLS certificate; serving the previous one', { dir: this.dir, error: (e as Error).message });
      return;
    }
    this.logger.debug('reloaded the TLS certificate', { dir: this.dir });
    for (const listener of this.listeners) listener(this.current);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.listeners.add(listener);
    // After the caller has registered itself, as grpc-js's own providers deliver the first update.
    process.nextTick(() => {
      if (this.listeners.has(listener)) listener(this.current);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.listeners.delete(listener);
  }

  /** The ext_proc server verifies no client certificates: no CA is provided. */
  addCaCertificateListener(): void {}

  removeCaCertificateListener(): void {}

  close(): void {
    clearTimeout(this.debounce);
    this.watcher.close();
  }
}
