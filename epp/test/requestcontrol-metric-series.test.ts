/**
 * Request control keeps each request metric's series resolved (per model / target model pair, per pod, per pick) instead
 * of passing a label object to `inc`/`observe` on every request (epp/README.md, "Where the CPU goes", sixth round).
 * These tests drive a seeded mix of models, model rewrites, priorities, pods and outcomes, with a registry reset in the
 * middle, and compare the exposition with what label-object updates produce: every series, its value and its place in
 * the page (series are listed in the order first used).
 */
import { seededRandom } from '@kvroute/testkit';
import { parsePrometheusText } from '@kvroute/protocol/prometheus';
import { defaultEndpointPickerConfig } from '../src/config';
import type { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest, RouteDecision } from '../src/extproc/request-director';
import { createEppMetrics, EPP_METRICS } from '../src/metrics';
import { RequestControl, MODEL_REWRITE_HEADER, PRIORITY_HEADER } from '../src/requestcontrol/request-control';
import { buildScheduler } from '../src/scheduling/scheduler';
import { freshenMetrics, staticPool } from './static-pool';

type Labels = Record<string, string>;

/** A metric as label-object updates leave it: series by label set in first-use order. */
class Reference {
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  add(labels: Labels, by: number): void {
    const key = JSON.stringify(labels);
    const s = this.series.get(key);
    if (s === undefined) this.series.set(key, { labels, value: by });
    else s.value += by;
  }

  /** prom-client's reset: a counter or gauge drops its series, a histogram keeps them at zero. */
  reset(keepSeries: boolean): void {
    if (!keepSeries) this.series.clear();
    else for (const s of this.series.values()) s.value = 0;
  }

  samples(): { labels: Labels; value: number }[] {
    return [...this.series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value }));
  }
}

describe('request control\'s resolved metric series', () => {
  let ds: Datastore;
  beforeEach(() => { ds = staticPool(4); });
  afterEach(() => ds.stop());

  test('leave the same exposition as label-object updates: values, series order, a rewrite\'s labels, a reset in the middle', async () => {
    const metrics = createEppMetrics();
    // The cap at its top: the header priorities the exposition is compared on are the ones sent.
    const control = new RequestControl({ datastore: ds, scheduler: buildScheduler(defaultEndpointPickerConfig(), { metrics: metrics.scheduling }), metrics: metrics.collectors, maxHeaderPriority: 100 });
    const ref = {
      total: new Reference(),
      running: new Reference(),
      sizesCount: new Reference(),
      sizesSum: new Reference(),
      durationCount: new Reference(),
      attempts: new Reference(),
      picks: new Reference(),
    };
    const random = seededRandom(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const open: { ticket: unknown; model: string; target: string }[] = [];
    const release = (i: number, outcome: 'completed' | 'cancelled' | 'error') => {
      const [r] = open.splice(i, 1);
      control.release(r!.ticket, outcome);
      ref.running.add({ model_name: r!.model }, -1);
      if (outcome === 'completed') ref.durationCount.add({ model_name: r!.model, target_model_name: r!.target }, 1);
    };
    for (let i = 0; i < 600; i++) {
      if (i === 300) {
        await metrics.registry.resetMetrics();
        for (const [name, r] of Object.entries(ref)) r.reset(name.startsWith('sizes') || name.startsWith('duration'));
      }
      const model = pick(['qwen', 'llama', 'mistral']);
      const rewrite = pick([undefined, undefined, 'qwen-lora', 'llama']);
      const priority = pick([undefined, '3', '-2', ' 7 ']);
      const headers = new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['content-type', 'application/json']]);
      if (rewrite !== undefined) headers.set(MODEL_REWRITE_HEADER, rewrite);
      if (priority !== undefined) headers.set(PRIORITY_HEADER, priority);
      const body = { model, messages: [{ role: 'user', content: `request ${i} ${'x'.repeat(Math.floor(random() * 300))}` }] };
      const req: IncomingRequest = { requestId: `r${i}`, headers, body: Buffer.from(JSON.stringify(body)), filterMetadata: {} };
      // 600 routes on a loaded CI machine can outlast the saturation filter's 1 s staleness: keep the pods fresh.
      freshenMetrics(ds);
      const d = (await control.route(req)) as Extract<RouteDecision, { kind: 'route' }>;
      expect(d.kind).toBe('route');
      const target = rewrite ?? model;
      const pod = Number(d.endpoint.split('.')[3]!.split(':')[0]) - 1;
      ref.attempts.add({ status: 'success', target_model_name: target, pod_name: `p${pod}`, namespace: 'ns', port: '8000' }, 1);
      ref.picks.add({ destination_endpoint: d.endpoint }, 1);
      ref.total.add({ model_name: model, target_model_name: target, priority: String(priority === undefined ? 0 : Number(priority)) }, 1);
      ref.sizesCount.add({ model_name: model, target_model_name: target }, 1);
      // The body forwarded, rewritten when it is (GIE v1.5.0 director.go repackage sets RequestSize to its length).
      ref.sizesSum.add({ model_name: model, target_model_name: target }, (d.body ?? req.body!).length);
      ref.running.add({ model_name: model }, 1);
      open.push({ ticket: d.ticket, model, target });
      // Requests end out of order, some still open across the reset.
      while (open.length > 0 && random() < 0.55) release(Math.floor(random() * open.length), pick(['completed', 'completed', 'cancelled', 'error']));
    }
    while (open.length > 0) release(0, 'completed');

    const families = parsePrometheusText(await metrics.registry.metrics()).families;
    const samples = (name: string, sampleName = name) =>
      (families.get(name)?.samples ?? []).filter((s) => s.name === sampleName).map((s) => ({ labels: { ...s.labels }, value: s.value }));
    expect(samples(EPP_METRICS.requestTotal.name)).toEqual(ref.total.samples());
    expect(samples(EPP_METRICS.runningRequests.name)).toEqual(ref.running.samples());
    expect(samples(EPP_METRICS.schedulerAttempts.name)).toEqual(ref.attempts.samples());
    expect(samples(EPP_METRICS.picks.name)).toEqual(ref.picks.samples());
    expect(samples(EPP_METRICS.requestSizes.name, `${EPP_METRICS.requestSizes.name}_count`)).toEqual(ref.sizesCount.samples());
    expect(samples(EPP_METRICS.requestSizes.name, `${EPP_METRICS.requestSizes.name}_sum`)).toEqual(ref.sizesSum.samples());
    expect(samples(EPP_METRICS.requestDuration.name, `${EPP_METRICS.requestDuration.name}_count`)).toEqual(ref.durationCount.samples());
    // The mix really exercised what it claims to.
    expect(ref.total.samples().length).toBeGreaterThan(20);
    expect(ref.running.samples().some((s) => s.value < 0)).toBe(true); // requests counted before the reset, ended after it
  });
});
