import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** `P(ŷ = pos | y ≠ pos)` (fairlearn `false_positive_rate`). With no negative row: `zeroDivision` (0, as fairlearn; or NaN). */
export function falsePositiveRate(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('falsePositiveRate', yTrue, yPred, opts)
  return rate(c.fp, c.fp + c.tn, opts.zeroDivision)
}
