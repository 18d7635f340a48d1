/**
 * vLLM's chat-template content format of a template text (`detectContentFormat` in @kvroute/protocol walks the AST
 * @huggingface/jinja parses, as vLLM 0.10.0's `_detect_content_format` walks jinja2's).
 */
import { detectContentFormat, type ContentFormat, type TemplateAstNode } from '@kvroute/protocol/openai';

type JinjaModule = typeof import('@huggingface/jinja', { with: { 'resolution-mode': 'import' } });
type Template = InstanceType<JinjaModule['Template']>;
// The package's CommonJS build, as model-tokenizer.ts loads it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Template } = require('@huggingface/jinja') as JinjaModule;

export type { ContentFormat };

/** The content format of a template text; a template that does not parse is "string" (vLLM's default there). */
export function contentFormatOf(template: string | Template): ContentFormat {
  try {
    const compiled = typeof template === 'string' ? new Template(template) : template;
    return detectContentFormat(compiled.parsed as unknown as TemplateAstNode);
  } catch {
    return 'string';
  }
}
