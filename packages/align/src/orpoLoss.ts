import { ArgumentError, ValueError, add, div, exp, expm1, log, log1p, logSigmoid, maximum, mean, minimum, mul, neg, scope, stopGradient, sub, sum, where, less, type Tensor } from '@heed/tensor'
import { positive, requireFloat, requireOptions, requireObject } from './internal.js'
import { preferenceMetrics, type DpoMetrics } from './dpoLoss.js'
import { resolvePreferenceLogps, type PreferenceLogps } from './preferenceLogps.js'

export interface OrpoLossOptions {
  /** λ, the weight of the odds-ratio term. Default 0.1. */
  readonly beta?: number
}

export interface OrpoLossOutput {
  readonly loss: Tensor
  /** `[B]` per-pair odds-ratio losses `−β·logσ(log_odds)`. */
  readonly losses: Tensor
  readonly nll: Tensor
  readonly logOdds: Tensor
  readonly chosenRewards: Tensor
  readonly rejectedRewards: Tensor
  readonly metrics: DpoMetrics & { readonly nll_loss: Tensor; readonly log_odds_ratio: Tensor; readonly log_odds_chosen: Tensor }
}

const LN2 = Math.LN2

/**
 * `log(1 − eˣ)` for x < 0, two-branch (Mächler): `log1p(−eˣ)` below −ln 2, `log(−expm1(x))` above. Each branch
 * is evaluated on inputs clamped into its own half, so the branch not taken never produces inf whose zero
 * cotangent would turn into a NaN gradient.
 */
export function log1mexp(x: Tensor): Tensor {
  requireFloat('log1mexp', 'x', x)
  return scope(() => {
    const lo = minimum(x, -LN2)
    const hi = maximum(x, -LN2)
    return where(less(x, -LN2), log1p(neg(exp(lo))), log(neg(expm1(hi))))
  })
}

/**
 * ORPO (Hong et al., "ORPO: Monolithic Preference Optimization without Reference Model"), TRL's
 * `odds_ratio_loss`: `L = NLL(chosen) − β·mean(logσ(log_odds))` with length-averaged log-probs ā < 0 and
 * `log_odds = (ā_w − ā_l) − (log1mexp(ā_w) − log1mexp(ā_l))`. Reference log-probs, if present, are ignored.
 */
export function orpoLoss(batch: PreferenceLogps, opts: OrpoLossOptions = {}): OrpoLossOutput {
  const op = 'orpoLoss'
  const o = requireOptions(op, opts, ['beta'])
  const beta = positive(op, 'beta', o['beta'] ?? 0.1)
  // the batch is checked before it is taken apart: undefined would otherwise fail destructuring
  const { refChosenLogps: _rc, refRejectedLogps: _rr, ...policyOnly } = requireObject(op, 'batch', batch) as unknown as PreferenceLogps
  return scope(() => {
    const { chosen, rejected } = resolvePreferenceLogps(op, policyOnly)
    for (const [s, arg] of [[chosen, 'chosenLengths'], [rejected, 'rejectedLengths']] as const)
      if (s.lengths === undefined) throw new ArgumentError({ op, arg, expected: 'completion lengths (ORPO averages log-probs per token), or token-level inputs with masks', actual: 'undefined' })
    // a log-probability is ≤ 0: a positive one (logits or scores passed by mistake) makes log(1 − p) NaN. Checked
    // where the values are host-resident (CPU); on a device the odds come out NaN instead of stalling the queue
    for (const [s, arg] of [[chosen, 'chosenLogps'], [rejected, 'rejectedLogps']] as const)
      if (s.logps.backend === 'cpu') {
        const v = s.logps.dataSync()
        for (let i = 0; i < v.length; i++)
          if (v[i]! > 0) throw new ValueError({ op, arg: `${arg}[${i}]`, expected: 'a log-probability ≤ 0 (log-softmax of the logits, summed over the completion)', actual: v[i] }, 'ORPO takes log-probabilities, not logits')
      }
    const nc = maximum(chosen.lengths!, 1)
    const aw = div(chosen.logps, nc)
    const al = div(rejected.logps, maximum(rejected.lengths!, 1))
    const logOdds = sub(sub(aw, al), sub(log1mexp(aw), log1mexp(al)))
    const ratio = logSigmoid(logOdds)
    const losses = mul(ratio, -beta)
    const nll = div(neg(sum(chosen.logps)), maximum(sum(nc), 1))
    const chosenRewards = stopGradient(mul(aw, beta))
    const rejectedRewards = stopGradient(mul(al, beta))
    return {
      loss: add(nll, mean(losses)),
      losses,
      nll,
      logOdds,
      chosenRewards,
      rejectedRewards,
      metrics: {
        ...preferenceMetrics(chosenRewards, rejectedRewards, chosen.logps, rejected.logps),
        nll_loss: stopGradient(nll),
        log_odds_ratio: stopGradient(mean(ratio)),
        log_odds_chosen: stopGradient(mean(logOdds)),
      },
    }
  })
}
