import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/** The request header GIE's conformance suite names the allowed endpoints in (`pkg/epp/scheduling/framework/plugins/test`). */
export const TEST_EPP_ENDPOINT_SELECTION_HEADER = 'test-epp-endpoint-selection';

/**
 * `header-based-testing-filter`: keeps the endpoints whose address is listed, comma-separated, in the request's
 * `test-epp-endpoint-selection` header, in the header's order; no header (or an empty one) keeps none. For testing
 * only: it lets a client choose the pod. GIE's conformance EPP runs exactly this filter
 * (`conformance/resources/base.yaml` @ v1.0.0: one profile holding only it), and `GatewayFollowingEPPRouting` then
 * checks that the gateway sends each request to a pod the header named.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/test/filter/request_header_based_filter.go @ v1.0.0
 */
export class HeaderBasedTestingFilter implements Filter {
  readonly type = 'header-based-testing-filter';
  /** The client named pods that are not there: waiting will not bring them, so the request fails as 'no-endpoints'. */
  readonly emptyResultReason = 'no-endpoints' as const;

  constructor(readonly name: string) {}

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const value = cycle.request.headers[TEST_EPP_ENDPOINT_SELECTION_HEADER];
    if (value === undefined || value === '') return [];
    const byAddress = new Map<string, EndpointSnapshot>();
    // Keyed by address alone, the last candidate at an address winning, as upstream's Go map is filled.
    for (const candidate of candidates) byAddress.set(candidate.endpoint.address, candidate);
    const kept: EndpointSnapshot[] = [];
    for (const listed of value.split(',')) {
      const candidate = byAddress.get(listed.trim());
      if (candidate !== undefined) kept.push(candidate);
    }
    return kept;
  }
}

export const headerBasedTestingFilter = definePlugin({
  type: 'header-based-testing-filter',
  kinds: ['filter'],
  parameters: NO_PARAMETERS,
  create: (name) => new HeaderBasedTestingFilter(name),
});
