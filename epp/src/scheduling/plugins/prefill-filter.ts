import { definePlugin, NO_PARAMETERS } from '../plugin';
import { ByLabelFilter, ROLE_LABEL } from './by-label';

/**
 * `prefill-filter`: only pods labelled `llm-d.ai/role` = prefill, encode-prefill, prefill-decode, both or
 * encode-prefill-decode; never unlabelled ones.
 * @see llm-d/llm-d-inference-scheduler: pkg/epp/framework/plugins/scheduling/filter/bylabel/roles.go @ v0.8.0 (NewPrefillRole; the same list in llm-d/llm-d-router @ v0.10.0)
 */
export const prefillFilter = definePlugin({
  type: 'prefill-filter',
  kinds: ['filter'],
  parameters: NO_PARAMETERS,
  create: (name) => new ByLabelFilter(name, { label: ROLE_LABEL, validValues: ['prefill', 'encode-prefill', 'prefill-decode', 'both', 'encode-prefill-decode'], allowsNoLabel: false }, 'prefill-filter'),
});
