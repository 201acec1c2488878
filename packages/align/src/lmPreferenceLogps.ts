import { ArgumentError, cast, scope, slice, type Tensor } from '@heed/tensor'
import type { TransformerLM, TransformerLMParams } from '@heed/attention'
import type { LmPreferenceBatch } from './collatePreferences.js'
import { completionLogps } from './completionLogps.js'
import type { PreferenceLogps } from './preferenceLogps.js'

/**
 * The token-level `PreferenceLogps` of a batch under the policy: per-token log-probs `[B, T]` of each side with its
 * completion mask and the reference's precomputed log-probs, ready for `dpoLoss`, `cpoLoss`, `orpoLoss` or
 * `flexDpoLoss` (which sum over the mask, or average where the loss is length-normalised). Differentiable in
 * `params`; call inside the training loss.
 */
export function lmPreferenceLogps(lm: TransformerLM, params: TransformerLMParams, batch: LmPreferenceBatch): PreferenceLogps {
  const op = 'lmPreferenceLogps'
  if (batch === null || typeof batch !== 'object' || batch.sequences === undefined || !Number.isInteger(batch.pairs))
    throw new ArgumentError({ op, arg: 'batch', expected: 'an LmPreferenceBatch (collatePreferences)', actual: String(batch) })
  const B = batch.pairs
  return scope(() => {
    const perToken = completionLogps(lm, params, batch.sequences)
    const ref = cast(batch.refLogps, perToken.dtype)
    const rows = (t: Tensor, side: 0 | 1): Tensor => slice(t, [[side * B, (side + 1) * B]])
    return {
      chosenLogps: rows(perToken, 0),
      rejectedLogps: rows(perToken, 1),
      chosenMask: rows(batch.sequences.mask, 0),
      rejectedMask: rows(batch.sequences.mask, 1),
      refChosenLogps: rows(ref, 0),
      refRejectedLogps: rows(ref, 1),
    }
  })
}
