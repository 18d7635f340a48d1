/**
 * `npm start` (`kvroute-bench stack`): the local request path left running for a person and their OpenAI client —
 * simulated vLLM pods, the EPP and the gateway, each its own process on 127.0.0.1 — until Ctrl-C. It prints the base
 * URL, the model and examples to copy, where each process logs, and one JSON line `{"event":"ready",...}` for scripts.
 */
import type { ChildProcess } from 'child_process';
import * as net from 'net';
import * as path from 'path';
import { decimal, directory, integer, oneOf, parseFlags, UsageError } from './cli-args';
import { POLICIES } from './demo';
import { BENCH_DIR, onNextInterrupt, type Started } from './processes';
import { DEFAULT_SIM, MIN_KV_CACHE_BLOCKS, startStack, type RoutingPolicy, type SimulatorSettings, type Stack } from './stack';
import { MAX_KV_CACHE_BLOCKS } from '@kvroute/sim';

export interface StackCommandOptions {
  readonly pods: number;
  /** The gateway's port; 0 = any free one. */
  readonly port: number;
  readonly sim: SimulatorSettings;
  readonly policy: string;
  readonly logDir: string;
  /** EPP replicas behind the gateway (kvroute only). */
  readonly eppReplicas: number;
  /** Where session bindings live; default redis with more than one replica. */
  readonly sessionStore?: 'memory' | 'redis';
  /** The EPP's `--v` (kvroute only): 0 warnings and errors (its default), up to 3, each scheduling decision. */
  readonly eppVerbosity: number;
}

const DEFAULT_PORT = 8080;
const DEFAULT_LOG_DIR = path.join(BENCH_DIR, 'out', 'stack');

const STACK_FLAGS = {
  pods: integer(1, 16),
  port: integer(0, 65535),
  // The floor is checked against --max-model-len below (one longest sequence must fit, as vLLM requires).
  'kv-cache-blocks': integer(1, MAX_KV_CACHE_BLOCKS),
  // Qwen3-0.6B's max_position_embeddings (40960): vLLM refuses a longer --max-model-len for it.
  'max-model-len': integer(2, 40960),
  'time-scale': decimal(0, Infinity, { aboveMin: true }),
  policy: oneOf(Object.keys(POLICIES)),
  'log-dir': directory,
  'epp-replicas': integer(1, 8),
  'session-store': oneOf(['memory', 'redis'] as const),
  'epp-verbosity': integer(0, 3),
} as const;

export const STACK_USAGE = `Usage: npm start -- [flags]        (or: node bench/dist/main.js stack [flags])

Runs simulated vLLM pods, the EPP and the gateway on 127.0.0.1, prints the OpenAI base URL and examples, and keeps
them running until Ctrl-C.

  --pods N              simulated vLLM pods (default 4, at most 16)
  --port N              the gateway's port (default ${DEFAULT_PORT}; 0 = any free port)
  --kv-cache-blocks N   KV-cache blocks of ${DEFAULT_SIM.blockSize} tokens per pod (default ${DEFAULT_SIM.kvCacheBlocks}; at least one
                        sequence of --max-model-len: ${MIN_KV_CACHE_BLOCKS} at the default)
  --max-model-len N     the pods' context length, prompt + output tokens (default ${DEFAULT_SIM.maxModelLen}, at most 40960, the
                        model's; the cdk8s profiles pass vLLM --max-model-len=4096 unless decode.maxModelLen says otherwise)
  --time-scale X        simulated time runs X times faster than real time (default ${DEFAULT_SIM.timeScale})
  --policy P            kvroute (the EPP), or round-robin or session-hash (the gateway alone) (default kvroute)
  --log-dir DIR         where each process's log goes (default bench/out/stack)
  --epp-replicas N      EPP replicas (kvroute only; default 1, at most 8); the gateway load-balances ext_proc
                        streams over them. With more than one they share sessions through a redis-server on
                        loopback (the redis-server binary must be installed)
  --session-store S     memory or redis: where the EPP keeps session bindings (default redis with more than one
                        replica, else memory)
  --epp-verbosity N     the EPP's log verbosity, its --v (kvroute only; default 0: warnings and errors, so its log
                        stays quiet): 1 adds endpoint changes, 2 per-stream protocol events, 3 each scheduling
                        decision (the pick and the best candidates' scores)
  -h, --help            this help

Once everything listens it prints one JSON line, {"event":"ready","baseUrl":...}, after the text.`;

