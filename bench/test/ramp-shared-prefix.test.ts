/**
 * The ramp's S (sharedPrefixTokens, the mean length a group's prompts share), which boundsFor feeds to idealHitRate,
 * roundRobinHitRate and the finite-capacity estimate: each stage sends the list from its first prompt (stagePrompts,
 * as inference-perf v0.6.1 restarts get_data() per stage), so a group may have one prompt sent several times and no
 * other; those copies must not count as prompts sharing their whole length. S is measured over each group's distinct
 * prompts, as the list itself gives it.
 */
import { buildBenchWorkload, DEFAULT_ROUTING_OPTIONS, QUICK_OVERRIDES, type RoutingBenchOptions } from '../src/routing-bench';
import { measureWorkload, type TokenizerLike } from '../src/routing-workloads';

const charTokenizer: TokenizerLike = {
  count: (t) => t.length,
  chatTokens: (messages) => Array.from(messages.map((m) => m.content).join(''), (c) => c.charCodeAt(0)),
  reply: (n) => ({ ids: Array(n).fill(1), text: 'x'.repeat(n) }),
};

for (const [label, o] of [['default', DEFAULT_ROUTING_OPTIONS], ['--quick', { ...DEFAULT_ROUTING_OPTIONS, ...QUICK_OVERRIDES } as RoutingBenchOptions]] as const) {
  test(`${label} ramp: S is the groups' shared prefix over their distinct prompts sent, not inflated by repeats`, () => {
    const ramp = buildBenchWorkload('poisson-groups', o, charTokenizer);
    // The same requests, each distinct prompt once (first occurrence), with its group.
    const firstOf = new Map<string, number>();
    ramp.requests.forEach((m, i) => { if (!firstOf.has(JSON.stringify(m))) firstOf.set(JSON.stringify(m), i); });
    const keep = [...firstOf.values()];
    expect(keep.length).toBeLessThan(ramp.requests.length);
    const distinct = { ...ramp, requests: keep.map((i) => ramp.requests[i]!), groupOf: keep.map((i) => ramp.groupOf![i]!) };
    expect(measureWorkload(ramp, charTokenizer, o.sim.blockSize).sharedPrefixTokens)
      .toBe(measureWorkload(distinct, charTokenizer, o.sim.blockSize).sharedPrefixTokens);
  });
}
