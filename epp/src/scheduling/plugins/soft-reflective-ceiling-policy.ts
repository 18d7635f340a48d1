/**
 * `soft-reflective-ceiling-policy`: llm-d-router v0.10.0's usage-limit policy that gates lower priorities
 * proportionally as saturation rises. No parameters: an empty or absent `parameters` map only, any field refused as
 * upstream's factory refuses it. For the active levels
 * (highest first, N of them) band i's reflective ceiling is 1 − i·saturation/(N − 1):
 * - band 0 (the highest) is never gated below full saturation (ceiling 1.0);
 * - a band whose reflective ceiling is above the saturation is open (1.0);
 * - at saturation ≥ 1.0 every other band is closed (0.0);
 * - otherwise the band alternates open (1.0) and closed (0.0) across calls, open on one call in
 *   period = round(saturation/(1 − saturation)), so the gated bands' share of dispatches falls continuously with load.
 * One policy-wide tick drives the alternation, advanced only on calls in that regime, so on any call every gated band
 * is open or every one closed (dispatch stops at the first closed band, so bands out of phase would starve the lower).
 * A single active level is always open. The tick counts calls, and kvroute calls `computeLimit` once per dispatch
 * decision, as upstream once per dispatch cycle: the duty cycle is a share of dispatch opportunities, not of time.
 *
 * kvroute's own: `steadyLimit` counts the alternating bands open without advancing the tick. A request the gate
 * released on an open tick re-checks the pool before its cycle (request-control.ts `waitLoop`), and re-checked against
 * the next, closed tick it would go back to the queue every time; against the steady ceiling it is held only when the
 * pool is fully saturated (upstream dispatches the item and never re-checks it).
 * @see llm-d/llm-d-router: pkg/epp/framework/plugins/flowcontrol/usagelimits/softreflectiveceiling/{policy.go,README.md} @ v0.10.0
 */
import { definePlugin, parameters, type NoParameters } from '../plugin';
import { UsageLimitPolicyPlugin } from './flow-control-policies';

export class SoftReflectiveCeilingPolicy extends UsageLimitPolicyPlugin {
  /** Upstream's shared tick: advanced once per call in the alternating regime. */
  private tick = 0;

  constructor(name: string) {
    super('soft-reflective-ceiling-policy', name);
  }

  computeLimit(saturation: number, priorities: readonly number[], ceilings: number[]): void {
    const n = priorities.length;
    if (n === 0) return;
    if (n === 1) {
      ceilings[0] = 1;
      return;
    }
    // Any band is at or past its reflective ceiling iff the lowest is (whose ceiling is 1 − saturation).
    let open = false;
    if (saturation >= 1 - saturation && saturation < 1) {
      // 1e-9 guards against round-off when saturation is very near 1.0 (upstream's).
      const period = Math.max(1, Math.round(saturation / (1 - saturation + 1e-9)));
      open = ++this.tick % period === 0;
    }
    fill(saturation, n, ceilings, open);
  }

  /** The ceilings with the alternating bands open, the tick left alone. */
  steadyLimit(saturation: number, priorities: readonly number[], ceilings: number[]): void {
    const n = priorities.length;
    if (n === 0) return;
    if (n === 1) {
      ceilings[0] = 1;
      return;
    }
    fill(saturation, n, ceilings, true);
  }
}

function fill(saturation: number, n: number, ceilings: number[], open: boolean): void {
  ceilings[0] = 1;
  for (let i = 1; i < n; i++) {
    const reflective = 1 - (i * saturation) / (n - 1);
    if (saturation < reflective) ceilings[i] = 1;
    else if (saturation >= 1) ceilings[i] = 0;
    else ceilings[i] = open ? 1 : 0;
  }
}

export const softReflectiveCeilingPolicy = definePlugin({
  type: 'soft-reflective-ceiling-policy',
  kinds: [],
  // Not NO_PARAMETERS, whose fields the loader ignores as upstream's factories ignore theirs: this one's factory
  // decodes into an empty struct with the strict decoder and fails on any field ("takes no parameters").
  parameters: parameters<NoParameters>(() => ({})),
  create: (name) => new SoftReflectiveCeilingPolicy(name),
});
