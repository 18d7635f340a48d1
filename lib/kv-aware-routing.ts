import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { DecodePool, DecodePoolProps } from './decode-pool';
import { EndpointPicker, EndpointPickerProps } from './endpoint-picker';
import { ExtProcRouting, ExtProcRoutingProps } from './ext-proc';
import { InferenceGateway, InferenceGatewayProps } from './gateway';
import { InferencePool, PoolFailureMode } from './inference-pool';
import { Monitoring, MonitoringProps } from './monitoring';
import { checkDnsLabel } from './validation';

/** Props of {@link KvAwareRouting}: the whole stack of one cluster in one typed object. */
export interface KvAwareRoutingProps {
  /** Namespace every object lives in. */
  readonly namespace: string;
  /**
   * Emit the Namespace object too. Turn off when the namespace is managed elsewhere (it must then exist).
   * @default true
   */
  readonly createNamespace?: boolean;
  /**
   * Base name, like a Helm release's fullname: decode objects are `<name>-decode`, the EPP `<name>-epp`.
   * @default 'ms-llm-d-modelservice' (llm-d-modelservice release `ms`)
   */
  readonly name?: string;
  /** InferencePool name (the EPP's `--pool-name`). @default the `name` value */
  readonly poolName?: string;
  /** The vLLM decode pods. */
  readonly decode: Omit<DecodePoolProps, 'namespace' | 'name'>;
  /** The Endpoint Picker. @default its defaults */
  readonly endpointPicker?: Omit<EndpointPickerProps, 'namespace' | 'name' | 'poolName'>;
  /** @default 'FailOpen' */
  readonly poolFailureMode?: PoolFailureMode;
  /** Gateway and routes. @default the seed's `llm-d-gateway` for `llm-d.demo.local` */
  readonly gateway?: Omit<InferenceGatewayProps, 'namespace' | 'decodePool'>;
  /** The ext_proc EnvoyFilter and decode DestinationRule. @default fail open, round-robin fallback */
  readonly extProc?: Omit<ExtProcRoutingProps, 'gateway' | 'endpointPicker' | 'decodePool'>;
  /**
   * Prometheus Operator monitors, rules and the Grafana dashboard; `enabled: false` leaves them out (clusters
   * without the Prometheus Operator CRDs).
   * @default enabled with the Monitoring defaults
   */
  readonly monitoring?: Omit<MonitoringProps, 'decodePool' | 'endpointPicker'> & { readonly enabled?: boolean };
}

/**
 * One cluster's KV-cache-aware routing stack: decode pool, EPP, InferencePool, gateway, the ext_proc wiring and
 * monitoring. Names, ports and selectors flow from construct to construct; nothing is repeated as a string.
 */
export class KvAwareRouting extends Chart {
  public readonly decodePool: DecodePool;
  public readonly endpointPicker: EndpointPicker;
  public readonly inferencePool: InferencePool;
  public readonly gateway: InferenceGateway;
  public readonly extProc: ExtProcRouting;
  public readonly monitoring?: Monitoring;

  constructor(scope: Construct, id: string, props: KvAwareRoutingProps, chartProps: Omit<ChartProps, 'namespace'> = {}) {
    super(scope, id, { disableResourceNameHashes: true, ...chartProps });
    const namespace = checkDnsLabel('KvAwareRouting', 'namespace', props.namespace);
    const name = checkDnsLabel('KvAwareRouting', 'name', props.name ?? 'ms-llm-d-modelservice', 48);

    if (props.createNamespace ?? true) {
      new k8s.KubeNamespace(this, 'Namespace', { metadata: { name: namespace } });
    }
    this.decodePool = new DecodePool(this, 'Decode', { ...props.decode, namespace, name });
    this.endpointPicker = new EndpointPicker(this, 'EndpointPicker', {
      ...props.endpointPicker,
      namespace,
      name: `${name}-epp`,
      poolName: props.poolName ?? name,
    });
    this.inferencePool = new InferencePool(this, 'InferencePool', {
      decodePool: this.decodePool,
      endpointPicker: this.endpointPicker,
      failureMode: props.poolFailureMode,
    });
    this.gateway = new InferenceGateway(this, 'Gateway', { ...props.gateway, namespace, decodePool: this.decodePool });
    this.extProc = new ExtProcRouting(this, 'ExtProc', {
      ...props.extProc,
      gateway: this.gateway,
      endpointPicker: this.endpointPicker,
      decodePool: this.decodePool,
    });
    const { enabled = true, ...monitoringProps } = props.monitoring ?? {};
    if (enabled) {
      this.monitoring = new Monitoring(this, 'Monitoring', {
        ...monitoringProps,
        decodePool: this.decodePool,
        endpointPicker: this.endpointPicker,
      });
    }
  }
}
