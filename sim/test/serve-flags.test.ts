/**
 * `vllm serve` flags of vLLM v0.10.0 that change what the server does, started as a deployment starts the simulator:
 * from a command line, over real HTTP on loopback (as api.test.ts). Cases from llm-d-inference-sim v0.10.2's
 * pkg/tests/http_server_test.go where vLLM v0.10.0 agrees with them.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { request as httpsRequest } from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCli } from '../src/cli';
import { resolveOptions } from '../src/options';
import { startSimulator, type Simulator } from '../src/server';
import { http } from './helpers';

const MODEL = 'Qwen/Qwen3-0.6B';

/** Starts the simulator from a `vllm serve` command line, on a free loopback port. */
async function startFromCli(argv: string[], extra: { serverDevMode?: boolean } = {}): Promise<Simulator> {
  const r = parseCli(argv);
  if (r.kind !== 'run') throw new Error('expected run');
  return startSimulator({ ...r.options, port: 0, host: '127.0.0.1', timeScale: 1000, ...extra });
}

function post(sim: Simulator, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(sim.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

const chat = { model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 5 };

// vLLM v0.10.0 vllm/entrypoints/openai/api_server.py: build_app adds XRequestIdMiddleware when
// args.enable_request_id_headers, after AuthenticationMiddleware (so it wraps it, and CORS); at each response's
// http.response.start it appends `X-Request-Id: request_headers.get("X-Request-Id", uuid.uuid4().hex)`. Starlette's
// ServerErrorMiddleware, outside every added middleware, writes its plain 500 without it. cli_args.py FrontendArgs
// `enable_request_id_headers: bool = False`, a BooleanOptionalAction. llm-d-inference-sim v0.10.2
// http_server_test.go Context("request ID headers") checks the same echo, stream and generated id.
describe('--enable-request-id-headers (api_server.py @ v0.10.0 XRequestIdMiddleware; llm-d-inference-sim http_server_test.go)', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startFromCli([MODEL, '--enable-request-id-headers', '--api-key', 'k'], { serverDevMode: true });
  });
  afterAll(() => sim?.close());
  const auth = { authorization: 'Bearer k' };

  it("echoes the request's X-Request-Id on chat, streamed chat and completions; the body's id is built from it", async () => {
    const r = await post(sim, '/v1/chat/completions', chat, { ...auth, 'x-request-id': 'test-request-id-123' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe('test-request-id-123');
    // serving_chat.py: f"chatcmpl-{self._base_request_id(raw_request, request.request_id)}", with or without the flag.
    expect(((await r.json()) as { id: string }).id).toBe('chatcmpl-test-request-id-123');

    const stream = await post(sim, '/v1/chat/completions', { ...chat, stream: true }, { ...auth, 'x-request-id': 'test-streaming-789' });
    expect(stream.headers.get('x-request-id')).toBe('test-streaming-789');
    await stream.text();

    const cmpl = await post(sim, '/v1/completions', { model: MODEL, prompt: 'Hello world', max_tokens: 5 }, { ...auth, 'x-request-id': 'text-request-111' });
    expect(cmpl.headers.get('x-request-id')).toBe('text-request-111');
    await cmpl.text();

    // Headers.get: a present header is the id even when empty.
    const empty = await post(sim, '/v1/completions', { model: MODEL, prompt: 'Hello world', max_tokens: 5 }, { ...auth, 'x-request-id': '' });
    expect(empty.headers.get('x-request-id')).toBe('');
    await empty.text();
  });

  it('generates a uuid4 hex when the request has none, on every response the middleware wraps: routes, 404s, the API-key 401, a CORS preflight', async () => {
    const generated = /^[0-9a-f]{32}$/;
    const r = await post(sim, '/v1/chat/completions', chat, auth);
    expect(r.headers.get('x-request-id')).toMatch(generated);
    // Drawn apart from the body's id (`random_uuid()` in _base_request_id).
    expect(((await r.json()) as { id: string }).id).not.toBe(`chatcmpl-${r.headers.get('x-request-id')}`);
    expect((await http(sim.url, 'GET', '/health')).headers['x-request-id']).toMatch(generated);
    expect((await http(sim.url, 'GET', '/no/such/path')).headers['x-request-id']).toMatch(generated);
    const unauthorized = await http(sim.url, 'GET', '/v1/models');
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers['x-request-id']).toMatch(generated);
    const preflight = await fetch(`${sim.url}/v1/models`, { method: 'OPTIONS', headers: { origin: 'http://a.example', 'access-control-request-method': 'GET' } });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get('x-request-id')).toMatch(generated);
  });

  it("not on Starlette's plain-text 500, which ServerErrorMiddleware writes outside it", async () => {
    const r = await http(sim.url, 'POST', '/sleep?level=x');
    expect(r.status).toBe(500);
    expect(r.text).toBe('Internal Server Error');
    expect(r.headers['x-request-id']).toBeUndefined();
  });
});

