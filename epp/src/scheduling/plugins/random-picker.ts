import type { EndpointSnapshot } from '../../datastore/types';
import type { CycleContext, Picker, ScoredEndpoint } from '../framework';
import { definePlugin } from '../plugin';
import { pickerParameters, shuffled, type PickerParameters } from './max-score-picker';

/** `random-picker`: endpoints in random order, ignoring scores. */
export class RandomPicker implements Picker {
  readonly type = 'random-picker';

  constructor(
    readonly name: string,
    private readonly parameters: Required<PickerParameters>,
    private readonly random: () => number,
  ) {}

  pick(_cycle: CycleContext, scored: readonly ScoredEndpoint[]): readonly EndpointSnapshot[] {
    return shuffled(scored, this.random)
      .slice(0, this.parameters.maxNumOfEndpoints)
      .map((entry) => entry.endpoint);
  }
}

export const randomPicker = definePlugin({
  type: 'random-picker',
  kinds: ['picker'],
  parameters: pickerParameters,
  create: (name, resolved, handle) => new RandomPicker(name, resolved, handle.random),
});
