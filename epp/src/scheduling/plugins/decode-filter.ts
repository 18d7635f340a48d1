import { definePlugin, NO_PARAMETERS } from '../plugin';
import { ByLabelFilter, ROLE_LABEL } from './by-label';

/**
 * `decode-filter`: pods labelled `llm-d.ai/role` = decode or both, or unlabelled (a plain vLLM pod decodes).
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/filter/pd_role.go @ v0.2.1
 */
export const decodeFilter = definePlugin({
  type: 'decode-filter',
  kinds: ['filter'],
  parameters: NO_PARAMETERS,
  create: (name) => new ByLabelFilter(name, { label: ROLE_LABEL, validValues: ['decode', 'both'], allowsNoLabel: true }, 'decode-filter'),
});
