import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** `P(ŷ ≠ pos | y ≠ pos)` (fairlearn `true_negative_rate`). With no negative row: `zeroDivision` (0, as fairlearn; or NaN). */
export function trueNegativeRate(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('trueNegativeRate', yTrue, yPred, opts)
  return rate(c.tn, c.fp + c.tn, opts.zeroDivision)
}