/** Parses the flags; undefined means `--help`. Throws a UsageError naming the flag on anything invalid. */
export function parseStackArgs(argv: readonly string[]): StackCommandOptions | undefined {
  const f = parseFlags(argv, STACK_FLAGS);
  if (!f) return undefined;
  if ((f['epp-replicas'] ?? 1) > 1 && (f.policy ?? 'kvroute') !== 'kvroute') throw new UsageError('--epp-replicas: only the kvroute policy runs the EPP');
  if (f['epp-verbosity'] !== undefined && (f.policy ?? 'kvroute') !== 'kvroute') throw new UsageError('--epp-verbosity: only the kvroute policy runs the EPP');
  const maxModelLen = f['max-model-len'] ?? DEFAULT_SIM.maxModelLen;
  const kvCacheBlocks = f['kv-cache-blocks'] ?? DEFAULT_SIM.kvCacheBlocks;
  // vLLM refuses to start when one max-length sequence cannot fit in the KV cache (the simulator too), so say it here,
  // before any process starts, naming both flags.
  const fewest = Math.ceil(maxModelLen / DEFAULT_SIM.blockSize);
  if (kvCacheBlocks < fewest) {
    throw new UsageError(`--kv-cache-blocks: ${kvCacheBlocks} blocks of ${DEFAULT_SIM.blockSize} tokens cannot hold one sequence of --max-model-len ${maxModelLen}; give at least ${fewest}, or a lower --max-model-len`);
  }
  return {
    pods: f.pods ?? 4,
    port: f.port ?? DEFAULT_PORT,
    sim: { ...DEFAULT_SIM, kvCacheBlocks, maxModelLen, timeScale: f['time-scale'] ?? DEFAULT_SIM.timeScale },
    policy: f.policy ?? 'kvroute',
    logDir: f['log-dir'] ?? DEFAULT_LOG_DIR,
    eppReplicas: f['epp-replicas'] ?? 1,
    eppVerbosity: f['epp-verbosity'] ?? 0,
    ...(f['session-store'] ? { sessionStore: f['session-store'] } : {}),
  };
}

/** The routing policy to start, with the EPP's `--v` when one was asked for. */
export function stackPolicy(options: StackCommandOptions): RoutingPolicy {
  const policy = POLICIES[options.policy];
  if (options.eppVerbosity === 0 || policy.kind !== 'epp') return policy;
  return { ...policy, eppArgs: [...(policy.eppArgs ?? []), '--v', String(options.eppVerbosity)] };
}

/** Why the gateway could not listen on 127.0.0.1:port, or undefined if it can; checked before anything starts. */
function portProblem(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE' ? 'is already in use' : `cannot be used (${e.code ?? e.message})`));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(undefined)));
  });
}

/** Every port a process reported in its "listening" line (the EPP has three). */
function portsOf(p: Started): number[] {
  return Object.entries(p.info).filter(([key, v]) => /port$/i.test(key) && typeof v === 'number').map(([, v]) => v as number);
}

/** A process the stack started, as the banner and the ready line list it and as the wait for Ctrl-C watches it. */
interface Listed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly ports: number[];
  readonly logFile?: string;
  readonly exited: boolean;
}

function listed(p: Started): Listed {
  return { name: p.name, child: p.child, ports: portsOf(p), ...(p.logFile ? { logFile: p.logFile } : {}), get exited() { return p.exited; } };
}

/**
 * Every process the stack started, the shared session store's redis-server included (--epp-replicas > 1 or
 * --session-store redis): its pid and log are listed like the others', and its death stops the stack as theirs does.
 */
function processesOf(stack: Stack): Listed[] {
  const all = [...stack.pods, ...stack.epps].map(listed);
  const redis = stack.redis;
  if (redis) {
    const child = redis.child;
    all.push({
      name: 'redis', child, ports: [redis.port], ...(redis.logFile ? { logFile: redis.logFile } : {}),
      get exited() { return child.exitCode !== null || child.signalCode !== null; },
    });
  }
  return [...all, listed(stack.gateway)];
}

