/**
 * The deployed session store's container args, run for real: the StatefulSet's `valkey-server` arguments, with
 * `$(VAR)` expanded from the container's env as the kubelet does, given to a `redis-server` on loopback (Debian's
 * package, which .ci/run installs; Valkey 8 forked Redis 7.2 and takes the same flags). It proves the server accepts
 * every flag the manifest passes and ends up with the settings the construct documents, and that the password the EPP
 * reads from the same Secret is the one the server requires.
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { freePort, waitFor } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '@kvroute/epp/config';
import { DEMO, withOverrides } from '../lib/clusters';
import { container, one, synthProps } from './support/manifests';

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
const available = spawnSync(REDIS_SERVER, ['--version']).status === 0;
if (!available && process.env.CI) throw new Error('the redis-server binary is required in CI (.ci/run installs the Debian package "redis-server")');

type Reply = string | number | null | Error | Reply[];

/** Sends commands on one connection (RESP arrays) and parses as many replies. */
function commands(port: number, ...cmds: string[][]): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffer = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('connect', () => {
      socket.write(cmds.map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join(''));
    });
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      const replies: Reply[] = [];
      let at = 0;
      const line = (): string | undefined => {
        const end = buffer.indexOf('\r\n', at);
        if (end < 0) return undefined;
        const text = buffer.slice(at, end);
        at = end + 2;
        return text;
      };
      const parse = (): Reply | undefined => {
        const head = line();
        if (head === undefined) return undefined;
        const body = head.slice(1);
        switch (head[0]) {
          case '+': return body;
          case '-': return new Error(body);
          case ':': return Number(body);
          case '$': {
            if (body === '-1') return null;
            const text = line();
            return text;
          }
          case '*': {
            const items: Reply[] = [];
            for (let i = 0; i < Number(body); i++) {
              const item = parse();
              if (item === undefined) return undefined;
              items.push(item);
            }
            return items;
          }
          default: throw new Error(`unexpected reply ${head}`);
        }
      };
      while (replies.length < cmds.length) {
        const r = parse();
        if (r === undefined) return;
        replies.push(r);
      }
      socket.end();
      resolve(replies);
    });
    socket.on('error', reject);
  });
}

(available ? describe : describe.skip)('the deployed session store\'s args in a real server (redis-server on loopback)', () => {
  const password = 'a-password-from-the-secret';
  const manifests = synthProps(withOverrides(DEMO, {
    decode: { kvEvents: { mode: 'per-pod' } },
    endpointPicker: { replicas: 2 },
    sessionStore: { deploy: { passwordSecret: { name: 'valkey-auth' } } },
  }));
  const valkey = container(one(manifests, 'StatefulSet', 'ms-llm-d-modelservice-session-store'), 'valkey');
  const epp = container(one(manifests, 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp');
  // The kubelet fills each env var from its secretKeyRef; here the Secret holds `password`.
  const secrets: Record<string, string> = { 'valkey-auth/password': password };
  const envOf = (c: { env?: { name: string; valueFrom: { secretKeyRef: { name: string; key: string } } }[] }): Record<string, string> =>
    Object.fromEntries((c.env ?? []).map((e) => [e.name, secrets[`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`]!]));
  let child: ChildProcess | undefined;
  let port = 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-valkey-args-'));

  beforeAll(async () => {
    port = await freePort();
    const env = envOf(valkey);
    // $(VAR) expansion as Kubernetes does it for args; the port moved to a free one, listening on loopback only.
    const args = (valkey.args as string[]).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_m, name: string) => env[name]!));
    expect(args[0]).toBe('valkey-server');
    const flags = args.slice(1);
    flags[flags.indexOf('--port') + 1] = String(port);
    child = spawn(REDIS_SERVER, [...flags, '--bind', '127.0.0.1', '--dir', dir], { stdio: 'ignore' });
    await waitFor(async () => {
      const [reply] = await commands(port, ['PING']).catch(() => [undefined]);
      return reply instanceof Error && reply.message.startsWith('NOAUTH');
    }, 'the server to answer PING with NOAUTH');
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('requires the password from the Secret, and no other', async () => {
    const [wrong] = await commands(port, ['AUTH', 'not-it']);
    expect(wrong).toBeInstanceOf(Error);
    expect(await commands(port, ['AUTH', password], ['SET', 'k', 'v', 'PX', '1000'], ['GET', 'k'])).toEqual(['OK', 'OK', 'v']);
  });

  test('runs as the construct documents: no persistence, 192 MB with LRU eviction', async () => {
    const replies = await commands(port, ['AUTH', password], ['CONFIG', 'GET', 'save'], ['CONFIG', 'GET', 'appendonly'],
      ['CONFIG', 'GET', 'maxmemory'], ['CONFIG', 'GET', 'maxmemory-policy']);
    expect(replies).toEqual(['OK', ['save', ''], ['appendonly', 'no'], ['maxmemory', String(192 * 1024 * 1024)], ['maxmemory-policy', 'allkeys-lru']]);
  });

  test('the EPP reads the same Secret key through the variable its config names', () => {
    const config = parseEndpointPickerConfig(one(manifests, 'ConfigMap', 'ms-llm-d-modelservice-epp').data!['epp-config.yaml']);
    const store = config.plugins.find((p) => p.type === 'session-affinity-filter')!.parameters as { sessionStore: { passwordEnv: string } };
    expect(envOf(epp)[store.sessionStore.passwordEnv]).toBe(password);
  });
});
