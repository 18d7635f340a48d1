export { waitFor } from '@kvroute/testkit';
import type { EngineConfig } from '../src/engine';

/** Engine tests' config: options.ts's defaults (20 ms overhead, 0.25 ms per uncached token, 20 ms per output token,
 *  2048-token chunks, one prefill lane) on a small pool. */
export const ENGINE_BASE: EngineConfig = {
  blockSize: 16,
  kvCacheBlocks: 1024,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 2048,
  ttftOverheadMs: 20,
  prefillMsPerToken: 0.25,
  itlMs: 20,
  prefillConcurrency: 1,
  hashAlgo: 'sha256_cbor_64bit',
  pythonHashSeed: '0',
};
import { request as httpRequest } from 'node:http';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = any>(): T;
}

/** A real HTTP round trip over loopback. */
export async function http(base: string, method: string, path: string, body?: unknown): Promise<HttpResult> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    headers[k] = v;
  });
  return { status: res.status, headers, text, json: () => JSON.parse(text) };
}

/** The JSON payloads of an SSE body, plus whether it ended with [DONE]. */
export function parseSse(text: string): { events: any[]; done: boolean } {
  const events: any[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    if (!block.startsWith('data: ')) throw new Error(`not an SSE data line: ${block}`);
    const data = block.slice(6);
    if (data === '[DONE]') done = true;
    else events.push(JSON.parse(data));
  }
  return { events, done };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition (0.0.4) samples. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export function metricValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hit = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hit.length !== 1) throw new Error(`expected one sample of ${name} ${JSON.stringify(labels)}, found ${hit.length}`);
  return hit[0].value;
}

/** Opens a streaming request and resolves after the first body chunk, handing back a way to hang up. */
export function openStream(base: string, path: string, body: unknown): Promise<{ first: string; hangUp(): void }> {
  return new Promise((resolve, reject) => {
    const url = new URL(base + path);
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        res.once('data', (chunk: Buffer) => resolve({ first: chunk.toString('utf8'), hangUp: () => req.destroy() }));
        res.on('error', () => undefined);
      },
    );
    req.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
    req.end(JSON.stringify(body));
  });
}

/** A prompt of roughly `n` tokens of varied English-like text. */
export function longText(n: number, seed = 0): string {
  const words = ['cache', 'route', 'prefix', 'block', 'token', 'model', 'pod', 'queue', 'latency', 'score'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(words[(i * 7 + seed * 3 + Math.floor(i / 13)) % words.length]);
  return `Document ${seed}: ${out.join(' ')}.`;
}
