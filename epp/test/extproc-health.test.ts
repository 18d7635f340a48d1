import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '@kvroute/protocol/envoy';
import * as crypto from 'crypto';
import { derInteger, selfSignedCertificate } from '../src/extproc/self-signed-certificate';
import { startExtProcServer, type ExtProcServer } from '../src/extproc/server';
import { collectingLogger, FakeEnvoy, requestHeaders, TestDirector, waitFor } from './extproc-harness';

type HealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
  List(req: Record<string, never>, cb: (err: grpc.ServiceError | null, res?: { statuses: Record<string, { status: string }> }) => void): void;
};

function healthClient(address: string): HealthClient {
  const pkg = grpc.loadPackageDefinition(loadEnvoyApi().packageDefinition) as unknown as {
    grpc: { health: { v1: { Health: new (addr: string, creds: grpc.ChannelCredentials) => HealthClient } } };
  };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? '')));
  });
}

describe('gRPC health', () => {
  let server: ExtProcServer;
  let onMain: HealthClient;
  let onHealthPort: HealthClient;

  beforeEach(async () => {
    server = await startExtProcServer({ director: new TestDirector(), host: '127.0.0.1', port: 0, healthPort: 0, logger: collectingLogger() });
    onMain = healthClient(`127.0.0.1:${server.port}`);
    onHealthPort = healthClient(`127.0.0.1:${server.healthPort}`);
  });

  afterEach(async () => {
    onMain.close();
    onHealthPort.close();
    await server.stop();
  });

  it('reports NOT_SERVING until told otherwise, for any service name, on both ports', async () => {
    expect(server.healthPort).toBeGreaterThan(0);
    expect(server.healthPort).not.toBe(server.port);
    const names = ['', 'envoy.service.ext_proc.v3.ExternalProcessor', 'inference-extension', 'anything.else'];
    for (const c of [onMain, onHealthPort]) {
      for (const name of names) expect(await check(c, name)).toBe('NOT_SERVING');
    }
    server.setServing(true);
    for (const c of [onMain, onHealthPort]) {
      for (const name of names) expect(await check(c, name)).toBe('SERVING');
    }
    server.setServing(false);
    expect(await check(onHealthPort, 'inference-extension')).toBe('NOT_SERVING');
  });

  it('List names the ext_proc service with its status, as GIE v1.5.0\'s does (cmd/epp/runner/health.go), and the liveness name', async () => {
    const list = (c: HealthClient) => new Promise<Record<string, { status: string }>>((resolve, reject) => {
      c.List({}, (err, res) => (err ? reject(err) : resolve(res?.statuses ?? {})));
    });
    for (const c of [onMain, onHealthPort]) {
      expect(await list(c)).toEqual({ 'envoy.service.ext_proc.v3.ExternalProcessor': { status: 'NOT_SERVING' }, liveness: { status: 'SERVING' } });
    }
    server.setServing(true);
    expect(await list(onHealthPort)).toEqual({ 'envoy.service.ext_proc.v3.ExternalProcessor': { status: 'SERVING' }, liveness: { status: 'SERVING' } });
  });

  it('answers SERVING for the liveness service while not ready, so an empty pool never restarts the EPP', async () => {
    expect(await check(onHealthPort, 'envoy.service.ext_proc.v3.ExternalProcessor')).toBe('NOT_SERVING');
    expect(await check(onHealthPort, 'liveness')).toBe('SERVING');
    expect(await check(onMain, 'liveness')).toBe('SERVING');
  });

  // GIE v1.5.0 / llm-d-router v0.10.0 cmd/epp/runner/health.go: `Watch` returns codes.Unimplemented. A watch never ends on
  // its own, so it would hold a graceful shutdown (epp-integration.test.ts drains with watchers open).
  it('Watch answers UNIMPLEMENTED on both ports, as GIE v1.5.0\'s health server (cmd/epp/runner/health.go)', async () => {
    const watch = (c: HealthClient) => new Promise<{ data: string[]; status: grpc.StatusObject }>((resolve) => {
      const call = c.Watch({ service: 'envoy.service.ext_proc.v3.ExternalProcessor' });
      const data: string[] = [];
      call.on('data', (m: { status: string }) => data.push(m.status));
      call.on('error', () => undefined);
      call.on('status', (status: grpc.StatusObject) => resolve({ data, status }));
    });
    server.setServing(true);
    for (const c of [onMain, onHealthPort]) {
      const { data, status } = await watch(c);
      expect({ data, code: grpc.status[status.code], details: status.details }).toEqual({ data: [], code: 'UNIMPLEMENTED', details: 'Watch is not implemented' });
    }
  });
});

