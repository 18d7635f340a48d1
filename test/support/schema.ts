import * as fs from 'fs';
import * as path from 'path';
import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import { celEnv, isCelError, parse, plan, type CelEnv, type CelInput, type CelResult } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import addFormats from 'ajv-formats';
import * as YAML from 'yaml';
import { CRDS, K8S_DEFINITIONS } from './paths';

type Schema = Record<string, unknown>;

/**
 * A kubeconform-like validator: every object is checked against the Kubernetes 1.28 definitions or its CRD's
 * `openAPIV3Schema`, with unknown fields rejected wherever the schema lists properties (kubeconform -strict), so a
 * misspelled field fails instead of being dropped silently by the API server. A CRD's CEL rules
 * (`x-kubernetes-validations`) are evaluated too, as the API server does on create ({@link CelRules}).
 */
export class ManifestValidator {
  private readonly ajv: Ajv;
  private readonly byGvk = new Map<string, ValidateFunction>();
  /** The CRDs' schemas as published, for their CEL rules (the core definitions have none in 1.28). */
  private readonly crdByGvk = new Map<string, Schema>();
  private readonly cel = new CelRules();
  private readonly objectMeta: ValidateFunction;

  constructor() {
    this.ajv = new Ajv({ strict: false, allErrors: true, logger: false, code: { regExp: goRegExp } });
    addFormats(this.ajv);
    // Kubernetes-only formats that carry no constraint ajv can check.
    for (const f of ['int-or-string', 'quantity']) this.ajv.addFormat(f, true);

    const k8s = JSON.parse(fs.readFileSync(K8S_DEFINITIONS, 'utf8')) as { definitions: Record<string, Schema> };
    const definitions = strictify(k8s.definitions) as Record<string, Schema>;
    this.ajv.addSchema({ $id: 'k8s', definitions });
    for (const [name, def] of Object.entries(definitions)) {
      const gvks = (k8s.definitions[name]['x-kubernetes-group-version-kind'] ?? []) as { group: string; version: string; kind: string }[];
      for (const gvk of gvks) {
        this.byGvk.set(key(gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version, gvk.kind),
          this.ajv.compile({ $ref: `k8s#/definitions/${name}` }));
      }
      void def;
    }
    this.objectMeta = this.ajv.compile({ $ref: 'k8s#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' });

    for (const file of fs.readdirSync(CRDS).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(CRDS, file), 'utf8'))) {
        const crd = doc.toJS() as { kind?: string; spec?: { group: string; names: { kind: string }; versions: { name: string; schema?: { openAPIV3Schema: Schema } }[] } };
        if (crd?.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
        for (const version of crd.spec.versions) {
          if (!version.schema) continue;
          const schema = strictify(version.schema.openAPIV3Schema) as Schema;
          // Some CRDs (Istio's) list only spec and status; apiVersion and kind are checked by the lookup, and
          // metadata against ObjectMeta separately.
          schema.properties = {
            ...(schema.properties as Record<string, Schema>),
            apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' },
          };
          this.byGvk.set(key(`${crd.spec.group}/${version.name}`, crd.spec.names.kind), this.ajv.compile(schema));
          this.crdByGvk.set(key(`${crd.spec.group}/${version.name}`, crd.spec.names.kind), version.schema.openAPIV3Schema);
        }
      }
    }
  }

  /** Errors for one object, as `<kind>/<name> <path>: <message>` lines; empty when valid. */
  validate(obj: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): string[] {
    const id = `${obj.kind}/${obj.metadata?.name}`;
    const validate = this.byGvk.get(key(obj.apiVersion ?? '', obj.kind ?? ''));
    if (!validate) return [`${id}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`];
    const errors: string[] = [];
    if (!validate(obj)) errors.push(...format(id, validate.errors));
    if (!this.objectMeta(obj.metadata ?? {})) errors.push(...format(`${id} metadata`, this.objectMeta.errors));
    const crd = this.crdByGvk.get(key(obj.apiVersion ?? '', obj.kind ?? ''));
    if (crd && errors.length === 0) errors.push(...this.cel.violations(crd, obj).map((v) => `${id} ${v}`));
    return errors;
  }

  knows(apiVersion: string, kind: string): boolean {
    return this.byGvk.has(key(apiVersion, kind));
  }
}

/**
 * The CEL rules of a CRD (`x-kubernetes-validations`), evaluated the way the API server does when an object is created
 * (k8s.io/apiextensions-apiserver `pkg/apiserver/schema/cel/validation.go` @ v0.28.0): the object is defaulted from the
 * schema first (`default` values of absent properties, recursively), each rule sees the value at its own node as
 * `self`, with integers as CEL `int` and `type: number` as `double`, a rule must evaluate to `true` (false or an
 * evaluation error rejects the object with the rule's `message`), and transition rules (those reading `oldSelf`) are
 * skipped, as they run on updates only. Kubernetes' own CEL libraries beyond the standard ones and the strings
 * extension (`isURL`, `quantity`, `cidr`, …) are not provided; no rule in `schemas/` uses them, and one that did would
 * fail to plan here, loudly.
 */
