import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Scorer } from '../framework';
import { ConfigError } from '../../config/errors';
import { definePlugin, parameters } from '../plugin';

export interface TokenizerParameters {
  /** The model whose tokenizer llm-d loads. */
  modelName?: string;
  /** llm-d's external (UDS sidecar) tokenizer settings; kvroute tokenizes in process. @default {} */
  udsTokenizerConfig?: Record<string, unknown>;
}

/**
 * `tokenizer`: llm-d's tokenizing data producer, listed in profiles as a scorer that scores every endpoint 0 and only
 * writes the prompt's token ids to the cycle state for the precise scorer (llm-d/llm-d-inference-scheduler
 * `pkg/epp/framework/plugins/requestcontrol/dataproducer/tokenizer/tokenizer_scorer.go` @ v0.8.0). kvroute's
 * `precise-prefix-cache-scorer` tokenizes the prompt itself (`indexerConfig.tokenizersPoolConfig`), so this scorer
 * keeps the zero scores, which change no total, and lets llm-d's precise config load unchanged.
 */
export class TokenizerScorer implements Scorer {
  readonly type = 'tokenizer';

  constructor(readonly name: string) {}

  score(_cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return candidates.map(() => 0);
  }
}

export const tokenizer = definePlugin({
  type: 'tokenizer',
  kinds: ['scorer'],
  parameters: parameters<TokenizerParameters>((fields) => {
    const uds = fields.raw('udsTokenizerConfig');
    if (uds !== undefined && (uds === null || typeof uds !== 'object' || Array.isArray(uds))) {
      throw new ConfigError(fields.fieldPath('udsTokenizerConfig'), 'must be a map');
    }
    // "" is "none", what the resolved parameters carry when it is absent (and the scheduler reads them again).
    const modelName = fields.raw('modelName') === '' ? '' : fields.optionalString('modelName') ?? '';
    return { modelName, udsTokenizerConfig: (uds ?? {}) as Record<string, unknown> };
  }),
  create: (name) => new TokenizerScorer(name),
});
