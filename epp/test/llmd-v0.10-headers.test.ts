/**
 * llm-d's router renamed the EPP's request headers in v0.9.0 (#1161) and reads GIE's names as deprecated aliases,
 * the current name first (llm-d-router v0.10.0 `pkg/epp/metadata/consts.go`: `ObjectiveKey`, `FlowFairnessIDKey`,
 * `ModelNameRewriteKey`, `headerAliases`, `GetLowerCaseHeaderValue`). kvroute reads both, in that order.
 */
import { createEppMetrics } from '../src/metrics';
import type { IncomingRequest } from '../src/extproc/request-director';
import { FlowControlQueue } from '../src/requestcontrol/flow-control';
import {
  FAIRNESS_ID_HEADER,
  LLMD_FAIRNESS_ID_HEADER,
  LLMD_MODEL_REWRITE_HEADER,
  LLMD_OBJECTIVE_HEADER,
  MODEL_REWRITE_HEADER,
  OBJECTIVE_HEADER,
  RequestControl,
} from '../src/requestcontrol/request-control';
import { defaultEndpointPickerConfig } from '../src/config';
import { buildScheduler } from '../src/scheduling/scheduler';
import { staticPool } from './static-pool';
import type { Datastore } from '../src/datastore/datastore';

const post = (headers: Record<string, string>): IncomingRequest => ({
  requestId: 'r',
  headers: new Map([[':method', 'POST'], [':path', '/v1/completions'], ['content-type', 'application/json'], ...Object.entries(headers)]),
  body: Buffer.from(JSON.stringify({ model: 'm', prompt: 'hello' })),
  filterMetadata: {},
});

describe('llm-d-router v0.10.0 request header names (pkg/epp/metadata/consts.go headerAliases)', () => {
  let ds: Datastore;
  let director: RequestControl;
  let metrics: ReturnType<typeof createEppMetrics>;
  beforeEach(() => {
    ds = staticPool(2);
    metrics = createEppMetrics();
    director = new RequestControl({
      datastore: ds,
      scheduler: buildScheduler(defaultEndpointPickerConfig()),
      metrics: metrics.collectors,
      poolName: 'pool',
      flowControl: { queue: new FlowControlQueue({ maxQueued: 4, maxWaitMs: 1000, maxDispatchPerCall: 1 }), objectives: new Map([['batch', -5], ['chat', 7]]), recordEveryRequest: true },
    });
  });
  afterEach(() => {
    director.close();
    ds.stop();
  });

  /** Routes one request; what it was forwarded as, and the flow-control and request series it was counted in. */
  async function route(headers: Record<string, string>): Promise<{ model: string; page: string }> {
    const d = await director.route(post(headers));
    if (d.kind !== 'route') throw new Error(`expected a route, got ${JSON.stringify(d)}`);
    director.release(d.ticket, 'completed');
    const model = d.body !== undefined ? (JSON.parse(d.body.toString()) as { model: string }).model : 'm';
    return { model, page: await metrics.registry.metrics() };
  }

  test.each([
    ['llm-d\'s names', { [LLMD_MODEL_REWRITE_HEADER]: 'm-v2', [LLMD_OBJECTIVE_HEADER]: 'batch', [LLMD_FAIRNESS_ID_HEADER]: 'tenant-a' }],
    ['GIE\'s names (llm-d\'s deprecated aliases)', { [MODEL_REWRITE_HEADER]: 'm-v2', [OBJECTIVE_HEADER]: 'batch', [FAIRNESS_ID_HEADER]: 'tenant-a' }],
    ['both, llm-d\'s winning', {
      [LLMD_MODEL_REWRITE_HEADER]: 'm-v2', [MODEL_REWRITE_HEADER]: 'm-v9',
      [LLMD_OBJECTIVE_HEADER]: 'batch', [OBJECTIVE_HEADER]: 'chat',
      [LLMD_FAIRNESS_ID_HEADER]: 'tenant-a', [FAIRNESS_ID_HEADER]: 'tenant-z',
    }],
  ])('%s: the rewrite target is forwarded, the objective sets the priority, the fairness id names the flow', async (_name, headers) => {
    const { model, page } = await route(headers);
    expect(model).toBe('m-v2');
    expect(page).toContain('inference_objective_request_total{model_name="m",target_model_name="m-v2",priority="-5"} 1');
    expect(page).toMatch(/inference_extension_flow_control_request_queue_duration_seconds_count\{fairness_id="tenant-a",priority="-5",outcome="Dispatched",inference_pool="pool",model_name="m",target_model_name="m-v2"\} 1/);
    expect(page).not.toContain('m-v9');
    expect(page).not.toContain('tenant-z');
    expect(page).not.toContain('priority="7"');
  });

  test('an empty value under llm-d\'s name is what the request says: GIE\'s name is not read behind it', async () => {
    const { model, page } = await route({ [LLMD_OBJECTIVE_HEADER]: '', [OBJECTIVE_HEADER]: 'chat', [LLMD_FAIRNESS_ID_HEADER]: '', [FAIRNESS_ID_HEADER]: 'tenant-z' });
    expect(model).toBe('m');
    expect(page).toContain('inference_objective_request_total{model_name="m",target_model_name="m",priority="0"} 1');
    expect(page).not.toContain('tenant-z');
  });
});
