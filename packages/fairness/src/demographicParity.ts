import { disparityFrame, type DisparityOptions } from './disparity.js'
import { selectionRate } from './selectionRate.js'
import type { Labels } from './validate.js'

/** Largest gap in selection rate between groups (fairlearn `demographic_parity_difference`); 0 is parity. */
export function demographicParityDifference(yTrue: Labels, yPred: Labels, opts: DisparityOptions): number {
  const { frame, how } = disparityFrame('demographicParityDifference', yTrue, yPred, opts, { sel: selectionRate })
  return frame.difference(how).sel
}

/** Smallest over largest group selection rate (fairlearn `demographic_parity_ratio`); 1 is parity. */
export function demographicParityRatio(yTrue: Labels, yPred: Labels, opts: DisparityOptions): number {
  const { frame, how } = disparityFrame('demographicParityRatio', yTrue, yPred, opts, { sel: selectionRate })
  return frame.ratio(how).sel
}
