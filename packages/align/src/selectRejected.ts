import { DTypeError, ShapeError, exp, greater, lessEqual, less, logicalAnd, mean, neg, scope, max, logSoftmax, type Tensor } from '@heed/tensor'
import { optionKeys, requireFlag, requireFloat, requireNumber, requireObject, requireOptions, requireRank, requireTensor } from './internal.js'

export interface SelectRejectedOptions {
  /** Attention-ratio threshold (see `miaDpoThreshold`). */
  readonly threshold: number
  /** Keep ratios equal to the threshold too (MIA-DPO's sequence data); default false. */
  readonly inclusive?: boolean
  /** Minimum greedy perplexity, default 1.1 (MIA-DPO keeps answers the model was not confident about). */
  readonly minPerplexity?: number
}

const OPTIONS = optionKeys<SelectRejectedOptions>({ threshold: true, inclusive: true, minPerplexity: true })

/**
 * MIA-DPO's attention-aware selection of rejected responses: a candidate (the model's own answer) is kept as
 * the rejected side of a pair when it differs from the ground truth, its perplexity exceeds `minPerplexity`
 * and the model's attention on the referenced image stayed below `threshold` — the answer is wrong *because*
 * the model looked elsewhere. Returns a `[N]` bool mask.
 */
export function selectRejected(
  candidates: { readonly ratios: Tensor; readonly perplexities: Tensor; readonly differs: Tensor },
  opts: SelectRejectedOptions,
): Tensor {
  const op = 'selectRejected'
  const o = requireOptions(op, opts, OPTIONS)
  const inclusive = requireFlag(op, 'inclusive', o['inclusive']) ?? false
  const c = requireObject(op, 'candidates', candidates)
  const threshold = requireNumber(op, 'threshold', o['threshold'])
  const minPpl = requireNumber(op, 'minPerplexity', o['minPerplexity'] ?? 1.1)
  const ratios = requireFloat(op, 'ratios', c['ratios'])
  requireRank(op, 'ratios', ratios, [1])
  const ppl = requireFloat(op, 'perplexities', c['perplexities'])
  const differs = requireTensor(op, 'differs', c['differs'])
  if (differs.dtype !== 'bool') throw new DTypeError({ op, arg: 'differs', expected: 'bool', actual: differs.dtype })
  for (const [name, t] of [['perplexities', ppl], ['differs', differs]] as const)
    if (t.rank !== 1 || t.shape[0] !== ratios.shape[0]) throw new ShapeError({ op, arg: name, expected: ratios.shape, actual: t.shape })
  return scope(() => {
    const low: Tensor<'bool'> = inclusive ? lessEqual(ratios, threshold) : less(ratios, threshold)
    return logicalAnd(logicalAnd(low, greater(ppl, minPpl)), differs as Tensor<'bool'>)
  })
}

/**
 * Greedy-decoding perplexity as MIA-DPO computes it: `exp(−mean_t log max softmax(logits_t))` over the
 * generated steps. `logits` is `[N, T, V]` (or `[T, V]`) → `[N]` (or scalar).
 */
export function greedyPerplexity(logits: Tensor): Tensor {
  const op = 'greedyPerplexity'
  const l = requireFloat(op, 'logits', logits)
  requireRank(op, 'logits', l, [2, 3])
  return scope(() => exp(neg(mean(max(logSoftmax(l, { axis: -1 }), { axis: -1 }), { axis: -1 }))))
}

