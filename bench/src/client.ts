/**
 * An OpenAI-API client for measuring from the outside: streams the response (SSE), timing the first token, and
 * records which endpoint served it (the gateway's `x-gateway-destination-endpoint-served`) and the usage the server
 * reports, including `prompt_tokens_details.cached_tokens` (present only when the server runs with
 * `--enable-prompt-tokens-details`; see the note where it is read).
 */
import * as http from 'http';
import type { ChatMessage } from './workload';

export interface ChatResult {
  readonly ok: boolean;
  readonly status: number;
  /** Endpoint that served the request, as the gateway reports it. */
  readonly servedBy?: string;
  /** Seconds from sending the request to the first content token. */
  readonly ttft?: number;
  /** Seconds from sending the request to the end of the response. */
  readonly e2e: number;
  readonly reply: string;
  readonly promptTokens?: number;
  readonly cachedTokens?: number;
  readonly error?: string;
}

export class ChatClient {
  /**
   * No cap on sockets (Node's default, Infinity): a request goes out when it is sent whatever else is in flight, as
   * vLLM's `vllm bench serve` client does (vllm/benchmarks/serve.py `benchmark`: `aiohttp.TCPConnector(limit=0)`
   * without --max-concurrency). A cap would queue arrivals past it inside this agent, closing the open loop and
   * counting the wait for a socket in their TTFT.
   */
  private readonly agent = new http.Agent({ keepAlive: true });

  /**
   * `timeoutMs`: a request fails after this long without a byte from the server (the socket's idle timeout; with no
   * socket cap its clock starts when the request is sent).
   */
  constructor(private readonly baseUrl: string, private readonly model: string, private readonly timeoutMs = 120_000) {}

  chat(messages: readonly ChatMessage[], maxTokens: number, headers: Record<string, string> = {}): Promise<ChatResult> {
    const body = Buffer.from(JSON.stringify({
      model: this.model,
      messages,
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    }));
    const url = new URL('/v1/chat/completions', this.baseUrl);
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    return new Promise<ChatResult>((resolve) => {
      const fail = (status: number, error: string, servedBy?: string) =>
        resolve({ ok: false, status, error, servedBy, e2e: elapsed(), reply: '' });
      const req = http.request(url, {
        method: 'POST',
        agent: this.agent,
        timeout: this.timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': body.length, host: 'llm-d.demo.local', ...headers },
      }, (res) => {
        const servedBy = res.headers['x-gateway-destination-endpoint-served'] as string | undefined;
        if (res.statusCode !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => { text += c; });
          res.on('end', () => fail(res.statusCode ?? 0, text.slice(0, 500), servedBy));
          res.on('error', (e) => fail(res.statusCode ?? 0, e.message, servedBy));
          return;
        }
        let buffer = '';
        let reply = '';
        let ttft: number | undefined;
        let promptTokens: number | undefined;
        let cachedTokens: number | undefined;
        let done = false;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let nl: number;
          while ((nl = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 2);
            for (const line of event.split('\n')) {
              if (!line.startsWith('data:')) continue;
              const data = line.slice(5).trim();
              if (data === '[DONE]') {
                done = true;
                continue;
              }
              const msg = JSON.parse(data) as {
                choices?: { delta?: { content?: string } }[];
                usage?: { prompt_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null };
              };
              const content = msg.choices?.[0]?.delta?.content;
              if (content) {
                if (ttft === undefined) ttft = elapsed();
                reply += content;
              }
              if (msg.usage) {
                promptTokens = msg.usage.prompt_tokens;
                // vLLM 0.10 sends prompt_tokens_details only with --enable-prompt-tokens-details AND a non-zero hit, and
                // the final usage chunk drops the key otherwise. So "absent" means 0 only on servers started with that
                // flag, which is how the stack starts its simulators (simArgs) and how the manifests run vLLM.
                cachedTokens = msg.usage.prompt_tokens_details?.cached_tokens ?? 0;
              }
            }
          }
        });
        res.on('end', () => {
          if (!done) fail(200, 'stream ended without data: [DONE]', servedBy);
          else resolve({ ok: true, status: 200, servedBy, ttft, e2e: elapsed(), reply, promptTokens, cachedTokens });
        });
        res.on('error', (e) => fail(200, `response aborted: ${e.message}`, servedBy));
      });
      req.on('timeout', () => req.destroy(new Error(`no response within ${this.timeoutMs} ms`)));
      req.on('error', (e) => fail(0, e.message));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Sends each item at its arrival time (simulated milliseconds; the pods run `timeScale` simulated seconds per wall
 * second) without waiting for earlier answers, an open loop, and collects the answers in item order with the wall time
 * from the start to the last answer.
 */
export async function sendAtArrivals<T extends { readonly atMs: number }>(items: readonly T[], timeScale: number,
  send: (item: T) => Promise<ChatResult>): Promise<{ readonly results: ChatResult[]; readonly wallSeconds: number }> {
  const started = process.hrtime.bigint();
  const results = await Promise.all(items.map((item) => new Promise<ChatResult>((resolve) => {
    setTimeout(() => { send(item).then(resolve); }, item.atMs / timeScale);
  })));
  return { results, wallSeconds: Number(process.hrtime.bigint() - started) / 1e9 };
}
