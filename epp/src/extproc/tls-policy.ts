/**
 * llm-d-router v0.10.0's TLS security profile of the ext_proc server (`--tls-min-version`, `--tls-cipher-suites`;
 * `pkg/epp/server/options.go` parseTLSVersion and parseCipherSuites, `runserver.go` applyTLSOverrides, which sets the
 * listener's `tls.Config.MinVersion` and `CipherSuites`), as Node's secure-context options.
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

/**
 * The suites Go's crypto/tls implements (`CipherSuites()` and `InsecureCipherSuites()`, the names parseCipherSuites
 * takes) with OpenSSL's name for each TLS 1.0-1.2 one, in Go's server preference order (`cipherSuitesPreferenceOrder`,
 * which Go filters by `Config.CipherSuites` but never reorders). The TLS 1.3 suites have none: Go ignores them in
 * `Config.CipherSuites` ("TLS 1.3 cipher suites are not configurable", the flag's help).
 */
const GO_CIPHER_SUITES: readonly (readonly [go: string, openssl: string | undefined])[] = [
  ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
  ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'],
  ['TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
  ['TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'ECDHE-RSA-AES256-GCM-SHA384'],
  ['TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  ['TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', 'ECDHE-RSA-CHACHA20-POLY1305'],
  ['TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'ECDHE-ECDSA-AES128-SHA'],
  ['TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA', 'ECDHE-RSA-AES128-SHA'],
  ['TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'ECDHE-ECDSA-AES256-SHA'],
  ['TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA', 'ECDHE-RSA-AES256-SHA'],
  ['TLS_RSA_WITH_AES_128_GCM_SHA256', 'AES128-GCM-SHA256'],
  ['TLS_RSA_WITH_AES_256_GCM_SHA384', 'AES256-GCM-SHA384'],
  ['TLS_RSA_WITH_AES_128_CBC_SHA', 'AES128-SHA'],
  ['TLS_RSA_WITH_AES_256_CBC_SHA', 'AES256-SHA'],
  ['TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA', 'ECDHE-RSA-DES-CBC3-SHA'],
  ['TLS_RSA_WITH_3DES_EDE_CBC_SHA', 'DES-CBC3-SHA'],
  ['TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256', 'ECDHE-ECDSA-AES128-SHA256'],
  ['TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256', 'ECDHE-RSA-AES128-SHA256'],
  ['TLS_RSA_WITH_AES_128_CBC_SHA256', 'AES128-SHA256'],
  ['TLS_ECDHE_ECDSA_WITH_RC4_128_SHA', 'ECDHE-ECDSA-RC4-SHA'],
  ['TLS_ECDHE_RSA_WITH_RC4_128_SHA', 'ECDHE-RSA-RC4-SHA'],
  ['TLS_RSA_WITH_RC4_128_SHA', 'RC4-SHA'],
  ['TLS_AES_128_GCM_SHA256', undefined],
  ['TLS_AES_256_GCM_SHA384', undefined],
  ['TLS_CHACHA20_POLY1305_SHA256', undefined],
];

const GO_SUITE_NAMES: ReadonlySet<string> = new Set(GO_CIPHER_SUITES.map(([go]) => go));

/**
 * The Go suite names of a `--tls-cipher-suites` list: one CSV record, as pflag's string slice reads it (spf13/pflag
 * string_slice.go readAsCSV, Go's encoding/csv), so a name may be double-quoted (`"TLS_A","TLS_B"`); then as
 * parseCipherSuites reads the names: trimmed, empty entries skipped.
 * @throws Error with encoding/csv's message for a malformed record, parseCipherSuites' for a name Go does not implement.
 */
export function parseCipherSuites(list: string): string[] {
  const names = readCsvRecord(list).map((n) => n.trim()).filter((n) => n !== '');
  for (const name of names) if (!GO_SUITE_NAMES.has(name)) throw new Error(`unknown cipher suite ${JSON.stringify(name)}`);
  return names;
}

/**
 * The fields of a one-line CSV record as Go's encoding/csv Reader reads them by default: comma-separated; a field that
 * starts with `"` is quoted, may hold commas, and writes a quote as `""`; a quote anywhere else is an error.
 */
function readCsvRecord(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] !== '"') {
      const end = line.indexOf(',', i);
      const field = line.slice(i, end < 0 ? line.length : end);
      if (field.includes('"')) throw new Error('bare " in non-quoted-field');
      fields.push(field);
      if (end < 0) return fields;
      i = end + 1;
      continue;
    }
    let field = '';
    for (i++; ; ) {
      const quote = line.indexOf('"', i);
      if (quote < 0) throw new Error('extraneous or missing " in quoted-field');
      field += line.slice(i, quote);
      i = quote + 1;
      if (line[i] !== '"') break;
      field += '"';
      i++;
    }
    fields.push(field);
    if (i === line.length) return fields;
    if (line[i] !== ',') throw new Error('extraneous or missing " in quoted-field');
    i++;
  }
}

/** OpenSSL's name of each listed TLS 1.0-1.2 suite that Node's OpenSSL offers, in Go's preference order. */
function opensslSuites(names: readonly string[]): string[] {
  const offered = new Set(tls.getCiphers());
  return GO_CIPHER_SUITES.filter(([go, openssl]) => openssl !== undefined && names.includes(go) && offered.has(openssl.toLowerCase())).map(([, openssl]) => openssl!);
}

/**
 * The listed suites this Node cannot serve: Go's RC4 and 3DES ones, which Node's OpenSSL 3 leaves out. They are
 * skipped, so the port still serves nothing outside the list.
 */
export function unservableCipherSuites(names: readonly string[]): string[] {
  const served = new Set(opensslSuites(names));
  return GO_CIPHER_SUITES.filter(([go, openssl]) => openssl !== undefined && names.includes(go) && !served.has(openssl)).map(([go]) => go);
}

export interface TlsPolicy {
  /** The lowest TLS version served; Node's default (TLS 1.2) when undefined. */
  readonly minVersion?: tls.SecureVersion;
  /** Go names of the TLS 1.0-1.2 suites served (TLS 1.3 names among them change nothing); Node's defaults when undefined. */
  readonly cipherSuites?: readonly string[];
}

/**
 * The secure-context options that enforce `policy`: `ciphers` bounds TLS 1.0-1.2 only (Node sets TLS 1.3's suites
 * apart, from names starting TLS_, none given here), as Go's CipherSuites does. Below TLS 1.2 OpenSSL 3 needs
 * security level 0 as well: at its default level 1 it refuses TLS 1.0 and 1.1 handshakes (their MD5/SHA-1 signatures
 * count as under 80 bits), which Go's crypto/tls serves once MinVersion allows them.
 */
function tlsPolicyOptions(policy: TlsPolicy): tls.SecureContextOptions {
  const suites = policy.cipherSuites === undefined ? undefined : opensslSuites(policy.cipherSuites);
  // No TLS 1.0-1.2 suite left (only TLS 1.3 names, or only ones Node lacks): Go then completes no TLS 1.2 handshake,
  // and an empty OpenSSL list is no restriction at all, so the floor is TLS 1.3.
  if (suites !== undefined && suites.length === 0) return { minVersion: 'TLSv1.3' };
  const legacy = policy.minVersion === 'TLSv1' || policy.minVersion === 'TLSv1.1';
  const ciphers = suites === undefined ? (legacy ? tls.DEFAULT_CIPHERS : undefined) : suites.join(':');
  return {
    ...(policy.minVersion !== undefined ? { minVersion: policy.minVersion } : {}),
    ...(ciphers !== undefined ? { ciphers: legacy ? `${ciphers}:@SECLEVEL=0` : ciphers } : {}),
  };
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
