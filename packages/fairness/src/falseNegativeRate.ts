import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** `P(ŷ ≠ pos | y = pos)` (fairlearn `false_negative_rate`). With no positive row: `zeroDivision` (0, as fairlearn; or NaN). */
export function falseNegativeRate(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('falseNegativeRate', yTrue, yPred, opts)
  return rate(c.fn, c.tp + c.fn, opts.zeroDivision)
}
