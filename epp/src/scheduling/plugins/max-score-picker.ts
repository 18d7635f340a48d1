import type { EndpointSnapshot } from '../../datastore/types';
import { doubleZeros, type CycleContext, type Picker, type ScoredEndpoint } from '../framework';
import { definePlugin, parameters } from '../plugin';

export interface PickerParameters {
  /**
   * How many endpoints the picker returns, best first. The first is the target; the others are reported in
   * `SchedulingResult.targets` for callers that want fallbacks.
   * @default 1
   */
  maxNumOfEndpoints?: number;
}

/**
 * The pickers' parameters. `maxNumOfEndpoints` must be >= 1; llm-d-router v0.10.0 replaces `<= 0` by 1
 * (`picker/maxscore/picker.go` NewMaxScorePicker @ v0.10.0), kvroute refuses it naming the field.
 */
export const pickerParameters = parameters<PickerParameters>((fields) => ({
  maxNumOfEndpoints: fields.integer('maxNumOfEndpoints', 1, 1),
}));

/** Fisher–Yates on a copy, driven by the injected RNG so tests can fix the outcome. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/**
 * `max-score-picker`: the highest totals, best first; equal totals are ordered at random so equally good endpoints
 * share load instead of the first-listed one taking everything.
 */
export class MaxScorePicker implements Picker {
  readonly type = 'max-score-picker';

  constructor(
    readonly name: string,
    private readonly parameters: Required<PickerParameters>,
    private readonly random: () => number,
  ) {}

  pick(_cycle: CycleContext, scored: readonly ScoredEndpoint[]): readonly EndpointSnapshot[] {
    if (this.parameters.maxNumOfEndpoints === 1) return this.pickOne(scored);
    // Shuffle, then a stable sort: ties keep their random order.
    return shuffled(scored, this.random)
      .sort((a, b) => b.score - a.score)
      .slice(0, this.parameters.maxNumOfEndpoints)
      .map((entry) => entry.endpoint);
  }

  /** `pick` from the totals: the same choice and the same random draw, without a ScoredEndpoint per candidate. */
  pickFromTotals(cycle: CycleContext, candidates: readonly EndpointSnapshot[], totals: ArrayLike<number>): readonly EndpointSnapshot[] {
    if (this.parameters.maxNumOfEndpoints !== 1) return this.pick(cycle, candidates.map((endpoint, i) => ({ endpoint, score: totals[i]! })));
    return this.pickBest(candidates, totals);
  }

  /** One pass for the best total, one random draw among its ties (the k-th tie in candidate order). */
  private pickBest(candidates: readonly EndpointSnapshot[], totals: ArrayLike<number>): readonly EndpointSnapshot[] {
    let best = Number.NEGATIVE_INFINITY;
    let first = -1;
    let ties = 0;
    for (let i = 0; i < totals.length; i++) {
      const score = totals[i]!;
      // A first total of -Infinity starts the ties too (NaN never does), as a list of ties built by comparison would.
      if (score > best || (first < 0 && score === best)) {
        best = score;
        first = i;
        ties = 1;
      } else if (score === best) {
        ties++;
      }
    }
    if (first < 0) return [];
    if (ties === 1) return [candidates[first]!];
    let k = Math.floor(this.random() * ties);
    for (let i = first; i < totals.length; i++) {
      if (totals[i] === best && k-- === 0) return [candidates[i]!];
    }
    return [candidates[first]!];
  }

  /** The common case without sorting, from `ScoredEndpoint`s: the same draw as `pickFromTotals`. */
  private pickOne(scored: readonly ScoredEndpoint[]): readonly EndpointSnapshot[] {
    const totals = doubleZeros(scored.length);
    for (let i = 0; i < scored.length; i++) totals[i] = scored[i]!.score;
    return this.pickBest(scored.map((entry) => entry.endpoint), totals);
  }
}

export const maxScorePicker = definePlugin({
  type: 'max-score-picker',
  kinds: ['picker'],
  parameters: pickerParameters,
  create: (name, resolved, handle) => new MaxScorePicker(name, resolved, handle.random),
});
