import { isIPv4, isIPv6 } from 'node:net';
import type { Datastore } from './datastore';
import { endpointKey } from './endpoint-key';
import type { Endpoint } from './types';

/** What the server's health and startup need from any discovery source. */
export interface Discovery {
  /** Begins discovery; rejects only on configuration errors (a bad kubeconfig, bad endpoint list). */
  start(): Promise<void>;
  /** Stops watching; endpoints already in the datastore are left there. */
  stop(): Promise<void>;
  /** The pool's endpoint set is known (the EPP may report SERVING). */
  readonly synced: boolean;
  /** The last thing that went wrong, e.g. the pool not existing; undefined while healthy. */
  readonly lastError: Error | undefined;
}

export class EndpointSpecError extends Error {
  constructor(
    /** The offending entry as written. */
    readonly entry: string,
    /** Its 0-based position in the list. */
    readonly index: number,
    reason: string,
  ) {
    super(`invalid endpoint #${index + 1} "${entry}": ${reason}`);
    this.name = 'EndpointSpecError';
  }
}

/**
 * Parses `--endpoints host:port,host:port` into endpoints. Hosts are IPv4 addresses, DNS names, or IPv6 addresses in
 * brackets (`[::1]:8000`). Every entry must be valid and distinct; the error names the first one that is not.
 */
export function parseEndpointList(spec: string | readonly string[]): Endpoint[] {
  const entries = typeof spec === 'string' ? spec.split(',') : [...spec];
  if (entries.length === 0 || (entries.length === 1 && (entries[0] ?? '').trim() === '')) throw new Error('endpoint list is empty');
  const seen = new Map<string, number>();
  const out: Endpoint[] = [];
  entries.forEach((raw, index) => {
    const ep = parseEndpoint(raw, index);
    const prior = seen.get(ep.key);
    if (prior !== undefined) throw new EndpointSpecError(raw, index, `duplicates endpoint #${prior + 1} (${ep.key})`);
    seen.set(ep.key, index);
    out.push(ep);
  });
  return out;
}

function parseEndpoint(raw: string, index: number): Endpoint {
  const entry = raw.trim();
  const fail = (reason: string): never => {
    throw new EndpointSpecError(raw, index, reason);
  };
  if (entry === '') fail('empty entry');
  if (/\s/.test(entry)) fail('contains whitespace');

  let host: string;
  let portText: string;
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close === -1) fail('missing "]" after the IPv6 address');
    host = entry.slice(1, close);
    const rest = entry.slice(close + 1);
    if (!rest.startsWith(':')) fail('expected ":port" after "]"');
    portText = rest.slice(1);
    if (!isIPv6(host)) fail(`"${host}" is not an IPv6 address`);
    host = host.toLowerCase();
  } else {
    const colons = entry.split(':').length - 1;
    if (colons === 0) fail('missing ":port"');
    if (colons > 1) fail(isIPv6(entry) ? 'an IPv6 address needs brackets and a port, e.g. [::1]:8000' : 'IPv6 addresses must be in brackets, e.g. [::1]:8000');
    const i = entry.lastIndexOf(':');
    host = entry.slice(0, i).toLowerCase();
    portText = entry.slice(i + 1);
    if (host === '') fail('missing host');
    if (/^[\d.]+$/.test(host)) {
      if (!isIPv4(host)) fail(`"${host}" is not a valid IPv4 address`);
    } else if (!isDnsName(host)) {
      fail(`"${host}" is not a valid host name`);
    }
  }

  if (portText === '') fail('missing port');
  if (!/^\d{1,5}$/.test(portText)) fail(`port "${portText}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) fail(`port ${port} is out of range 1-65535`);

  const key = endpointKey(host, port);
  return Object.freeze({ key, name: key, namespace: '', address: host, port, labels: Object.freeze({}) });
}

function isDnsName(host: string): boolean {
  if (host.length > 253) return false;
  return host.split('.').every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label));
}

/** A fixed endpoint list (`--endpoints`), for local runs without Kubernetes. Synced as soon as it starts. */
export class StaticDiscovery implements Discovery {
  readonly endpoints: readonly Endpoint[];
  private started = false;

  constructor(private readonly datastore: Datastore, endpoints: string | readonly string[] | readonly Endpoint[]) {
    this.endpoints =
      typeof endpoints === 'string' || endpoints.every((e): e is string => typeof e === 'string')
        ? parseEndpointList(endpoints as string | readonly string[])
        : (endpoints as readonly Endpoint[]);
  }

  get synced(): boolean {
    return this.started;
  }

  get lastError(): Error | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    this.datastore.replaceEndpoints(this.endpoints);
    this.started = true;
    this.datastore.setPoolSynced(true);
  }

  async stop(): Promise<void> {
    this.started = false;
    this.datastore.setPoolSynced(false);
  }
}
