/**
 * llm-d-router v0.10.0's TLS security profile of the ext_proc server (`--tls-min-version`; `pkg/epp/server/options.go`
 * parseTLSVersion, `runserver.go` applyTLSOverrides, which sets the listener's `tls.Config.MinVersion`), as Node's
 * secure-context options.
 */
import * as tls from 'tls';
import * as grpc from '@grpc/grpc-js';

/** Go's crypto/tls version names, as upstream's `tlsVersions` takes them, and Node's names for the same versions. */
const TLS_VERSIONS: Readonly<Record<string, tls.SecureVersion>> = {
  VersionTLS10: 'TLSv1',
  VersionTLS11: 'TLSv1.1',
  VersionTLS12: 'TLSv1.2',
  VersionTLS13: 'TLSv1.3',
};

/**
 * Node's name of the Go TLS version `name` (`VersionTLS12` → `TLSv1.2`).
 * @throws Error with upstream's parseTLSVersion message for any other value.
 */
export function parseTlsVersion(name: string): tls.SecureVersion {
  const version = TLS_VERSIONS[name];
  if (version === undefined) throw new Error(`unknown TLS version ${JSON.stringify(name)}; supported values: ${Object.keys(TLS_VERSIONS).join(', ')}`);
  return version;
}

export interface TlsPolicy {
  /** The lowest TLS version served; Node's default (TLS 1.2) when undefined. */
  readonly minVersion?: tls.SecureVersion;
}

/**
 * The secure-context options that enforce `policy`. Below TLS 1.2 OpenSSL 3 needs security level 0 as well: at its
 * default level 1 it refuses TLS 1.0 and 1.1 handshakes (their MD5/SHA-1 signatures count as under 80 bits), which
 * Go's crypto/tls serves once MinVersion allows them.
 */
function tlsPolicyOptions(policy: TlsPolicy): tls.SecureContextOptions {
  if (policy.minVersion === undefined) return {};
  const legacy = policy.minVersion === 'TLSv1' || policy.minVersion === 'TLSv1.1';
  return { minVersion: policy.minVersion, ...(legacy ? { ciphers: `${tls.DEFAULT_CIPHERS}:@SECLEVEL=0` } : {}) };
}

type SecureContextWatcher = Parameters<grpc.ServerCredentials['_addWatcher']>[0];

/**
 * `inner`'s server credentials with `options` added to every secure context they make: the listening server's first
 * one and each a certificate provider's update sets (`--enable-cert-reload`). grpc-js's `createSsl` takes no TLS
 * settings, and Node's `setSecureContext` drops those an update does not repeat, so they ride along with each.
 */
class TlsPolicyServerCredentials extends grpc.ServerCredentials {
  private readonly innerWatchers = new Map<SecureContextWatcher, SecureContextWatcher>();

  constructor(private readonly inner: grpc.ServerCredentials, private readonly options: tls.SecureContextOptions) {
    super({ ...inner._getConstructorOptions(), ...options });
  }

  private withOptions(context: tls.SecureContextOptions | null): tls.SecureContextOptions | null {
    return context === null ? null : { ...context, ...this.options };
  }

  override _getSecureContextOptions(): tls.SecureContextOptions | null {
    return this.withOptions(this.inner._getSecureContextOptions());
  }

  override _addWatcher(watcher: SecureContextWatcher): void {
    const wrapped: SecureContextWatcher = (context) => watcher(this.withOptions(context));
    this.innerWatchers.set(watcher, wrapped);
    this.inner._addWatcher(wrapped);
  }

  override _removeWatcher(watcher: SecureContextWatcher): void {
    const wrapped = this.innerWatchers.get(watcher);
    if (wrapped === undefined) return;
    this.innerWatchers.delete(watcher);
    this.inner._removeWatcher(wrapped);
  }

  override _getInterceptors(): grpc.ServerInterceptor[] {
    return this.inner._getInterceptors();
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** `credentials` enforcing `policy`; the same credentials when the policy asks nothing. */
export function withTlsPolicy(credentials: grpc.ServerCredentials, policy: TlsPolicy): grpc.ServerCredentials {
  const options = tlsPolicyOptions(policy);
  return Object.keys(options).length === 0 ? credentials : new TlsPolicyServerCredentials(credentials, options);
}
