import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Picker, ScoredEndpoint } from '../framework';
import { definePlugin } from '../plugin';
import { pickerParameters, shuffled, type PickerParameters } from './max-score-picker';

/**
 * `weighted-random-picker`: endpoints drawn at random in proportion to their total scores, without replacement, by
 * Efraimidis–Spirakis A-Res sampling: each candidate with a positive total draws the key u^(1/total), u uniform in
 * (0, 1), and the largest keys win. A candidate scoring 0 comes after every positive one; when no total is positive
 * it picks uniformly, as `random-picker`. It spreads load over good endpoints where `max-score-picker` always takes
 * the best, at the price of sometimes taking a worse one.
 * @see kubernetes-sigs/gateway-api-inference-extension: pkg/epp/scheduling/framework/plugins/picker/weighted_random_picker.go @ v1.0.0
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/picker/weightedrandom/picker.go @ v0.10.0 (the same algorithm)
 */
export class WeightedRandomPicker implements Picker {
  readonly type = 'weighted-random-picker';

  constructor(
    readonly name: string,
    private readonly parameters: Required<PickerParameters>,
    private readonly random: () => number,
  ) {}

  pick(_cycle: CycleContext, scored: readonly ScoredEndpoint[]): readonly EndpointSnapshot[] {
    const count = this.parameters.maxNumOfEndpoints;
    if (!scored.some((entry) => entry.score > 0)) return shuffled(scored, this.random).slice(0, count).map((entry) => entry.endpoint);
    const keyed = scored.map((entry) => {
      if (!(entry.score > 0)) return { entry, key: 0 };
      // A zero draw would give key 0 and tie the zero-scored; upstream moves it to 1e-10 too.
      const u = this.random() || 1e-10;
      return { entry, key: u ** (1 / entry.score) };
    });
    keyed.sort((a, b) => b.key - a.key);
    return keyed.slice(0, count).map((k) => k.entry.endpoint);
  }
}

export const weightedRandomPicker = definePlugin({
  type: 'weighted-random-picker',
  kinds: ['picker'],
  parameters: pickerParameters,
  create: (name, resolved, handle) => new WeightedRandomPicker(name, resolved, handle.random),
});
