/**
 * A body must name its model, as both upstreams' hermetic test "request missing model field" has it (GIE v1.5.0 and
 * llm-d-router v0.10.0 `test/integration/epp/common_tests.go`: 400 "model not found in request body"). GIE's check is
 * the body's type (`director.go` mutateModel: `bodyMap["model"].(string)`, so "" passes); llm-d's is the model the
 * request is forwarded as (`director.go` modelRewriteIfNeeded: TargetModelName still "" after the rewrite header and the
 * InferenceModelRewrite rules, #1426), so a rewrite header gives a body without one its model. Real ext_proc stream,
 * whole EPP, real metrics servers.
 */
import { INTEGRATION_TEST_TIMEOUT_MS } from '@kvroute/testkit';
import { readStreamedBody, requestBody, requestHeaders, protocolConfig, setHeaders } from './extproc-harness';
import { liveEpp } from './live-epp';

jest.setTimeout(INTEGRATION_TEST_TIMEOUT_MS);

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- {type: queue-scorer}\n';
const GIE = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- {type: queue-scorer}\n';

describe('a body without a model', () => {
  const live = liveEpp();
  const start = (config: string) => live.start(1, '--config-text', config);

  async function send(body: object, headers: Record<string, string> = {}): Promise<{ status?: string; message?: string; forwarded?: unknown }> {
    const s = live.envoy!.open();
    s.send({ ...requestHeaders({ ':method': 'POST', ':path': '/v1/completions', ':authority': 'gw', 'content-type': 'application/json', ...headers }, false), ...protocolConfig('FULL_DUPLEX_STREAMED', 'NONE') });
    s.send(requestBody(Buffer.from(JSON.stringify(body)), true));
    const first = await s.next();
    if (first.immediate_response) {
      s.cancel();
      return { status: first.immediate_response.status.code, message: JSON.parse(first.immediate_response.body.toString()).error.message };
    }
    expect(setHeaders(first.request_headers.response.header_mutation)['x-gateway-destination-endpoint']).toBe(`127.0.0.1:${live.pods[0]!.port}`);
    const forwarded = JSON.parse(Buffer.concat((await readStreamedBody(s, 'request_body')).chunks).toString());
    s.cancel();
    return { forwarded };
  }

  const errors = async () => (await live.metrics())
    .split('\n').filter((l) => l.startsWith('inference_objective_request_error_total{'));

  test("llm-d's form: missing or empty is 400 BadRequest; the rewrite header gives it the model it is forwarded as", async () => {
    await start(LLMD);
    expect(await send({ prompt: 'hello world' })).toEqual({ status: 'BadRequest', message: 'model not found in request body' });
    expect(await send({ model: '', prompt: 'hello world' })).toEqual({ status: 'BadRequest', message: 'model not found in request body' });
    expect(await send({ prompt: 'hello world' }, { 'x-llm-d-model-name-rewrite': 'served' })).toEqual({ forwarded: { prompt: 'hello world', model: 'served' } });
    expect(await errors()).toEqual([expect.stringMatching(/error_code="BadRequest".*\} 2$/)]);
  });

  test("GIE's form: missing is 400 whatever the headers say; an empty string is a model (a string, mutateModel's only check)", async () => {
    await start(GIE);
    expect(await send({ prompt: 'hello world' })).toEqual({ status: 'BadRequest', message: 'model not found in request body' });
    expect(await send({ prompt: 'hello world' }, { 'x-gateway-model-name-rewrite': 'served' })).toEqual({ status: 'BadRequest', message: 'model not found in request body' });
    expect(await send({ model: '', prompt: 'hello world' })).toEqual({ forwarded: { model: '', prompt: 'hello world' } });
  });
});
