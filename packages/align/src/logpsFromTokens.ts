import { ShapeError, ValueError, cast, div, maximum, mul, notEqual, scope, sum, where, type Tensor } from '@heed/tensor'
import { requireFloat, requireLike, requireOptions, requireRank, requireTensor, sameShape } from './internal.js'

export type LogpReduce = 'sum' | 'mean'

export interface LogpsFromTokensOptions {
  /** `sum` (DPO and most of its family) or `mean` over completion tokens (IPO, SimPO, ORPO). Default `sum`. */
  readonly reduce?: LogpReduce
  /** Per-token weights `[B, T]` applied before reducing (OPA-DPO's severity weights). */
  readonly weights?: Tensor
}

/** Completion mask as bool: accepts bool or numeric masks (nonzero = completion token). */
export function completionMask(op: string, arg: string, mask: unknown, like: Tensor): Tensor {
  const m = requireTensor(op, arg, mask)
  if (!sameShape(m.shape, like.shape)) throw new ShapeError({ op, arg, expected: like.shape, actual: m.shape }, 'mask must match the per-token log-probs')
  return m.dtype === 'bool' ? m : notEqual(m, 0)
}

/** Number of completion tokens per row of a `[B, T]` mask, as `like`'s float dtype. */
export function tokenCounts(op: string, mask: Tensor, like: Tensor): Tensor {
  return scope(() => sum(cast(mask, like.dtype), { axis: -1 }))
}

/**
 * Per-sequence log-probabilities from per-token ones (TRL `_compute_loss` steps 3–4): positions outside the
 * completion mask are selected away rather than multiplied by 0, because a `-inf` log-prob times 0 is NaN and
 * would poison the gradient of the whole batch. `mean` divides by `max(n_tokens, 1)` so an empty completion
 * gives 0, not NaN.
 */
export function logpsFromTokens(perTokenLogps: Tensor, mask: Tensor, opts: LogpsFromTokensOptions = {}): Tensor {
  const op = 'logpsFromTokens'
  const lp = requireFloat(op, 'perTokenLogps', perTokenLogps)
  requireRank(op, 'perTokenLogps', lp, [2])
  const o = requireOptions(op, opts, ['reduce', 'weights'])
  const reduce = o['reduce'] ?? 'sum'
  if (reduce !== 'sum' && reduce !== 'mean') throw new ValueError({ op, arg: 'reduce', expected: "'sum' or 'mean'", actual: String(reduce) })
  const weights = o['weights'] === undefined ? undefined : requireLike(op, 'weights', o['weights'], lp, 'perTokenLogps')
  return scope(() => {
    const m = completionMask(op, 'mask', mask, lp)
    const contrib = weights === undefined ? lp : mul(lp, weights)
    const total = sum(where(m, contrib, 0), { axis: -1 })
    if (reduce === 'sum') return total
    return div(total, maximum(tokenCounts(op, m, lp), 1))
  })
}
