import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Filter } from '../framework';
import { definePlugin, NO_PARAMETERS } from '../plugin';

/** The request header GIE's conformance suite names the allowed endpoints in (`pkg/epp/scheduling/framework/plugins/test`). */
export const TEST_EPP_ENDPOINT_SELECTION_HEADER = 'test-epp-endpoint-selection';

/**
 * `header-based-testing-filter`: keeps the endpoints listed, comma-separated, in the request's
 * `test-epp-endpoint-selection` header, in the header's order: an entry `IP` (an IPv6 address bare or bracketed)
 * selects the endpoint at that address (the last one listed for it, as upstream's Go map is filled), `IP:port` or
 * `[IPv6]:port` only the endpoint with that port too; an endpoint selected twice (by IP) is kept once. No header (or a
 * blank one) keeps none. For testing only: it lets a client choose the pod. GIE's conformance EPP runs exactly this
 * filter (`conformance/resources/base.yaml`: one profile holding only it), and its tests name pods by `IP:port`.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/framework/plugins/scheduling/test/filter/request_header_based_filter.go @ v1.5.0
 */
export class HeaderBasedTestingFilter implements Filter {
  readonly type = 'header-based-testing-filter';
  /** The client named pods that are not there: waiting will not bring them, so the request fails as 'no-endpoints'. */
  readonly emptyResultReason = 'no-endpoints' as const;

  constructor(readonly name: string) {}

  filter(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): readonly EndpointSnapshot[] {
    const value = cycle.request.headers[TEST_EPP_ENDPOINT_SELECTION_HEADER];
    if (value === undefined || value.trim() === '') return [];
    const byIp = new Map<string, EndpointSnapshot>();
    const byIpPort = new Map<string, EndpointSnapshot>();
    for (const candidate of candidates) {
      const ip = unbracketed(candidate.endpoint.address.trim());
      if (ip === '') continue;
      byIp.set(ip, candidate);
      byIpPort.set(`${ip}:${candidate.endpoint.port}`, candidate);
    }
    const kept: EndpointSnapshot[] = [];
    const seen = new Set<string>();
    for (const raw of value.split(',')) {
      const item = raw.trim();
      if (item === '') continue;
      const split = splitHostPort(item);
      const host = unbracketed(split?.host ?? item);
      const port = split?.port ?? '';
      const candidate = port !== '' ? byIpPort.get(`${host}:${port}`) : byIp.get(host);
      if (candidate === undefined) continue;
      const ip = unbracketed(candidate.endpoint.address);
      if (seen.has(ip)) continue;
      seen.add(ip);
      kept.push(candidate);
    }
    return kept;
  }
}

/** `strings.Trim(s, "[]")`: an IPv6 address without its brackets. */
function unbracketed(s: string): string {
  return s.replace(/^[[\]]+|[[\]]+$/g, '');
}

/**
 * Go's `net.SplitHostPort` for what a header carries: `host:port` or `[host]:port` (the port may be empty); undefined
 * where Go returns an error (no port, a bare IPv6 address's extra colons, brackets out of place).
 */
function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return undefined;
    const host = s.slice(1, end);
    const port = s.slice(end + 2);
    if (host.includes('[') || host.includes(']') || port.includes('[') || port.includes(']') || port.includes(':')) return undefined;
    return { host, port };
  }
  const colon = s.lastIndexOf(':');
  if (colon < 0) return undefined;
  const host = s.slice(0, colon);
  const port = s.slice(colon + 1);
  if (host.includes(':') || host.includes('[') || host.includes(']') || port.includes('[') || port.includes(']')) return undefined;
  return { host, port };
}

export const headerBasedTestingFilter = definePlugin({
  type: 'header-based-testing-filter',
  kinds: ['filter'],
  parameters: NO_PARAMETERS,
  create: (name) => new HeaderBasedTestingFilter(name),
});
