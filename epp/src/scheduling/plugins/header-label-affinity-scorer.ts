import { ConfigError } from '../../config/errors';
import type { EndpointSnapshot } from '../../datastore/types';
import { scoresFromInto, type CycleContext, type Scorer } from '../framework';
import { definePlugin, parameters } from '../plugin';

export interface HeaderLabelAffinityScorerParameters {
  /** The request header carrying the preferred label value; matched case-insensitively, as header names are. */
  headerName: string;
  /** The endpoint label compared with the header's value. */
  labelKey: string;
}

/**
 * `header-label-affinity-scorer`: 1 for the candidates whose `labelKey` label equals the request's `headerName`
 * header, 0 for the others, which stay eligible; 0 for all when the header is absent or empty. One instance per
 * header-to-label mapping, each with its own weight (llm-d's DisaggregatedSet slice affinity: `x-disagg-slice` to
 * `disaggregatedset.x-k8s.io/slice`).
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/scheduling/scorer/headerlabelaffinity/plugin.go, README.md @ v0.10.0
 */
export class HeaderLabelAffinityScorer implements Scorer {
  readonly type = 'header-label-affinity-scorer';
  private readonly headerName: string;

  constructor(readonly name: string, readonly parameters: Required<HeaderLabelAffinityScorerParameters>) {
    // The request's header names are lower-case (`LLMRequest.headers`); upstream lower-cases the configured one too.
    this.headerName = parameters.headerName.toLowerCase();
  }

  score(cycle: CycleContext, candidates: readonly EndpointSnapshot[]): number[] {
    return scoresFromInto(this, cycle, candidates);
  }

  scoreInto(cycle: CycleContext, candidates: readonly EndpointSnapshot[], out: Float64Array): void {
    const requested = cycle.request.headers[this.headerName] ?? '';
    for (let i = 0; i < candidates.length; i++) {
      out[i] = requested !== '' && candidates[i]!.endpoint.labels[this.parameters.labelKey] === requested ? 1 : 0;
    }
  }
}

export const headerLabelAffinityScorer = definePlugin({
  type: 'header-label-affinity-scorer',
  kinds: ['scorer'],
  // Upstream's checks and messages (Factory): no parameters at all (StrictDecoder's nil decoder, plugin/registry.go),
  // then each field.
  parameters: parameters<HeaderLabelAffinityScorerParameters>((fields) => {
    if (!fields.given) throw new ConfigError(fields.path, 'header-label-affinity-scorer requires parameters');
    const headerName = fields.goString('headerName');
    if (headerName === '') throw new ConfigError(fields.fieldPath('headerName'), 'header-label-affinity-scorer headerName is required');
    const labelKey = fields.goString('labelKey');
    if (labelKey === '') throw new ConfigError(fields.fieldPath('labelKey'), 'header-label-affinity-scorer labelKey is required');
    return { headerName, labelKey };
  }),
  create: (name, resolved) => new HeaderLabelAffinityScorer(name, resolved),
});
