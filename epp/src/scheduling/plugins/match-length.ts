/**
 * llm-d-router v0.10.0's `prefix-cache-scorer` blend of the matched share of a prompt with the matched length itself
 * (`pkg/epp/framework/plugins/scheduling/scorer/prefix/plugin.go` and its README @ v0.10.0):
 *
 *     score = matchLengthWeight · min(1, matchBlocks · blockSizeTokens / matchLengthScaleTokens)²
 *           + (1 − matchLengthWeight) · matchBlocks / totalBlocks
 *
 * The square favours long matches, whose prefill (quadratic in length) a hit saves most of. With the default weight 0
 * the score is the matched share alone, as before the parameters existed. kvroute's approximate and precise scorers
 * both take the two parameters (upstream they sit on the scorer, which reads either kind of producer).
 */
import { ConfigError, describeValue } from '../../config/errors';
import type { FieldReader } from '../../config/fields';

/** plugin.go defaultMatchLengthWeight: only the matched share counts. */
export const DEFAULT_MATCH_LENGTH_WEIGHT = 0;
/** plugin.go defaultMatchLengthScaleTokens. */
export const DEFAULT_MATCH_LENGTH_SCALE_TOKENS = 8192;

export interface MatchLengthParameters {
  /**
   * The weight of the matched length in the score, from 0 to 1 (llm-d-router v0.10.0's `prefix-cache-scorer`).
   * @default 0
   */
  matchLengthWeight?: number;
  /**
   * The matched tokens that count as a full-length match (the length term is min(1, matched ÷ this)²); must be above
   * 0 when `matchLengthWeight` is. Upstream suggests the workload's P95 prompt length. @default 8192
   */
  matchLengthScaleTokens?: number;
}

/**
 * Reads both parameters with upstream's checks and messages (PrefixCachePluginFactory: the weight's range first, then
 * the scale, which only a positive weight requires to be positive; a Go `int`, so any integer otherwise).
 */
export function readMatchLength(fields: FieldReader): Required<MatchLengthParameters> {
  const raw = fields.raw('matchLengthWeight');
  let matchLengthWeight = DEFAULT_MATCH_LENGTH_WEIGHT;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== 'number' || !Number.isFinite(raw)) {
      throw new ConfigError(fields.fieldPath('matchLengthWeight'), `must be a number between 0.0 and 1.0, got ${describeValue(raw)}`);
    }
    matchLengthWeight = raw;
  }
  if (matchLengthWeight < 0 || matchLengthWeight > 1) {
    // Go's %f: six decimals.
    throw new ConfigError(fields.fieldPath('matchLengthWeight'), `matchLengthWeight must be between 0.0 and 1.0, got ${matchLengthWeight.toFixed(6)}`);
  }
  const matchLengthScaleTokens = fields.integer('matchLengthScaleTokens', DEFAULT_MATCH_LENGTH_SCALE_TOKENS, Number.MIN_SAFE_INTEGER);
  if (matchLengthWeight > 0 && matchLengthScaleTokens <= 0) {
    throw new ConfigError(
      fields.fieldPath('matchLengthScaleTokens'),
      `matchLengthScaleTokens must be greater than 0 when matchLengthWeight is greater than 0, got ${matchLengthScaleTokens}`,
    );
  }
  return { matchLengthWeight, matchLengthScaleTokens };
}

/**
 * plugin.go Score for one endpoint: `matchBlocks` of `totalBlocks` matched, blocks of `blockSizeTokens` tokens. The
 * length term is left out (0) when the weight is 0 or the block size unknown, as upstream's is; 0 blocks in all
 * score 0.
 */
export function matchLengthScore(matchBlocks: number, totalBlocks: number, blockSizeTokens: number, weight: number, scaleTokens: number): number {
  if (totalBlocks === 0) return 0;
  const ratio = matchBlocks / totalBlocks;
  let length = 0;
  if (weight > 0 && blockSizeTokens > 0) {
    const normalized = Math.min(1, (matchBlocks * blockSizeTokens) / scaleTokens);
    length = normalized * normalized;
  }
  return weight * length + (1 - weight) * ratio;
}
