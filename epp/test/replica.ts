/**
 * One EPP replica for tests of what replicas share: its own datastore of four pods (`p0`..`p3` in namespace `ns`,
 * no scraping), scheduler and request control, so two instances share nothing but what the config points them at.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { Datastore } from '../src/datastore/datastore';
import type { IncomingRequest } from '../src/extproc/request-director';
import { createEppMetrics, type EppMetrics } from '../src/metrics';
import { RequestControl } from '../src/requestcontrol/request-control';
import { buildScheduler, type Scheduler } from '../src/scheduling/scheduler';

export const PODS = ['p0', 'p1', 'p2', 'p3'];

/**
 * A config whose session-affinity-filter shares bindings through the store at `storeAddress`, with a queue scorer to
 * tell pods apart. `keyPrefix` left out keeps the EPP's default (what stacks that share a store used to collide on);
 * `extra` adds parameter lines to the store's block.
 */
export function sessionStoreConfig(storeAddress: string, options: { keyPrefix?: string; extra?: string } = {}): string {
  const keyPrefix = options.keyPrefix !== undefined ? `      keyPrefix: ${JSON.stringify(options.keyPrefix)}\n` : '';
  return `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-filter
  parameters:
    ttl: 30m
    sessionStore:
      address: ${JSON.stringify(storeAddress)}
${keyPrefix}      timeout: 1s
${options.extra ?? ''}
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-filter
  - pluginRef: queue-scorer
`;
}

/**
 * One EPP replica: a datastore of the four pods where `favourite` has the shortest queue (so without a shared store
 * each replica would send a new session to its own favourite), the scheduler from `config` and request control.
 */
export class Replica {
  readonly datastore = new Datastore({ scrape: false });
  readonly metrics: EppMetrics = createEppMetrics();
  readonly scheduler: Scheduler;
  readonly control: RequestControl;

  /** The picked pod's response headers hook result for the last routed request (e.g. llm-d's session token). */
  lastResponseHeaders: Readonly<Record<string, string>> | undefined;

  constructor(configText: string, favourite: string, now: () => number = Date.now) {
    for (const [i, name] of PODS.entries()) {
      const address = `10.0.0.${i + 1}`;
      this.datastore.upsertEndpoint({ key: `${address}:8000`, name, namespace: 'ns', address, port: 8000, labels: {} });
      this.datastore.setMetrics(`${address}:8000`, { waitingQueueSize: name === favourite ? 0 : 5, updateTime: Date.now() });
    }
    this.scheduler = buildScheduler(parseEndpointPickerConfig(configText), { metrics: this.metrics.scheduling, now });
    this.control = new RequestControl({ datastore: this.datastore, scheduler: this.scheduler, metrics: this.metrics.collectors });
  }

  static async start(configText: string, favourite: string, now?: () => number): Promise<Replica> {
    const replica = new Replica(configText, favourite, now);
    await replica.scheduler.plugins.start();
    return replica;
  }

  /**
   * Routes one chat request carrying `x-session-id: session` (and any `extra` headers), runs the response hooks as
   * the response headers arrive, and returns the picked pod's name.
   */
  async route(session: string | undefined, extra: Record<string, string> = {}): Promise<string> {
    const headers = new Map([[':method', 'POST'], [':path', '/v1/chat/completions'], ['content-type', 'application/json'], ...Object.entries(extra)]);
    if (session !== undefined) headers.set('x-session-id', session);
    const req: IncomingRequest = {
      requestId: `r-${Math.random()}`, headers, filterMetadata: {},
      body: Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] })),
    };
    const decision = await this.control.route(req);
    if (decision.kind !== 'route') throw new Error(`not routed: ${JSON.stringify(decision)}`);
    this.lastResponseHeaders = this.control.responseHeaders(decision.ticket, new Map([[':status', '200']]));
    this.control.release(decision.ticket, 'completed');
    return this.datastore.get(decision.endpoint)!.name;
  }

  async count(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.metrics.registry.getSingleMetric(name);
    if (metric === undefined) throw new Error(`no metric ${name}`);
    const { values } = await metric.get();
    return values
      .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
      .reduce((sum, v) => sum + v.value, 0);
  }

  /** Reads that fell back to the local bindings (timeout, error or not connected). */
  async fallbacks(): Promise<number> {
    const name = 'kvroute_epp_session_store_operations_total';
    return (await this.count(name, { operation: 'read', outcome: 'timeout' }))
      + (await this.count(name, { operation: 'read', outcome: 'error' }))
      + (await this.count(name, { operation: 'read', outcome: 'unavailable' }));
  }

  async connected(): Promise<boolean> {
    return (await this.count('kvroute_epp_session_store_connected')) === 1;
  }

  async stop(): Promise<void> {
    await this.scheduler.plugins.close();
    this.datastore.stop();
  }
}
