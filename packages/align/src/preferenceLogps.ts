import { ArgumentError, DTypeError, ShapeError, scope, sub, type Tensor } from '@heed/tensor'
import { completionMask, logpsFromTokens, tokenCounts } from './logpsFromTokens.js'
import { requireFloat, requireLike, requireObject, requireRank } from './internal.js'

/**
 * Log-probabilities of a batch of preference pairs, the input of every paired loss. Either sequence-level
 * (`[B]` summed log-probs, TRL's `chosen_logps`, with `chosenLengths`/`rejectedLengths` where a loss
 * normalises by length) or token-level (`[B, T]` per-token log-probs with `chosenMask`/`rejectedMask`, summed
 * inside; the lengths then come from the masks). `refChosenLogps`/`refRejectedLogps` have the policy's shape;
 * leaving both out is TRL's `reference_free` (the reference log-ratio is 0).
 */
export interface PreferenceLogps {
  readonly chosenLogps: Tensor
  readonly rejectedLogps: Tensor
  readonly refChosenLogps?: Tensor
  readonly refRejectedLogps?: Tensor
  /** `[B, T]` completion masks (bool or numeric, nonzero = completion token) for token-level inputs. */
  readonly chosenMask?: Tensor
  readonly rejectedMask?: Tensor
  /** `[B]` completion token counts for sequence-level inputs (IPO, `sigmoid_norm`, `sft`, SimPO, ORPO). */
  readonly chosenLengths?: Tensor
  readonly rejectedLengths?: Tensor
  /**
   * `[B, T]` per-token weights on the token-level log-ratio (OPA-DPO: `w ⊙ (logπ − logπ_ref)`); token-level
   * inputs only. They weight the loss's log-ratios; `logps/*` metrics stay unweighted.
   */
  readonly chosenTokenWeights?: Tensor
  readonly rejectedTokenWeights?: Tensor
}

/** One side (chosen or rejected) of a batch, reduced to `[B]` sequences. */
export interface ResolvedSide {
  /** Policy log-probs, summed (unweighted). */
  readonly logps: Tensor
  /** Policy minus reference log-probs (token weights applied), or the policy log-probs when reference-free. */
  readonly logratios: Tensor
  /** Completion token counts, when known. */
  readonly lengths: Tensor | undefined
}

function resolveSide(op: string, b: Record<string, unknown>, side: 'chosen' | 'rejected'): ResolvedSide {
  const cap = side === 'chosen' ? 'Chosen' : 'Rejected'
  const lp = requireFloat(op, `${side}Logps`, b[`${side}Logps`])
  requireRank(op, `${side}Logps`, lp, [1, 2])
  const refRaw = b[`ref${cap}Logps`]
  const ref = refRaw === undefined ? undefined : requireLike(op, `ref${cap}Logps`, refRaw, lp, `${side}Logps`)
  const weightsRaw = b[`${side}TokenWeights`]
  if (lp.rank === 1) {
    for (const k of [`${side}Mask`, `${side}TokenWeights`])
      if (b[k] !== undefined) throw new ArgumentError({ op, arg: k, expected: `token-level [B, T] ${side}Logps to go with it`, actual: `${side}Logps of shape [${lp.shape.join(',')}]` })
    const lenRaw = b[`${side}Lengths`]
    const lengths = lenRaw === undefined ? undefined : requireLike(op, `${side}Lengths`, lenRaw, lp, `${side}Logps`)
    return { logps: lp, logratios: ref === undefined ? lp : sub(lp, ref), lengths }
  }
  if (b[`${side}Mask`] === undefined) throw new ArgumentError({ op, arg: `${side}Mask`, expected: `a [B, T] mask for token-level ${side}Logps`, actual: 'undefined' })
  if (b[`${side}Lengths`] !== undefined) throw new ArgumentError({ op, arg: `${side}Lengths`, expected: 'no lengths with token-level inputs (the mask gives them)', actual: 'a tensor' })
  const mask = completionMask(op, `${side}Mask`, b[`${side}Mask`], lp)
  const weights = weightsRaw === undefined ? undefined : requireLike(op, `${side}TokenWeights`, weightsRaw, lp, `${side}Logps`)
  const logps = logpsFromTokens(lp, mask)
  const tokenRatio = ref === undefined ? lp : sub(lp, ref)
  const logratios = logpsFromTokens(tokenRatio, mask, weights === undefined ? {} : { weights })
  return { logps, logratios, lengths: tokenCounts(op, mask, lp) }
}

/** One side of a batch, validated and reduced (inside a `scope`). */
export const resolveSideOf = (op: string, batch: PreferenceLogps, side: 'chosen' | 'rejected'): ResolvedSide =>
  resolveSide(op, requireObject(op, 'batch', batch), side)

/**
 * Validate a batch and reduce it to `[B]` per-sequence quantities. Call inside a `scope`: the results are
 * temporaries of the caller.
 */
export function resolvePreferenceLogps(op: string, batch: PreferenceLogps): { chosen: ResolvedSide; rejected: ResolvedSide; referenceFree: boolean } {
  const b = requireObject(op, 'batch', batch)
  if ((b['refChosenLogps'] === undefined) !== (b['refRejectedLogps'] === undefined))
    throw new ArgumentError({ op, arg: b['refChosenLogps'] === undefined ? 'refChosenLogps' : 'refRejectedLogps', expected: 'both reference log-probs or neither', actual: 'only one' })
  return scope(() => {
    const chosen = resolveSide(op, b, 'chosen')
    const rejected = resolveSide(op, b, 'rejected')
    if (chosen.logps.shape[0] !== rejected.logps.shape[0])
      throw new ShapeError({ op, arg: 'rejectedLogps', expected: `batch size ${chosen.logps.shape[0]} like chosenLogps`, actual: rejected.logps.shape })
    if (chosen.logps.dtype !== rejected.logps.dtype)
      throw new DTypeError({ op, arg: 'rejectedLogps', expected: `${chosen.logps.dtype} like chosenLogps`, actual: rejected.logps.dtype })
    return { chosen, rejected, referenceFree: b['refChosenLogps'] === undefined }
  })
}
