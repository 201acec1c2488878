import { arrayLike, groupIndex, probabilities, sameLength, type Groups, type Labels } from './validate.js'

/**
 * The soft demographic-parity gap on predicted probabilities: `max_g E[p | g] − min_g E[p | g]`, which for two
 * groups is `|E[p | s=1] − E[p | s=0]|` — the ΔDP the Distraction paper (after FCRL's
 * `demographic_parity_difference_soft`) reports. Needs at least two groups.
 */
export function softDemographicParity(probs: Labels, sensitiveFeatures: Groups): number {
  const op = 'softDemographicParity'
  arrayLike(op, 'probs', probs)
  arrayLike(op, 'sensitiveFeatures', sensitiveFeatures)
  const n = sameLength(op, [['probs', probs], ['sensitiveFeatures', sensitiveFeatures]])
  probabilities(op, 'probs', probs)
  const { groups, index } = groupIndex(op, 'sensitiveFeatures', sensitiveFeatures, 2)
  const sum = new Float64Array(groups.length)
  const cnt = new Float64Array(groups.length)
  for (let i = 0; i < n; i++) (sum[index[i]!]! += probs[i]!), (cnt[index[i]!]! += 1)
  const means = Array.from(sum, (s, g) => s / cnt[g]!)
  return Math.max(...means) - Math.min(...means)
}
