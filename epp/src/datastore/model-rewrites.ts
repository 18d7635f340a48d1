/**
 * GIE's InferenceModelRewrite (`inference.networking.x-k8s.io/v1alpha2`, new in v1.5.0): rules that rewrite the body's
 * `model` to one of several weighted targets, for traffic splits, A/B tests and canary rollouts of a model or LoRA
 * adapter behind one public name. What is kept and which rule wins mirror GIE v1.5.0
 * (`pkg/epp/datastore/modelrewritestore.go`, `apix/v1alpha2/inferencemodelrewrite_types.go`); the weighted draw
 * mirrors `pkg/epp/requestcontrol/director.go` (selectWeightedModel).
 */

/** One weighted destination of a rule. */
export interface ModelRewriteTarget {
  /** The model name the request is forwarded as. */
  readonly modelRewrite: string;
  /** Share of the rule's traffic: weight ÷ the rule's total. 0 when unset (all unset: an even split). */
  readonly weight: number;
}

/** The rule that applies to a model, and the resource it came from (the metric's `model_rewrite_name`). */
export interface ModelRewriteRule {
  readonly rewriteName: string;
  readonly targets: readonly ModelRewriteTarget[];
}

/** What the request path asks: the rule for the body's model, if any. */
export interface ModelRewrites {
  rule(model: string): ModelRewriteRule | undefined;
}

interface KeptRule extends ModelRewriteRule {
  /** Milliseconds since the epoch: the older resource wins a tie. */
  readonly created: number;
  /** The `spec.poolRef.group` the resource names (the CRD's default when unset). */
  readonly poolGroup: string;
}

/** A `spec.poolRef.group` when unset: the CRDs' default (`PoolObjectReference`, v1.5.0). */
const DEFAULT_POOL_REF_GROUP = 'inference.networking.k8s.io';

/** The pool group a v1alpha2 resource's `spec.poolRef` names: its `group`, else the CRDs' default. */
export function poolRefGroup(poolRef: { readonly group?: unknown } | undefined): string {
  return typeof poolRef?.group === 'string' && poolRef.group !== '' ? poolRef.group : DEFAULT_POOL_REF_GROUP;
}

/**
 * The pool's InferenceModelRewrites, kept as GIE's store keeps them: a rule with `matches` applies to each model named
 * by an exact match, a rule without applies to every model; an exact rule beats a generic one, then the older resource
 * (creation timestamp) wins, then the earlier rule within a resource. Resources are given whole (`set`) and replace
 * their earlier version.
 */
export class ModelRewriteStore implements ModelRewrites {
  /** The resources kept, by name. */
  private readonly names = new Set<string>();
  private exact = new Map<string, KeptRule[]>();
  private generic: KeptRule[] = [];

  constructor(private readonly poolGroup: () => string | undefined = () => undefined) {}

  /** Number of resources kept. */
  get size(): number {
    return this.names.size;
  }

