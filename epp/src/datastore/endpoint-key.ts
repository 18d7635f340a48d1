import { isIPv6 } from 'node:net';

/**
 * The key an endpoint is stored under and sent to Envoy as the pick: `host:port`, with IPv6 hosts in brackets so the
 * value parses as an authority (`[fd00::1]:8000`).
 */
export function endpointKey(address: string, port: number): string {
  return isIPv6(address) || address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
