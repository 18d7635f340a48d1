import { definePlugin, parameters } from '../plugin';

/**
 * The agent session headers llm-d-router v0.10.0 checks, in its order: Claude Code, OpenCode, Codex (hyphenated since
 * Codex 0.131.0), Codex's legacy underscored form (`requestheader/agentidentity/agent_identity.go`
 * defaultPriorityHeaders).
 */
export const AGENT_SESSION_HEADERS: readonly string[] = ['x-claude-code-session-id', 'x-session-affinity', 'session-id', 'session_id'];

/** The request attribute upstream publishes the identity under, which session plugins' `sessionIdConfig.sources` name. */
export const AGENT_IDENTITY_ATTRIBUTE = 'agent-identity';

export interface AgentIdentityParameters {
  /**
   * Headers checked before the built-in ones (lower-cased, order kept; the first non-empty value wins).
   * @default []
   */
  additionalSessionHeaders?: string[];
}

/**
 * `agent-identity` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/requestcontrol/requestheader/agentidentity`): a
 * request's agent session, the first non-empty of `additionalSessionHeaders` and then the built-in agent headers.
 * Request control takes it as the request's flow-control fairness id when no fairness-id header names one (upstream's
 * director.go derives `FairnessID` from the attribute, else `default-flow`), and the session plugins read it where
 * their `sessionIdConfig.sources` list `{attribute: agent-identity}`. Not listed in profiles, as upstream's request
 * header processors are not.
 */
export class AgentIdentity {
  readonly type = 'agent-identity';
  /** Every header checked, in order: the additional ones, then the built-in ones. */
  readonly headers: readonly string[];

  constructor(readonly name: string, readonly parameters: Required<AgentIdentityParameters>) {
    this.headers = [...parameters.additionalSessionHeaders, ...AGENT_SESSION_HEADERS].map((h) => h.toLowerCase());
  }

  /** The request's agent identity, or undefined when no header names one. */
  identityOf(headers: Readonly<Record<string, string>>): string | undefined {
    return firstHeaderValue(headers, this.headers);
  }
}

/** The value of the first of `names` the request carries non-empty, or undefined. */
export function firstHeaderValue(headers: Readonly<Record<string, string>>, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

/**
 * The headers the config's `agent-identity` plugins read, as one list whose first non-empty is the attribute's value:
 * upstream runs every such plugin, each writing the attribute when one of its headers matches, so the last plugin's
 * headers come first. Request control reads a request's agent session with it, and the session plugins their
 * `{attribute: agent-identity}` source.
 */
export function agentIdentityHeaders(plugins: Iterable<{ readonly type: string }>): string[] {
  return [...plugins].filter((p): p is AgentIdentity => p instanceof AgentIdentity).reverse().flatMap((p) => [...p.headers]);
}

export const agentIdentity = definePlugin({
  type: 'agent-identity',
  kinds: [],
  parameters: parameters<AgentIdentityParameters>((fields) => ({
    // Go's []string: "" is kept (it never matches a header), as upstream's mergeHeaders keeps it.
    additionalSessionHeaders: fields.stringList('additionalSessionHeaders', [], { allowEmpty: true }),
  })),
  create: (name, resolved) => new AgentIdentity(name, resolved),
});
