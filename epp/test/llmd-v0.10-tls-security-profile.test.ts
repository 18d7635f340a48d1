/**
 * llm-d-router v0.10.0's TLS security profile of the ext_proc listener, over real TLS handshakes (ALPN h2, as Envoy's
 * gRPC client) to the whole EPP: `--tls-min-version` and `--tls-cipher-suites` (`pkg/epp/server/options.go` Complete →
 * parseTLSVersion, parseCipherSuites; `pkg/epp/server/runserver.go` AsRunnable → applyTLSOverrides sets
 * `tls.Config.MinVersion` and `CipherSuites` on the listener, with or without `--enable-cert-reload`).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { unservableCipherSuites } from '../src/extproc/tls-policy';
import { waitFor } from './extproc-harness';
import { liveEpp } from './live-epp';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

interface Offer {
  readonly min: tls.SecureVersion;
  readonly max: tls.SecureVersion;
  /** OpenSSL cipher list the client offers (TLS 1.2 and below). */
  readonly ciphers?: string;
  /** Report the negotiated suite too. */
  readonly withCipher?: boolean;
}

/** One handshake: the protocol and the certificate's CN (else its organisation), or `refused: <why>`. */
function handshake(port: number, offer: Offer): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1', port, minVersion: offer.min, maxVersion: offer.max, ALPNProtocols: ['h2'], rejectUnauthorized: false,
      ...(offer.ciphers !== undefined ? { ciphers: offer.ciphers } : {}),
    });
    socket.once('secureConnect', () => {
      const { subject } = socket.getPeerCertificate();
      resolve(`${socket.getProtocol()} ${subject.CN ?? subject.O}${offer.withCipher === true ? ` ${socket.getCipher().name}` : ''}`);
      socket.destroy();
    });
    socket.once('error', (e) => resolve(`refused: ${e.message}`));
  });
}

/** A client of TLS 1.0 or 1.1 only: Node's OpenSSL offers them at security level 0 alone. */
const legacy = (version: 'TLSv1' | 'TLSv1.1'): Offer => ({ min: version, max: version, ciphers: 'DEFAULT@SECLEVEL=0' });

