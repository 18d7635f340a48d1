import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import * as ef from '../imports/envoyfilter-networking.istio.io';
import * as gw from '../imports/gateway-gateway.networking.k8s.io';
import * as route from '../imports/httproute-gateway.networking.k8s.io';
import { DecodePool } from './decode-pool';
import { EXT_PROC_STATS_INCLUSION_REGEX } from './envoy-metrics';
import type { InferencePool } from './inference-pool';
import {
  checkDns1035Label, checkDnsLabel, checkDuration, checkGatewayApiDuration, checkGatewayHostname, checkOneOf, checkPort,
  PropsError, toProtoDuration,
} from './validation';

/** The pod annotation Istio's agent merges into the proxy's ProxyConfig. */
export const PROXY_CONFIG_ANNOTATION = 'proxy.istio.io/config';
/** ProxyConfig (JSON, which the annotation's YAML parser reads) asking Envoy to create its ext_proc counters. */
export const EXT_PROC_STATS_PROXY_CONFIG = JSON.stringify({ proxyStatsMatcher: { inclusionRegexps: [EXT_PROC_STATS_INCLUSION_REGEX] } });

export const HTTP_CONNECTION_MANAGER_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/**
 * How much longer than `max_message_timeout` the gateway's `request_timeout` must be: it also covers the client's
 * upload (the 8 MiB body buffer at 1 MB/s) and the request headers' round trip to the EPP, which run before the hold.
 */
export const REQUEST_RECEIVE_UPLOAD_MARGIN = '10s';

