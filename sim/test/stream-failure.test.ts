/**
 * A chat, completion or Responses request handled once a shutdown closed the engine (its drain grace ran out while the
 * request's body was still arriving) is answered as vLLM v0.10.0 answers a request to a dead engine: a bare 500,
 * streaming or not. vLLM's handlers check the engine right after the model and before any stream starts
 * (serving_chat.py `create_chat_completion`, serving_completion.py `create_completion`, serving_responses.py
 * `create_responses` @ v0.10.0: "If the engine is dead, raise the engine's DEAD_ERROR. This is required for the
 * streaming case, where we return a success status before we actually start generating text": `if
 * self.engine_client.errored: raise self.engine_client.dead_error`; AsyncLLM is `errored` once shut down, its output
 * handler cancelled), and launcher.py `_add_shutdown_handlers` answers EngineDeadError with
 * `Response(status_code=HTTPStatus.INTERNAL_SERVER_ERROR)`: no body. Session 73 answered a stream 200 and an error
 * event `engine is closed` then [DONE] (the stream generators' `except Exception`, which is for errors once a stream
 * has started), and a non-streaming request a JSON 500 "Internal error: engine is closed".
 */
import { request, type ClientRequest } from 'node:http';
import { startSimulator, type Simulator } from '../src/server';
import { waitFor } from './helpers';

interface Streamed {
  status: number;
  text: string;
  complete: boolean;
}

/**
 * A POST whose body waits for `finish`. It asks for 100 Continue, which the simulator sends from its request handler
 * (uvicorn's on_header, mirrored in server.ts): `accepted` resolves once the handler runs, past the draining check.
 */
function twoPartPost(base: string, path: string, body: unknown): { accepted: Promise<void>; finish(): void; result: Promise<Streamed> } {
  const json = Buffer.from(JSON.stringify(body));
  const req: ClientRequest = request(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': json.length, expect: '100-continue' },
  });
  const accepted = new Promise<void>((resolve) => req.once('continue', () => resolve()));
  const result = new Promise<Streamed>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, text, complete: false }));
    });
    req.on('error', reject);
  });
  req.flushHeaders();
  return { accepted, finish: () => req.end(json), result };
}

/** Captures the simulator's stderr lines (JSON) while `run` runs. */
async function stderrDuring<T>(run: () => Promise<T>): Promise<{ value: T; lines: Record<string, unknown>[] }> {
  const chunks: string[] = [];
  const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    const value = await run();
    return { value, lines: chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
  } finally {
    write.mockRestore();
  }
}

async function streamAcrossShutdown(sim: Simulator, path: string, body: unknown): Promise<Streamed> {
  const post = twoPartPost(sim.url, path, body);
  await post.accepted;
  const closing = sim.close({ graceMs: 0 });
  // The engine is closed once the (zero) grace ran out.
  await waitFor(() => sim.engine.isClosed);
  post.finish();
  const r = await post.result;
  await closing;
  return r;
}

const DEAD = { status: 500, text: '', complete: true };

test.each([
  ['/v1/chat/completions', { model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 4 }],
  ['/v1/chat/completions', { model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }],
  ['/v1/responses', { model: 'Qwen/Qwen3-0.6B', input: 'hi', max_output_tokens: 4 }],
  ['/invocations', { model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }],
])('vLLM v0.10.0 (engine_client.errored -> EngineDeadError -> launcher.py Response(500)): %s %j after the engine closed is a bare 500, no stream, no log', async (path, body) => {
  const sim = await startSimulator({ port: 0, host: '127.0.0.1' });
  const { value: r, lines } = await stderrDuring(() => streamAcrossShutdown(sim, path, body));
  expect(r).toEqual(DEAD);
  expect(lines).toEqual([]);
});

// The completions route alone catches what its handler raises: `except Exception as e: raise
// HTTPException(status_code=500, detail=str(e))` (api_server.py create_completion @ v0.10.0, in the vLLM copies stored
// from before it (V0 engines still in) and after it (0.10.2's nested errors)), which vLLM's http_exception_handler
// answers as a JSON ErrorResponse: the EngineDeadError's message, type "Internal Server Error". /invocations calls that
// route for a body without `messages`. Session 74 answered these with launcher.py's bare 500, as the chat route does.
const ENGINE_DEAD = 'EngineCore encountered an issue. See stack trace (above) for the root cause.';

test.each([
  ['/v1/completions', { model: 'Qwen/Qwen3-0.6B', prompt: 'hi', stream: true, max_tokens: 4 }],
  ['/v1/completions', { model: 'Qwen/Qwen3-0.6B', prompt: 'hi', max_tokens: 4 }],
  ['/invocations', { model: 'Qwen/Qwen3-0.6B', prompt: 'hi', max_tokens: 4 }],
])('vLLM v0.10.0 api_server.py create_completion (except Exception -> HTTPException(500, str(e))): %s %j after the engine closed is a JSON 500 with EngineDeadError\'s message, no stream, no log', async (path, body) => {
  const sim = await startSimulator({ port: 0, host: '127.0.0.1' });
  const { value: r, lines } = await stderrDuring(() => streamAcrossShutdown(sim, path, body));
  expect([r.status, r.complete, JSON.parse(r.text)]).toEqual([500, true, { object: 'error', message: ENGINE_DEAD, type: 'Internal Server Error', param: null, code: 500 }]);
  expect(lines).toEqual([]);
});

test('in 0.10.2 mode the same JSON 500 has 0.10.2\'s nested error shape', async () => {
  const sim = await startSimulator({ port: 0, host: '127.0.0.1', prefixCachingHashAlgo: 'sha256_cbor' });
  const r = await streamAcrossShutdown(sim, '/v1/completions', { model: 'Qwen/Qwen3-0.6B', prompt: 'hi', stream: true, max_tokens: 4 });
  expect([r.status, JSON.parse(r.text)]).toEqual([500, { error: { message: ENGINE_DEAD, type: 'Internal Server Error', param: null, code: 500 } }]);
});
