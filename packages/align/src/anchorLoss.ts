import { ValueError, logSigmoid, mean, mul, neg, scope, sub, type Tensor } from '@heed/tensor'
import { requireFloat, requireNumber, requireOptions } from './internal.js'

export interface AnchorLossOptions {
  /** The anchor δ. Default 0 (OPA-DPO's `Anchor_value`). */
  readonly delta?: number
  /** `above` pushes rewards above δ: `−logσ(r − δ)`; `below`: `−logσ(δ − r)`. Default `above`. */
  readonly direction?: 'above' | 'below'
}

/**
 * Anchored preference (mDPO's anchor, used by OPA-DPO): a logistic pull of implicit rewards `r = β·log-ratio`
 * to one side of an anchor δ, so that DPO cannot satisfy the margin by lowering both likelihoods. Mean over
 * the batch.
 */
export function anchorLoss(rewards: Tensor, opts: AnchorLossOptions = {}): Tensor {
  const op = 'anchorLoss'
  const r = requireFloat(op, 'rewards', rewards)
  const o = requireOptions(op, opts, ['delta', 'direction'])
  const delta = requireNumber(op, 'delta', o['delta'] ?? 0)
  const direction = o['direction'] ?? 'above'
  if (direction !== 'above' && direction !== 'below') throw new ValueError({ op, arg: 'direction', expected: "'above' or 'below'", actual: String(direction) })
  return scope(() => {
    const d = sub(r, delta)
    return mean(neg(logSigmoid(direction === 'above' ? d : mul(d, -1))))
  })
}