/** Props of {@link InferenceGateway}. */
export interface InferenceGatewayProps {
  readonly namespace: string;
  /** The decode pool the `/v1` route sends to (its Service on the sidecar port). */
  readonly decodePool: DecodePool;
  /**
   * Gateway name; Istio deploys `<name>-<gatewayClassName>` (Deployment and Service, `<name>-istio` by default) for it,
   * so the name is a DNS-1035 label and, with the class, at most 62 characters (`<name>-<class>` a Service name of at
   * most 63). Two stacks in one namespace would share it: see `KvAwareRouting`'s one stack per namespace.
   * @default 'llm-d-gateway'
   * @see https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#rfc-1035-label-names
   */
  readonly name?: string;
  /**
   * The GatewayClass; it ends the name of the Service Istio creates (`<name>-<class>`), so it is a DNS-1123 label.
   * @default 'istio'
   * @see https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/ ("Automated Deployment")
   */
  readonly gatewayClassName?: string;
  /**
   * Host clients send: a Gateway API hostname, a lower-case DNS name that may start with a `*.` wildcard label
   * (`*.llm.example.com`), never an IP address.
   * @default 'llm-d.demo.local'
   * @see https://gateway-api.sigs.k8s.io/reference/spec/#hostname
   */
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
   * Route the `/v1` requests to this InferencePool instead of the decode Service: Istio's native Gateway API Inference
   * Extension support (Istio >= 1.28, `inference.networking.k8s.io/v1`, istiod with
   * `ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true`) then calls the pool's EPP itself and no ext_proc EnvoyFilter is
   * needed. `/v1/models` still goes to the decode Service.
   * @default the decode Service (kvroute's EnvoyFilter wires the EPP)
   */
  readonly inferencePool?: InferencePool;
  /**
   * Whole-request timeout on the `/v1` route (HTTPRoute `timeouts.request`, Envoy's route timeout, which starts once
   * the request has been forwarded and ends with the last response byte). Streaming generations can last minutes;
   * "0s" disables it (as llm-d does) and leaves the bound to vLLM's `max_tokens` and `idleTimeout`. A Gateway API
   * duration: 1 to 4 parts, each a whole number of at most 5 digits with unit h, m, s or ms ("300s", "1h30m"; not "1.5s").
   * @default '0s'
   * @see https://gateway-api.sigs.k8s.io/geps/gep-2257/
   */
  readonly requestTimeout?: string;
  /**
   * How long the gateway waits for the whole request to be received and passed on (Envoy's connection-manager
   * `request_timeout`): client upload plus the time the EPP holds the request. The one bound on a hung EPP that works
   * with every ext_proc mode (Envoy never starts ext_proc's message timer for FULL_DUPLEX_STREAMED bodies, and
   * Istio's native integration uses only those). Expiry answers 408 while the request is still arriving and 504 once it has
   * arrived (the EPP held it), as Envoy's `maybeRequestTimeoutCode` decides. It keeps running while ext_proc holds the
   * buffered request ("disarmed when the last byte of the request is sent upstream", http_connection_manager.proto
   * field 28), so with `buffered` bodies `ExtProcRouting` refuses one that does not exceed `extProc.maxMessageTimeout`
   * by more than {@link REQUEST_RECEIVE_UPLOAD_MARGIN}: it would answer 504 before the EPP's pick or 429 arrives.
   * "0s" leaves it off, Istio's default.
   * @default '60s'
   * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
   */
  readonly requestReceiveTimeout?: string;
  /**
   * Ends a request, on any route, after this long without a byte in either direction (Envoy's connection-manager
   * `stream_idle_timeout`): a pod that accepts the connection and never answers, or stalls mid-stream (504 before
   * response headers, a reset after), or a client that stalls mid-upload (408). It must exceed the longest wait for a
   * first byte: vLLM sends a streaming response's headers at once and then one event per token, but a non-streaming
   * response only when the generation is done; and no byte moves while the EPP holds a request in flow control, so
   * with `buffered` bodies `ExtProcRouting` refuses one that does not exceed `extProc.maxMessageTimeout`. The default
   * is Envoy's own default for the field (5 minutes), which never applies under Istio: Istio sets
   * `stream_idle_timeout` to 0s on every connection manager it builds, so this is the only idle bound the gateway has.
   * It ends a pod hung for minutes, not one that stalls for seconds. A pool whose clients all stream can set less, so a
   * hung pod's requests end (504) that much sooner; a pool serving long non-streaming generations needs more. "0s"
   * leaves the gateway with no idle bound at all.
   * @default '300s'
   * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto (stream_idle_timeout)
   */
  readonly idleTimeout?: string;
  /**
   * Type of the Service Istio creates for the gateway, set through the Gateway's `spec.infrastructure.parametersRef`: a
   * ConfigMap `<gateway>-parameters` whose `service` overlay Istio merges into the Service it renders (istio/istio
   * `pilot/pkg/config/kube/gateway/deploymentcontroller.go` `fetchParameters`, `applyOverlay` @ 1.27.0 to 1.29.0,
   * `gatewaycommon/deploymentcontroller.go` @ 1.30.0). Not the `networking.istio.io/service-type` annotation: Istio
   * 1.27 to 1.30 still apply it but report the Gateway `Accepted: False` (reason `DeprecateFieldUsage`,
   * `conversion.go` `extractGatewayServices`), which GitOps health checks and `kubectl wait` read as a failed Gateway.
   * @default Istio's default, LoadBalancer
   */
  readonly serviceType?: 'ClusterIP' | 'LoadBalancer' | 'NodePort';
  /**
   * Make the gateway's Envoy export its ext_proc counters (`envoy_http_ext_proc_*`, which kvroute's fail-open alerts
   * read): Istio creates only the stats on its inclusion list, so the Gateway's `spec.infrastructure.annotations`
   * carry `proxy.istio.io/config` with a `proxyStatsMatcher` for them, which Istio copies onto the gateway pods (see
   * `lib/envoy-metrics.ts`). Infrastructure annotations replace the Gateway's own as the pods' annotations. With
   * `false`, export them another way (mesh-wide, `meshConfig.defaultConfig.proxyStatsMatcher`): otherwise the fail-open
   * and slow-EPP alerts can never fire, and `KvrouteGatewayExtProcStatsMissing` keeps warning that they are blind.
   * @default true
   */
  readonly exportExtProcStats?: boolean;
}

/**
 * Request headers the llm-d routing sidecar acts on that a client must not set: the prefill worker it would send the
 * prompt to (`x-prefiller-host-port`, and `x-prefiller-url` in later sidecars).
 */
export const ROUTING_SIDECAR_CLIENT_HEADERS: readonly string[] = Object.freeze(['x-prefiller-host-port', 'x-prefiller-url']);

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
  /**
   * Labels Istio puts on the gateway's pods (they run in the Gateway's namespace): its automated deployment labels the
   * pod template `gateway.networking.k8s.io/gateway-name: <Gateway name>` (istio/istio
   * manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml @ 1.27.0, unchanged through 1.30.0). The
   * EPP's NetworkPolicy admits ext_proc calls from these pods only.
   */
  public readonly podLabels: Readonly<Record<string, string>>;
  public readonly gateway: gw.Gateway;
  public readonly inferenceRoute: route.HttpRoute;
  public readonly modelsRoute?: route.HttpRoute;
  /** The ConfigMap the Gateway's `infrastructure.parametersRef` names (the Service type overlay); only with `serviceType`. */
  public readonly parametersConfigMap?: k8s.KubeConfigMap;
  /** The gateway's own Envoy settings (timeouts); absent when every timeout is off. */
  public readonly timeoutsFilter?: ef.EnvoyFilter;
  /** Envoy's connection-manager `request_timeout`, as given ("0s": off). */
  public readonly requestReceiveTimeout: string;
  /** Envoy's connection-manager `stream_idle_timeout`, as given ("0s": off). */
  public readonly idleTimeout: string;

