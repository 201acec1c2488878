import { confusion, rate, type RateOptions } from './confusion.js'
import type { Labels } from './validate.js'

/** Fraction of rows with `ŷ = y` (weighted). */
export function accuracy(yTrue: Labels, yPred: Labels, opts: RateOptions = {}): number {
  const c = confusion('accuracy', yTrue, yPred, opts)
  return rate(c.tp + c.tn, c.tp + c.fp + c.tn + c.fn, opts.zeroDivision)
}
