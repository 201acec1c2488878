import { fprOf, privilegedSplit, tprOf, type PrivilegedOptions } from './privileged.js'
import type { Labels } from './validate.js'

/** `½[(FPR_u − FPR_p) + (TPR_u − TPR_p)]` (AIF360 `average_odds_difference`, signed). */
export function averageOddsDifference(yTrue: Labels, yPred: Labels, opts: PrivilegedOptions): number {
  const { u, p } = privilegedSplit('averageOddsDifference', yTrue, yPred, opts)
  return (fprOf(u) - fprOf(p) + (tprOf(u) - tprOf(p))) / 2
}

/** `½[|FPR_u − FPR_p| + |TPR_u − TPR_p|]` (AIF360 `average_abs_odds_difference`). */
export function averageAbsOddsDifference(yTrue: Labels, yPred: Labels, opts: PrivilegedOptions): number {
  const { u, p } = privilegedSplit('averageAbsOddsDifference', yTrue, yPred, opts)
  return (Math.abs(fprOf(u) - fprOf(p)) + Math.abs(tprOf(u) - tprOf(p))) / 2
}
