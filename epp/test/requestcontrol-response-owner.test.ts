/**
 * A Responses API conversation goes back to the pod that stored it (src/requestcontrol/response-owner.ts): vLLM keeps a
 * stored response in the memory of the server that answered it (`response_store`, serving_responses.py @ v0.10.0)
 * and names it after the request's `request_id` (ResponsesRequest, protocol.py @ v0.10.0).
 */
import { defaultEndpointPickerConfig } from '../src/config';
import type { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest } from '../src/extproc/request-director';
import { RequestControl } from '../src/requestcontrol/request-control';
import { issueResponseId, ownerTag, ownerTagOf, responseIdInPath, withResponseId } from '../src/requestcontrol/response-owner';
import { buildScheduler } from '../src/scheduling/scheduler';
import { staticPool } from './static-pool';

const post = (path: string, body: unknown): IncomingRequest => ({
  requestId: 'r', headers: new Map([[':method', 'POST'], [':path', path], ['content-type', 'application/json']]), body: Buffer.from(JSON.stringify(body)), filterMetadata: {},
});
const get = (path: string): IncomingRequest => ({ requestId: 'r', headers: new Map([[':method', 'GET'], [':path', path]]), filterMetadata: {} });

describe('response ids naming their pod', () => {
  test('an issued id is resp_kvr + the pod\'s tag + 32 hex, and only such ids name an owner', () => {
    const id = issueResponseId('10.0.0.2:8000');
    expect(id).toMatch(/^resp_kvr[0-9a-f]{40}$/);
    expect(ownerTagOf(id)).toBe(ownerTag('10.0.0.2:8000'));
    expect(ownerTag('10.0.0.2:8000')).not.toBe(ownerTag('10.0.0.3:8000'));
    // vLLM's own ids (resp_ + a uuid's hex) and anything else name none.
    expect(ownerTagOf('resp_0123456789abcdef0123456789abcdef')).toBeUndefined();
    expect(ownerTagOf(`${id}0`)).toBeUndefined();
    expect(ownerTagOf(undefined)).toBeUndefined();
  });

  test('the retrieve and cancel paths name their id (a query, a trailing part or percent-encoding aside); other paths none', () => {
    expect(responseIdInPath('/v1/responses/resp_abc')).toBe('resp_abc');
    expect(responseIdInPath('/v1/responses/resp_abc/cancel')).toBe('resp_abc');
    expect(responseIdInPath('/v1/responses/resp_abc?x=1')).toBe('resp_abc');
    expect(responseIdInPath('/v1/responses/resp%5Fabc')).toBe('resp_abc');
    expect(responseIdInPath('/v1/responses/resp_abc/other')).toBeUndefined();
    expect(responseIdInPath('/v1/responses')).toBeUndefined();
    expect(responseIdInPath('/v1/chat/completions')).toBeUndefined();
    expect(responseIdInPath(undefined)).toBeUndefined();
  });

  test('request_id goes in as the first member, the rest of the body byte for byte', () => {
    expect(withResponseId(Buffer.from(' {"input":"hi"}'), 'resp_x')!.toString()).toBe(' {"request_id":"resp_x","input":"hi"}');
    expect(withResponseId(Buffer.from('{ }'), 'resp_x')!.toString()).toBe('{"request_id":"resp_x" }');
    expect(JSON.parse(withResponseId(Buffer.from('{\n  "input": [1]\n}'), 'resp_x')!.toString())).toEqual({ request_id: 'resp_x', input: [1] });
    expect(withResponseId(Buffer.from('[1]'), 'resp_x')).toBeUndefined();
  });
});

