import { definePlugin, NO_PARAMETERS } from '../plugin';
import { ByLabelFilter, ROLE_LABEL } from './by-label';

/**
 * `decode-filter`: pods labelled `llm-d.ai/role` = decode, prefill-decode, encode-prefill-decode or both (deprecated
 * there for prefill-decode), or unlabelled (a plain vLLM pod decodes).
 * @see llm-d/llm-d-inference-scheduler: pkg/epp/framework/plugins/scheduling/filter/bylabel/roles.go @ v0.8.0 (NewDecodeRole; the same list in llm-d/llm-d-router @ v0.10.0)
 */
export const decodeFilter = definePlugin({
  type: 'decode-filter',
  kinds: ['filter'],
  parameters: NO_PARAMETERS,
  create: (name) => new ByLabelFilter(name, { label: ROLE_LABEL, validValues: ['decode', 'prefill-decode', 'both', 'encode-prefill-decode'], allowsNoLabel: true }, 'decode-filter'),
});
