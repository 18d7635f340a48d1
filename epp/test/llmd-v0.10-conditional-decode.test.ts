/**
 * llm-d-router v0.10.0's conditional-decode gate (#1288): a request carrying RFC 7240 `Prefer: if-available` is
 * forwarded only when the endpoint the EPP picked holds at least one block of its prompt, else answered 412 Precondition
 * Failed (`pkg/common/routing/common.go` IsConditionalDecode, `pkg/epp/requestcontrol/director.go`
 * primaryEndpointHasCachedPrefix, `pkg/common/error/error.go` PreconditionFailed). Over a real ext_proc stream to the
 * whole EPP and real metrics servers.
 */
import { INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { isConditionalDecode } from '../src/requestcontrol/conditional-decode';
import { requestBody, requestHeaders, setHeaders } from './extproc-harness';
import { liveEpp } from './live-epp';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

test.each([
  ['if-available', true],
  ['  If-Available  ', true],
  ['respond-async, if-available; wait=5', true],
  ['return=minimal,IF-AVAILABLE', true],
  ['if-availablex', false],
  ['wait=if-available', false],
  ['', false],
])('Prefer: %j is the conditional-decode preference: %s (common.go IsConditionalDecode)', (value, expected) => {
  expect(isConditionalDecode({ prefer: value })).toBe(expected);
  expect(isConditionalDecode({})).toBe(false);
});

describe('Prefer: if-available through the EPP (director.go conditional-decode gate)', () => {
  const live = liveEpp();
  const start = (...flags: string[]) => live.start(2, ...flags);

  async function send(prompt: string, headers: Record<string, string> = {}): Promise<{ endpoint?: string; status?: string; body?: string }> {
    const s = live.envoy!.open();
    s.send(requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', ...headers }, false));
    s.send(requestBody(Buffer.from(JSON.stringify({ model: 'm', prompt })), true));
    const first = await s.next();
    s.cancel();
    if (first.immediate_response) return { status: first.immediate_response.status.code, body: first.immediate_response.body.toString() };
    return { endpoint: setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint'] as string };
  }

  const document = (seed: string) => Array.from({ length: 120 }, (_, i) => `${seed} paragraph ${i} of the shared document.`).join(' ');

  test('a prompt the pick holds is forwarded there; one nobody holds is answered 412, counted PreconditionFailed; without the header nothing changes', async () => {
    await start();
    const warm = await send(document('alpha'));
    expect(warm.endpoint).toBeDefined();
    // The approximate index learnt the pick: the same prompt, conditional, goes to that pod.
    expect(await send(`${document('alpha')} and a new question`, { prefer: 'if-available' })).toEqual({ endpoint: warm.endpoint });
    const cold = await send(document('beta'), { prefer: 'respond-async, If-Available' });
    expect(cold.status).toBe('PreconditionFailed'); // envoy.type.v3.StatusCode 412
    expect(cold.body).toContain('no decode worker has the requested KV cache');
    // A refused request was not forwarded: nothing learnt its pick (upstream learns in PreRequest, after the gate), so
    // the same speculative decode again is refused again, not sent to a pod the index now wrongly believes holds it.
    expect((await send(document('beta'), { prefer: 'if-available' })).status).toBe('PreconditionFailed');
    expect((await send(document('gamma'))).endpoint).toBeDefined();
    const page = await live.metrics();
    expect(page).toMatch(/inference_objective_request_error_total\{[^}]*error_code="PreconditionFailed"[^}]*\} 2/);
    // Five cycles picked, the two refused ones included: upstream's Schedule records its attempt before the gate.
    const attempts = page.split('\n').filter((l: string) => l.startsWith('inference_extension_scheduler_attempts_total{') && l.includes('status="success"'))
      .reduce((sum: number, l: string) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(attempts).toBe(5);
  });

  test('with no prefix scorer in the config every conditional request is answered 412 (no match info: primaryEndpointHasCachedPrefix is false)', async () => {
    await start('--config-text', 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- {type: queue-scorer}\n');
    expect((await send(document('alpha'))).endpoint).toBeDefined();
    expect((await send(document('alpha'), { prefer: 'if-available' })).status).toBe('PreconditionFailed');
  });
});
