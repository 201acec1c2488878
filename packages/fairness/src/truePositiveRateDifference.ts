import { privilegedSplit, tprOf, type PrivilegedOptions } from './privileged.js'
import type { Labels } from './validate.js'

/** `TPR_u − TPR_p` (AIF360 `true_positive_rate_difference`, which its `equal_opportunity_difference` aliases; signed). */
export function truePositiveRateDifference(yTrue: Labels, yPred: Labels, opts: PrivilegedOptions): number {
  const { u, p } = privilegedSplit('truePositiveRateDifference', yTrue, yPred, opts)
  return tprOf(u) - tprOf(p)
}
