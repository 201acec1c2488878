import { privilegedSplit, selection, type PrivilegedOptions } from './privileged.js'
import type { Labels } from './validate.js'

/** `P(ŷ=1 | unprivileged) / P(ŷ=1 | privileged)` (AIF360 `disparate_impact`; 1 is parity, the "80% rule" asks ≥ 0.8).
 * NaN when the privileged side selects nobody. */
export function disparateImpact(yTrue: Labels, yPred: Labels, opts: PrivilegedOptions): number {
  const { u, p } = privilegedSplit('disparateImpact', yTrue, yPred, opts)
  const sp = selection(p)
  return sp > 0 ? selection(u) / sp : Number.NaN
}