describe('without --enable-request-id-headers no X-Request-Id is sent (vLLM v0.10.0 default)', () => {
  it.each([[[MODEL]], [[MODEL, '--no-enable-request-id-headers']]])('%j: the request\'s id is not echoed in a header', async (argv) => {
    const sim = await startFromCli(argv);
    try {
      const r = await post(sim, '/v1/chat/completions', chat, { 'x-request-id': 'test-request-id-456' });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-request-id')).toBeNull();
      expect(((await r.json()) as { id: string }).id).toBe('chatcmpl-test-request-id-456');
    } finally {
      await sim.close();
    }
  });
});

// vLLM v0.10.0 vllm/entrypoints/openai/cli_args.py: FrontendArgs `tool_call_parser: Optional[str] = None` with argparse
// `choices` = the registered tool parsers (a metavar only from vLLM #21902, after 0.10.0), and
// validate_parsed_serve_args: `if args.enable_auto_tool_choice and not args.tool_call_parser: raise TypeError("Error:
// --enable-auto-tool-choice requires --tool-call-parser")`. So `--enable-auto-tool-choice --tool-call-parser hermes`
// (how Qwen3 is served with tools) is the command line that accepts tool_choice "auto".
describe('--enable-auto-tool-choice with --tool-call-parser (cli_args.py @ v0.10.0 validate_parsed_serve_args)', () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const withTools = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, tools };

  it('accepts the pair, and then serves tool_choice "auto"', async () => {
    const sim = await startFromCli([MODEL, '--enable-auto-tool-choice', '--tool-call-parser', 'hermes']);
    try {
      const r = await post(sim, '/v1/chat/completions', withTools);
      expect(r.status).toBe(200);
      await r.text();
    } finally {
      await sim.close();
    }
  });

  it('a parser alone changes nothing: tool_choice "auto" is still the 400 naming both flags', async () => {
    const sim = await startFromCli([MODEL, '--tool-call-parser=qwen3_coder', '--no-enable-auto-tool-choice']);
    try {
      const r = await post(sim, '/v1/chat/completions', withTools);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { message: string }).message).toMatch(/requires --enable-auto-tool-choice and --tool-call-parser/);
    } finally {
      await sim.close();
    }
  });

  it('refuses --enable-auto-tool-choice without a parser, as vLLM stops at start-up', () => {
    expect(() => parseCli([MODEL, '--enable-auto-tool-choice'])).toThrow(/--enable-auto-tool-choice requires --tool-call-parser/);
  });

  it("refuses a name outside 0.10.0's parsers, as its argparse choices do", () => {
    expect(() => parseCli([MODEL, '--tool-call-parser', 'glm45', '--enable-auto-tool-choice'])).toThrow(
      /--tool-call-parser: invalid choice: "glm45" \(choose from deepseek_v3, glm4_moe, granite-20b-fc, granite, hermes, hunyuan_a13b, internlm, jamba, kimi_k2, llama4_pythonic, llama4_json, llama3_json, minimax, mistral, phi4_mini_json, pythonic, qwen3_coder, xlam\)/,
    );
    expect(() => parseCli([MODEL, '--tool-call-parser', 'None'])).toThrow(/invalid choice/);
  });
});

