/**
 * Flow control's defaults, in one place for the config loader, the EPP's flags and the docs. Why each value:
 */
export const FLOW_CONTROL_DEFAULTS = {
  // On: a saturated pool queues briefly instead of answering a 429 storm (issue 9).
  enabled: true,
  // At the pool's drain rate of tens to hundreds of requests a second, 1,024 waiting requests are seconds of backlog,
  // beyond which a 429 tells the client more than a wait.
  maxQueued: 1024,
  // A waiting request holds its body (up to the EnvoyFilter's 8 MiB buffer) and the prompt parsed from it, one to two
  // times the body again (two bytes a character outside Latin-1): 1,024 bodies of 1-100 KB fit easily, 1,024 of 8 MiB
  // would not fit the EPP's 1 GiB. 128 MiB of bodies keeps the queue's worst case at 256-384 MiB, beside the index and
  // the scrapers. Only the body is counted. GIE bounds bytes too (`flowcontrol/registry/config.go`: 1 GB per priority
  // band by default, an optional global `limits.maxBytes`), sized for an EPP with more memory.
  maxQueuedBytes: 128 * 1024 * 1024,
  // GIE leaves its DefaultRequestTTL unset (the client's context bounds the wait); kvroute bounds it so a waiting
  // request always ends. Behind an Envoy whose ext_proc message_timeout is shorter, Envoy fails the request open at
  // its timeout first, and the EPP drops it from the queue when Envoy resets the stream.
  defaultRequestTTL: '30s',
  // 4 a tick at 50 ms = at most 80 releases a second from the queue on top of the one per finished request: a backlog
  // drains over the next scrapes, which see the load it added, instead of landing on the pods in one burst.
  dispatchPerTick: 4,
  // The scrape interval: a pod's queue can only be seen draining that often.
  dispatchInterval: '50ms',
  // `x-kvroute-priority` comes from the client unless the gateway sets or strips it, and GIE takes priorities only
  // from the operator's InferenceObjectives: by default a client may lower its own priority (mark itself sheddable)
  // but not raise it above requests without an objective, nor shed other tenants' sheddable requests with it.
  maxHeaderPriority: 0,
} as const;

/**
 * Priorities from `x-kvroute-priority` lie within ±this (the header is a client's, and each value it takes is a label
 * value); an InferenceObjective's, a `flowControl.objectives` entry's and a priority band's may be any integer, as in GIE.
 */
export const MAX_FLOW_PRIORITY = 100;
