import { skipWhitespace } from '@kvroute/protocol/openai';

/**
 * The JSON object `body` with `"<name>":<json>` inserted as its first member, or undefined when the body does not start
 * with an object. Only the opening brace is edited: nothing is parsed or re-serialized. The caller knows the body has
 * no member `name` of its own, so the edited body never repeats a name.
 */
export function withLeadingMember(body: Buffer, name: string, json: string): Buffer | undefined {
  const at = skipWhitespace(body, 0);
  if (body[at] !== 0x7b) return undefined; // '{'
  const next = skipWhitespace(body, at + 1);
  const member = Buffer.from(`{${JSON.stringify(name)}:${json}${body[next] === 0x7d ? '' : ','}`);
  return Buffer.concat([body.subarray(0, at), member, body.subarray(at + 1)]);
}
