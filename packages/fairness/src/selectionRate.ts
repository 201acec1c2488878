import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** Fraction of rows predicted positive, `P(ŷ = pos)` (fairlearn `selection_rate`; ignores yTrue apart from its length). */
export function selectionRate(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('selectionRate', yTrue, yPred, { ...opts, ignoreTrue: true })
  return rate(c.tp + c.fp, c.tp + c.fp + c.tn + c.fn, opts.zeroDivision)
}
