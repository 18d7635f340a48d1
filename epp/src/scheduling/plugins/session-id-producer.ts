import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';
import type { SessionIdRead } from '../../sessions/llmd-session-affinity';
import { definePlugin, parameters } from '../plugin';
import { AGENT_IDENTITY_ATTRIBUTE, agentIdentityHeaders } from './agent-identity';

/**
 * The request attribute a `session-id-producer` publishes its session id under, `SessionIDDataKey/<its name>`
 * (llm-d-router v0.10.0 `datalayer/attribute/session/data_types.go` SessionIDDataKey, `WithNonEmptyProducerName`; the
 * name defaults to the type, so `SessionIDDataKey/session-id-producer`), which session plugins' `sessionIdConfig.sources`
 * name as `{attribute: …}`.
 */
export const SESSION_ID_ATTRIBUTE_PREFIX = 'SessionIDDataKey/';

export interface SessionIdProducerParameters {
  /** The request header whose value is the session id (lower-cased and trimmed). Exactly one of this and cookieName. */
  headerName?: string;
  /** The cookie of the request's `Cookie` header whose value is the session id (trimmed). */
  cookieName?: string;
}

/**
 * `session-id-producer` (llm-d-router v0.10.0 `requestcontrol/dataproducer/sessionid/producer.go`): a request's session
 * id from a header or from a cookie, published as the request attribute `SessionIDDataKey/<name>`. Upstream runs it as a
 * DataProducer before each cycle; here the session plugins whose `sessionIdConfig.sources` name its attribute read the
 * request where it says, in that source's place (as they read `agent-identity`'s), so nothing runs for requests of
 * configs that do not read it. Not listed in profiles.
 */
export class SessionIdProducer {
  readonly type = 'session-id-producer';
  /** Where the session id is read from. */
  readonly read: SessionIdRead;
  /** The attribute its session id is published under. */
  readonly attribute: string;

  constructor(readonly name: string, readonly parameters: Required<SessionIdProducerParameters>) {
    this.read = parameters.headerName !== undefined ? parameters.headerName : { cookie: parameters.cookieName };
    this.attribute = `${SESSION_ID_ATTRIBUTE_PREFIX}${name}`;
  }
}

/**
 * The value of the cookie `name` in a `Cookie` header, or undefined when absent (producer.go cookieValue: pairs split
 * at ";", each trimmed and cut at its first "=", the first with that name winning).
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header === '') return undefined;
  for (const pair of header.split(';')) {
    const trimmed = pair.trim();
    const eq = trimmed.indexOf('=');
    if (eq >= 0 && trimmed.slice(0, eq) === name) return trimmed.slice(eq + 1);
  }
  return undefined;
}

/**
 * Where an `{attribute}` source of a session plugin reads in a config of these plugins: `agent-identity` is the headers
 * of its `agent-identity` plugins; `SessionIDDataKey/<name>` the header or cookie of the `session-id-producer` of that
 * name; none where no plugin publishes it (upstream's attribute is then never set).
 */
export function publishedAttributeReads(configPlugins: Iterable<{ readonly type: string }>): (attribute: string) => SessionIdRead[] {
  const plugins = [...configPlugins];
  return (attribute) => {
    if (attribute === AGENT_IDENTITY_ATTRIBUTE) return agentIdentityHeaders(plugins);
    const producer = plugins.find((p): p is SessionIdProducer => p instanceof SessionIdProducer && p.attribute === attribute);
    return producer !== undefined ? [producer.read] : [];
  };
}

function trimmedString(fields: FieldReader, key: string): string | undefined {
  const value = fields.raw(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ConfigError(fields.fieldPath(key), `must be a string, got ${describeValue(value)}`);
  // Upstream's zero value: "" (or blanks) is unset.
  return value.trim() === '' ? undefined : value.trim();
}

export const sessionIdProducer = definePlugin({
  type: 'session-id-producer',
  kinds: [],
  parameters: parameters<SessionIdProducerParameters>((fields) => {
    const headerName = trimmedString(fields, 'headerName')?.toLowerCase();
    const cookieName = trimmedString(fields, 'cookieName');
    // producer.go Factory's two refusals, in its words. The one field set is the one rendered.
    if (cookieName === undefined) {
      if (headerName === undefined) {
        throw new ConfigError(fields.fieldPath('headerName'), '\'session-id-producer\' requires exactly one of headerName or cookieName to be set');
      }
      return { headerName } as Required<SessionIdProducerParameters>;
    }
    if (headerName !== undefined) {
      throw new ConfigError(fields.fieldPath('cookieName'), '\'session-id-producer\' requires exactly one of headerName or cookieName to be set, not both');
    }
    return { cookieName } as Required<SessionIdProducerParameters>;
  }),
  create: (name, resolved) => new SessionIdProducer(name, resolved),
});
