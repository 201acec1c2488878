import { ArgumentError, noGrad, scope, tensor, type Tensor } from '@heed/tensor'
import type { TransformerLM, TransformerLMParams } from '@heed/attention'
import type { LmPreferenceBatch } from './collatePreferences.js'
import { completionBatch } from './completionBatch.js'
import { completionLogps } from './completionLogps.js'
import type { KtoBatch } from './ktoLoss.js'
import { logpsFromTokens } from './logpsFromTokens.js'
import type { LanguageModel } from './preferenceDataset.js'

/**
 * KTO's unpaired view of a preference batch: its `2B` completions as separate examples, chosen ones desirable and
 * rejected ones undesirable, with the KL reference point from mismatched pairs — prompt `i` with the chosen
 * completion of pair `i + 1` (TRL's `KTOTrainer` shifts completions by one within the batch the same way), under
 * the policy and the reference without a tape (the KL is detached in the loss anyway).
 */
export function lmKtoBatch(lm: TransformerLM, params: TransformerLMParams, batch: LmPreferenceBatch, reference: LanguageModel): KtoBatch {
  const op = 'lmKtoBatch'
  if (batch === null || typeof batch !== 'object' || batch.sequences === undefined || !Array.isArray(batch.examples))
    throw new ArgumentError({ op, arg: 'batch', expected: 'an LmPreferenceBatch (collatePreferences)', actual: String(batch) })
  const B = batch.pairs
  const backend = params.embed.backend
  return scope(() => {
    const mask = batch.sequences.mask
    const logps = logpsFromTokens(completionLogps(lm, params, batch.sequences), mask)
    const refLogps = logpsFromTokens(batch.refLogps, mask)
    const desirable = tensor(Uint8Array.from({ length: 2 * B }, (_, i) => (i < B ? 1 : 0)), [2 * B], 'bool', { backend })
    const ex = batch.examples
    const kl = noGrad(() => {
      const mismatched = completionBatch(ex.map(e => e.prompt), ex.map((_, i) => ex[(i + 1) % B]!.chosen), { backend })
      const of = (m: LanguageModel): Tensor => logpsFromTokens(completionLogps(m.lm, m.params, mismatched), mismatched.mask)
      return { logps: of({ lm, params }), refLogps: of(reference) }
    })
    return { logps, refLogps, desirable, kl }
  })
}
