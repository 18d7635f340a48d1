import { OptionError } from './option-error';

/**
 * vLLM's `--kv-events-config` (vllm-project/vllm: vllm/config.py @ v0.10.0, class KVEventsConfig), with its field
 * names and defaults. At 0.10 both `enable_kv_cache_events: true` and `publisher: "zmq"` are needed for anything to be
 * published (`EventPublisherFactory.create`, vllm/distributed/kv_events.py @ v0.10.0).
 */
export interface KvEventsConfig {
  enable_kv_cache_events: boolean;
  /** "null" drops every batch; "zmq" publishes. */
  publisher: 'null' | 'zmq';
  /** PUB socket; bound when it has `*` or `::` or is ipc:// / inproc://, connected otherwise. */
  endpoint: string;
  /** ROUTER socket for replays, always bound; null = no replay. */
  replay_endpoint: string | null;
  /** Batches kept for replay. */
  buffer_steps: number;
  /** The PUB socket's send high-water mark. */
  hwm: number;
  /** Batches queued in process before the publisher drops new ones. */
  max_queue_size: number;
  topic: string;
}

export const KV_EVENTS_DEFAULTS: Readonly<KvEventsConfig> = {
  enable_kv_cache_events: false,
  publisher: 'null',
  endpoint: 'tcp://*:5557',
  replay_endpoint: null,
  buffer_steps: 10_000,
  hwm: 100_000,
  max_queue_size: 100_000,
  topic: '',
};

/** How event payloads are encoded: positional arrays (vLLM 0.10 … mid-2026) or tagged maps (vLLM #42892). */
export type KvEventsEncoding = 'positional' | 'map';
export const KV_EVENTS_ENCODINGS: readonly KvEventsEncoding[] = ['positional', 'map'];

const FLAG = '--kv-events-config';

/**
 * Parses the flag's JSON (or checks an object given in code), filling the defaults of the simulated release. Errors
 * name the field. One deliberate difference: vLLM (a pydantic dataclass) ignores unknown fields, which turns a typo
 * such as `enable_kv_cache_event` into silently disabled events; this refuses them.
 *
 * @param release `v0.10`: `publisher` defaults to `"null"` (vllm/config.py @ v0.10.0), so events need it set to
 *   `"zmq"` too; `v0.26` (what `--kv-events-encoding map` simulates): `publisher` defaults to `None` and
 *   `__post_init__` makes it `"zmq"` when `enable_kv_cache_events` is true, else `"null"` (vllm/config/kv_events.py on
 *   main), so `{"enable_kv_cache_events": true}` alone publishes on `tcp://*:5557`.
 */
export function parseKvEventsConfig(input: string | Partial<KvEventsConfig> | Record<string, unknown>, release: 'v0.10' | 'v0.26' = 'v0.10'): KvEventsConfig {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (e) {
      throw new OptionError(FLAG, `not valid JSON: ${(e as Error).message}`);
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new OptionError(FLAG, 'expected a JSON object');
  const given = raw as Record<string, unknown>;
  const out: KvEventsConfig = { ...KV_EVENTS_DEFAULTS };
  const fail = (field: string, message: string): never => {
    throw new OptionError(FLAG, `field ${JSON.stringify(field)}: ${message}`);
  };
  for (const [field, value] of Object.entries(given)) {
    switch (field) {
      case 'enable_kv_cache_events':
        if (typeof value !== 'boolean') fail(field, `expected true or false, got ${JSON.stringify(value)}`);
        out.enable_kv_cache_events = value as boolean;
        break;
      case 'publisher':
        if (value !== 'null' && value !== 'zmq') fail(field, `expected "null" or "zmq", got ${JSON.stringify(value)}`);
        out.publisher = value as 'null' | 'zmq';
        break;
      case 'endpoint':
      case 'topic':
        if (typeof value !== 'string') fail(field, `expected a string, got ${JSON.stringify(value)}`);
        out[field] = value as string;
        break;
      case 'replay_endpoint':
        if (value !== null && typeof value !== 'string') fail(field, `expected a string or null, got ${JSON.stringify(value)}`);
        out.replay_endpoint = value as string | null;
        break;
      case 'buffer_steps':
      case 'hwm':
      case 'max_queue_size':
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(field, `expected a non-negative integer, got ${JSON.stringify(value)}`);
        out[field] = value as number;
        break;
      default:
        fail(field, `unknown field (vLLM 0.10's KVEventsConfig has ${Object.keys(KV_EVENTS_DEFAULTS).join(', ')})`);
    }
  }
  if (release === 'v0.26' && given.publisher === undefined) out.publisher = out.enable_kv_cache_events ? 'zmq' : 'null';
  if (out.publisher === 'zmq') {
    if (!/^(tcp|ipc|inproc):\/\/.+/.test(out.endpoint)) fail('endpoint', `expected a ZMQ endpoint (tcp://, ipc:// or inproc://), got ${JSON.stringify(out.endpoint)}`);
    if (out.replay_endpoint !== null && !/^(tcp|ipc|inproc):\/\/.+/.test(out.replay_endpoint)) {
      fail('replay_endpoint', `expected a ZMQ endpoint (tcp://, ipc:// or inproc://), got ${JSON.stringify(out.replay_endpoint)}`);
    }
  }
  return out;
}

/** `ZmqEventPublisher._socket_setup` (vllm/distributed/kv_events.py @ v0.10.0): bind or connect the PUB socket. */
export function pubSocketBinds(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}
