import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** Recall, `P(ŷ = pos | y = pos)` (fairlearn `true_positive_rate`). NaN when no row is positive. */
export function truePositiveRate(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('truePositiveRate', yTrue, yPred, opts)
  return rate(c.tp, c.tp + c.fn)
}
