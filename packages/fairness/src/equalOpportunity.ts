import { disparityFrame, type DisparityOptions } from './disparity.js'
import { truePositiveRate } from './truePositiveRate.js'
import type { Labels } from './validate.js'

/** Largest TPR gap between groups (fairlearn `equal_opportunity_difference`, unsigned). For AIF360's signed
 * `equal_opportunity_difference` (unprivileged − privileged) see `truePositiveRateDifference`. */
export function equalOpportunityDifference(yTrue: Labels, yPred: Labels, opts: DisparityOptions): number {
  const { frame, how } = disparityFrame('equalOpportunityDifference', yTrue, yPred, opts, { tpr: truePositiveRate })
  return frame.difference(how).tpr
}

/** Smallest over largest group TPR (fairlearn `equal_opportunity_ratio`). */
export function equalOpportunityRatio(yTrue: Labels, yPred: Labels, opts: DisparityOptions): number {
  const { frame, how } = disparityFrame('equalOpportunityRatio', yTrue, yPred, opts, { tpr: truePositiveRate })
  return frame.ratio(how).tpr
}
