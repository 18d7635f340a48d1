/**
 * The Responses API over the whole local path (gateway, EPP with the default config, four simulated vLLM pods): a
 * stored response lives in the memory of the pod that answered it (`response_store`, serving_responses.py @ v0.10.0),
 * so every request continuing it (`previous_response_id`), retrieving it or cancelling it must reach that pod. The
 * EPP names the response after its pod (epp/src/requestcontrol/response-owner.ts) and routes them back there; without
 * that three of four would meet vLLM's 404.
 */
import * as http from 'node:http';
import { defaultEndpointPickerConfig, renderEndpointPickerConfig } from '@kvroute/epp/config';
import { freePort } from '@kvroute/testkit';
import { post, startLocalPath, stopLocalPath, type LocalPath } from './support/local-path';

jest.setTimeout(120_000);

const MODEL = 'Qwen/Qwen3-0.6B';

function get(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
}

describe('Responses API conversations through the gateway', () => {
  let path: LocalPath | undefined;
  let base: string;

  beforeAll(async () => {
    const ports = await Promise.all([0, 1, 2, 3].map(() => freePort()));
    path = await startLocalPath(ports, renderEndpointPickerConfig(defaultEndpointPickerConfig()), () => ({ model: MODEL, maxModelLen: 4096, timeScale: 50 }));
    base = `http://127.0.0.1:${path.gateway.port}`;
  });

  afterAll(() => stopLocalPath(path));

  test('every turn continuing a stored response, and its retrieval, succeed (each reaches the pod that stored what it names)', async () => {
    // Several conversations, each continued several times: under load-based spreading alone most continuations would
    // land on a pod that does not hold the response.
    for (let c = 0; c < 4; c++) {
      const first = await post(`${base}/v1/responses`, { model: MODEL, instructions: `You are assistant ${c}.`, input: `Conversation ${c}: remember ${c * 7}.`, max_output_tokens: 4 });
      expect(first.status).toBe(200);
      let previous = JSON.parse(first.text) as { id: string };
      expect(previous.id).toMatch(/^resp_kvr[0-9a-f]{40}$/);
      const pod = first.headers['x-gateway-destination-endpoint-served'];
      for (let turn = 1; turn <= 3; turn++) {
        const next = await post(`${base}/v1/responses`, { model: MODEL, input: `Turn ${turn}: what was the number?`, previous_response_id: previous.id, max_output_tokens: 4 });
        expect(next.status).toBe(200);
        expect(next.headers['x-gateway-destination-endpoint-served']).toBe(pod);
        const body = JSON.parse(next.text) as { id: string; previous_response_id: string; usage: { prompt_tokens: number } };
        expect(body.previous_response_id).toBe(previous.id);
        previous = body;
      }
      const retrieved = await get(`${base}/v1/responses/${previous.id}`);
      expect(retrieved.status).toBe(200);
      expect(JSON.parse(retrieved.text).id).toBe(previous.id);
    }
  });
});
