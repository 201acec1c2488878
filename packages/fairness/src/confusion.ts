import { binary, sameLength, weights, type Labels } from './validate.js'

/** Options shared by the base classification metrics (fairlearn's keyword arguments). */
export interface RateOptions {
  /** The label counted as positive (default 1); the other value is the negative class. */
  readonly posLabel?: number
  /** Per-row non-negative weights (default all 1). */
  readonly sampleWeight?: Labels
}

/** @internal */
export interface ConfusionOptions extends RateOptions {
  /** Only the length of yTrue matters (selection rate is a property of the predictions alone). */
  readonly ignoreTrue?: boolean
}

/** @internal weighted confusion counts of binary labels. */
export interface Confusion {
  readonly tp: number
  readonly fp: number
  readonly tn: number
  readonly fn: number
}

/** @internal */
export function confusion(op: string, yTrue: Labels, yPred: Labels, opts: ConfusionOptions = {}): Confusion {
  const n = sameLength(op, [['yTrue', yTrue], ['yPred', yPred], ['sampleWeight', opts.sampleWeight]])
  const pos = opts.posLabel ?? 1
  const t = opts.ignoreTrue ? new Uint8Array(n) : binary(op, 'yTrue', yTrue, pos)
  const p = binary(op, 'yPred', yPred, pos)
  const w = weights(op, opts.sampleWeight, n)
  let tp = 0, fp = 0, tn = 0, fn = 0
  for (let i = 0; i < n; i++) {
    const wi = w[i]!
    if (t[i]) p[i] ? (tp += wi) : (fn += wi)
    else p[i] ? (fp += wi) : (tn += wi)
  }
  return { tp, fp, tn, fn }
}

/** @internal a ratio whose empty denominator is undefined (NaN), never silently 0. */
export const rate = (num: number, den: number): number => (den > 0 ? num / den : Number.NaN)