describe('RequestControl and the Responses API', () => {
  let ds: Datastore;
  let director: RequestControl;
  beforeEach(() => {
    ds = staticPool(4);
    director = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig()) });
  });
  afterEach(() => ds.stop());

  /** Routes and releases at once (nothing stays in flight), returning the decision. */
  async function routed(req: IncomingRequest) {
    const d = await director.route(req);
    if (d.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(d).slice(0, 200)}`);
    director.release(d.ticket, 'completed');
    return d;
  }

  /**
   * Makes `endpoint` the most loaded pod, short of saturated (GIE's thresholds: 5 waiting, 80% KV), the others idle:
   * a request without an owner then goes elsewhere (checked).
   */
  async function load(endpoint: string): Promise<void> {
    for (const s of ds.snapshot()) {
      const busy = s.endpoint.key === endpoint;
      ds.setMetrics(s.endpoint.key, { waitingQueueSize: busy ? 4 : 0, runningQueueSize: busy ? 8 : 0, kvCacheUsagePercent: busy ? 0.75 : 0.1, updateTime: Date.now() });
    }
    for (let i = 0; i < 8; i++) ds.acquire(endpoint);
    const other = await routed(post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: `unrelated ${endpoint}` }] }));
    expect(other.endpoint).not.toBe(endpoint);
  }

  test('a stored response gets an id naming the pod picked for it; what continues, retrieves or cancels it goes back there, however loaded', async () => {
    const first = await routed(post('/v1/responses', { model: 'm', input: 'Remember the number 42.' }));
    expect(first.body).toBeDefined();
    const sent = JSON.parse(first.body!.toString());
    expect(sent.input).toBe('Remember the number 42.');
    expect(ownerTagOf(sent.request_id)).toBe(ownerTag(first.endpoint));
    await load(first.endpoint);
    const follow = await routed(post('/v1/responses', { model: 'm', input: 'Which number?', previous_response_id: sent.request_id }));
    expect(follow.endpoint).toBe(first.endpoint);
    // The follow-up is stored too, on the same pod, under a new id of its own.
    const followId = JSON.parse(follow.body!.toString()).request_id as string;
    expect(followId).not.toBe(sent.request_id);
    expect(ownerTagOf(followId)).toBe(ownerTag(first.endpoint));
    expect((await routed(get(`/v1/responses/${sent.request_id}`))).endpoint).toBe(first.endpoint);
    expect((await routed(post(`/v1/responses/${sent.request_id}/cancel`, {}))).endpoint).toBe(first.endpoint);
  });

  test('retrieving or cancelling reaches the owner even when it is saturated, a cancel with a JSON body too (vLLM reads none there); a continuation is refused 429 as any request whose candidates are all saturated (no flow control here)', async () => {
    const first = await routed(post('/v1/responses', { model: 'm', input: 'Remember the number 42.' }));
    const id = JSON.parse(first.body!.toString()).request_id as string;
    for (const s of ds.snapshot()) {
      ds.setMetrics(s.endpoint.key, { waitingQueueSize: s.endpoint.key === first.endpoint ? 50 : 0, kvCacheUsagePercent: s.endpoint.key === first.endpoint ? 0.99 : 0.1, updateTime: Date.now() });
    }
    expect((await routed(post(`/v1/responses/${id}/cancel`, {}))).endpoint).toBe(first.endpoint);
    expect((await routed(get(`/v1/responses/${id}`))).endpoint).toBe(first.endpoint);
    // A continuation is new work on the owner: without flow control a saturated owner refuses it (429), as it would
    // refuse any request all of whose candidates are saturated.
    const next = await director.route(post('/v1/responses', { model: 'm', input: 'Which number?', previous_response_id: id }));
    expect(next).toMatchObject({ kind: 'reject', status: 429 });
  });

  test('no id is set when the pod stores nothing (store false or null) or the client names the response itself, and other endpoints are left alone', async () => {
    for (const body of [
      { model: 'm', input: 'x', store: false },
      { model: 'm', input: 'x', store: 'false' },
      { model: 'm', input: 'x', store: null },
      { model: 'm', input: 'x', request_id: 'resp_mine' },
    ]) {
      expect((await routed(post('/v1/responses', body))).body).toBeUndefined();
    }
    expect((await routed(post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] }))).body).toBeUndefined();
  });

  test('an id kvroute did not issue, or whose pod has left the pool, routes as any other request', async () => {
    const keys = ds.snapshot().map((s) => s.endpoint.key);
    await load(keys[0]!);
    // A vLLM-named id: no owner, so the loaded pod is avoided like for any request.
    const plain = await routed(post('/v1/responses', { model: 'm', input: 'x', previous_response_id: 'resp_0123456789abcdef0123456789abcdef' }));
    expect(plain.endpoint).not.toBe(keys[0]);
    // An id naming a pod that is gone (vLLM will answer 404 wherever it goes): routed by load, not refused.
    const gone = issueResponseId('10.9.9.9:8000');
    const orphan = await routed(post('/v1/responses', { model: 'm', input: 'x', previous_response_id: gone }));
    expect(keys).toContain(orphan.endpoint);
    expect(orphan.endpoint).not.toBe(keys[0]);
  });
});
