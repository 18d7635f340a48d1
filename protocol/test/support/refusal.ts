import { ChatTemplateRefusal } from '../../src/openai';

/** The `ChatTemplateRefusal` `run` throws (its `response` is vLLM's answer); anything else thrown, or nothing, fails. */
export function refusalOf(run: () => unknown): ChatTemplateRefusal {
  try {
    run();
  } catch (e) {
    if (e instanceof ChatTemplateRefusal) return e;
    throw e;
  }
  throw new Error('no refusal');
}
