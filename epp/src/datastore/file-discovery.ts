/**
 * llm-d-router v0.10.0's `file-discovery` plugin (`pkg/epp/framework/plugins/datalayer/discovery/file/plugin.go`,
 * documented in `docs/discovery.md`): the pool's endpoints come from a YAML or JSON file rather than from an
 * InferencePool, so the EPP runs with no Kubernetes at all (bare metal, Slurm, a laptop). Selected by a config's
 * `dataLayer.discovery.pluginRef`.
 *
 * What mirrors upstream, and where kvroute differs:
 * - The file is `{endpoints: [{name, namespace?, address, port, labels?}]}`, at most 1 MiB; `namespace` defaults to
 *   "default"; an endpoint's identity is namespace/name and a later entry with the same identity replaces an earlier
 *   one (upstream's "last Upsert wins").
 * - `address` must be an IPv4 literal and `port` a string holding an integer 1-65535 (upstream decodes `port` into a Go
 *   string, so an unquoted YAML number fails the whole file; the error here says to quote it). Label values are
 *   strings for the same reason.
 * - An entry with an invalid address or port is skipped and reported, the valid ones applied (`load` joins the
 *   errors). At startup any error fails the EPP; on a reload it is logged and what was valid is applied, endpoints
 *   missing from the new file (invalid ones included) being removed, as upstream's source does. (Its docs say a failed
 *   reload keeps the previous state; that holds for a file that cannot be read or parsed, which changes nothing.)
 * - `name` is required here (upstream's docs call it required; its source takes an empty one).
 * - kvroute's datastore keys endpoints by `address:port` (the pick sent to Envoy), so two identities at one address
 *   and port are one endpoint: the later entry is kept and a warning logged, where upstream would keep two endpoints
 *   routing to the same server.
 * - `watchFile: true` re-reads the file when it changes: upstream watches it with fsnotify and re-attaches after an
 *   atomic rename or a ConfigMap's symlink swap; kvroute watches the file's directory, which sees all three, and
 *   skips a reload whose bytes are those last applied.
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { isIPv4 } from 'node:net';
import { basename, dirname } from 'node:path';
import { parse } from 'yaml';
import type { Datastore } from './datastore';
import { endpointKey } from './endpoint-key';
import type { Discovery } from './static-discovery';
import type { Endpoint } from './types';

/** `maxEndpointsFileSize` in upstream's plugin.go. */
export const MAX_ENDPOINTS_FILE_BYTES = 1 << 20;

/** The namespace of an entry that names none (plugin.go `load`). */
export const DEFAULT_ENDPOINT_NAMESPACE = 'default';

/** How long a burst of file-system events is gathered into one reload (an editor's save is several events). */
const RELOAD_DEBOUNCE_MS = 50;
/** How long after a watcher error the file's directory is watched again. */
const REWATCH_MS = 1000;

export class EndpointsFileError extends Error {
  constructor(readonly path: string, readonly problems: readonly string[]) {
    super(`endpoints file ${path}: ${problems.join('; ')}`);
    this.name = 'EndpointsFileError';
  }
}

/** What one read of the file gave: the endpoints to apply, and the entries skipped with why. */
export interface EndpointsFileReading {
  readonly endpoints: readonly Endpoint[];
  /** Entries skipped (bad address or port, no name): the file still applies without them. */
  readonly entryErrors: readonly string[];
  /** Entries that replaced an earlier one at the same `address:port` under another name. */
  readonly warnings: readonly string[];
}

/**
 * Parses an endpoints file's text. Throws `EndpointsFileError` when the file as a whole is unusable (too large, not
 * YAML/JSON, not the expected shape): upstream's `load` then returns before changing anything.
 */
