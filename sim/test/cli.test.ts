import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { join } from 'node:path';
import { parseCli, USAGE } from '../src/cli';
import { OptionError, resolveOptions, runtimeLoraUpdatingFromEnv, serverDevModeFromEnv } from '../src/options';
import { DEV_MODE_ROUTES, RUNTIME_LORA_ROUTES, startSimulator } from '../src/server';
import { http } from './helpers';
import { E2E_TEST_TIMEOUT_MS } from '@kvroute/testkit';

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
      '--long-prefill-token-threshold=256',
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
      '--enable-lora',
      '--max-loras',
      '2',
      '--max-lora-rank',
      '64',
      '--enable-auto-tool-choice',
      '--tool-call-parser',
      'hermes',
      '--no-enable-prefix-caching',
      '--timeout-keep-alive',
      '7',
      '--no-decode-prefill-interference',
      '--api-key',
      'k-1',
      '--enable-request-id-headers',
      '--ssl-certfile=/tls/cert.pem',
      '--ssl-keyfile',
      '/tls/key.pem',
      '--ssl-ca-certs',
      '/tls/ca.pem',
      '--ssl-cert-reqs',
      '1',
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
        longPrefillTokenThreshold: 256,
        loraModules: ['sql', 'chat'],
        loraModulePaths: { sql: '/adapters/sql' },
        loraModuleBaseModels: {},
        enableLora: true,
        maxLoras: 2,
        enableAutoToolChoice: true,
        enablePrefixCaching: false,
        serverDevMode: serverDevModeFromEnv(process.env.VLLM_SERVER_DEV_MODE),
        allowRuntimeLoraUpdating: runtimeLoraUpdatingFromEnv(process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING),
        swapSpace: 4,
        disableLogStats: false,
        timeoutKeepAlive: 7,
        apiKey: 'k-1',
        enableRequestIdHeaders: true,
        sslCertfile: '/tls/cert.pem',
        sslKeyfile: '/tls/key.pem',
        sslCaCerts: '/tls/ca.pem',
        sslCertReqs: 1,
        decodePrefillInterference: false,
      },
    });
  });

  it('--api-key: the flag\'s key, else $VLLM_API_KEY; empty or None is no key (api_server.py @ v0.10.0 `args.api_key or envs.VLLM_API_KEY`)', () => {
    const saved = process.env.VLLM_API_KEY;
    const key = (argv: string[]): string | null => {
      const r = parseCli(argv);
      if (r.kind !== 'run') throw new Error('expected run');
      return r.options.apiKey;
    };
    try {
      delete process.env.VLLM_API_KEY;
      expect(key([])).toBeNull();
      expect(key(['--api-key', 'flag'])).toBe('flag');
      expect(key(['--api-key', ''])).toBeNull();
      expect(key(['--api-key', 'None'])).toBeNull();
      process.env.VLLM_API_KEY = 'env';
      expect(key([])).toBe('env');
      expect(key(['--api-key', 'flag'])).toBe('flag');
      // optional_type(str) makes "" and "None" None, and `None or envs.VLLM_API_KEY` is the variable.
      expect(key(['--api-key', ''])).toBe('env');
      expect(key(['--api-key=None'])).toBe('env');
      process.env.VLLM_API_KEY = '';
      expect(key([])).toBeNull();
      // Options given in code are not read from the environment.
      process.env.VLLM_API_KEY = 'env';
      expect(resolveOptions({}).apiKey).toBeNull();
      expect(resolveOptions({ apiKey: '' }).apiKey).toBeNull();
    } finally {
      if (saved === undefined) delete process.env.VLLM_API_KEY;
      else process.env.VLLM_API_KEY = saved;
    }
  });

  it('--timeout-keep-alive: uvicorn\'s idle keep-alive in whole seconds, default $VLLM_HTTP_TIMEOUT_KEEP_ALIVE or 5 (vllm/envs.py @ v0.10.0 L602-603; api_server.py L1832)', () => {
    const saved = process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE;
    try {
      delete process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE;
      const d = parseCli([]);
      expect(d.kind === 'run' && d.options.timeoutKeepAlive).toBe(5);
      // vLLM reads int(os.environ.get("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "5")); the flag wins over it.
      process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE = ' 1_0 ';
      const env = parseCli([]);
      expect(env.kind === 'run' && env.options.timeoutKeepAlive).toBe(10);
      const flag = parseCli(['--timeout-keep-alive=3']);
      expect(flag.kind === 'run' && flag.options.timeoutKeepAlive).toBe(3);
      process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE = 'five';
      expect(() => parseCli([])).toThrow(/VLLM_HTTP_TIMEOUT_KEEP_ALIVE: expected an integer number of seconds/);
      delete process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE;
      expect(() => parseCli(['--timeout-keep-alive', '0'])).toThrow(/--timeout-keep-alive: expected an integer >= 1, got 0/);
      expect(() => parseCli(['--timeout-keep-alive', '2.5'])).toThrow(/--timeout-keep-alive: expected an integer, got "2.5"/);
      expect(() => resolveOptions({ timeoutKeepAlive: 0 })).toThrow(/--timeout-keep-alive: expected a whole number of seconds in \[1, 2147483\]/);
    } finally {
      if (saved === undefined) delete process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE;
      else process.env.VLLM_HTTP_TIMEOUT_KEEP_ALIVE = saved;
    }
  });

  it("--lora-modules as vLLM parses it (cli_args.py @ 6eca337ce, LoRAParserAction, nargs='+'): name=path items up to the next flag, JSON items; --no-enable-lora; --max-loras checked only with LoRA on", () => {
    const r = parseCli(['--enable-lora', '--lora-modules', 'sql=/adapters/sql', '{"name": "chat", "path": "org/chat-lora"}', '--max-loras', '2', 'Qwen/Qwen3-0.6B']);
    expect(r.kind === 'run' && r.options).toMatchObject({
      model: 'Qwen/Qwen3-0.6B',
      loraModules: ['sql', 'chat'],
      loraModulePaths: { sql: '/adapters/sql', chat: 'org/chat-lora' },
      enableLora: true,
      maxLoras: 2,
    });
    // Flags may follow the items; the model may come first.
    const first = parseCli(['Qwen/Qwen3-0.6B', '--lora-modules', 'a=/p', 'b=/q', '--enable-lora']);
    expect(first.kind === 'run' && first.options.loraModules).toEqual(['a', 'b']);
    const off = parseCli(['--no-enable-lora', '--max-loras', '0']);
    expect(off.kind === 'run' && off.options).toMatchObject({ enableLora: false, maxLoras: 0 });
    expect(() => parseCli(['--enable-lora', '--lora-modules', '{"name": "x"'])).toThrow(/Invalid JSON format for --lora-modules/);
    expect(() => parseCli(['--enable-lora', '--lora-modules', '{"name": "x"}'])).toThrow(/Invalid fields for --lora-modules/);
    expect(() => parseCli(['--enable-lora', '--no-enable-lora'])).toThrow(/conflicts/);
  });

  // LoRAConfig.__post_init__ (vllm/config.py @ v0.10.0): with --enable-lora, vLLM stops at start-up for a rank outside
  // possible_max_ranks or max_cpu_loras below max_loras; without it no LoRAConfig is built and neither is read.
  it.each<[string[], string]>([
    [['--enable-lora', '--max-lora-rank', '7'], '--max-lora-rank: max_lora_rank (7) must be one of (8, 16, 32, 64, 128, 256, 320, 512).'],
    [['--enable-lora', '--max-lora-rank', '1024'], '--max-lora-rank: max_lora_rank (1024) must be one of (8, 16, 32, 64, 128, 256, 320, 512).'],
    [['--enable-lora', '--max-loras', '4', '--max-cpu-loras', '2'], '--max-cpu-loras: max_cpu_loras (2) must be >= max_loras (4)'],
    [['--enable-lora', '--max-cpu-loras', '0'], '--max-cpu-loras: max_cpu_loras (0) must be >= max_loras (1)'],
  ])('LoRAConfig refuses %j, so the simulator does', (argv, message) => {
    expect(errorOf(argv).message).toBe(message);
  });

  it('LoRAConfig takes its ranks and max_cpu_loras >= max_loras; without --enable-lora neither is checked', () => {
    for (const rank of ['8', '16', '320', '512']) expect(parseCli(['--enable-lora', '--max-lora-rank', rank]).kind).toBe('run');
    expect(parseCli(['--enable-lora', '--max-loras', '4', '--max-cpu-loras', '4']).kind).toBe('run');
    expect(parseCli(['--max-lora-rank', '7', '--max-loras', '4', '--max-cpu-loras', '2']).kind).toBe('run');
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
      // LoRAConfig.max_loras and the enable_lora field's False (vllm/config.py, arg_utils.py @ 6eca337ce).
      enableLora: false,
      maxLoras: 1,
      // vLLM's batched step (audit 23 F1/F2); --no-decode-prefill-interference restores the old model.
      decodePrefillInterference: true,
    });
    const on = parseCli(['--decode-prefill-interference']);
    expect(on.kind === 'run' && on.options.decodePrefillInterference).toBe(true);
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
    // One positional is the model (vllm serve's model_tag); a second is refused, as argparse refuses it.
    [['model', 'extra'], 'extra', /unexpected argument/],
    [['--kv-cache-blocks', '100', '--max-model-len', '4096'], '--kv-cache-blocks', /cannot hold one sequence/],
    [['--kv-cache-blocks', '1', '--max-model-len', '16'], '--kv-cache-blocks', /\[2, /],
    [['--enable-prompt-tokens-details=yes'], '--enable-prompt-tokens-details', /takes no value/],
    [['--enable-prompt-tokens-details', '--no-enable-prompt-tokens-details'], '--no-enable-prompt-tokens-details', /conflicts with --enable-prompt-tokens-details/],
    [['--gpu-memory-utilization', '1.5'], '--gpu-memory-utilization', /\(0, 1\]/],
    [['--prefix-caching-hash-algo', 'xxhash'], '--prefix-caching-hash-algo', /builtin, sha256, sha256_cbor_64bit, sha256_cbor/],
    [['--kv-events-config', '{"publisher":'], '--kv-events-config', /not valid JSON/],
    [['--kv-events-config', '[1]'], '--kv-events-config', /JSON object/],
    [['--kv-events-config', '{"publisher":"kafka"}'], '--kv-events-config', /field "publisher": expected "null" or "zmq"/],
    // pydantic's lax bool takes "yes" but not "yess", a padded " true" or 2 (str_as_bool / int_as_bool).
    [['--kv-events-config', '{"enable_kv_cache_events":"yess"}'], '--kv-events-config', /field "enable_kv_cache_events": expected true or false/],
    [['--kv-events-config', '{"enable_kv_cache_events":" true"}'], '--kv-events-config', /field "enable_kv_cache_events": expected true or false/],
    [['--kv-events-config', '{"enable_kv_cache_events":2}'], '--kv-events-config', /field "enable_kv_cache_events": expected true or false/],
    [['--kv-events-config', '{"enable_kv_cache_events":null}'], '--kv-events-config', /field "enable_kv_cache_events": expected true or false/],
    // pydantic's lax int refuses a fraction, an exponent string, hex, a double underscore, an empty string, null.
    [['--kv-events-config', '{"hwm":1.5}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"hwm":"1e3"}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"hwm":"0x10"}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"hwm":"1__0"}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"hwm":"1.5"}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"hwm":""}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"hwm":null}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    // Strings stay strict: pydantic does not make one from a number.
    [['--kv-events-config', '{"topic":5}'], '--kv-events-config', /field "topic": expected a string/],
    [['--kv-events-config', '{"hwm":-1}'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config', '{"replay_endpoint":5}'], '--kv-events-config', /field "replay_endpoint": expected a string or null/],
    // v0.26 (map): @config forbids extra fields from vLLM #31541 on; 0.10 ignores them (see below).
    [['--kv-events-config', '{"enable_kv_cache_event":true}', '--kv-events-encoding', 'map', '--prefix-caching-hash-algo', 'sha256_cbor'], '--kv-events-config', /field "enable_kv_cache_event": unknown field/],
    [['--kv-events-config', '{"publisher":"zmq","endpoint":"localhost:5557"}'], '--kv-events-config', /field "endpoint": expected a ZMQ endpoint/],
    [['--kv-events-encoding', 'json'], '--kv-events-encoding', /positional, map/],
    [['--scheduling-policy', 'sjf'], '--scheduling-policy', /fcfs, priority/],
    // Map events (vLLM #42892) come from releases without builtin or sha256_cbor_64bit (removed in 0.10.2).
    [['--kv-events-encoding', 'map'], '--kv-events-encoding', /map mirrors vLLM v0\.26, which has no --prefix-caching-hash-algo builtin/],
    [['--kv-events-encoding', 'map', '--prefix-caching-hash-algo', 'sha256_cbor_64bit'], '--kv-events-encoding', /use sha256_cbor or sha256/],
    [['--lora-modules', 'Qwen/Qwen3-0.6B'], '--lora-modules', /also a served model name/],
    // vLLM's worker has no LoRA manager without --enable-lora: init_static_loras stops the server (serving_models.py @ 6eca337ce).
    [['--lora-modules', 'sql'], '--lora-modules', /LoRA is not enabled/],
    [['--enable-lora', '--max-loras', '0'], '--max-loras', /integer/],
    // BooleanOptionalAction takes no value; the pair conflicts here (vLLM: the last one wins).
    [['--enable-prefix-caching=true'], '--enable-prefix-caching', /takes no value/],
    [['--no-enable-prefix-caching', '--enable-prefix-caching'], '--enable-prefix-caching', /conflicts with --no-enable-prefix-caching/],
    // The dotted form: values checked like the JSON's; only JSON flags; not mixed with the JSON form; a key once.
    [['--kv-events-config.hwm', 'many'], '--kv-events-config', /field "hwm": expected a non-negative integer, got "many"/],
    [['--kv-events-config.publisher', 'kafka'], '--kv-events-config', /field "publisher": expected "null" or "zmq", got "kafka"/],
    [['--kv-events-config.topic+', 'a,b'], '--kv-events-config', /field "topic": expected a string, got \["a","b"\]/],
    [['--kv-events-config.hwm', 'NaN'], '--kv-events-config', /field "hwm": expected a non-negative integer/],
    [['--kv-events-config.hwm'], '--kv-events-config.hwm', /missing value/],
    [['--port.x', '1'], '--port', /takes no dotted keys/],
    [['--nope.x', '1'], '--nope', /unknown flag/],
    [['--kv-events-config', '{}', '--kv-events-config.hwm', '1'], '--kv-events-config', /given more than once \(as JSON and as dotted keys\)/],
    [['--kv-events-config.hwm', '1', '--kv-events-config.hwm=2'], '--kv-events-config', /key --kv-events-config\.hwm given more than once/],
  ])('%j is rejected naming %s', (argv, flag, msg) => {
    const e = errorOf(argv);
    expect(e.flag).toBe(flag);
    expect(e.message).toMatch(msg);
    expect(e.message.startsWith(flag)).toBe(true);
  });

  it('--enable-prefix-caching / --no-enable-prefix-caching: the BooleanOptionalAction pair of vLLM 0.10 (on by default)', () => {
    // vllm/engine/arg_utils.py @ 6eca337ce (v0.10.0): `enable_prefix_caching: Optional[bool]` gets
    // argparse.BooleanOptionalAction (line 200, added at line 681), and _set_default_args_v1 turns None into True (line
    // 1533-1534) for a generation model; the same at 61aa4b290 (v0.10.2).
    const opts = (argv: string[]) => {
      const r = parseCli(argv);
      if (r.kind !== 'run') throw new Error('help');
      return r.options;
    };
    expect(opts([]).enablePrefixCaching).toBe(true);
    expect(opts(['--enable-prefix-caching']).enablePrefixCaching).toBe(true);
    expect(opts(['--no-enable-prefix-caching']).enablePrefixCaching).toBe(false);
    // FlexibleArgumentParser's underscores, as llm-d manifests sometimes spell flags.
    expect(opts(['--no_enable_prefix_caching']).enablePrefixCaching).toBe(false);
    expect(opts(['--block_size=32', '--kv_cache_blocks', '2048']).blockSize).toBe(32);
  });

  it("--kv-events-config: pydantic's lax coercions, as vLLM 0.10's TypeAdapter(KVEventsConfig).validate_json applies them", () => {
    // vllm/engine/arg_utils.py @ 6eca337ce lines 188-195 (parse_dataclass); pydantic-core v2.33.2 src/input/input_json.rs
    // validate_bool / validate_int, src/input/shared.rs str_as_bool / str_as_int / clean_int_str / float_as_int.
    const kv = (json: string) => {
      const r = parseCli(['--kv-events-config', json]);
      if (r.kind !== 'run' || !r.options.kvEventsConfig) throw new Error('no config');
      return r.options.kvEventsConfig;
    };
    for (const t of ['true', 'True', 'TRUE', '1', 'yes', 'Y', 'on', 't']) expect(kv(`{"enable_kv_cache_events":"${t}"}`).enable_kv_cache_events).toBe(true);
    for (const f of ['false', 'False', '0', 'no', 'N', 'off', 'f']) expect(kv(`{"enable_kv_cache_events":"${f}"}`).enable_kv_cache_events).toBe(false);
    expect(kv('{"enable_kv_cache_events":1}').enable_kv_cache_events).toBe(true);
    expect(kv('{"enable_kv_cache_events":0}').enable_kv_cache_events).toBe(false);
    expect(kv('{"enable_kv_cache_events":1.0}').enable_kv_cache_events).toBe(true);
    expect(kv('{"hwm":"100"}').hwm).toBe(100);
    expect(kv('{"hwm":" 100 "}').hwm).toBe(100);
    expect(kv('{"hwm":"+100"}').hwm).toBe(100);
    expect(kv('{"hwm":"1_000"}').hwm).toBe(1000);
    expect(kv('{"hwm":"0010"}').hwm).toBe(10);
    expect(kv('{"hwm":"5.00"}').hwm).toBe(5);
    expect(kv('{"hwm":"0"}').hwm).toBe(0);
    expect(kv('{"buffer_steps":100.0}').buffer_steps).toBe(100);
    expect(kv('{"max_queue_size":1e3}').max_queue_size).toBe(1000);
    expect(kv('{"max_queue_size":true}').max_queue_size).toBe(1); // lax int from a bool
    // The audit's case: strings where vLLM's own docs write JSON literals.
    expect(kv('{"enable_kv_cache_events":"true","publisher":"zmq","hwm":"100"}')).toMatchObject({ enable_kv_cache_events: true, publisher: 'zmq', hwm: 100 });
  });

  it('--kv-events-config: unknown fields are ignored at 0.10 (pydantic dataclass, extra="ignore"), with a warning on stderr', () => {
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const r = parseCli(['--kv-events-config', '{"enable_kv_cache_event":true,"publisher":"zmq"}']);
      expect(r.kind === 'run' && r.options.kvEventsConfig).toMatchObject({ enable_kv_cache_events: false, publisher: 'zmq' });
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('"field":"enable_kv_cache_event"');
    } finally {
      write.mockRestore();
    }
  });

  it('--kv-events-config.<key> value: FlexibleArgumentParser\'s dotted form, merged into one JSON object', () => {
    // vllm/utils/__init__.py @ 6eca337ce lines 1694-1823: json.loads the value when it parses, else keep the string;
    // keys of one flag merge; the result is passed as that flag's JSON.
    const kv = (argv: string[]) => {
      const r = parseCli(argv);
      if (r.kind !== 'run') throw new Error('help');
      return r.options.kvEventsConfig;
    };
    expect(
      kv(['--kv-events-config.enable_kv_cache_events', 'true', '--kv-events-config.publisher=zmq', '--kv-events-config.topic', 'kv@p@m', '--kv-events-config.hwm=100']),
    ).toEqual({ ...kv(['--kv-events-config', '{}']), enable_kv_cache_events: true, publisher: 'zmq', topic: 'kv@p@m', hwm: 100 });
    // A quoted JSON string and a bare word are the same string; 123 is a JSON number, which a str field refuses.
    expect(kv(['--kv-events-config.topic', '"kv@a@b"'])?.topic).toBe('kv@a@b');
    expect(() => parseCli(['--kv-events-config.topic', '123'])).toThrow(/field "topic": expected a string, got 123/);
    expect(kv(['--kv-events-config.replay_endpoint', 'null'])?.replay_endpoint).toBeNull();
    expect(kv(['--kv-events-config.enable_kv_cache_events', '"on"'])?.enable_kv_cache_events).toBe(true);
    // Underscores in the flag's name become dashes, the key keeps its own.
    expect(kv(['--kv_events_config.enable_kv_cache_events=1'])?.enable_kv_cache_events).toBe(true);
    // A value that starts with a dash is taken as the value, as vLLM takes the next word whatever it is.
    expect(() => parseCli(['--kv-events-config.hwm', '-1'])).toThrow(/field "hwm": expected a non-negative integer, got -1/);
    // Alongside other flags, in any order.
    const r = parseCli(['--port', '0', '--kv-events-config.publisher', 'zmq', '--block-size', '32']);
    expect(r.kind === 'run' && [r.options.port, r.options.blockSize, r.options.kvEventsConfig?.publisher]).toEqual([0, 32, 'zmq']);
  });

  it('--kv-events-config None or empty: no config, as vLLM\'s optional_type reads them', () => {
    // vllm/engine/arg_utils.py @ 6eca337ce, optional_type: `if val == "" or val == "None": return None`.
    for (const v of ['None', '']) {
      const r = parseCli(['--kv-events-config', v]);
      expect(r.kind === 'run' && r.options.kvEventsConfig).toBeNull();
    }
  });

  it("accepts vllm serve's flags that upstream's metrics test and kvroute's decode pool pass, with vLLM 0.10.0's value syntax (vllm/engine/arg_utils.py @ 6eca337ce)", () => {
    const opts = (argv: string[]) => {
      const r = parseCli(argv);
      if (r.kind !== 'run') throw new Error('help');
      return r.options;
    };
    const base = opts([]);
    // tests/entrypoints/openai/test_metrics.py @ 6eca337ce and lib/decode-pool.ts: accepted and ignored (no option
    // changes), each as argparse reads it: a Literal's choices, BooleanOptionalAction pairs, optional_type, type=int.
    for (const argv of [
      ['--dtype', 'bfloat16'],
      ['--dtype=half'],
      ['--enforce-eager'],
      ['--no-enforce-eager'],
      ['--enable-chunked-prefill'],
      ['--no-enable-chunked-prefill'],
      ['--no_enable_chunked_prefill'],
      ['--disable-log-requests'],
      ['--show-hidden-metrics-for-version=0.9'],
      ['--show-hidden-metrics-for-version', 'None'],
      ['--tensor-parallel-size=1'],
      ['--tensor-parallel-size', ' 2 '],
      ['-tp', '4'],
      ['-tp=8'],
      ['--trust-remote-code'],
      ['--no-trust-remote-code'],
      ['--disable-frontend-multiprocessing'],
      ['--no-disable-frontend-multiprocessing'],
      ['--download-dir', '/models'],
      ['--download-dir', ''],
      ['--seed', '0'],
      ['--seed=-7'],
      ['--seed', '1_000'],
      ['--seed', 'None'],
    ]) {
      expect(opts(argv)).toEqual(base);
    }
    // --swap-space: type=float, as Python's float() reads it; reported in cache_config_info.
    expect(opts(['--swap-space', '8']).swapSpace).toBe(8);
    expect(opts(['--swap-space=0.5']).swapSpace).toBe(0.5);
    expect(opts(['--swap-space', ' 1e1 ']).swapSpace).toBe(10);
    expect(opts(['--swap-space', '1_0.5']).swapSpace).toBe(10.5);
    expect(opts(['--disable-log-stats']).disableLogStats).toBe(true);
    // `vllm serve <model>`: model_tag, which ServeSubcommand.cmd copies to args.model (cli/serve.py @ 6eca337ce lines
    // 41-43), anywhere among the flags.
    expect(opts(['Qwen/Qwen3-8B', '--port', '0'])).toMatchObject({ model: 'Qwen/Qwen3-8B', servedModelNames: ['Qwen/Qwen3-8B'], port: 0 });
    expect(opts(['--port', '0', 'Qwen/Qwen3-8B', '--block-size', '32'])).toMatchObject({ model: 'Qwen/Qwen3-8B', blockSize: 32 });
    expect(opts(['Qwen/Qwen3-8B', '--model', 'Qwen/Qwen3-8B']).model).toBe('Qwen/Qwen3-8B');
    // lib/decode-pool.ts's arguments, as it builds them for a pod.
    expect(
      opts([
        'Qwen/Qwen3-0.6B',
        '--port=8000',
        '--served-model-name=qwen',
        '--enable-prefix-caching',
        '--prefix-caching-hash-algo=sha256_cbor_64bit',
        '--block-size=16',
        '--no-enable-chunked-prefill',
        '--gpu-memory-utilization=0.9',
        '--max-model-len=32768',
        '--enable-prompt-tokens-details',
        '--tensor-parallel-size=2',
      ]),
    ).toMatchObject({ model: 'Qwen/Qwen3-0.6B', servedModelNames: ['qwen'], port: 8000, maxModelLen: 32768 });
  });

  it.each([
    [['--dtype', 'bf16'], '--dtype', /invalid choice: "bf16" \(choose from auto, bfloat16, float, float16, float32, half\)/],
    [['--dtype'], '--dtype', /missing value/],
    [['--enforce-eager=true'], '--enforce-eager', /takes no value/],
    [['--enforce-eager', '--no-enforce-eager'], '--no-enforce-eager', /conflicts with --enforce-eager/],
    [['--enable-chunked-prefill', '--no-enable-chunked-prefill'], '--no-enable-chunked-prefill', /conflicts with --enable-chunked-prefill/],
    [['--disable-log-stats=1'], '--disable-log-stats', /takes no value/],
    [['--tensor-parallel-size', 'two'], '--tensor-parallel-size', /expected an integer/],
    [['--tensor-parallel-size', '1.0'], '--tensor-parallel-size', /expected an integer/],
    [['-tp', '0'], '--tensor-parallel-size', /expected an integer >= 1/],
    [['-tp', '2', '--tensor-parallel-size', '2'], '--tensor-parallel-size', /more than once/],
    [['--seed', '1.5'], '--seed', /expected an integer/],
    [['--seed', '1__0'], '--seed', /expected an integer/],
    [['--swap-space', 'lots'], '--swap-space', /expected a number/],
    [['--swap-space', ''], '--swap-space', /expected a number/],
    [['--swap-space', '0x10'], '--swap-space', /expected a number/],
    [['--swap-space', 'inf'], '--swap-space', /expected a finite number of GiB/],
    [['Qwen/Qwen3-8B', 'extra'], 'extra', /unexpected argument/],
    [['Qwen/Qwen3-8B', '--model', 'Qwen/Qwen3-4B'], '--model', /conflicts with the positional model "Qwen\/Qwen3-8B"/],
    [[''], 'model_tag', /non-empty/],
    // SchedulerConfig._verify_args (vllm/config.py @ 6eca337ce lines 2456-2460), with V1's default of 2048 batched tokens.
    [['--max-num-batched-tokens', '64'], '--max-num-batched-tokens', /max_num_batched_tokens \(64\) must be greater than or equal to max_num_seqs \(256\)\.$/],
    [['--max-num-seqs', '4096'], '--max-num-batched-tokens', /max_num_batched_tokens \(2048\) must be greater than or equal to max_num_seqs \(4096\)\./],
  ])('vLLM flag %j is rejected naming %s', (argv, flag, msg) => {
    const e = errorOf(argv);
    expect(e.flag).toBe(flag);
    expect(e.message).toMatch(msg);
  });

  it('SchedulerConfig: max_num_batched_tokens equal to max_num_seqs is accepted; above max_num_seqs × max_model_len only warned about, as vLLM logs it', () => {
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const eq = parseCli(['--max-num-batched-tokens', '256']);
      expect(eq.kind === 'run' && eq.options.maxNumBatchedTokens).toBe(256);
      expect(write).not.toHaveBeenCalled();
      const big = parseCli(['--max-num-seqs', '1', '--max-model-len', '1024', '--kv-cache-blocks', '64']);
      expect(big.kind).toBe('run');
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('max_num_batched_tokens (2048) exceeds max_num_seqs * max_model_len (1024). This may lead to unexpected behavior.');
    } finally {
      write.mockRestore();
    }
  });

  // CPython's config_init_hash_seed (Python/initconfig.c) stops the interpreter before vLLM runs for any other value:
  // "Fatal Python error: config_init_hash_seed: PYTHONHASHSEED must be "random" or an integer in range [0; 4294967295]"
  // (each value below run through CPython 3.11.7: `PYTHONHASHSEED=<v> python3 -c 1`).
  it.each(['abc', '-1', '42 ', ' ', '0x2a', '4294967296', '1e3', '4_2'])('PYTHONHASHSEED=%j, which CPython refuses at start-up, is refused', (seed) => {
    expect(() => resolveOptions({ pythonHashSeed: seed })).toThrow(
      new OptionError('PYTHONHASHSEED', `must be "random" or an integer in range [0; 4294967295], got ${JSON.stringify(seed)} (CPython refuses any other value at start-up, so vLLM never starts)`),
    );
  });

  it.each(['0', '42', '4294967295', 'random', ' 42', '\t7', '+42', '-0', '007', ''])('PYTHONHASHSEED=%j, with which CPython starts, is taken as the seed string', (seed) => {
    expect(resolveOptions({ pythonHashSeed: seed }).pythonHashSeed).toBe(seed);
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
  // Each test starts the entry point through ts-node: 9-26 s on a loaded two-core machine (the positional model's run
  // took 25.7 s against jest's 30 s), so each gets the end-to-end limit, which bounds a hung process, not its speed.
  /**
   * Waits for the listening line, checks it, makes one request (the SIGTERM handler is installed just after the line is
   * written), then stops the process and expects exit 0.
   */
  const expectServes = async (p: ChildProcessWithoutNullStreams, check: (ev: Record<string, unknown> & { port: number }) => void): Promise<void> => {
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    const exited = exit(p);
    try {
      await new Promise<void>((resolve, reject) => {
        p.stdout.on('data', () => out.text.includes('\n') && resolve());
        p.once('exit', () => reject(new Error(`exited early: ${err.text}`)));
      });
      const ev = JSON.parse(out.text.slice(0, out.text.indexOf('\n')));
      check(ev);
      expect((await http(`http://127.0.0.1:${ev.port}`, 'GET', '/health')).status).toBe(200);
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  };

  it('exits 2 with a message naming the bad flag', async () => {
    const p = run(['--max-num-seqs', 'many']);
    const err = collect(p.stderr);
    expect(await exit(p)).toBe(2);
    expect(err.text).toContain('--max-num-seqs');
  }, E2E_TEST_TIMEOUT_MS);

  // uvicorn/server.py @ 0.35.0 Server.startup logs the OSError of a server it cannot create and exits 1; the simulator
  // printed a Node stack trace under "fatal:" instead.
  it('a port in use or an unreadable --ssl-certfile: exit 1 and one line naming the flag, no stack trace', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      for (const [args, line] of [
        [['--host', '127.0.0.1', '--port', String(port)], `kvroute-sim: error: cannot listen on 127.0.0.1:${port} (--host, --port): listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`],
        [['--port', '0', '--ssl-certfile', '/nonexistent/cert.pem'], 'kvroute-sim: error: --ssl-certfile: cannot read "/nonexistent/cert.pem": ENOENT: no such file or directory, open \'/nonexistent/cert.pem\'\n'],
      ] as const) {
        const p = run([...args]);
        const out = collect(p.stdout);
        const err = collect(p.stderr);
        const exited = exit(p);
        // A simulator that wrongly starts is stopped once it says it listens, so the test ends either way.
        p.stdout.on('data', () => out.text.includes('\n') && p.kill('SIGTERM'));
        expect(await exited).toBe(1);
        expect(err.text).toBe(line);
      }
    } finally {
      taken.close();
    }
  }, 2 * E2E_TEST_TIMEOUT_MS);

  it('exits 2 naming PYTHONHASHSEED for a seed CPython refuses, as vLLM never starts with one', async () => {
    const p = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', MAIN, '--port', '0'], {
      cwd: join(__dirname, '..'),
      env: { ...process.env, TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json'), PYTHONHASHSEED: '42 ' },
    });
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    const exited = exit(p);
    // A simulator that wrongly starts is stopped once it says it listens, so the test ends either way.
    p.stdout.on('data', () => out.text.includes('\n') && p.kill('SIGTERM'));
    expect(await exited).toBe(2);
    expect(err.text).toContain('PYTHONHASHSEED: must be "random" or an integer in range [0; 4294967295], got "42 "');
    expect(out.text).toBe('');
  }, E2E_TEST_TIMEOUT_MS);

  it('starts with the spellings vLLM accepts: --enable-prefix-caching, pydantic-lax JSON, dotted keys', async () => {
    // The forms the audit saw refused with status 2; lib/decode-pool.ts passes --enable-prefix-caching to every pod.
    const p = run([
      '--port=0',
      '--host=127.0.0.1',
      '--enable-prefix-caching',
      '--kv-events-config.enable_kv_cache_events',
      'true',
      '--kv-events-config.publisher=zmq',
      '--kv-events-config.endpoint=tcp://127.0.0.1:*',
      '--kv-events-config.hwm',
      '"100"',
    ]);
    await expectServes(p, (ev) => {
      expect(ev).toMatchObject({ event: 'listening' });
      expect(ev.kv_events_endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    });
  }, E2E_TEST_TIMEOUT_MS);

  it("starts with vllm serve's positional model and the no-op flags upstream's metrics test and lib/decode-pool.ts pass", async () => {
    const p = run([
      'Qwen/Qwen3-8B',
      '--port=0',
      '--host=127.0.0.1',
      '--dtype',
      'bfloat16',
      '--enforce-eager',
      '--enable-chunked-prefill',
      '--show-hidden-metrics-for-version=0.9',
      '--disable-log-requests',
      '--tensor-parallel-size=1',
      '--trust-remote-code',
      '--download-dir=/tmp',
      '--swap-space',
      '4',
      '--seed',
      '0',
    ]);
    await expectServes(p, (ev) => expect(ev).toMatchObject({ event: 'listening', model: 'Qwen/Qwen3-8B', served_model_names: ['Qwen/Qwen3-8B'] }));
  }, E2E_TEST_TIMEOUT_MS);

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
  }, E2E_TEST_TIMEOUT_MS);
});

describe('--help text', () => {
  it('every flag name stands apart from its description (a name longer than the column gets its own line)', () => {
    const flagLines = USAGE.split('\n').filter((l) => /^  --[a-z]/.test(l));
    expect(flagLines.length).toBeGreaterThan(40);
    for (const line of flagLines) expect(line).toMatch(/^  --[a-z0-9-]+(?:, -h)?(?:\s{2,}\S.*)?$/);
    expect(USAGE).toContain('  --disable-frontend-multiprocessing\n');
  });

  it('names every environment variable the simulator reads, and every route the dev-mode and runtime-LoRA variables serve', () => {
    const dir = path.join(__dirname, '..', 'src');
    const read = new Set(fs.readdirSync(dir).filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [...fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!)));
    expect([...read]).toEqual(expect.arrayContaining(['VLLM_SERVER_DEV_MODE', 'PYTHONHASHSEED']));
    expect([...read].filter((name) => !USAGE.includes(name))).toEqual([]);
    expect([...DEV_MODE_ROUTES, ...RUNTIME_LORA_ROUTES].filter((route) => !new RegExp(`${route}\\b`).test(USAGE))).toEqual([]);
  });
});
