import { privilegedSplit, selection, type PrivilegedOptions } from './privileged.js'
import type { Labels } from './validate.js'

/** `P(ŷ=1 | unprivileged) − P(ŷ=1 | privileged)` (AIF360 `statistical_parity_difference`, signed; 0 is parity).
 * Pass the true labels as `yPred` for the dataset-level `mean_difference`. */
export function statisticalParityDifference(yTrue: Labels, yPred: Labels, opts: PrivilegedOptions): number {
  const { u, p } = privilegedSplit('statisticalParityDifference', yTrue, yPred, opts)
  return selection(u) - selection(p)
}
