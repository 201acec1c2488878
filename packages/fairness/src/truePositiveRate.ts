import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** Recall, `P(ŷ = pos | y = pos)` (fairlearn `true_positive_rate`). With no positive row: `zeroDivision` (0, as fairlearn; or NaN). */
export function truePositiveRate(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('truePositiveRate', yTrue, yPred, opts)
  return rate(c.tp, c.tp + c.fn, opts.zeroDivision)
}
