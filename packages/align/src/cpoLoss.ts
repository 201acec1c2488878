import { ArgumentError, div, exp, maximum, mean, minimum, mul, neg, relu, scope, square, stopGradient, sub, sum, add, type Tensor } from '@heed/tensor'
import { nonNegative, positive, requireNumber, requireOptions, smoothedLogistic, requireObject } from './internal.js'
import { preferenceMetrics, type DpoMetrics } from './dpoLoss.js'
import { resolvePreferenceLogps, type PreferenceLogps } from './preferenceLogps.js'

export type CpoLossType = 'sigmoid' | 'hinge' | 'ipo' | 'simpo'

export interface CpoLossOptions {
  /** Default `sigmoid` (CPO). `simpo` with `cpoAlpha: 0` is pure SimPO. */
  readonly lossType?: CpoLossType
  /** Default 0.1 (TRL's; SimPO's own recipes use β of order 2–10). */
  readonly beta?: number
  /** ε of the smoothed logistic for `sigmoid` and `simpo`. Default 0. */
  readonly labelSmoothing?: number
  /** SimPO's target reward margin γ. Default 0.5. */
  readonly simpoGamma?: number
  /** Weight of the NLL (behaviour cloning) term on the chosen responses. Default 1. */
  readonly cpoAlpha?: number
  /** AlphaPO's α: the reward becomes `(1 − p^{−α})/α`. Default 0 (log-prob rewards). */
  readonly alpha?: number
}

export interface CpoLossOutput {
  readonly loss: Tensor
  /** `[B]` preference part of the loss (without the NLL term). */
  readonly losses: Tensor
  /** Scalar mean token NLL on the chosen responses. */
  readonly nll: Tensor
  readonly chosenRewards: Tensor
  readonly rejectedRewards: Tensor
  readonly metrics: DpoMetrics & { readonly nll_loss: Tensor }
}

const lengthsOf = (op: string, l: Tensor | undefined, arg: string, why: string): Tensor => {
  if (l === undefined) throw new ArgumentError({ op, arg, expected: `completion lengths ${why} (or token-level inputs with masks)`, actual: 'undefined' })
  return maximum(l, 1)
}

/**
 * Reference-free preference losses of TRL's `CPOTrainer`: CPO (Xu et al.), SimPO (Meng et al.,
 * `−logσ(β(ā_w − ā_l) − γ)` on length-averaged log-probs), AlphaPO, plus `cpoAlpha`·NLL(chosen). Any
 * reference log-probs in the batch are ignored. `ipo` and `simpo` average log-probs over completion tokens,
 * so sequence-level inputs need lengths; the NLL term needs them too unless `cpoAlpha` is 0.
 */
export function cpoLoss(batch: PreferenceLogps, opts: CpoLossOptions = {}): CpoLossOutput {
  const op = 'cpoLoss'
  const o = requireOptions(op, opts, ['lossType', 'beta', 'labelSmoothing', 'simpoGamma', 'cpoAlpha', 'alpha'])
  const lossType = o['lossType'] ?? 'sigmoid'
  if (!['sigmoid', 'hinge', 'ipo', 'simpo'].includes(lossType as string))
    throw new ArgumentError({ op, arg: 'lossType', expected: "'sigmoid', 'hinge', 'ipo' or 'simpo'", actual: String(lossType) })
  const beta = positive(op, 'beta', o['beta'] ?? 0.1)
  const eps = requireNumber(op, 'labelSmoothing', o['labelSmoothing'] ?? 0, x => x >= 0 && x <= 1, 'a number in [0, 1]')
  const gamma = requireNumber(op, 'simpoGamma', o['simpoGamma'] ?? 0.5)
  const cpoAlpha = nonNegative(op, 'cpoAlpha', o['cpoAlpha'] ?? 1)
  const alpha = requireNumber(op, 'alpha', o['alpha'] ?? 0)
  // the batch is checked before it is taken apart: undefined would otherwise fail destructuring
  const { refChosenLogps: _rc, refRejectedLogps: _rr, ...policyOnly } = requireObject(op, 'batch', batch) as unknown as PreferenceLogps
  return scope(() => {
    const { chosen, rejected } = resolvePreferenceLogps(op, policyOnly)
    const average = lossType === 'ipo' || lossType === 'simpo'
    const wc = average ? div(chosen.logratios, lengthsOf(op, chosen.lengths, 'chosenLengths', `for '${lossType}'`)) : chosen.logratios
    const wr = average ? div(rejected.logratios, lengthsOf(op, rejected.lengths, 'rejectedLengths', `for '${lossType}'`)) : rejected.logratios
    // AlphaPO: (1 − e^{−α·logp})/α; the exponent is capped as in dpoLoss so very negative log-probs stay finite.
    const reward = (x: Tensor): Tensor => (alpha === 0 ? x : div(sub(1, exp(minimum(mul(x, -alpha), 80))), alpha))
    const rc = reward(wc)
    const rr = reward(wr)
    const h = sub(rc, rr)
    const losses =
      lossType === 'sigmoid'
        ? smoothedLogistic(mul(h, beta), eps)
        : lossType === 'hinge'
          ? relu(sub(1, mul(h, beta)))
          : lossType === 'ipo'
            ? square(sub(h, 1 / (2 * beta)))
            : smoothedLogistic(sub(mul(h, beta), gamma), eps)
    const nll =
      cpoAlpha === 0 && chosen.lengths === undefined
        ? mul(sum(chosen.logps), 0)
        : div(neg(sum(chosen.logps)), maximum(sum(lengthsOf(op, chosen.lengths, 'chosenLengths', 'for the NLL term (or cpoAlpha: 0)')), 1))
    const chosenRewards = stopGradient(mul(rc, beta))
    const rejectedRewards = stopGradient(mul(rr, beta))
    return {
      loss: add(mean(losses), mul(nll, cpoAlpha)),
      losses,
      nll,
      chosenRewards,
      rejectedRewards,
      metrics: { ...preferenceMetrics(chosenRewards, rejectedRewards, chosen.logps, rejected.logps), nll_loss: stopGradient(nll) },
    }
  })
}
