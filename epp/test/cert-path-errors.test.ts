import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from '../src/cli';
import { selfSignedCertificate } from '../src/extproc/self-signed-certificate';
import { startEpp, type Logger, type RunningEpp } from '../src/runner';

/**
 * A --cert-path pair the EPP cannot serve with stops start-up, as Go's tls.LoadX509KeyPair stops GIE v1.5.0's and
 * llm-d-router v0.10.0's (pkg/epp/server/runserver.go: "failed to create self signed certificate - tls: private key does
 * not match public key"); the error names the flag, the directory and what is wrong, with and without
 * --enable-cert-reload. Before, it read "cannot listen on [::]:9002 for ext_proc: error:05800074:x509 certificate
 * routines::key values mismatch", or OpenSSL's line alone with reload.
 */
describe('--cert-path: a pair that cannot serve TLS is refused naming the flag and the files', () => {
  const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-cert-path-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const start = (extra: string[] = []): Promise<RunningEpp> =>
    startEpp(parseArgs(['--endpoints', '127.0.0.1:1', '--host', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--cert-path', dir, ...extra], {})!, quiet);

  test.each([[[]], [['--enable-cert-reload']]])('a key that is not the certificate\'s (%j)', async (extra) => {
    fs.writeFileSync(path.join(dir, 'tls.crt'), selfSignedCertificate().cert);
    fs.writeFileSync(path.join(dir, 'tls.key'), selfSignedCertificate().key);
    await expect(start(extra)).rejects.toThrow(
      new RegExp(`^--cert-path: tls\\.crt and tls\\.key in ${dir} are not a usable certificate and key: tls\\.key is not the private key of tls\\.crt's certificate \\(.*key values mismatch\\)$`),
    );
  });

  test('a file that is not PEM', async () => {
    fs.writeFileSync(path.join(dir, 'tls.crt'), 'not a certificate\n');
    fs.writeFileSync(path.join(dir, 'tls.key'), selfSignedCertificate().key);
    await expect(start()).rejects.toThrow(
      new RegExp(`^--cert-path: tls\\.crt and tls\\.key in ${dir} are not a usable certificate and key: tls\\.crt or tls\\.key is not PEM`),
    );
  });

  test('a missing file', async () => {
    fs.writeFileSync(path.join(dir, 'tls.crt'), selfSignedCertificate().cert);
    await expect(start()).rejects.toThrow(new RegExp(`^--cert-path: cannot read tls\\.key in ${dir}: ENOENT`));
  });

  test('a good pair starts', async () => {
    const { cert, key } = selfSignedCertificate();
    fs.writeFileSync(path.join(dir, 'tls.crt'), cert);
    fs.writeFileSync(path.join(dir, 'tls.key'), key);
    const epp = await start();
    await epp.stop();
  });
});