export function parseEndpointsFile(text: string, path: string): EndpointsFileReading {
  if (Buffer.byteLength(text) > MAX_ENDPOINTS_FILE_BYTES) throw new EndpointsFileError(path, ['exceeds the 1 MiB limit']);
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new EndpointsFileError(path, [`not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`]);
  }
  // An empty file or a `null` document is an empty list, as json.Unmarshal of `null` into the file's struct is.
  if (doc === null || doc === undefined) return { endpoints: [], entryErrors: [], warnings: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new EndpointsFileError(path, [`must be a map with an "endpoints" list, got ${describe(doc)}`]);
  const list = (doc as Record<string, unknown>).endpoints;
  if (list === undefined || list === null) return { endpoints: [], entryErrors: [], warnings: [] };
  if (!Array.isArray(list)) throw new EndpointsFileError(path, [`endpoints: must be a list, got ${describe(list)}`]);

  // Shape errors fail the whole file, as json.Unmarshal does upstream; value errors skip one entry.
  const shapeErrors: string[] = [];
  const entryErrors: string[] = [];
  const byIdentity = new Map<string, Endpoint>();
  list.forEach((item, index) => {
    const at = `endpoints[${index}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      shapeErrors.push(`${at}: must be a map of name, namespace, address, port, labels, got ${describe(item)}`);
      return;
    }
    const entry = fieldsOf(item as Record<string, unknown>);
    for (const field of ['name', 'namespace', 'address', 'port'] as const) {
      const value = entry[field];
      if (value !== undefined && value !== null && typeof value !== 'string') {
        shapeErrors.push(`${at}.${field}: must be a string${field === 'port' ? ' (quote it: port: "8000")' : ''}, got ${describe(value)}`);
      }
    }
    const labels = entry.labels;
    if (labels !== undefined && labels !== null) {
      if (typeof labels !== 'object' || Array.isArray(labels)) shapeErrors.push(`${at}.labels: must be a map of strings, got ${describe(labels)}`);
      else {
        for (const [k, v] of Object.entries(labels)) {
          // A null value decodes to "" in a Go map[string]string.
          if (typeof v !== 'string' && v !== null) shapeErrors.push(`${at}.labels.${k}: must be a string (quote it), got ${describe(v)}`);
        }
      }
    }
    if (shapeErrors.length > 0) return;
    const name = (entry.name as string | undefined) ?? '';
    const namespace = (entry.namespace as string | undefined) || DEFAULT_ENDPOINT_NAMESPACE;
    const address = (entry.address as string | undefined) ?? '';
    const portText = (entry.port as string | undefined) ?? '';
    const label = name === '' ? at : `endpoint ${JSON.stringify(name)}`;
    if (name === '') {
      entryErrors.push(`${at}: name is required`);
      return;
    }
    if (!isIPv4(address)) {
      entryErrors.push(`${label}: invalid IPv4 address ${JSON.stringify(address)}`);
      return;
    }
    // strconv.Atoi then 1-65535, as upstream checks it.
    const port = /^[+-]?\d+$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      entryErrors.push(`${label}: invalid port ${JSON.stringify(portText)}`);
      return;
    }
    const identity = `${namespace}/${name}`;
    byIdentity.delete(identity); // a re-upsert moves it last, so the key map below sees it in upsert order
    byIdentity.set(identity, Object.freeze({
      key: endpointKey(address, port),
      name,
      namespace,
      address,
      port,
      labels: Object.freeze(Object.fromEntries(Object.entries((labels ?? {}) as Record<string, string | null>).map(([k, v]) => [k, v ?? '']))),
    }));
  });
  if (shapeErrors.length > 0) throw new EndpointsFileError(path, shapeErrors);

  const byKey = new Map<string, Endpoint>();
  const warnings: string[] = [];
  for (const ep of byIdentity.values()) {
    const earlier = byKey.get(ep.key);
    if (earlier !== undefined) {
      warnings.push(`endpoint ${ep.namespace}/${ep.name} has the address ${ep.key} of ${earlier.namespace}/${earlier.name}: one endpoint, ${ep.namespace}/${ep.name} kept`);
      byKey.delete(ep.key);
    }
    byKey.set(ep.key, ep);
  }
  return { endpoints: [...byKey.values()], entryErrors, warnings };
}

/**
 * An entry's fields by their canonical names: Go's encoding/json matches a field name case-insensitively when no exact
 * match exists (`Address:` fills `address`), as upstream decodes the file.
 */
function fieldsOf(entry: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of ['name', 'namespace', 'address', 'port', 'labels']) {
    if (Object.prototype.hasOwnProperty.call(entry, field)) {
      out[field] = entry[field];
      continue;
    }
    const key = Object.keys(entry).find((k) => k.toLowerCase() === field);
    if (key !== undefined) out[field] = entry[key];
  }
  return out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return `${typeof value} ${JSON.stringify(value)}`;
}

export interface FileDiscoveryOptions {
  /** The endpoints file (upstream's `path` parameter). */
  readonly path: string;
  /** Re-read it when it changes (upstream's `watchFile`). @default false */
  readonly watchFile?: boolean;
  readonly log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** The pool's endpoints from a file (`file-discovery`); synced after the first successful read. */
export class FileDiscovery implements Discovery {
  private started = false;
  private error: Error | undefined;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  private reloads = 0;

  constructor(private readonly datastore: Datastore, private readonly options: FileDiscoveryOptions) {
    if (options.path === '') throw new Error("file-discovery: 'path' parameter is required");
  }

  get synced(): boolean {
    return this.started;
  }

  get lastError(): Error | undefined {
    return this.error;
  }

  /** How many reloads have applied a changed file since start. */
  get reloadCount(): number {
    return this.reloads;
  }

  /** Loads the file; rejects (and applies nothing) when it cannot be read or has any invalid entry. */
  async start(): Promise<void> {
    const text = this.read();
    const reading = parseEndpointsFile(text, this.options.path);
    if (reading.entryErrors.length > 0) throw new EndpointsFileError(this.options.path, reading.entryErrors);
    this.apply(text, reading);
    this.started = true;
    this.datastore.setPoolSynced(true);
    if (this.options.watchFile) this.watch();
  }

  async stop(): Promise<void> {
    this.started = false;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    this.datastore.setPoolSynced(false);
  }

  private read(): string {
    const path = this.options.path;
    let size: number;
    try {
      size = statSync(path).size;
    } catch (e) {
      throw new EndpointsFileError(path, [`cannot be read: ${(e as Error).message}`]);
    }
    // Checked before reading, so a runaway file is never loaded whole.
    if (size > MAX_ENDPOINTS_FILE_BYTES) throw new EndpointsFileError(path, ['exceeds the 1 MiB limit']);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new EndpointsFileError(path, [`cannot be read: ${(e as Error).message}`]);
    }
  }

  private apply(text: string, reading: EndpointsFileReading): void {
    for (const w of reading.warnings) this.options.log?.('warn', `file-discovery: ${w}`);
    const { added, removed } = this.datastore.replaceEndpoints(reading.endpoints);
    this.lastText = text;
    this.options.log?.('info', `file-discovery: ${reading.endpoints.length} endpoints from ${this.options.path}` +
      (added.length + removed.length > 0 ? ` (added ${added.join(', ') || 'none'}; removed ${removed.join(', ') || 'none'})` : ''));
  }

  private watch(): void {
    const file = basename(this.options.path);
    // The directory, not the file: an atomic rename or a ConfigMap's `..data` symlink swap replaces the file's inode,
    // after which a watch on the file itself would hear nothing more.
    this.watcher = watch(dirname(this.options.path), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== file && !String(changed).startsWith('..')) return;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reload(), RELOAD_DEBOUNCE_MS);
      this.debounce.unref();
    });
    // fsnotify's errors do not end upstream's loop; a Node watcher that errs is closed, so watch again after a pause.
    this.watcher.on('error', (e) => {
      this.options.log?.('error', `file-discovery: watching ${this.options.path} failed (watching again in ${REWATCH_MS} ms): ${e.message}`);
      this.watcher?.close();
      this.watcher = undefined;
      setTimeout(() => {
        if (!this.started || this.watcher !== undefined) return;
        try {
          this.watch();
          this.reload();
        } catch (err) {
          this.options.log?.('error', `file-discovery: cannot watch ${this.options.path} again: ${(err as Error).message}`);
        }
      }, REWATCH_MS).unref();
    });
  }

  private reload(): void {
    this.debounce = undefined;
    if (!this.started) return;
    let text: string;
    let reading: EndpointsFileReading;
    try {
      text = this.read();
      if (text === this.lastText) return;
      reading = parseEndpointsFile(text, this.options.path);
    } catch (e) {
      // Unreadable or unparsable: nothing changes (upstream logs "failed to reload endpoints file").
      this.error = e as Error;
      this.options.log?.('error', `file-discovery: reload failed, endpoints unchanged: ${(e as Error).message}`);
      return;
    }
    this.reloads++;
    this.apply(text, reading);
    if (reading.entryErrors.length > 0) {
      this.error = new EndpointsFileError(this.options.path, reading.entryErrors);
      this.options.log?.('error', `file-discovery: reloaded without the invalid entries: ${this.error.message}`);
    } else {
      this.error = undefined;
    }
  }
}
