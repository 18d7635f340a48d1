import type { Endpoint } from '../../datastore/types';
import type { PostResponse, ResponseInfo } from '../../requestcontrol/hooks';
import type { LLMRequest } from '../types';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/** The response header the verifier writes (GIE `pkg/epp/framework/plugins/requestcontrol/test/consts.go` @ v1.5.0). */
export const CONFORMANCE_TEST_RESULT_HEADER = 'x-conformance-test-served-endpoint';
/** Envoy's load-balancing metadata namespace and the key naming the endpoint that served (GIE `pkg/epp/metadata/consts.go`). */
const LB_NAMESPACE = 'envoy.lb';
const SERVED_KEY = 'x-gateway-destination-endpoint-served';

/**
 * `destination-endpoint-served-verifier`: for testing only. At the response headers it copies the endpoint that served
 * the request, which the gateway reports in the `envoy.lb` dynamic metadata under `x-gateway-destination-endpoint-served`,
 * to the response header `x-conformance-test-served-endpoint`; without that metadata the header says why
 * (`fail: missing envoy lb metadata`, `fail: missing destination endpoint served metadata`). GIE v1.5.0's conformance
 * EPP config lists it beside `header-based-testing-filter` (`conformance/resources/base.yaml`), so its tests can check
 * which pod served.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/requestcontrol/test/responsereceived/destination_endpoint_served_verifier.go @ v1.5.0
 */
export class DestinationEndpointServedVerifier implements PostResponse {
  readonly type = 'destination-endpoint-served-verifier';

  constructor(readonly name: string) {}

  postResponse(_request: LLMRequest, response: ResponseInfo, _target: Endpoint): Readonly<Record<string, string>> {
    const lb = response.metadata[LB_NAMESPACE];
    if (lb === undefined || lb === null || typeof lb !== 'object') return { [CONFORMANCE_TEST_RESULT_HEADER]: 'fail: missing envoy lb metadata' };
    const served = lb[SERVED_KEY];
    if (typeof served !== 'string') return { [CONFORMANCE_TEST_RESULT_HEADER]: 'fail: missing destination endpoint served metadata' };
    return { [CONFORMANCE_TEST_RESULT_HEADER]: served };
  }
}

export const destinationEndpointServedVerifier = definePlugin({
  type: 'destination-endpoint-served-verifier',
  kinds: ['post-response'],
  parameters: NO_PARAMETERS,
  create: (name) => new DestinationEndpointServedVerifier(name),
});
