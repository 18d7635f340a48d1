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
 * pydantic v2's lax bool from JSON (pydantic-core v2.33.2, the release pydantic 2.11 pins, which vLLM 0.10.x installs:
 * src/input/input_json.rs `validate_bool`, src/input/shared.rs `str_as_bool`): a JSON bool; one of these strings,
 * ASCII case-insensitive and not trimmed; or a number equal to 0 or 1 (an int, or a float with no fractional part).
 */
const LAX_TRUE = new Set(['1', 't', 'y', 'on', 'yes', 'true']);
const LAX_FALSE = new Set(['0', 'f', 'n', 'no', 'off', 'false']);

function laxBool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value === 0 ? false : value === 1 ? true : undefined;
  if (typeof value === 'string') {
    // `str == "0"` / `str == "1"` exactly; the words through eq_ignore_ascii_case (toLowerCase maps no non-ASCII letter
    // onto one of theirs).
    const lower = value.toLowerCase();
    if (LAX_TRUE.has(lower)) return true;
    if (LAX_FALSE.has(lower)) return false;
  }
  return undefined;
}

/**
 * pydantic v2's lax int from JSON (pydantic-core v2.33.2, src/input/input_json.rs `validate_int`, src/input/shared.rs
 * `float_as_int`, `str_as_int`, `clean_int_str`, `strip_leading_zeros`): a JSON int; a bool (1 or 0); a float with no
 * fractional part; or a string that is an integer once trimmed, after an optional sign, with leading zeros, `_` between
 * digits and a `.000…` tail allowed ("100", " 1_000 ", "+7", "0010", "5.00"; not "1e3", "1.5", "0x10", "1__0", "").
 */
const LAX_INT_STRING = /^([+-]?)(?:(?:0[0_]*)?([1-9][0-9]*(?:_[0-9]+)*)|0(?:[0_]*0)?)(?:\.0+)?$/;

function laxInt(value: unknown): number | undefined {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number') return Number.isInteger(value) ? value + 0 : undefined; // + 0: -0 is 0
  if (typeof value === 'string') {
    const m = LAX_INT_STRING.exec(value.trim());
    if (!m) return undefined;
    const digits = (m[2] ?? '0').replace(/_/g, '');
    return (m[1] === '-' ? -Number(digits) : Number(digits)) + 0;
  }
  return undefined;
}

/**
 * Parses the flag's JSON (or checks an object given in code, such as the one the dotted form `--kv-events-config.hwm
 * 100` builds), filling the defaults of the simulated release. Errors name the field.
 *
 * Values are read as vLLM reads them: `TypeAdapter(KVEventsConfig).validate_json` (vllm/engine/arg_utils.py @ v0.10.0,
 * `parse_dataclass` in `_compute_kwargs`), pydantic's lax mode, so `"true"`, `"on"`, `1` are true, and `"100"`,
 * `100.0`, `"1_000"` are integers; strings stay strict (a number is not a `topic`). Refused where pydantic refuses, plus
 * where vLLM would fail later: a `publisher` other than "null"/"zmq" (0.10's `str` field passes pydantic, then
 * `EventPublisherFactory.create` raises), a negative count, and a non-ZMQ endpoint.
 *
 * Unknown fields: 0.10's KVEventsConfig is a plain pydantic dataclass (`@config @dataclass`, vllm/config.py @ v0.10.0
 * and vllm/config/__init__.py @ v0.10.2) and pydantic's default `extra="ignore"` drops them, so at `v0.10` they are
 * ignored too and reported to `onIgnored` (a typo such as `enable_kv_cache_event` silently leaves events off on vLLM;
 * the simulator at least warns). vLLM #31541 (2026-02) made `@config` forbid extra fields, so at `v0.26` they are
 * refused.
 *
 * @param release `v0.10`: `publisher` defaults to `"null"` (vllm/config.py @ v0.10.0), so events need it set to
 *   `"zmq"` too; `v0.26` (what `--kv-events-encoding map` simulates): `publisher` defaults to `None` and
 *   `__post_init__` makes it `"zmq"` when `enable_kv_cache_events` is true, else `"null"` (vllm/config/kv_events.py on
 *   main), so `{"enable_kv_cache_events": true}` alone publishes on `tcp://*:5557`.
 * @param onIgnored called with each unknown field ignored at `v0.10`.
 */
export function parseKvEventsConfig(
  input: string | Partial<KvEventsConfig> | Record<string, unknown>,
  release: 'v0.10' | 'v0.26' = 'v0.10',
  onIgnored: (field: string) => void = () => undefined,
): KvEventsConfig {
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
      case 'enable_kv_cache_events': {
        const b = laxBool(value);
        if (b === undefined) fail(field, `expected true or false (or one of pydantic's "true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n", 1, 0), got ${JSON.stringify(value)}`);
        out.enable_kv_cache_events = b as boolean;
        break;
      }
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
      case 'max_queue_size': {
        const n = laxInt(value);
        if (n === undefined || !Number.isSafeInteger(n) || n < 0) fail(field, `expected a non-negative integer, got ${JSON.stringify(value)}`);
        out[field] = n as number;
        break;
      }
      default:
        if (release === 'v0.10') {
          onIgnored(field);
          break;
        }
        fail(field, `unknown field (KVEventsConfig forbids extra fields from vLLM #31541 on; it has ${Object.keys(KV_EVENTS_DEFAULTS).join(', ')})`);
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
