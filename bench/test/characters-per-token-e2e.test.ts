/**
 * The approximate prefix index learning characters per token from a real (simulated) vLLM: the built simulator with
 * Qwen3's tokenizer and chat template, the EPP with kvroute's default config (which learns and publishes the ratio;
 * `learnCharactersPerToken` would size the index with it) and the gateway, as separate processes. The EPP may only
 * divide what it routed by what the pod's `vllm:request_prompt_tokens` says it served, so its ratio must agree with
 * the one the responses' own `usage.prompt_tokens` give (the test's reference; the EPP never sees response bodies
 * with the default `responseBodyMode: none`).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { parseRequestBody } from '@kvroute/protocol/openai';
import { E2E_TEST_TIMEOUT_MS, waitFor } from '@kvroute/testkit';
import { ENTRY, stopAll } from '../src/processes';
import { DEFAULT_SIM, httpGet, startStack } from '../src/stack';

const built = Object.values(ENTRY).every((f) => fs.existsSync(f));

function post(url: string, body: string): Promise<{ status: number; json: { usage?: { prompt_tokens?: number } } }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString('utf8') || '{}') as { usage?: { prompt_tokens?: number } } }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function gauge(port: number, name: string): Promise<number | undefined> {
  const line = (await httpGet(`http://127.0.0.1:${port}/metrics`)).split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

(built ? describe : describe.skip)('characters per token learnt from vllm:request_prompt_tokens (built simulator, EPP and gateway)', () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-cpt-'));
  afterAll(async () => {
    await stopAll();
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  test('English prose at Qwen3\'s ~4.5-5 characters a token: the EPP\'s gauge matches the responses\' usage within 2%', async () => {
    const stack = await startStack({ pods: 1, sim: { ...DEFAULT_SIM, timeScale: 20 }, policy: { kind: 'epp', name: 'kvroute' }, logDir });
    try {
      const cpt = () => gauge(stack.eppPorts[0]!.metrics, 'kvroute_epp_prefix_characters_per_token');
      expect(await cpt()).toBe(4); // GIE's averageCharactersPerToken until learnt
      const sentences = [
        'Retrieval augmented generation places a document before the question it answers.',
        'The scheduler keeps a queue of waiting requests and admits them as blocks free up.',
        'A prefix cache stores the attention keys and values of tokens already processed.',
        'Operators size the pool from the rate of requests and the length of their prompts.',
        'Interactive sessions return every few seconds with one more turn of the conversation.',
      ];
      let characters = 0;
      let tokens = 0;
      const n = 96;
      for (let i = 0; i < n; i++) {
        const content = `Document ${i}: ${Array.from({ length: 4 + (i % 9) }, (_, j) => sentences[(i + j) % sentences.length]).join(' ')} Question ${i}?`;
        const body = JSON.stringify({ model: DEFAULT_SIM.model, messages: [{ role: 'user', content }], max_tokens: 2 });
        const r = await post(`${stack.gatewayUrl}/v1/chat/completions`, body);
        expect(r.status).toBe(200);
        // What the EPP hashes and counts (the chat prompt with its turn markers), and what vLLM's tokenizer made of it.
        characters += parseRequestBody(Buffer.from(body)).prompt.length;
        tokens += r.json.usage!.prompt_tokens!;
      }
      const reference = characters / tokens;
      expect(reference).toBeGreaterThan(4.4); // far from GIE's 4
      // The pod's counters reach the EPP with its next scrapes; the gauge moves on the next request after them.
      await waitFor(async () => {
        const body = JSON.stringify({ model: DEFAULT_SIM.model, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 });
        expect((await post(`${stack.gatewayUrl}/v1/chat/completions`, body)).status).toBe(200);
        return (await cpt()) !== 4;
      }, 'the EPP publishing the learnt ratio', { limitMs: 20_000 });
      const learnt = (await cpt())!;
      // The ping requests (short, counted on both sides) move the means a little.
      expect(Math.abs(learnt - reference) / reference).toBeLessThan(0.02);
      process.stderr.write(`characters per token: learnt ${learnt.toFixed(3)}, from the responses' usage ${reference.toFixed(3)}\n`);
    } finally {
      await stack.stop();
    }
    // A stack of three processes, 97+ requests and a 20 s wait inside: it took 24 s of jest's 30 s default on a loaded
    // two-core machine. The end-to-end limit bounds a hung run; it is not a speed goal.
  }, E2E_TEST_TIMEOUT_MS);
});