export class CelRules {
  private readonly env: CelEnv = celEnv({ funcs: strings });
  private readonly programs = new Map<string, (bindings: Record<string, CelInput>) => CelResult>();

  /** `<path>: <message>` for every rule the object breaks; empty when it keeps them all. */
  violations(schema: Schema, obj: unknown): string[] {
    const out: string[] = [];
    this.visit(schema, withDefaults(schema, obj), '', out);
    return out;
  }

  private visit(schema: Schema | undefined, value: unknown, at: string, out: string[]): void {
    if (!schema || value === undefined || value === null) return;
    for (const rule of (schema['x-kubernetes-validations'] ?? []) as { rule: string; message?: string }[]) {
      if (/\boldSelf\b/.test(rule.rule)) continue;
      const result = this.program(rule.rule)({ self: toCel(schema, value) });
      if (result !== true) {
        const why = isCelError(result) ? ` (evaluation error: ${result.message})` : '';
        out.push(`${at || '/'}: ${rule.message ?? `failed rule: ${rule.rule}`}${why}`);
      }
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => this.visit(schema.items as Schema | undefined, item, `${at}/${i}`, out));
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Schema)) this.visit(childSchema(schema, k), v, `${at}/${k}`, out);
    }
  }

  private program(rule: string): (bindings: Record<string, CelInput>) => CelResult {
    let p = this.programs.get(rule);
    if (!p) {
      p = plan(this.env, parse(rule)) as (bindings: Record<string, CelInput>) => CelResult;
      this.programs.set(rule, p);
    }
    return p;
  }
}

function childSchema(schema: Schema, name: string): Schema | undefined {
  const props = schema.properties as Record<string, Schema> | undefined;
  if (props?.[name]) return props[name];
  return typeof schema.additionalProperties === 'object' ? schema.additionalProperties as Schema : undefined;
}

/** The object as the API server stores it before validation: every absent property with a `default` filled in. */
function withDefaults(schema: Schema | undefined, value: unknown): unknown {
  if (!schema || value === undefined || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => withDefaults(schema.items as Schema | undefined, v));
  if (typeof value !== 'object') return value;
  const out: Schema = {};
  for (const [k, v] of Object.entries(value as Schema)) out[k] = withDefaults(childSchema(schema, k), v);
  for (const [k, s] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
    if (out[k] === undefined && s.default !== undefined) out[k] = withDefaults(s, JSON.parse(JSON.stringify(s.default)));
  }
  return out;
}

/** A JSON value as CEL sees it under this schema: objects as maps, integers as `int`, `type: number` as `double`. */
function toCel(schema: Schema | undefined, value: unknown): CelInput {
  if (Array.isArray(value)) return value.map((v) => toCel(schema?.items as Schema | undefined, v));
  if (value !== null && typeof value === 'object') {
    return new Map(Object.entries(value as Schema).map(([k, v]) => [k, toCel(schema ? childSchema(schema, k) : undefined, v)]));
  }
  if (typeof value === 'number' && schema?.type !== 'number' && Number.isInteger(value)) return BigInt(value);
  return value as CelInput;
}

/**
 * CRD patterns are Go RE2 syntax; the one construct JavaScript lacks here is the `(?i)` flag group (Istio writes
 * `^(?i)(abort|warn)?$`), which only ever covers the whole pattern in these CRDs.
 */
function goRegExp(pattern: string, flags: string): RegExp {
  const insensitive = pattern.includes('(?i)');
  return new RegExp(pattern.replaceAll('(?i)', ''), insensitive ? `${flags}i` : flags);
}
goRegExp.code = 'goRegExp';

function key(apiVersion: string, kind: string): string {
  return `${apiVersion}#${kind}`;
}

function format(id: string, errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : '';
    return `${id} ${e.instancePath || '/'}: ${e.message}${extra}`;
  });
}

/**
 * Translates the Kubernetes OpenAPI extensions into plain JSON Schema and closes every object that lists its
 * properties, unless the schema says unknown fields are preserved.
 */
function strictify(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictify);
  if (typeof node !== 'object' || node === null) return node;
  const src = node as Schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(src)) {
    // `properties` maps field names to schemas: recurse into the values, never treat names as keywords.
    if (k === 'properties' && typeof v === 'object' && v !== null) {
      out.properties = Object.fromEntries(Object.entries(v as Schema).map(([name, s]) => [name, strictify(s)]));
    } else if (k === 'x-kubernetes-validations' || k === 'x-kubernetes-group-version-kind') {
      continue;
    } else {
      out[k] = strictify(v);
    }
  }
  if (src['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    return { anyOf: [{ type: 'integer' }, { type: 'string' }], ...withoutKeys(out, ['anyOf']) };
  }
  if (src.nullable === true && typeof out.type === 'string') {
    out.type = [out.type, 'null'];
  }
  const preserve = src['x-kubernetes-preserve-unknown-fields'] === true;
  if (out.properties && out.additionalProperties === undefined && !preserve) {
    out.additionalProperties = false;
  }
  return out;
}

function withoutKeys(o: Schema, keys: string[]): Schema {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}