// llm-d-inference-sim v0.10.2 pkg/tests/http_server_test.go Context("sleep mode") "Should enter sleep mode and wake up":
// `--enable-sleep-mode` with VLLM_SERVER_DEV_MODE=1, then POST /sleep → /is_sleeping true, POST /wake_up → false.
// vLLM v0.10.0: `--enable-sleep-mode` is EngineArgs.enable_sleep_mode (vllm/engine/arg_utils.py, a BooleanOptionalAction
// from ModelConfig's bool). The dev-mode /sleep (api_server.py) reaches the executor's sleep (executor_base.py), which
// marks every tag asleep without reading the flag; the flag only decides whether the CuMem pools the worker's sleep
// frees hold anything. So, unlike llm-d-inference-sim's "Should not enter sleep mode without the flag", a vLLM started
// without it is asleep after /sleep too.
describe('--enable-sleep-mode (arg_utils.py EngineArgs.enable_sleep_mode @ v0.10.0; llm-d-inference-sim http_server_test.go)', () => {
  it.each([[['--enable-sleep-mode']], [['--no-enable-sleep-mode']], [[]]])('%j: accepted, and /sleep then /wake_up work in dev mode', async (flags) => {
    const sim = await startFromCli([MODEL, ...flags], { serverDevMode: true });
    try {
      expect((await http(sim.url, 'POST', '/sleep')).status).toBe(200);
      expect((await http(sim.url, 'GET', '/is_sleeping')).json()).toEqual({ is_sleeping: true });
      expect((await http(sim.url, 'POST', '/wake_up')).status).toBe(200);
      expect((await http(sim.url, 'GET', '/is_sleeping')).json()).toEqual({ is_sleeping: false });
    } finally {
      await sim.close();
    }
  });

  it('takes no value (argparse BooleanOptionalAction); the pair conflicts, as every pair of flags here', () => {
    expect(() => parseCli([MODEL, '--enable-sleep-mode=1'])).toThrow(/--enable-sleep-mode: takes no value/);
    expect(() => parseCli([MODEL, '--enable-sleep-mode', '--no-enable-sleep-mode'])).toThrow(/conflicts with --enable-sleep-mode/);
  });
});