describe('TLS and shutdown', () => {
  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  (hasOpenssl ? it : it.skip)('serves TLS from a cert dir on the ext_proc port, health stays plaintext on its own port', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tls-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt'),
      ], { stdio: 'ignore' });
      const director = new TestDirector();
      const server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, healthPort: 0, tlsCertDir: dir, logger: collectingLogger() });
      const tlsEnvoy = new FakeEnvoy(`localhost:${server.port}`, grpc.credentials.createSsl(fs.readFileSync(path.join(dir, 'tls.crt'))));
      const plainEnvoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
      const health = healthClient(`127.0.0.1:${server.healthPort}`);
      try {
        const s = tlsEnvoy.open();
        s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
        const msg = await s.next();
        expect(msg.response).toBe('request_headers');
        s.end();
        expect((await s.status).code).toBe(grpc.status.OK);

        const plain = plainEnvoy.open();
        plain.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
        expect((await plain.status).code).toBe(grpc.status.UNAVAILABLE);

        expect(await check(health, 'inference-extension')).toBe('NOT_SERVING');
      } finally {
        tlsEnvoy.close();
        plainEnvoy.close();
        health.close();
        await server.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // GIE v1.5.0 pkg/epp/server/runserver.go with --enable-cert-reload and pkg/common/certs.go NewCertReloader: the cert
  // dir is watched, a write or create is debounced 250 ms, then tls.crt/tls.key are loaded again and served to new
  // connections; a pair that fails to load is logged and the previous certificate stays.
  (hasOpenssl ? it : it.skip)('with cert reload, a certificate rotated in the cert dir is served to new connections; a broken pair keeps the last good one (GIE v1.5.0 pkg/common/certs.go NewCertReloader)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tls-reload-'));
    const makeCert = (cn: string): void => {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', `/CN=${cn}`, '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt'),
      ], { stdio: 'ignore' });
    };
    const servedCn = (port: number): Promise<string> => new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
        const cn = socket.getPeerCertificate().subject?.CN;
        socket.destroy();
        resolve(String(cn));
      });
      socket.on('error', reject);
    });
    const servedAfterReload = async (port: number, expected: string): Promise<string> => {
      let cn = '';
      for (let i = 0; i < 50 && cn !== expected; i++) {
        await new Promise((r) => setTimeout(r, 100));
        cn = await servedCn(port);
      }
      return cn;
    };
    makeCert('first');
    const logger = collectingLogger();
    const server = await startExtProcServer({ director: new TestDirector(), host: '127.0.0.1', port: 0, tlsCertDir: dir, tlsCertReload: true, logger });
    try {
      expect(await servedCn(server.port)).toBe('first');
      // cert-manager rewrites the Secret; the kubelet swaps the mounted files.
      makeCert('rotated');
      expect(await servedAfterReload(server.port, 'rotated')).toBe('rotated');
      // A key that does not match the certificate: logged, and the rotated certificate is still served.
      const crt = fs.readFileSync(path.join(dir, 'tls.crt'));
      makeCert('unmatched');
      fs.writeFileSync(path.join(dir, 'tls.crt'), crt);
      await waitFor(() => logger.warnings.some((l) => l.includes('cannot reload the TLS certificate')));
      expect(await servedCn(server.port)).toBe('rotated');

      // A Secret volume's layout: tls.crt -> ..data/tls.crt, and the kubelet swaps ..data to a new directory at once.
      for (const f of ['tls.crt', 'tls.key']) fs.rmSync(path.join(dir, f));
      const version = (n: number, cn: string): string => {
        const v = path.join(dir, `..v${n}`);
        fs.mkdirSync(v);
        execFileSync('openssl', [
          'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
          '-subj', `/CN=${cn}`, '-keyout', path.join(v, 'tls.key'), '-out', path.join(v, 'tls.crt'),
        ], { stdio: 'ignore' });
        return `..v${n}`;
      };
      fs.symlinkSync(version(1, 'secret-1'), path.join(dir, '..data'));
      for (const f of ['tls.crt', 'tls.key']) fs.symlinkSync(path.join('..data', f), path.join(dir, f));
      expect(await servedAfterReload(server.port, 'secret-1')).toBe('secret-1');
      fs.symlinkSync(version(2, 'secret-2'), path.join(dir, '..data_tmp'));
      fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
      expect(await servedAfterReload(server.port, 'secret-2')).toBe('secret-2');

      // gRPC over the reloaded credentials.
      const envoy = new FakeEnvoy(`127.0.0.1:${server.port}`, grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false }));
      try {
        const stream = envoy.open();
        stream.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
        expect((await stream.next()).response).toBe('request_headers');
        stream.end();
      } finally {
        envoy.close();
      }
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--secure-serving without a cert dir: TLS with a self-signed certificate, as GIE\'s EPP (runserver.go @ v1.5.0), that a client skipping verification accepts', async () => {
    const director = new TestDirector();
    const server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, selfSignedTls: true, logger: collectingLogger() });
    // As GIE's Istio DestinationRule to its EPP: tls mode SIMPLE, insecureSkipVerify.
    const skipVerify = grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false });
    const tlsEnvoy = new FakeEnvoy(`127.0.0.1:${server.port}`, skipVerify);
    const plainEnvoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
    try {
      const s = tlsEnvoy.open();
      s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
      expect((await s.next()).response).toBe('request_headers');
      s.end();
      expect((await s.status).code).toBe(grpc.status.OK);
      const plain = plainEnvoy.open();
      plain.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
      expect((await plain.status).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      tlsEnvoy.close();
      plainEnvoy.close();
      await server.stop();
    }
  });

  it('the self-signed certificate is well-formed X.509: organisation "Inference Ext", ten years, server auth, not a CA, signed by its key', () => {
    const now = new Date('2026-11-30T00:00:00Z');
    const { cert, key } = selfSignedCertificate(now);
    const x509 = new crypto.X509Certificate(cert);
    expect(x509.subject).toBe('O=Inference Ext');
    expect(x509.issuer).toBe('O=Inference Ext');
    expect(new Date(x509.validFrom).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(new Date(x509.validTo).toISOString()).toBe('2036-11-30T00:00:00.000Z');
    expect(x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(x509.ca).toBe(false);
    expect(x509.verify(crypto.createPublicKey(key))).toBe(true);
    expect(x509.checkPrivateKey(crypto.createPrivateKey(key))).toBe(true);
    // Two starts, two keys and serials.
    expect(new crypto.X509Certificate(selfSignedCertificate(now).cert).serialNumber).not.toBe(x509.serialNumber);
  });

  it('INTEGERs are minimal DER (X.690 §8.3.2), which the OpenSSL TLS stack insists on: no redundant leading zero, one before a set top bit', () => {
    expect(derInteger(Buffer.from([0x00, 0x05, 0x01]))).toEqual(Buffer.from([0x02, 0x02, 0x05, 0x01]));
    expect(derInteger(Buffer.from([0x00, 0x00, 0x85]))).toEqual(Buffer.from([0x02, 0x02, 0x00, 0x85]));
    expect(derInteger(Buffer.from([0x85, 0x01]))).toEqual(Buffer.from([0x02, 0x03, 0x00, 0x85, 0x01]));
    expect(derInteger(Buffer.from([0x00]))).toEqual(Buffer.from([0x02, 0x01, 0x00]));
  });

  it('stop() reports NOT_SERVING and releases open requests as cancelled', async () => {
    const director = new TestDirector();
    const server = await startExtProcServer({ director, host: '127.0.0.1', port: 0, logger: collectingLogger() });
    const envoy = new FakeEnvoy(`127.0.0.1:${server.port}`);
    server.setServing(true);
    try {
      const s = envoy.open();
      s.send(requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, true));
      await s.next();
      expect(server.activeStreams()).toBe(1);
      await server.stop();
      expect(server.health.status).toBe('NOT_SERVING');
      // What the runner's readiness would say on an endpoint change or a warm-up during the drain: ignored.
      server.setServing(true);
      expect(server.health.status).toBe('NOT_SERVING');
      await director.waitForReleases(1);
      expect(director.releases.map((r) => r.outcome)).toEqual(['cancelled']);
      expect((await s.status).code).not.toBe(grpc.status.OK);
    } finally {
      envoy.close();
    }
  });
});
