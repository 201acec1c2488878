import { ArgumentError, knownOptions, ValueError } from '@heed/tensor'
import { arrayLike, binary, sameLength, weights, type Labels } from './validate.js'

/** Options shared by the base classification metrics (fairlearn's keyword arguments). */
export interface RateOptions {
  /** The label counted as positive (default 1); the other value is the negative class. */
  readonly posLabel?: number
  /** Per-row non-negative weights (default all 1); all zero is an error. */
  readonly sampleWeight?: Labels
  /**
   * The value of a rate whose denominator is empty (a TPR where no row is positive, an FPR where none is negative):
   * 0 by default, as fairlearn (scikit-learn's `confusion_matrix(normalize='true')`) gives; `NaN` for heed's earlier
   * "undefined" convention (the frame aggregations then skip that group, as pandas does); or 1.
   */
  readonly zeroDivision?: number
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
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ posLabel, sampleWeight, zeroDivision }', actual: String(opts) })
  knownOptions(op, opts, ['posLabel', 'sampleWeight', 'zeroDivision', 'ignoreTrue'])
  // both are required (sameLength skips an undefined optional vector such as sampleWeight)
  arrayLike(op, 'yTrue', yTrue)
  arrayLike(op, 'yPred', yPred)
  const n = sameLength(op, [['yTrue', yTrue], ['yPred', yPred], ['sampleWeight', opts.sampleWeight]])
  const pos = opts.posLabel ?? 1
  if (typeof pos !== 'number' || !Number.isFinite(pos)) throw new ValueError({ op, arg: 'posLabel', expected: 'a finite number', actual: typeof pos === 'number' ? pos : typeof pos })
  zeroDivision(op, opts.zeroDivision)
  const t = opts.ignoreTrue ? new Uint8Array(n) : binary(op, 'yTrue', yTrue, pos)
  const p = binary(op, 'yPred', yPred, pos)
  // one negative class across yTrue and yPred (fairlearn: no more than two unique y values)
  if (!opts.ignoreTrue) {
    const negs = new Set<number>()
    for (const v of [yTrue, yPred]) for (let i = 0; i < n; i++) if (v[i] !== pos) negs.add(v[i]!)
    if (negs.size > 1)
      throw new ValueError({ op, arg: 'yTrue, yPred', expected: `binary labels (${pos} and one other value)`, actual: `values ${[...negs, pos].join(', ')}` }, 'yTrue and yPred together must have no more than two unique values')
  }
  const w = weights(op, opts.sampleWeight, n)
  let tp = 0, fp = 0, tn = 0, fn = 0
  for (let i = 0; i < n; i++) {
    const wi = w[i]!
    if (t[i]) p[i] ? (tp += wi) : (fn += wi)
    else p[i] ? (fp += wi) : (tn += wi)
  }
  return { tp, fp, tn, fn }
}

/** @internal check the `zeroDivision` option: 0 (default), 1 or NaN. */
export function zeroDivision(op: string, z: unknown): number {
  if (z === undefined) return 0
  if (z === 0 || z === 1 || Number.isNaN(z)) return z as number
  throw new ValueError({ op, arg: 'zeroDivision', expected: '0 (fairlearn, the default), 1 or NaN', actual: typeof z === 'number' ? z : String(z) })
}

/** @internal a ratio whose empty denominator gives `zeroDivision` (0 by default, as in fairlearn). */
export const rate = (num: number, den: number, z: number | undefined = 0): number => (den > 0 ? num / den : z)