function certificate(dir: string, cn: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${cn}`, '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')], { stdio: 'ignore' });
}

describe('llm-d-router v0.10.0 --tls-min-version (options.go parseTLSVersion, runserver.go applyTLSOverrides)', () => {
  const live = liveEpp();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tls-profile-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('VersionTLS13 with --secure-serving: a TLS 1.3 client is served, one that offers at most TLS 1.2 is refused', async () => {
    await live.start(1, '--secure-serving', '--tls-min-version', 'VersionTLS13');
    const port = live.epp!.grpcPort;
    expect(await handshake(port, { min: 'TLSv1.3', max: 'TLSv1.3' })).toBe('TLSv1.3 Inference Ext');
    expect(await handshake(port, { min: 'TLSv1.2', max: 'TLSv1.2' })).toMatch(/^refused: .*protocol version/);
  });

  test('VersionTLS13 with --cert-path --enable-cert-reload: the floor holds for the first certificate and a rotated one', async () => {
    certificate(dir, 'first');
    await live.start(1, '--cert-path', dir, '--enable-cert-reload', '--tls-min-version', 'VersionTLS13');
    const port = live.epp!.grpcPort;
    expect(await handshake(port, { min: 'TLSv1.3', max: 'TLSv1.3' })).toBe('TLSv1.3 first');
    expect(await handshake(port, { min: 'TLSv1.2', max: 'TLSv1.2' })).toMatch(/^refused/);
    certificate(dir, 'second');
    await waitFor(async () => (await handshake(port, { min: 'TLSv1.3', max: 'TLSv1.3' })) === 'TLSv1.3 second', 'the rotated certificate', { intervalMs: 50 });
    expect(await handshake(port, { min: 'TLSv1.2', max: 'TLSv1.2' })).toMatch(/^refused/);
  });

  test('unset, the floor is TLS 1.2; VersionTLS10 and VersionTLS11 lower it, as Go serves those versions once MinVersion allows them', async () => {
    certificate(dir, 'epp');
    await live.start(1, '--cert-path', dir);
    expect(await handshake(live.epp!.grpcPort, { min: 'TLSv1.2', max: 'TLSv1.2' })).toBe('TLSv1.2 epp');
    expect(await handshake(live.epp!.grpcPort, legacy('TLSv1.1'))).toMatch(/^refused/);
    await live.stop();
    await live.start(1, '--cert-path', dir, '--tls-min-version', 'VersionTLS11');
    expect(await handshake(live.epp!.grpcPort, legacy('TLSv1.1'))).toBe('TLSv1.1 epp');
    expect(await handshake(live.epp!.grpcPort, legacy('TLSv1'))).toMatch(/^refused/);
    expect(await handshake(live.epp!.grpcPort, { min: 'TLSv1.2', max: 'TLSv1.3' })).toBe('TLSv1.3 epp');
    await live.stop();
    await live.start(1, '--cert-path', dir, '--tls-min-version', 'VersionTLS10');
    expect(await handshake(live.epp!.grpcPort, legacy('TLSv1'))).toBe('TLSv1 epp');
  });
});

describe('llm-d-router v0.10.0 --tls-cipher-suites (options.go parseCipherSuites, runserver.go applyTLSOverrides)', () => {
  const live = liveEpp();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tls-suites-'));
    certificate(dir, 'epp');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const tls12 = (ciphers: string): Offer => ({ min: 'TLSv1.2', max: 'TLSv1.2', ciphers, withCipher: true });

  test('TLS 1.2 is served with the listed suites only; TLS 1.3, whose suites are not configurable, is served as before', async () => {
    await live.start(1, '--cert-path', dir, '--tls-min-version', 'VersionTLS12', '--tls-cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256');
    const port = live.epp!.grpcPort;
    expect(await handshake(port, tls12('ECDHE-ECDSA-AES256-GCM-SHA384'))).toBe('TLSv1.2 epp ECDHE-ECDSA-AES256-GCM-SHA384');
    expect(await handshake(port, tls12('ECDHE-ECDSA-AES128-GCM-SHA256'))).toMatch(/^refused: .*handshake failure/);
    // A client offering both gets the listed one.
    expect(await handshake(port, tls12('ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384'))).toBe('TLSv1.2 epp ECDHE-ECDSA-AES256-GCM-SHA384');
    expect(await handshake(port, { min: 'TLSv1.3', max: 'TLSv1.3' })).toBe('TLSv1.3 epp');
  });

  test('the flag given again empty keeps the earlier list, as pflag\'s string slice appends nothing for it (spf13/pflag v1.0.10 string_slice.go readAsCSV; options.go fs.StringSliceVar)', async () => {
    await live.start(1, '--cert-path', dir, '--tls-cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', '--tls-cipher-suites', '');
    expect(await handshake(live.epp!.grpcPort, tls12('ECDHE-ECDSA-AES256-GCM-SHA384'))).toBe('TLSv1.2 epp ECDHE-ECDSA-AES256-GCM-SHA384');
    expect(await handshake(live.epp!.grpcPort, tls12('ECDHE-ECDSA-AES128-GCM-SHA256'))).toMatch(/^refused: .*handshake failure/);
  });

  test('a list of TLS 1.3 suites only leaves TLS 1.2 no suite, as Go does: TLS 1.2 clients are refused, TLS 1.3 ones served', async () => {
    await live.start(1, '--cert-path', dir, '--tls-cipher-suites', 'TLS_AES_256_GCM_SHA384');
    expect(await handshake(live.epp!.grpcPort, tls12('ECDHE-ECDSA-AES256-GCM-SHA384'))).toMatch(/^refused/);
    expect(await handshake(live.epp!.grpcPort, { min: 'TLSv1.3', max: 'TLSv1.3' })).toBe('TLSv1.3 epp');
  });

  test('Go\'s RC4 and 3DES suites, which Node\'s OpenSSL lacks, are reported and not served; the rest of the list is', async () => {
    const list = ['TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_RSA_WITH_RC4_128_SHA'];
    expect(unservableCipherSuites(list)).toEqual(['TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA', 'TLS_RSA_WITH_RC4_128_SHA']);
    await live.start(1, '--cert-path', dir, '--tls-cipher-suites', list.join(','));
    expect(await handshake(live.epp!.grpcPort, tls12('ECDHE-ECDSA-AES128-GCM-SHA256'))).toBe('TLSv1.2 epp ECDHE-ECDSA-AES128-GCM-SHA256');
  });

  test('with VersionTLS10, a TLS 1.0 client is served the listed CBC suite and refused another', async () => {
    await live.start(1, '--cert-path', dir, '--tls-min-version', 'VersionTLS10', '--tls-cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA');
    const offer = (ciphers: string): Offer => ({ min: 'TLSv1', max: 'TLSv1', ciphers: `${ciphers}@SECLEVEL=0`, withCipher: true });
    expect(await handshake(live.epp!.grpcPort, offer('ECDHE-ECDSA-AES128-SHA'))).toBe('TLSv1 epp ECDHE-ECDSA-AES128-SHA');
    expect(await handshake(live.epp!.grpcPort, offer('ECDHE-ECDSA-AES256-SHA'))).toMatch(/^refused/);
  });
});
