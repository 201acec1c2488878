import { dpoLossAs, type DpoLossOptions, type DpoLossOutput } from './dpoLoss.js'
import { nonNegative, positive, requireOptions } from './internal.js'
import type { PreferenceLogps } from './preferenceLogps.js'

export interface FlexDpoLossOptions extends Omit<DpoLossOptions, 'beta' | 'betaRejected' | 'lossType' | 'lossWeights'> {
  /** β⁺ on the chosen log-ratio. Default 0.1. */
  readonly betaChosen?: number
  /** β⁻ on the rejected log-ratio; below β⁺ it damps the drop of the rejected likelihood. Default 0.08. */
  readonly betaRejected?: number
  /** λ of the SFT regulariser `λ·NLL(chosen)` (the 3D-properties paper's second fix). Default 0 (off). */
  readonly sftWeight?: number
}

/**
 * The 3D-properties paper's fixes ("Identifying Challenges in DPO and Charting a Path Forward", ICLR 2025):
 * Flex-DPO `−logσ(β⁺·c − β⁻·r)` with separate temperatures, optionally plus an SFT term on the chosen
 * responses (which needs lengths or masks). The default β⁻ = 0.08 is the paper's best value for β⁺ = 0.1.
 */
export function flexDpoLoss(batch: PreferenceLogps, opts: FlexDpoLossOptions = {}): DpoLossOutput {
  const op = 'flexDpoLoss'
  const { betaChosen, betaRejected, sftWeight, ...rest } = requireOptions(op, opts, ['betaChosen', 'betaRejected', 'sftWeight', 'labelSmoothing', 'discopopTau', 'fDivergence', 'fAlpha', 'bcoDelta', 'pairWeights']) as FlexDpoLossOptions
  const beta = positive(op, 'betaChosen', betaChosen ?? 0.1)
  const betaR = positive(op, 'betaRejected', betaRejected ?? 0.08)
  const lambda = nonNegative(op, 'sftWeight', sftWeight ?? 0)
  return dpoLossAs(op, batch, {
    ...rest,
    beta,
    betaRejected: betaR,
    ...(lambda > 0 ? { lossType: ['sigmoid', 'sft'] as const, lossWeights: [1, lambda] } : { lossType: 'sigmoid' as const }),
  })
}