  /**
   * Keeps (or replaces) the resource `obj`, an InferenceModelRewrite as the API server returns it. A resource with no
   * name is ignored; rules whose targets are missing or unusable are dropped (see `parseRule`).
   */
  set(obj: unknown): void {
    const name = (obj as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
    if (typeof name !== 'string') return;
    const meta = (obj as { metadata: { creationTimestamp?: unknown } }).metadata;
    const spec = (obj as { spec?: { poolRef?: { group?: unknown }; rules?: unknown } }).spec;
    const created = typeof meta.creationTimestamp === 'string' ? Date.parse(meta.creationTimestamp) : NaN;
    const poolGroup = poolRefGroup(spec?.poolRef);
    const rules: { readonly rule: KeptRule; readonly models: readonly string[] | undefined }[] = [];
    for (const raw of Array.isArray(spec?.rules) ? spec.rules : []) {
      const parsed = parseRule(raw);
      if (parsed === undefined) continue;
      rules.push({ rule: { rewriteName: name, targets: parsed.targets, created: Number.isFinite(created) ? created : 0, poolGroup }, models: parsed.models });
    }
    this.names.add(name);
    this.rebuild(new Map(rules.map((r) => [r.rule, r.models])), name);
  }

  /** Forgets the resource `name` (deleted, or no longer referring to this pool). */
  delete(name: string): void {
    if (!this.names.delete(name)) return;
    this.rebuild(new Map(), name);
  }

  /** Forgets every resource (a relist starts over). */
  clear(): void {
    this.names.clear();
    this.exact = new Map();
    this.generic = [];
  }

  /**
   * The winning rule for `model` among resources that refer to this pool's group (all of them while the pool's group
   * is unknown), or undefined when none applies.
   */
  rule(model: string): ModelRewriteRule | undefined {
    const group = this.poolGroup();
    const fits = (r: KeptRule): boolean => group === undefined || r.poolGroup === group;
    return this.exact.get(model)?.find(fits) ?? this.generic.find(fits);
  }

  /**
   * Replaces resource `name`'s rules in both lookups by `added` (rule → its exact models, undefined for generic), then
   * orders each list by creation time. `Array.prototype.sort` is stable, so a resource's own rules stay in list order
   * (GIE's spec: "the FIRST matching rule (in list order) is used"; its Go `sort.Slice` is not stable).
   */
  private rebuild(added: ReadonlyMap<KeptRule, readonly string[] | undefined>, name: string): void {
    const byAge = (a: KeptRule, b: KeptRule): number => a.created - b.created;
    const generic = this.generic.filter((r) => r.rewriteName !== name);
    const exact = new Map<string, KeptRule[]>();
    for (const [model, rules] of this.exact) {
      const kept = rules.filter((r) => r.rewriteName !== name);
      if (kept.length > 0) exact.set(model, kept);
    }
    for (const [rule, models] of added) {
      if (models === undefined) {
        generic.push(rule);
        continue;
      }
      for (const model of models) {
        const list = exact.get(model);
        if (list === undefined) exact.set(model, [rule]);
        else if (!list.includes(rule)) list.push(rule);
      }
    }
    generic.sort(byAge);
    for (const list of exact.values()) list.sort(byAge);
    this.generic = generic;
    this.exact = exact;
  }
}

/**
 * One rule of a resource: its exact models (undefined when `matches` is empty or absent: it applies to every model)
 * and its targets. A rule without a usable target is dropped: the CRD requires at least one (`MinItems=1`), and GIE
 * would forward such a request with an empty model. A target needs a non-empty `modelRewrite`; a weight that is not a
 * positive integer counts as unset (0), as Go reads an absent `weight`.
 */
function parseRule(raw: unknown): { readonly models: readonly string[] | undefined; readonly targets: readonly ModelRewriteTarget[] } | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { matches, targets } = raw as { matches?: unknown; targets?: unknown };
  const kept: ModelRewriteTarget[] = [];
  for (const t of Array.isArray(targets) ? targets : []) {
    const { modelRewrite, weight } = (t ?? {}) as { modelRewrite?: unknown; weight?: unknown };
    if (typeof modelRewrite !== 'string' || modelRewrite === '') continue;
    kept.push({ modelRewrite, weight: typeof weight === 'number' && Number.isInteger(weight) && weight > 0 ? weight : 0 });
  }
  if (kept.length === 0) return undefined;
  if (!Array.isArray(matches) || matches.length === 0) return { models: undefined, targets: kept };
  const models = new Set<string>();
  for (const m of matches) {
    const value = (m as { model?: { value?: unknown } } | null)?.model?.value;
    if (typeof value === 'string' && value !== '') models.add(value);
  }
  // Matches that name no model match nothing (GIE indexes such a rule under no model at all).
  return { models: [...models], targets: kept };
}

/**
 * GIE's weighted draw: a uniform integer below the total weight picks the target whose cumulative weight first exceeds
 * it; all weights 0 (unset) split evenly. `random` returns [0, 1).
 */
export function selectWeightedTarget(targets: readonly ModelRewriteTarget[], random: () => number): string {
  let total = 0;
  for (const t of targets) total += t.weight;
  if (total === 0) return targets[Math.floor(random() * targets.length)]!.modelRewrite;
  const draw = Math.floor(random() * total);
  let cumulative = 0;
  for (const t of targets) {
    cumulative += t.weight;
    if (draw < cumulative) return t.modelRewrite;
  }
  return targets[targets.length - 1]!.modelRewrite;
}
