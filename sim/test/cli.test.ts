import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { parseCli } from '../src/cli';
import { OptionError, resolveOptions } from '../src/options';
import { startSimulator } from '../src/server';
import { http } from './helpers';

const errorOf = (argv: string[]): OptionError => {
  try {
    parseCli(argv);
  } catch (e) {
    if (e instanceof OptionError) return e;
    throw e;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
};

describe('flag parsing', () => {
  it('parses every flag, in both --flag value and --flag=value forms', () => {
    const r = parseCli([
      '--port=0',
      '--host',
      '127.0.0.1',
      '--model',
      'Qwen/Qwen3-8B',
      '--served-model-name',
      'a, b',
      '--block-size',
      '64',
      '--kv-cache-blocks=2048',
      '--max-num-seqs',
      '4',
      '--max-model-len',
      '8192',
      '--ttft-overhead-ms',
      '10',
      '--prefill-ms-per-token',
      '0.1',
      '--itl-ms',
      '15.5',
      '--prefill-concurrency',
      '0',
      '--scheduling-policy',
      'priority',
      '--time-scale',
      '100',
      '--pod-name',
      'sim-0',
      '--default-max-tokens',
      '32',
      '--max-num-batched-tokens',
      '512',
      '--enable-prompt-tokens-details',
      '--sim-extension',
      '--gpu-memory-utilization',
      '0.85',
      '--prefix-caching-hash-algo',
      'sha256_cbor',
      '--kv-events-config',
      '{"enable_kv_cache_events":true,"publisher":"zmq","topic":"kv@sim-0@qwen"}',
      '--kv-events-encoding=map',
      '--lora-modules',
      'sql=/adapters/sql, chat',
      '--enable-auto-tool-choice',
    ]);
    expect(r).toEqual({
      kind: 'run',
      options: {
        host: '127.0.0.1',
        port: 0,
        model: 'Qwen/Qwen3-8B',
        servedModelNames: ['a', 'b'],
        blockSize: 64,
        kvCacheBlocks: 2048,
        maxNumSeqs: 4,
        maxModelLen: 8192,
        ttftOverheadMs: 10,
        prefillMsPerToken: 0.1,
        itlMs: 15.5,
        prefillConcurrency: 0,
        schedulingPolicy: 'priority',
        timeScale: 100,
        podName: 'sim-0',
        defaultMaxTokens: 32,
        maxNumBatchedTokens: 512,
        enablePromptTokensDetails: true,
        simExtension: true,
        gpuMemoryUtilization: 0.85,
        prefixCachingHashAlgo: 'sha256_cbor',
        pythonHashSeed: process.env.PYTHONHASHSEED,
        kvEventsConfig: {
          enable_kv_cache_events: true,
          publisher: 'zmq',
          endpoint: 'tcp://*:5557',
          replay_endpoint: null,
          buffer_steps: 10000,
          hwm: 100000,
          max_queue_size: 100000,
          topic: 'kv@sim-0@qwen',
        },
        kvEventsEncoding: 'map',
        loraModules: ['sql', 'chat'],
        loraModulePaths: { sql: '/adapters/sql' },
        enableAutoToolChoice: true,
      },
    });
  });

  it("vLLM's defaults for the new flags; --no-enable-prompt-tokens-details", () => {
    const r = parseCli([]);
    expect(r.kind === 'run' && r.options).toMatchObject({
      schedulingPolicy: 'fcfs',
      maxNumBatchedTokens: 2048,
      enablePromptTokensDetails: false,
      gpuMemoryUtilization: 0.9,
      prefixCachingHashAlgo: 'builtin',
      kvEventsConfig: null,
      kvEventsEncoding: 'positional',
      loraModules: [],
    });
    const off = parseCli(['--no-enable-prompt-tokens-details']);
    expect(off.kind === 'run' && off.options.enablePromptTokensDetails).toBe(false);
    // KVEventsConfig defaults (vllm/config.py @ v0.10.0).
    const kv = parseCli(['--kv-events-config', '{}']);
    expect(kv.kind === 'run' && kv.options.kvEventsConfig).toEqual({
      enable_kv_cache_events: false,
      publisher: 'null',
      endpoint: 'tcp://*:5557',
      replay_endpoint: null,
      buffer_steps: 10000,
      hwm: 100000,
      max_queue_size: 100000,
      topic: '',
    });
  });

  it('KVEventsConfig.publisher defaults as the simulated release has it: "null" at 0.10, "zmq" once events are on at v0.26', () => {
    // vllm/config.py @ v0.10.0: publisher = "null"; vllm/config/kv_events.py on main: None, then __post_init__ picks
    // "zmq" when enable_kv_cache_events is true (the config of the v0.26.0 report volcano-sh/kthena#1535).
    const on = '{"enable_kv_cache_events":true}';
    const v010 = parseCli(['--kv-events-config', on]);
    expect(v010.kind === 'run' && v010.options.kvEventsConfig?.publisher).toBe('null');
    const v026 = parseCli(['--kv-events-config', on, '--kv-events-encoding', 'map', '--prefix-caching-hash-algo', 'sha256_cbor']);
    expect(v026.kind === 'run' && v026.options.kvEventsConfig?.publisher).toBe('zmq');
    const off = parseCli(['--kv-events-config', '{}', '--kv-events-encoding', 'map', '--prefix-caching-hash-algo', 'sha256_cbor']);
    expect(off.kind === 'run' && off.options.kvEventsConfig?.publisher).toBe('null');
    const explicit = parseCli(['--kv-events-config', '{"enable_kv_cache_events":true,"publisher":"null"}', '--kv-events-encoding', 'map', '--prefix-caching-hash-algo', 'sha256']);
    expect(explicit.kind === 'run' && explicit.options.kvEventsConfig?.publisher).toBe('null');
  });

  it('defaults: bind 0.0.0.0:8000, served name = model', () => {
    const r = parseCli([]);
    expect(r.kind).toBe('run');
    if (r.kind === 'run') {
      expect(r.options).toMatchObject({ host: '0.0.0.0', port: 8000, blockSize: 16, servedModelNames: ['Qwen/Qwen3-0.6B'] });
    }
    expect(parseCli(['--port', '1', '--help'])).toEqual({ kind: 'help' });
  });

  it.each([
    [['--nope', '1'], '--nope', /unknown flag/],
    [['--port'], '--port', /missing value/],
    [['--port', '--model', 'x'], '--port', /missing value/],
    [['--port', 'abc'], '--port', /integer/],
    [['--port', '70000'], '--port', /\[0, 65535\]/],
    [['--port', '1.5'], '--port', /integer/],
    [['--itl-ms', 'fast'], '--itl-ms', /number/],
    [['--itl-ms=-1'], '--itl-ms', />= 0/],
    [['--itl-ms', '-1'], '--itl-ms', /missing value \(if "-1" is the value, write --itl-ms=-1\)/],
    [['--help=yes'], '--help', /takes no value/],
    [['--time-scale', '0'], '--time-scale', /> 0/],
    [['--block-size', '24'], '--block-size', /one of 1, 8, 16, 32, 64, 128/],
    [['--max-num-seqs', '0'], '--max-num-seqs', /integer/],
    [['--model', ''], '--model', /non-empty/],
    [['--served-model-name', 'a,,b'], '--served-model-name', /empty name/],
    [['--port', '1', '--port', '2'], '--port', /more than once/],
    [['extra'], 'extra', /unexpected argument/],
    [['--kv-cache-blocks', '100', '--max-model-len', '4096'], '--kv-cache-blocks', /cannot hold one sequence/],
    [['--kv-cache-blocks', '1', '--max-model-len', '16'], '--kv-cache-blocks', /\[2, /],
    [['--enable-prompt-tokens-details=yes'], '--enable-prompt-tokens-details', /takes no value/],
    [['--enable-prompt-tokens-details', '--no-enable-prompt-tokens-details'], '--no-enable-prompt-tokens-details', /conflicts with --enable-prompt-tokens-details/],
    [['--gpu-memory-utilization', '1.5'], '--gpu-memory-utilization', /\(0, 1\]/],
    [['--prefix-caching-hash-algo', 'xxhash'], '--prefix-caching-hash-algo', /builtin, sha256, sha256_cbor_64bit, sha256_cbor/],
    [['--kv-events-config', '{"publisher":'], '--kv-events-config', /not valid JSON/],
    [['--kv-events-config', '[1]'], '--kv-events-config', /JSON object/],
    [['--kv-events-config', '{"publisher":"kafka"}'], '--kv-events-config', /field "publisher": expected "null" or "zmq"/],
    [['--kv-events-config', '{"enable_kv_cache_events":"yes"}'], '--kv-events-config', /field "enable_kv_cache_events": expected true or false/],
    [['--kv-events-config', '{"hwm":-1}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"replay_endpoint":5}'], '--kv-events-config', /field "replay_endpoint": expected a string or null/],
    [['--kv-events-config', '{"enable_kv_cache_event":true}'], '--kv-events-config', /field "enable_kv_cache_event": unknown field/],
    [['--kv-events-config', '{"publisher":"zmq","endpoint":"localhost:5557"}'], '--kv-events-config', /field "endpoint": expected a ZMQ endpoint/],
    [['--kv-events-encoding', 'json'], '--kv-events-encoding', /positional, map/],
    [['--scheduling-policy', 'sjf'], '--scheduling-policy', /fcfs, priority/],
    // Map events (vLLM #42892) come from releases without builtin or sha256_cbor_64bit (removed in 0.10.2).
    [['--kv-events-encoding', 'map'], '--kv-events-encoding', /map mirrors vLLM v0\.26, which has no --prefix-caching-hash-algo builtin/],
    [['--kv-events-encoding', 'map', '--prefix-caching-hash-algo', 'sha256_cbor_64bit'], '--kv-events-encoding', /use sha256_cbor or sha256/],
    [['--lora-modules', 'Qwen/Qwen3-0.6B'], '--lora-modules', /also a served model name/],
  ])('%j is rejected naming %s', (argv, flag, msg) => {
    const e = errorOf(argv);
    expect(e.flag).toBe(flag);
    expect(e.message).toMatch(msg);
    expect(e.message.startsWith(flag)).toBe(true);
  });

  it('the programmatic API validates the same way', async () => {
    expect(() => resolveOptions({ blockSize: 12 })).toThrow(/--block-size/);
    await expect(startSimulator({ itlMs: Number.NaN })).rejects.toThrow(/--itl-ms/);
  });
});

describe('the kvroute-sim process', () => {
  const MAIN = join(__dirname, '..', 'src', 'main.ts');
  // Runs the real entry point from source (transpile-only), so the test does not depend on a build.
  const run = (args: string[]): ChildProcessWithoutNullStreams =>
    spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', MAIN, ...args], {
      cwd: join(__dirname, '..'),
      env: { ...process.env, TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json') },
    });
  const exit = (p: ChildProcessWithoutNullStreams): Promise<number | null> => new Promise((r) => p.once('exit', (code) => r(code)));
  const collect = (s: NodeJS.ReadableStream): { text: string } => {
    const out = { text: '' };
    s.on('data', (d: Buffer) => (out.text += d.toString('utf8')));
    return out;
  };

  it('exits 2 with a message naming the bad flag', async () => {
    const p = run(['--max-num-seqs', 'many']);
    const err = collect(p.stderr);
    expect(await exit(p)).toBe(2);
    expect(err.text).toContain('--max-num-seqs');
  });

  it('prints the bound port as a JSON line, serves, and shuts down on SIGTERM', async () => {
    const p = run(['--port', '0', '--host', '127.0.0.1', '--time-scale', '1000', '--pod-name', 'cli-test']);
    const out = collect(p.stdout);
    const exited = exit(p);
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const check = (): void => {
          const nl = out.text.indexOf('\n');
          if (nl >= 0) resolve(out.text.slice(0, nl));
        };
        p.stdout.on('data', check);
        p.once('exit', () => reject(new Error(`exited early: ${out.text}`)));
      });
      const ev = JSON.parse(line);
      expect(ev).toMatchObject({ event: 'listening', host: '127.0.0.1', pod: 'cli-test' });
      expect(ev.port).toBeGreaterThan(0);
      const base = `http://127.0.0.1:${ev.port}`;
      expect((await http(base, 'GET', '/health')).status).toBe(200);
      const r = await http(base, 'POST', '/v1/completions', { model: 'Qwen/Qwen3-0.6B', prompt: 'hi', max_tokens: 2 });
      expect(r.json().usage.completion_tokens).toBe(2);
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(out.text).toContain('{"event":"shutdown","signal":"SIGTERM"}');
    expect(out.text).toContain('{"event":"closed"}');
  });
});
