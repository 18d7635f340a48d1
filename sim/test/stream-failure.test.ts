/**
 * A streamed chat or completion whose engine fails after the response started ends with the error as an event, then
 * [DONE]: vLLM's stream generators catch what the engine raises while they iterate it (serving_chat.py
 * chat_completion_stream_generator and serving_completion.py completion_stream_generator @ v0.10.0: `except Exception
 * as e: data = self.create_streaming_error_response(str(e)); yield f"data: {data}\n\n"`, then `yield "data:
 * [DONE]\n\n"`; the chat one first logs "Error in chat completion stream generator." with the traceback). The
 * simulator ended such a stream with `res.end()`: a clean end of the chunked body with no event, no [DONE] and no log,
 * so a client or proxy took the cut-off stream for a complete one.
 *
 * The real trigger: a shutdown (SIGTERM → close) whose drain grace runs out while a request's body is still arriving.
 * The request passed the draining check, its body completes after the engine closed, the stream's headers go out and
 * the engine refuses the submission ("engine is closed").
 */
import { request, type ClientRequest } from 'node:http';
import { startSimulator, type Simulator } from '../src/server';
import { parseSse, waitFor } from './helpers';

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
  // The engine is closed once the (zero) grace ran out; its `closed` flag is what Engine.submit checks.
  await waitFor(() => (sim.engine as unknown as { closed: boolean }).closed);
  post.finish();
  const r = await post.result;
  await closing;
  return r;
}

test('vLLM v0.10.0 chat_completion_stream_generator: an engine error after the stream started is an error event, then [DONE], and is logged', async () => {
  const sim = await startSimulator({ port: 0, host: '127.0.0.1' });
  const { value: r, lines } = await stderrDuring(() =>
    streamAcrossShutdown(sim, '/v1/chat/completions', { model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 4 }),
  );
  expect(r.status).toBe(200);
  const sse = parseSse(r.text);
  expect(sse.events).toEqual([{ error: { object: 'error', message: 'engine is closed', type: 'BadRequestError', param: null, code: 400 } }]);
  expect(sse.done).toBe(true);
  expect(lines).toEqual([expect.objectContaining({ level: 'error', msg: 'Error in chat completion stream generator.', error: expect.stringContaining('engine is closed') })]);
});

test('vLLM v0.10.0 completion_stream_generator: the same error event and [DONE] (that generator logs nothing)', async () => {
  const sim = await startSimulator({ port: 0, host: '127.0.0.1' });
  const { value: r, lines } = await stderrDuring(() =>
    streamAcrossShutdown(sim, '/v1/completions', { model: 'Qwen/Qwen3-0.6B', prompt: 'hi', stream: true, max_tokens: 4 }),
  );
  expect(r.status).toBe(200);
  const sse = parseSse(r.text);
  expect(sse.events).toEqual([{ error: { object: 'error', message: 'engine is closed', type: 'BadRequestError', param: null, code: 400 } }]);
  expect(sse.done).toBe(true);
  expect(lines).toEqual([]);
});
