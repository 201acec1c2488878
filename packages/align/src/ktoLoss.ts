import { ArgumentError, DTypeError, ShapeError, add, cast, div, logicalNot, maximum, mean, mul, scope, sigmoid, stopGradient, sub, sum, tensor, where, type Tensor } from '@heed/tensor'
import { nonNegative, positive, requireFloat, requireLike, requireOptions, requireObject, requireRank, requireTensor } from './internal.js'

/** An unpaired batch for KTO: one completion per example, labelled desirable or not. */
export interface KtoBatch {
  /** `[N]` policy log-probs of each completion (summed). */
  readonly logps: Tensor
  /** `[N]` reference log-probs. */
  readonly refLogps: Tensor
  /** `[N]` bool: true where the completion is desirable. */
  readonly desirable: Tensor
  /**
   * The KL reference point: a number, or mismatched pairs `(x, y')` (TRL shifts completions by one within the
   * batch) given as `[M]` policy and reference log-probs whose mean log-ratio, detached and clamped at 0, is the KL.
   * Omit for `apo_zero_unpaired`, which needs none; for `kto` an omitted KL is 0.
   */
  readonly kl?: number | { readonly logps: Tensor; readonly refLogps: Tensor }
}

export interface KtoLossOptions {
  /** `kto` (default) or `apo_zero_unpaired`. */
  readonly lossType?: 'kto' | 'apo_zero_unpaired'
  /** Default 0.1. */
  readonly beta?: number
  /** λ_D, default 1. */
  readonly desirableWeight?: number
  /** λ_U, default 1. */
  readonly undesirableWeight?: number
}

export interface KtoLossOutput {
  readonly loss: Tensor
  /** `[N]` per-example losses. */
  readonly losses: Tensor
  /** `[N]` detached rewards `β·(logπ − logπ_ref)`. */
  readonly rewards: Tensor
  /** The KL reference point used (scalar, detached). */
  readonly kl: Tensor
  readonly metrics: {
    readonly kl: Tensor
    /** Mean reward over desirable examples (NaN when there are none). */
    readonly 'rewards/chosen': Tensor
    readonly 'rewards/rejected': Tensor
    readonly 'rewards/margins': Tensor
  }
}

/**
 * KTO (Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic Optimization"), TRL's `KTOTrainer`:
 * desirable `λ_D(1 − σ(β(c − KL)))`, undesirable `λ_U(1 − σ(β(KL − r)))`, averaged over the batch.
 */
export function ktoLoss(batch: KtoBatch, opts: KtoLossOptions = {}): KtoLossOutput {
  const op = 'ktoLoss'
  const b = requireObject(op, 'batch', batch)
  const o = requireOptions(op, opts, ['lossType', 'beta', 'desirableWeight', 'undesirableWeight'])
  const lossType = o['lossType'] ?? 'kto'
  if (lossType !== 'kto' && lossType !== 'apo_zero_unpaired') throw new ArgumentError({ op, arg: 'lossType', expected: "'kto' or 'apo_zero_unpaired'", actual: String(lossType) })
  const beta = positive(op, 'beta', o['beta'] ?? 0.1)
  const wd = nonNegative(op, 'desirableWeight', o['desirableWeight'] ?? 1)
  const wu = nonNegative(op, 'undesirableWeight', o['undesirableWeight'] ?? 1)
  const lp = requireFloat(op, 'logps', b['logps'])
  requireRank(op, 'logps', lp, [1])
  const ref = requireLike(op, 'refLogps', b['refLogps'], lp, 'logps')
  const des = requireTensor(op, 'desirable', b['desirable'])
  if (des.dtype !== 'bool') throw new DTypeError({ op, arg: 'desirable', expected: 'bool', actual: des.dtype })
  if (des.shape.length !== 1 || des.shape[0] !== lp.shape[0]) throw new ShapeError({ op, arg: 'desirable', expected: lp.shape, actual: des.shape })
  const klIn = b['kl']
  if (klIn !== undefined && typeof klIn !== 'number') requireObject(op, 'kl', klIn)
  return scope(() => {
    let kl: Tensor
    if (klIn === undefined) kl = tensor(0, [], lp.dtype)
    else if (typeof klIn === 'number') kl = tensor(nonNegative(op, 'kl', klIn), [], lp.dtype)
    else {
      const k = klIn as Record<string, unknown>
      const klp = requireFloat(op, 'kl.logps', k['logps'])
      requireRank(op, 'kl.logps', klp, [1])
      const klr = requireLike(op, 'kl.refLogps', k['refLogps'], klp, 'kl.logps')
      kl = stopGradient(maximum(mean(sub(klp, klr)), 0))
    }
    const logratio = sub(lp, ref)
    const z = mul(logratio, beta)
    const desirableLoss =
      lossType === 'kto' ? mul(sub(1, sigmoid(sub(z, mul(kl, beta)))), wd) : mul(sub(1, sigmoid(z)), wd)
    const undesirableLoss = lossType === 'kto' ? mul(sub(1, sigmoid(sub(mul(kl, beta), z))), wu) : mul(sigmoid(z), wu)
    const losses = where(des, desirableLoss, undesirableLoss)
    const rewards = stopGradient(z)
    const fd = cast(des, lp.dtype)
    const fu = cast(logicalNot(des), lp.dtype)
    const chosen = stopGradient(div(sum(mul(rewards, fd)), sum(fd)))
    const rejected = stopGradient(div(sum(mul(rewards, fu)), sum(fu)))
    return {
      loss: mean(losses),
      losses,
      rewards,
      kl,
      metrics: { kl: stopGradient(add(kl, 0)), 'rewards/chosen': chosen, 'rewards/rejected': rejected, 'rewards/margins': stopGradient(sub(chosen, rejected)) },
    }
  })
}
