import { knownOptions } from '@heed/tensor'
import { arrayLike, binary, sameLength } from './validate.js'
import type { Labels } from './validate.js'

/**
 * Theil index of the per-row "benefit" `b = ŷ − y + 1` (AIF360 `theil_index`, the generalised entropy index at
 * α = 1): `mean((b/μ)·ln(b/μ))` with `0·ln 0 = 0`. 0 when every row gets the same benefit, including μ = 0
 * (every row a false negative: everyone gets benefit 0, an equal share; AIF360 divides by zero there and gives NaN).
 */
export function theilIndex(yTrue: Labels, yPred: Labels, opts: { readonly posLabel?: number } = {}): number {
  const op = 'theilIndex'
  knownOptions(op, opts, ['posLabel'])
  arrayLike(op, 'yTrue', yTrue)
  arrayLike(op, 'yPred', yPred)
  const n = sameLength(op, [['yTrue', yTrue], ['yPred', yPred]])
  const pos = opts.posLabel ?? 1
  const t = binary(op, 'yTrue', yTrue, pos)
  const p = binary(op, 'yPred', yPred, pos)
  let mu = 0
  for (let i = 0; i < n; i++) mu += p[i]! - t[i]! + 1
  mu /= n
  if (mu === 0) return 0
  let s = 0
  for (let i = 0; i < n; i++) {
    const r = (p[i]! - t[i]! + 1) / mu
    if (r > 0) s += r * Math.log(r)
  }
  return s / n
}