// llm-d-inference-sim v0.10.2 pkg/tests/http_server_test.go Context("SSL/HTTPS Configuration") "Should start HTTPS
// server with provided SSL certificates". vLLM v0.10.0 cli_args.py FrontendArgs ssl_keyfile / ssl_certfile /
// ssl_ca_certs / ssl_cert_reqs, which api_server.py run_server passes through serve_http to uvicorn: Config.load turns
// TLS on when either file is given and asserts ssl_certfile; create_ssl_context does load_cert_chain(certfile, keyfile)
// (no key file: the key is read from the certificate file), verify_mode = ssl.VerifyMode(cert_reqs) and
// load_verify_locations(ca_certs).
describe('--ssl-keyfile / --ssl-certfile / --ssl-ca-certs / --ssl-cert-reqs (cli_args.py, api_server.py run_server → uvicorn @ v0.10.0)', () => {
  let dir: string;
  let key: string;
  let cert: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-tls-'));
    key = path.join(dir, 'key.pem');
    cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A GET over TLS, trusting any server certificate; `client` presents a client certificate. */
  const get = (sim: Simulator, p: string, client: { key?: Buffer; cert?: Buffer } = {}) =>
    new Promise<{ status: number; body: string; location: string | undefined }>((resolve, reject) => {
      const { port } = new URL(sim.url);
      httpsRequest({ host: '127.0.0.1', port, path: p, rejectUnauthorized: false, agent: false, ...client }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, location: res.headers.location }));
      })
        .on('error', reject)
        .end();
    });

  it('serves /health and /v1/models over HTTPS, and redirects to https URLs', async () => {
    const sim = await startFromCli([MODEL, '--ssl-keyfile', key, '--ssl-certfile', cert]);
    try {
      expect(sim.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect((await get(sim, '/health')).status).toBe(200);
      const models = await get(sim, '/v1/models');
      expect(models.status).toBe(200);
      expect((JSON.parse(models.body) as { data: { id: string }[] }).data[0]!.id).toBe(MODEL);
      await expect(fetch(sim.url.replace('https:', 'http:') + '/health')).rejects.toThrow();
      // Starlette's redirect_slashes builds the URL from the scope's scheme, https under uvicorn's TLS.
      const redirect = await get(sim, '/v1/models/');
      expect(redirect.status).toBe(307);
      expect(redirect.location).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/v1\/models$/);
    } finally {
      await sim.close();
    }
  });

  it('takes the key from the certificate file when no key file is given, as load_cert_chain(certfile, None) does', async () => {
    const both = path.join(dir, 'both.pem');
    fs.writeFileSync(both, Buffer.concat([fs.readFileSync(cert), fs.readFileSync(key)]));
    const sim = await startFromCli([MODEL, '--ssl-certfile', both]);
    try {
      expect((await get(sim, '/health')).status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  it('--ssl-cert-reqs 2 with --ssl-ca-certs: a client without a verified certificate fails the handshake', async () => {
    const sim = await startFromCli([MODEL, '--ssl-keyfile', key, '--ssl-certfile', cert, '--ssl-ca-certs', cert, '--ssl-cert-reqs', '2']);
    try {
      expect((await get(sim, '/health', { key: fs.readFileSync(key), cert: fs.readFileSync(cert) })).status).toBe(200);
      await expect(get(sim, '/health')).rejects.toThrow();
    } finally {
      await sim.close();
    }
  });

  // Python's ssl docs, CERT_OPTIONAL in server mode: a certificate the client chooses to send "is verified. Any
  // verification error immediately aborts the TLS handshake."
  it('--ssl-cert-reqs 1 (CERT_OPTIONAL): a client without a certificate is served, one whose certificate does not verify is not', async () => {
    const stranger = { key: path.join(dir, 'stranger-key.pem'), cert: path.join(dir, 'stranger-cert.pem') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', stranger.key, '-out', stranger.cert, '-days', '1', '-subj', '/CN=stranger'], { stdio: 'ignore' });
    const sim = await startFromCli([MODEL, '--ssl-keyfile', key, '--ssl-certfile', cert, '--ssl-ca-certs', cert, '--ssl-cert-reqs', '1']);
    try {
      expect((await get(sim, '/health')).status).toBe(200);
      expect((await get(sim, '/health', { key: fs.readFileSync(key), cert: fs.readFileSync(cert) })).status).toBe(200);
      await expect(get(sim, '/health', { key: fs.readFileSync(stranger.key), cert: fs.readFileSync(stranger.cert) })).rejects.toThrow();
    } finally {
      await sim.close();
    }
  });

  it('refuses a key file without a certificate file, a certificate file without a key, unreadable files, and a cert_reqs ssl.VerifyMode refuses', async () => {
    expect(() => parseCli([MODEL, '--ssl-keyfile', key])).toThrow(/--ssl-keyfile: needs --ssl-certfile/);
    expect(() => parseCli([MODEL, '--ssl-certfile', cert, '--ssl-cert-reqs', '3'])).toThrow(/--ssl-cert-reqs: expected 0 \(CERT_NONE\), 1 \(CERT_OPTIONAL\) or 2 \(CERT_REQUIRED\)/);
    await expect(startFromCli([MODEL, '--ssl-certfile', cert])).rejects.toThrow(/--ssl-certfile: .* and no --ssl-keyfile \(the key is then read from the certificate file\)/);
    await expect(startFromCli([MODEL, '--ssl-certfile', path.join(dir, 'absent.pem'), '--ssl-keyfile', key])).rejects.toThrow(/--ssl-certfile: cannot read/);
  });

  it('without the files the server is plain HTTP, whatever --ssl-cert-reqs says (uvicorn reads it only with TLS on)', async () => {
    const sim = await startFromCli([MODEL, '--ssl-cert-reqs', '3', '--ssl-keyfile', 'None']);
    try {
      expect(sim.url).toMatch(/^http:/);
      expect((await http(sim.url, 'GET', '/health')).status).toBe(200);
    } finally {
      await sim.close();
    }
  });
});

// vLLM v0.10.0 vllm/engine/arg_utils.py _compute_kwargs: an int field named max_model_len or max_num_batched_tokens gets
// `type = human_readable_int` (vLLM #18968, merged 2025-05-30, extended it from max_model_len to max_num_batched_tokens
// before v0.10.0; the copy read is a v0.10.1 one, arg_utils.py with `--runner`, unchanged there), and both fields are
// Optional[int], so optional_type wraps it ("" and "None" are None: the default). human_readable_int strips the value,
// then `re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])")`: k/m/g multiply a decimal by 10^3/10^6/10^9 (`int(float(n) *
// mult)`, so 25.6k is 25600), K/M/G an integer by 2^10/2^20/2^30 (`1.5K` raises ArgumentTypeError "Decimals are not
// allowed with binary suffixes like K. Did you mean to use 1.5k instead?"); t/T match but have no multiplier and fall
// through to `int(value)`, which fails, as anything else int() refuses.
describe('--max-model-len and --max-num-batched-tokens take human_readable_int (arg_utils.py @ v0.10.0)', () => {
  it.each([
    ['32k', 32000],
    ['32K', 32768],
    ['25.6k', 25600],
    [' 4096 ', 4096],
    ['1_024', 1024],
  ])('vllm serve --max-model-len %j starts with max_model_len %d in /v1/models and /tokenize', async (flag, expected) => {
    const sim = await startFromCli([MODEL, '--max-model-len', flag]);
    try {
      const models = (await http(sim.url, 'GET', '/v1/models')).json<{ data: { max_model_len: number }[] }>();
      expect(models.data[0]!.max_model_len).toBe(expected);
      expect((await http(sim.url, 'POST', '/tokenize', { prompt: 'hi' })).json().max_model_len).toBe(expected);
    } finally {
      await sim.close();
    }
  });

  it('--max-num-batched-tokens takes the same suffixes', () => {
    const budget = (flag: string): number => {
      const r = parseCli([MODEL, '--max-num-batched-tokens', flag]);
      if (r.kind !== 'run') throw new Error('expected run');
      return r.options.maxNumBatchedTokens;
    };
    expect(budget('8k')).toBe(8000);
    expect(budget('8K')).toBe(8192);
    expect(budget('0.5k')).toBe(500);
    expect(budget('4096')).toBe(4096);
  });

  it('"None" or empty is optional_type\'s None: the default', () => {
    const r = parseCli([MODEL, '--max-model-len', 'None', '--max-num-batched-tokens=']);
    expect(r.kind === 'run' && [r.options.maxModelLen, r.options.maxNumBatchedTokens]).toEqual([40960, 2048]);
  });

  it.each([
    [['--max-model-len', '1.5K'], '--max-model-len', 'Decimals are not allowed with binary suffixes like K. Did you mean to use 1.5k instead?'],
    [['--max-num-batched-tokens', '2.5M'], '--max-num-batched-tokens', 'Decimals are not allowed with binary suffixes like M. Did you mean to use 2.5m instead?'],
    [['--max-model-len', '32t'], '--max-model-len', 'expected an integer, or a number with a k/m/g (×1000) or K/M/G (×1024) suffix (vLLM\'s human_readable_int), got "32t"'],
    [['--max-model-len', '2T'], '--max-model-len', 'expected an integer, or a number with a k/m/g (×1000) or K/M/G (×1024) suffix (vLLM\'s human_readable_int), got "2T"'],
    [['--max-model-len', '32 k'], '--max-model-len', 'expected an integer, or a number with a k/m/g (×1000) or K/M/G (×1024) suffix (vLLM\'s human_readable_int), got "32 k"'],
    [['--max-num-batched-tokens', '1e3'], '--max-num-batched-tokens', 'expected an integer, or a number with a k/m/g (×1000) or K/M/G (×1024) suffix (vLLM\'s human_readable_int), got "1e3"'],
  ])('%j stops the start naming %s', (argv, flag, message) => {
    expect(() => parseCli([MODEL, ...argv])).toThrow(`${flag}: ${message}`);
  });
});

// vLLM v0.10.0 vllm/config.py _get_and_verify_max_len (ModelConfig.__post_init__): a --max-model-len above the length
// derived from the model's config.json (Qwen3-0.6B…8B: max_position_embeddings 40960, no rope_scaling, no
// model_max_length) raises "User-specified max_model_len (65536) is greater than the derived max_model_len
// (max_position_embeddings=40960 or model_max_length=None in model's config.json). This may lead to incorrect model
// outputs or CUDA errors. To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1", and the
// server does not start; with envs.VLLM_ALLOW_LONG_MAX_MODEL_LEN (vllm/envs.py: the value stripped and lowered is "1"
// or "true") it only logs the warning.
describe("--max-model-len above the model's derived length (config.py _get_and_verify_max_len @ v0.10.0)", () => {
  const saved = process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN;
  afterEach(() => {
    if (saved === undefined) delete process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN;
    else process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN = saved;
  });

  it.each([['Qwen/Qwen3-0.6B'], ['Qwen/Qwen3-1.7B'], ['Qwen/Qwen3-4B'], ['Qwen/Qwen3-8B']])('vllm serve %s --max-model-len 65536 stops the start', (model) => {
    delete process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN;
    expect(() => parseCli([model, '--max-model-len', '65536', '--kv-cache-blocks', '8192'])).toThrow(
      "--max-model-len: User-specified max_model_len (65536) is greater than the derived max_model_len (max_position_embeddings=40960 or model_max_length=None in model's config.json). This may lead to incorrect model outputs or CUDA errors. To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1",
    );
    // The programmatic API refuses it too; the derived length itself is accepted.
    expect(() => resolveOptions({ model, maxModelLen: 40961 })).toThrow(/User-specified max_model_len \(40961\)/);
    expect(resolveOptions({ model, maxModelLen: 40960 }).maxModelLen).toBe(40960);
  });

  it.each([['1'], ['true'], [' TRUE ']])('with VLLM_ALLOW_LONG_MAX_MODEL_LEN=%j it starts, warning on stderr (vLLM only warns)', async (value) => {
    process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN = value;
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let warnings: string;
    try {
      const r = parseCli([MODEL, '--max-model-len', '64K', '--kv-cache-blocks', '8192']);
      if (r.kind !== 'run') throw new Error('expected run');
      warnings = write.mock.calls.map((c) => String(c[0])).join('');
    } finally {
      write.mockRestore();
    }
    expect(warnings).toContain(
      "User-specified max_model_len (65536) is greater than the derived max_model_len (max_position_embeddings=40960 or model_max_length=None in model's config.json). This may lead to incorrect model outputs or CUDA errors. Make sure the value is correct and within the model context size.",
    );
    const sim = await startFromCli([MODEL, '--max-model-len', '64K', '--kv-cache-blocks', '8192']);
    try {
      expect((await http(sim.url, 'GET', '/v1/models')).json().data[0].max_model_len).toBe(65536);
    } finally {
      await sim.close();
    }
  });

  it.each([['0'], ['yes'], ['']])('VLLM_ALLOW_LONG_MAX_MODEL_LEN=%j is not set for vLLM: the start stops', (value) => {
    process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN = value;
    expect(() => parseCli([MODEL, '--max-model-len', '65536', '--kv-cache-blocks', '8192'])).toThrow(/greater than the derived max_model_len/);
  });

  it("a model whose config.json the simulator does not stand in for is not checked (no derived length is known)", () => {
    delete process.env.VLLM_ALLOW_LONG_MAX_MODEL_LEN;
    const r = parseCli(['meta-llama/Llama-3.1-8B-Instruct', '--max-model-len', '131072', '--kv-cache-blocks', '8192']);
    expect(r.kind === 'run' && r.options.maxModelLen).toBe(131072);
  });
});