/** The text a person reads: where to point a client, what to paste, where the logs are. */
function banner(stack: Stack, baseUrl: string, options: StackCommandOptions): string {
  const model = options.sim.model;
  const shown = (file: string | undefined) => (file ? path.relative(process.cwd(), file) || file : '(not kept)');
  const router = stack.epp ? 'the EPP (kvroute)' : `no EPP (the gateway's ${options.policy} alone)`;
  const processes = processesOf(stack).map((p) => {
    const where = p.name.startsWith('sim-') ? stack.podAddresses[Number(p.name.slice(4))] ?? ''
      : p.name === 'redis' ? `127.0.0.1:${p.ports[0]}` : '';
    return `  ${p.name.padEnd(8)} ${where.padEnd(16)} ${shown(p.logFile)}`;
  });
  // The EPP's ports are random here (9090 in a cluster); its /metrics is where the picks are counted.
  const eppMetrics = stack.epps
    .filter((e) => typeof e.info.metricsPort === 'number')
    .map((e) => `  ${e.name.padEnd(8)} http://127.0.0.1:${e.info.metricsPort as number}/metrics`);
  const metricsText = eppMetrics.length > 0
    ? `\nThe EPP's Prometheus metrics (kvroute_epp_picks_total and the rest; its log shows each pick with --epp-verbosity 3):\n${eppMetrics.join('\n')}\n`
    : '';
  return `kvroute is running on 127.0.0.1: ${stack.pods.length} simulated vLLM pod${stack.pods.length === 1 ? '' : 's'}, ${router} and the gateway.

  OpenAI base URL  ${baseUrl}
  model            ${model}

Try it with curl:

  curl -i ${baseUrl}/chat/completions \\
    -H 'content-type: application/json' -H 'x-session-id: alice' \\
    -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'

With the OpenAI SDK for Python (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="${baseUrl}", api_key="unused")
  reply = client.chat.completions.create(
      model="${model}",
      messages=[{"role": "user", "content": "Hello!"}],
      extra_headers={"x-session-id": "alice"},
  )
  print(reply.choices[0].message.content)

With the OpenAI SDK for Node (npm install openai):

  import OpenAI from 'openai';
  const client = new OpenAI({ baseURL: '${baseUrl}', apiKey: 'unused' });
  const reply = await client.chat.completions.create(
    { model: '${model}', messages: [{ role: 'user', content: 'Hello!' }] },
    { headers: { 'x-session-id': 'alice' } },
  );
  console.log(reply.choices[0].message.content);

The response header x-gateway-destination-endpoint-served names the pod that answered. The replies are filler text:
the pods simulate vLLM's caching and timing, not a model.

Processes and their logs:
${processes.join('\n')}
${metricsText}
The gateway's counters, as Envoy names them (gateway/README.md):
  ${stack.gatewayUrl}/stats/prometheus   ${stack.gatewayUrl}/gateway/stats

Ctrl-C stops them all.
`;
}

/** `kvroute-bench stack`: starts the stack, waits for Ctrl-C (or a process that dies), stops everything. */
export async function stackCommand(argv: readonly string[]): Promise<number> {
  const options = parseStackArgs(argv);
  if (!options) {
    process.stdout.write(`${STACK_USAGE}\n`);
    return 0;
  }
  const fail = (message: string): number => {
    process.stderr.write(`kvroute-bench stack: ${message}\n`);
    return 1;
  };
  if (options.port !== 0) {
    const problem = await portProblem(options.port);
    if (problem) return fail(`--port ${options.port}: 127.0.0.1:${options.port} ${problem}; choose another with --port N, or --port 0 for any free port`);
  }
  let stack: Stack;
  try {
    stack = await startStack({
      pods: options.pods, sim: options.sim, policy: stackPolicy(options), logDir: options.logDir, gatewayPort: options.port,
      eppReplicas: options.eppReplicas, ...(options.sessionStore ? { sessionStore: options.sessionStore } : {}),
    });
  } catch (e) {
    return fail(`could not start: ${(e as Error).message}`);
  }
  const processes = processesOf(stack);
  const baseUrl = `${stack.gatewayUrl}/v1`;
  process.stdout.write(banner(stack, baseUrl, options));
  process.stdout.write(`${JSON.stringify({
    event: 'ready',
    baseUrl,
    model: options.sim.model,
    policy: options.policy,
    processes: processes.map((p) => ({ name: p.name, pid: p.child.pid, ports: p.ports, log: p.logFile })),
  })}\n`);

  const end = await new Promise<{ signal: NodeJS.Signals } | { died: Listed }>((resolve) => {
    onNextInterrupt((signal) => resolve({ signal }));
    for (const p of processes) {
      if (p.exited) resolve({ died: p });
      else p.child.once('exit', () => resolve({ died: p }));
    }
  });
  if ('signal' in end) {
    process.stdout.write(`\n${end.signal}: stopping ${processes.length} processes\n`);
    await stack.stop();
    process.stdout.write('stopped\n');
    return 0;
  }
  // A child stopped cleanly on its own (a signal sent to its pid) is a stop, not a failure; a terminal's Ctrl-C reaches
  // this process alone (the children have process groups of their own). Anything else means the stack is broken.
  const { exitCode, signalCode } = end.died.child;
  process.stdout.write(`\n${end.died.name} exited (${signalCode ?? `status ${exitCode}`}); stopping the others\n`);
  await stack.stop();
  process.stdout.write('stopped\n');
  return exitCode === 0 ? 0 : fail(`${end.died.name} exited unexpectedly; see its log, ${end.died.logFile ?? '(not kept)'}`);
}
