import { definePlugin, NO_PARAMETERS } from '../plugin';
import { ByLabelFilter, ROLE_LABEL } from './by-label';

/**
 * `prefill-filter`: only pods labelled `llm-d.ai/role=prefill`.
 * @see llm-d/llm-d-inference-scheduler: pkg/plugins/filter/pd_role.go @ v0.2.1
 */
export const prefillFilter = definePlugin({
  type: 'prefill-filter',
  kinds: ['filter'],
  parameters: NO_PARAMETERS,
  create: (name) => new ByLabelFilter(name, { label: ROLE_LABEL, validValues: ['prefill'], allowsNoLabel: false }, 'prefill-filter'),
});
