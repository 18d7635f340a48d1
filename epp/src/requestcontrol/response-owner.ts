/**
 * Routes a Responses API conversation to the pod that stored it.
 *
 * vLLM keeps a stored response (and the messages it continues) in the memory of the one server that answered it
 * (`response_store`, `msg_store`; serving_responses.py @ v0.10.0), so a request continuing it (`previous_response_id`),
 * a `GET /v1/responses/{id}` and a `POST /v1/responses/{id}/cancel` succeed only on that pod: anywhere else vLLM
 * answers 404 "Response with id … not found". For a KV-cache-aware router that pod is also the right one for another
 * reason: it holds the whole conversation's prefix. A router in front of several pods has to know which pod it was.
 *
 * kvroute makes the id say it, without any state: vLLM names a response after the request's `request_id`
 * (`ResponsesRequest.request_id`, default `resp_{random_uuid()}`, protocol.py @ v0.10.0), so when a request the pod
 * will store sets none, the EPP sets one that carries the picked pod's tag (`resp_kvr` + 8 hex of the pod's tag + 32
 * random hex: still `resp_`-prefixed, as vLLM's retrieve and cancel require). A later request naming such an id is
 * routed to the pod whose tag it carries, whichever EPP replica sees it, after restarts too. An id kvroute did not
 * issue (a client's own `request_id`, a response stored before kvroute) routes as before.
 *
 * No upstream router does this (GIE v1.5.0 and llm-d route such a request by load and prefix like any other); it is
 * kvroute's own, documented in epp/README.md ("The Responses API").
 */
import { createHash, randomUUID } from 'node:crypto';
import { withLeadingMember } from './leading-member';

/** The ids kvroute issues: `resp_kvr`, the owner's tag (8 hex), then a UUID's 32 hex. */
const ISSUED_ID = /^resp_kvr([0-9a-f]{8})[0-9a-f]{32}$/;
/** `GET /v1/responses/{response_id}` and `POST /v1/responses/{response_id}/cancel` (api_server.py @ v0.10.0). */
const ID_IN_PATH = /^\/v1\/responses\/([^/?#]+)(?:\/cancel)?(?:[?#]|$)/;

/**
 * The tag of the pod at `endpointKey` (its `ip:port`): the first 8 hex digits of its SHA-256. Distinct pods share a tag
 * with probability about n²/2³³ (7.6e-6 at 256 pods); a request naming a shared tag may go to either, and vLLM answers
 * 404 from the wrong one, as it would without the tag. Unsalted, so whoever holds an id and can guess the pool's address
 * range can find the pod's address from it (pod addresses are not secrets in most clusters; the id reveals nothing else).
 */
export function ownerTag(endpointKey: string): string {
  return createHash('sha256').update(endpointKey).digest('hex').slice(0, 8);
}

/** A new response id naming the pod at `endpointKey` as its owner. */
export function issueResponseId(endpointKey: string, tagOf: (key: string) => string = ownerTag): string {
  return `resp_kvr${tagOf(endpointKey)}${randomUUID().replace(/-/g, '')}`;
}

/** The owner's tag an id kvroute issued carries; undefined for any other id. */
export function ownerTagOf(responseId: string | undefined): string | undefined {
  if (responseId === undefined) return undefined;
  return ISSUED_ID.exec(responseId)?.[1];
}

/** The response id a request path names (retrieve or cancel), or undefined. */
export function responseIdInPath(path: string | undefined): string | undefined {
  if (path === undefined || !path.startsWith('/v1/responses/')) return undefined;
  const id = ID_IN_PATH.exec(path)?.[1];
  if (id === undefined || !id.includes('%')) return id;
  try {
    return decodeURIComponent(id);
  } catch {
    return undefined;
  }
}

/**
 * The body with `"request_id":"<id>"` as its first member, or undefined when it does not start with an object. Only
 * called for bodies without a `request_id` of their own (ParsedRequestBody.storesUnnamedResponse).
 */
export function withResponseId(body: Buffer, id: string): Buffer | undefined {
  return withLeadingMember(body, 'request_id', JSON.stringify(id));
}

/** Pods' tags, computed once per endpoint key (bounded: a pool's churn of addresses cannot grow it without end). */
export class OwnerTags {
  private readonly tags = new Map<string, string>();

  constructor(private readonly maxEntries = 4096) {}

  of(endpointKey: string): string {
    let tag = this.tags.get(endpointKey);
    if (tag === undefined) {
      if (this.tags.size >= this.maxEntries) this.tags.clear();
      tag = ownerTag(endpointKey);
      this.tags.set(endpointKey, tag);
    }
    return tag;
  }
}