  constructor(scope: Construct, id: string, props: InferenceGatewayProps) {
    super(scope, id);
    const S = 'InferenceGateway';
    this.namespace = checkDnsLabel(S, 'namespace', props.namespace);
    this.name = checkDns1035Label(S, 'name', props.name ?? 'llm-d-gateway');
    // Istio's deployment controller names the gateway's Deployment and Service `<name>-<class>` (istio/istio
    // `getDefaultName`, `GetDefaultName` in later releases): a Service name, so a DNS-1035 label of at most 63 characters.
    this.gatewayClassName = checkDnsLabel(S, 'gatewayClassName', props.gatewayClassName ?? 'istio', 61);
    const maxName = 63 - 1 - this.gatewayClassName.length;
    if (this.name.length > maxName) {
      throw new PropsError(S, 'name', `must be at most ${maxName} characters with gatewayClassName "${this.gatewayClassName}" (Istio names the gateway's Service "<name>-<class>", at most 63 characters)`, this.name);
    }
    this.hostname = checkGatewayHostname(S, 'hostname', props.hostname ?? 'llm-d.demo.local');
    this.port = checkPort(S, 'port', props.port ?? 80);
    const timeout = checkGatewayApiDuration(S, 'requestTimeout', props.requestTimeout ?? '0s');
    this.requestReceiveTimeout = checkDuration(S, 'requestReceiveTimeout', props.requestReceiveTimeout ?? '60s');
    this.idleTimeout = checkDuration(S, 'idleTimeout', props.idleTimeout ?? '300s');
    const pool = props.inferencePool;
    if (pool !== undefined && pool.apiVersion !== 'inference.networking.k8s.io/v1') {
      throw new PropsError(S, 'inferencePool', 'must be an InferencePool of inference.networking.k8s.io/v1 (what Istio >= 1.28 routes to natively)', pool.apiVersion);
    }
    if (props.serviceType !== undefined) {
      checkOneOf(S, 'serviceType', props.serviceType, ['ClusterIP', 'LoadBalancer', 'NodePort'] as const);
    }
    this.serviceName = `${this.name}-${this.gatewayClassName}`;
    this.podLabels = { 'gateway.networking.k8s.io/gateway-name': this.name };
    const decode = props.decodePool;

    if (props.serviceType !== undefined) {
      // A strategic-merge overlay on the Service Istio renders from kube-gateway.yaml (whose `type` is the class
      // default, LoadBalancer); the ConfigMap lives in the Gateway's namespace, where Istio looks it up.
      this.parametersConfigMap = new k8s.KubeConfigMap(this, 'Parameters', {
        metadata: { name: `${this.name}-parameters`, namespace: this.namespace },
        data: { service: `spec:\n  type: ${props.serviceType}\n` },
      });
    }
    const infrastructure = {
      ...(props.exportExtProcStats ?? true ? { annotations: { [PROXY_CONFIG_ANNOTATION]: EXT_PROC_STATS_PROXY_CONFIG } } : {}),
      ...(this.parametersConfigMap ? { parametersRef: { group: '', kind: 'ConfigMap', name: this.parametersConfigMap.name } } : {}),
    };

    this.gateway = new gw.Gateway(this, 'Gateway', {
      metadata: { name: this.name, namespace: this.namespace },
      spec: {
        gatewayClassName: this.gatewayClassName,
        ...(Object.keys(infrastructure).length > 0 ? { infrastructure } : {}),
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
    // An InferencePool backend has no port: the pool's targetPorts say where its endpoints listen.
    const inferenceBackendRefs = pool ? [{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: pool.name, weight: 1 }] : backendRefs;

    this.inferenceRoute = new route.HttpRoute(this, 'InferenceRoute', {
      metadata: { name: this.name, namespace: this.namespace },
      spec: {
        parentRefs,
        hostnames: [this.hostname],
        rules: [{
          // PathPrefix matches whole path elements: /v1 covers /v1/completions and /v1/chat/completions, not /v1beta.
          matches: [{ path: { type: route.HttpRouteSpecRulesMatchesPathType.PATH_PREFIX, value: '/v1' } }],
          // llm-d's routing sidecar on every decode pod sends a completion's prefill to whatever host:port these
          // headers name (llm-d-routing-sidecar v0.2.0 proxy.go, chat_completions.go; its SSRF protection is off by
          // default), and only the EPP is meant to set them (for P/D, which this pool does not run): a client's are
          // removed before the request leaves the gateway.
          filters: [{
            type: route.HttpRouteSpecRulesFiltersType.REQUEST_HEADER_MODIFIER,
            requestHeaderModifier: { remove: [...ROUTING_SIDECAR_CLIENT_HEADERS] },
          }],
          backendRefs: inferenceBackendRefs,
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

    // The idle bound goes on the connection manager, so it covers every route (`/v1/models` too) and the stream before
    // its route is chosen: Istio sets `stream_idle_timeout` to 0s on every connection manager it builds (istio/istio
    // pilot/pkg/networking/core/listener_builder.go buildHTTPConnectionManager, L365 @ 1.27.0, L371 @ 1.28.0 to
    // 1.30.0), and its EnvoyFilter MERGE replaces a Duration field whole (pkg/proto/merge ReplaceMergeFn).
    const hcmTimeouts = {
      ...(this.requestReceiveTimeout !== '0s' ? { request_timeout: toProtoDuration(this.requestReceiveTimeout) } : {}),
      ...(this.idleTimeout !== '0s' ? { stream_idle_timeout: toProtoDuration(this.idleTimeout) } : {}),
    };
    if (Object.keys(hcmTimeouts).length > 0) {
      this.timeoutsFilter = new ef.EnvoyFilter(this, 'Timeouts', {
        metadata: { name: `${this.name}-timeouts`, namespace: this.namespace },
        spec: {
          targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: this.name }],
          configPatches: [{
            applyTo: ef.EnvoyFilterSpecConfigPatchesApplyTo.NETWORK_UNDERSCORE_FILTER,
            match: {
              context: ef.EnvoyFilterSpecConfigPatchesMatchContext.GATEWAY,
              listener: { portNumber: this.port, filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } },
            },
            patch: {
              operation: ef.EnvoyFilterSpecConfigPatchesPatchOperation.MERGE,
              value: { typed_config: { '@type': HTTP_CONNECTION_MANAGER_TYPE, ...hcmTimeouts } },
            },
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
