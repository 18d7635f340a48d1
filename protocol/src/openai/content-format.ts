/**
 * vLLM's chat-template content format, detected from the template as vLLM 0.10.0 detects it
 * (`_detect_content_format` and the helpers before it, vllm/entrypoints/chat_utils.py @ v0.10.0 L238-365): "openai"
 * when the template loops over a message's `content` — `{% for message in messages %}…{% for c in message['content']
 * %}` — and "string" otherwise. In the "openai" format vLLM hands the template every message's content as a list of
 * parts (`{'type': 'text', 'text': …}`, a string content becoming one such part); in the "string" format, as one string
 * (text parts joined by "\n"). Templates of multimodal models (Gemma 3, Llama 3.2 Vision, …) are "openai"; Qwen3's is
 * "string".
 *
 * The walk follows vLLM's over jinja2's AST on @huggingface/jinja's: `Getitem`/`Getattr` are a `MemberExpression`
 * (computed or not), `Filter`/`Test` a `FilterExpression`/`TestExpression`, `Assign` a `Set` statement with a value, a
 * slice a `MemberExpression` whose property is a `SliceExpression`; a `for … in x if cond` loop's iterable is a
 * `SelectExpression` here where jinja2 keeps `x`. Where vLLM's asserts fail (a tuple or namespace target), detection
 * falls back to "string", as vLLM's `except Exception` does.
 *
 * It reads the parsed template structurally (a `Template`'s `parsed` Program), so this package needs no jinja: the
 * EPP's tokenizer and the simulator parse with their own @huggingface/jinja and call `detectContentFormat`.
 */
export type ContentFormat = 'string' | 'openai';

/** A node of @huggingface/jinja's AST, as far as the walk reads it. */
export interface TemplateAstNode {
  readonly type: string;
  readonly [key: string]: unknown;
}

function isNode(v: unknown): v is TemplateAstNode {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

/** Every node below `root` of `type`, in pre-order (jinja2's `find_all`). */
function findAll(root: TemplateAstNode, type: string): TemplateAstNode[] {
  const found: TemplateAstNode[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) visit(v);
    } else if (value instanceof Map) {
      for (const [k, v] of value) {
        visit(k);
        visit(v);
      }
    } else if (isNode(value)) {
      for (const key of Object.keys(value)) {
        const child = value[key];
        if (isNode(child) && child.type === type) found.push(child);
        else if (Array.isArray(child)) for (const c of child) if (isNode(c) && c.type === type) found.push(c);
        visit(child);
      }
    }
  };
  visit(root);
  return found;
}

function isVarAccess(node: unknown, name: string): boolean {
  return isNode(node) && node.type === 'Identifier' && node.value === name;
}

function isAttrAccess(node: unknown, name: string, key: string): boolean {
  if (!isNode(node) || node.type !== 'MemberExpression' || !isVarAccess(node.object, name)) return false;
  const property = node.property;
  if (!isNode(property)) return false;
  return node.computed ? property.type === 'StringLiteral' && property.value === key : property.type === 'Identifier' && property.value === key;
}

function isVarOrElemsAccess(node: unknown, name: string, key?: string): boolean {
  if (isNode(node)) {
    if (node.type === 'FilterExpression' || node.type === 'TestExpression') return isVarOrElemsAccess(node.operand, name, key);
    if (node.type === 'MemberExpression' && node.computed && isNode(node.property) && node.property.type === 'SliceExpression') {
      return isVarOrElemsAccess(node.object, name, key);
    }
  }
  return key !== undefined ? isAttrAccess(node, name, key) : isVarAccess(node, name);
}

/** vLLM asserts here; its caller turns the AssertionError into the default format. */
class NotAName extends Error {}

function targetName(target: unknown): string {
  if (isNode(target) && target.type === 'Identifier' && typeof target.value === 'string') return target.value;
  throw new NotAName();
}

/** `_iter_nodes_assign_var_or_elems`: `varname` and every variable assigned from it (or its elements), breadth first. */
function namesAssignedFrom(root: TemplateAstNode, varname: string): string[] {
  const names = [varname];
  const queue = [varname];
  const assigns = findAll(root, 'Set');
  while (queue.length > 0) {
    const related = queue.shift()!;
    for (const assign of assigns) {
      if (assign.value === null || assign.value === undefined) continue; // a block set is jinja2's AssignBlock
      if (!isVarOrElemsAccess(assign.value, related)) continue;
      const name = targetName(assign.assignee);
      names.push(name);
      if (name !== related) queue.push(name);
    }
  }
  return names;
}

/** A loop's iterable as jinja2 holds it: without the inline `if` @huggingface/jinja folds into a SelectExpression. */
function loopIterable(loop: TemplateAstNode): unknown {
  const iterable = loop.iterable;
  return isNode(iterable) && iterable.type === 'SelectExpression' ? iterable.lhs : iterable;
}

/** The content format of a parsed template (`_detect_content_format` on jinja2's AST). */
export function detectContentFormat(parsed: TemplateAstNode): ContentFormat {
  try {
    const messagesNames = namesAssignedFrom(parsed, 'messages');
    const loops = findAll(parsed, 'For');
    const messageNames: string[] = [];
    for (const loop of loops) {
      if (messagesNames.some((name) => isVarOrElemsAccess(loopIterable(loop), name))) messageNames.push(targetName(loop.loopvar));
    }
    for (const loop of loops) {
      if (messageNames.some((name) => isVarOrElemsAccess(loopIterable(loop), name, 'content'))) {
        targetName(loop.loopvar);
        return 'openai';
      }
    }
    return 'string';
  } catch (error) {
    if (error instanceof NotAName) return 'string';
    throw error;
  }
}
