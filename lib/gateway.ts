import { Construct } from 'constructs';
import * as gw from '../imports/gateway-gateway.networking.k8s.io';
import * as route from '../imports/httproute-gateway.networking.k8s.io';
import { DecodePool } from './decode-pool';
import { checkDnsLabel, checkDnsSubdomain, checkDuration, checkOneOf, checkPort } from './validation';

/** Props of {@link InferenceGateway}. */
export interface InferenceGatewayProps {
  readonly namespace: string;
  /** The decode pool the `/v1` route sends to (its Service on the sidecar port). */
  readonly decodePool: DecodePool;
  /** Gateway name; Istio deploys `<name>-istio` (Deployment and Service) for it. @default 'llm-d-gateway' */
  readonly name?: string;
  /** @default 'istio' */
  readonly gatewayClassName?: string;
  /** Host clients send. @default 'llm-d.demo.local' */
  readonly hostname?: string;
  /** HTTP listener port. @default 80 */
  readonly port?: number;
  /**
   * Add a separate route for `GET /v1/models` on which the EnvoyFilter disables ext_proc: a listing needs no pick
   * and should not depend on the EPP.
   * @default true
   */
  readonly plainModelsRoute?: boolean;
  /**
   * Whole-request timeout on the `/v1` route. Streaming generations can last minutes; "0s" disables it (as llm-d
   * does) and leaves the bound to vLLM's `max_tokens`.
   * @default '0s'
   */
  readonly requestTimeout?: string;
  /**
   * Type of the Service Istio creates for the gateway (annotation `networking.istio.io/service-type`).
   * @default Istio's default, LoadBalancer
   */
  readonly serviceType?: 'ClusterIP' | 'LoadBalancer' | 'NodePort';
}

/**
 * The Gateway API entry point: an Istio-class `Gateway` and the `HTTPRoute`s for `/v1` (and `/v1/models`) to the
 * decode Service. Exposes the names Istio derives (gateway Service, Envoy vhost and route names) so the EnvoyFilter
 * can target them without repeating strings.
 */
export class InferenceGateway extends Construct {
  public readonly namespace: string;
  public readonly name: string;
  public readonly gatewayClassName: string;
  public readonly hostname: string;
  public readonly port: number;
  /** The Service Istio's gateway deployment controller creates: `<gateway>-<class>`. */
  public readonly serviceName: string;
  /** Labels Istio puts on the gateway's pods. */
  public readonly podLabels: Readonly<Record<string, string>>;
  public readonly gateway: gw.Gateway;
  public readonly inferenceRoute: route.HttpRoute;
  public readonly modelsRoute?: route.HttpRoute;

  constructor(scope: Construct, id: string, props: InferenceGatewayProps) {
    super(scope, id);
    const S = 'InferenceGateway';
    this.namespace = checkDnsLabel(S, 'namespace', props.namespace);
    this.name = checkDnsLabel(S, 'name', props.name ?? 'llm-d-gateway');
    this.gatewayClassName = checkDnsSubdomain(S, 'gatewayClassName', props.gatewayClassName ?? 'istio');
    this.hostname = checkDnsSubdomain(S, 'hostname', props.hostname ?? 'llm-d.demo.local');
    this.port = checkPort(S, 'port', props.port ?? 80);
    const timeout = checkDuration(S, 'requestTimeout', props.requestTimeout ?? '0s');
    if (props.serviceType !== undefined) {
      checkOneOf(S, 'serviceType', props.serviceType, ['ClusterIP', 'LoadBalancer', 'NodePort'] as const);
    }
    this.serviceName = `${this.name}-${this.gatewayClassName}`;
    this.podLabels = { 'gateway.networking.k8s.io/gateway-name': this.name };
    const decode = props.decodePool;

    this.gateway = new gw.Gateway(this, 'Gateway', {
      metadata: {
        name: this.name,
        namespace: this.namespace,
        annotations: props.serviceType ? { 'networking.istio.io/service-type': props.serviceType } : undefined,
      },
      spec: {
        gatewayClassName: this.gatewayClassName,
        listeners: [{
          name: 'http',
          port: this.port,
          protocol: 'HTTP',
          hostname: this.hostname,
          allowedRoutes: { namespaces: { from: gw.GatewaySpecListenersAllowedRoutesNamespacesFrom.SAME } },
        }],
      },
    });

    const parentRefs = [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: this.name, sectionName: 'http' }];
    const backendRefs = [{ group: '', kind: 'Service', name: decode.serviceName, port: decode.servicePort, weight: 1 }];

    this.inferenceRoute = new route.HttpRoute(this, 'InferenceRoute', {
      metadata: { name: this.name, namespace: this.namespace },
      spec: {
        parentRefs,
        hostnames: [this.hostname],
        rules: [{
          // PathPrefix matches whole path elements: /v1 covers /v1/completions and /v1/chat/completions, not /v1beta.
          matches: [{ path: { type: route.HttpRouteSpecRulesMatchesPathType.PATH_PREFIX, value: '/v1' } }],
          backendRefs,
          timeouts: { request: timeout },
        }],
      },
    });

    if (props.plainModelsRoute ?? true) {
      this.modelsRoute = new route.HttpRoute(this, 'ModelsRoute', {
        metadata: { name: `${this.name}-models`, namespace: this.namespace },
        spec: {
          parentRefs,
          hostnames: [this.hostname],
          rules: [{
            matches: [{
              path: { type: route.HttpRouteSpecRulesMatchesPathType.EXACT, value: '/v1/models' },
              method: route.HttpRouteSpecRulesMatchesMethod.GET,
            }],
            backendRefs,
          }],
        },
      });
    }
  }

  /** Envoy virtual host Istio builds for the listener: `<hostname>:<port>`. */
  public get vhostName(): string {
    return `${this.hostname}:${this.port}`;
  }

  /** Envoy route name Istio gives rule `ruleIndex` of an HTTPRoute without rule names: `<ns>.<route>.<index>`. */
  public envoyRouteName(httpRoute: route.HttpRoute, ruleIndex = 0): string {
    return `${this.namespace}.${httpRoute.metadata.name}.${ruleIndex}`;
  }
}
