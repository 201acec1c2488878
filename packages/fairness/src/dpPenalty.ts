import { ArgumentError, DTypeError, ShapeError, ValueError, matmul, mean, mul, reshape, scope, sigmoid, square, sub, sum, tensor, type Tensor } from '@heed/tensor'
import { liveTensor, options } from './validate.js'

export interface DpPenaltyOptions {
  /** Weight η of the penalty (default 1). */
  readonly eta?: number
  /** `sum` (default) over groups, or `mean` over fairtorch's 2·G constraint rows (= sum / 2G). */
  readonly reduce?: 'sum' | 'mean'
  /** What `scores` holds: probabilities (default) or logits (a sigmoid is applied once). */
  readonly input?: 'probs' | 'logits'
  /**
   * `fixed` (default): one constraint pair per group g, penalty `η·Σ_g (μ_g − μ)²`. `fairtorch`: the
   * as-implemented fairtorch loss the Distraction code imports, whose constraint matrix uses the first group in
   * every row (`η·G·(μ_0 − μ)²`) — right for two groups, wrong beyond; kept only to reproduce their numbers.
   */
  readonly variant?: 'fixed' | 'fairtorch'
}

const OP = 'dpPenalty'
const KEYS: Record<keyof DpPenaltyOptions, true> = { eta: true, reduce: true, input: true, variant: true }

/**
 * Differentiable demographic-parity penalty on a batch (the fairtorch `DemographicParityLoss` design, fixed):
 * with μ_g the mean score of group g in the batch and μ the batch mean, each group contributes
 * `relu(μ_g − μ)² + relu(μ − μ_g)² = (μ_g − μ)²`. Groups absent from the batch contribute nothing. Works for any
 * number of groups. `scores`: float `[B]` or `[B, 1]`; `groups`: one integer group id ≥ 0 per row.
 */
export function dpPenalty(scores: Tensor, groups: ArrayLike<number>, opts: DpPenaltyOptions = {}): Tensor {
  opts = options(OP, opts, Object.keys(KEYS))
  liveTensor(OP, 'scores', scores)
  if (scores.dtype !== 'float32' && scores.dtype !== 'float64') throw new DTypeError({ op: OP, arg: 'scores', expected: 'float32 or float64', actual: scores.dtype })
  const B = scores.shape[0] ?? 0
  if (!(scores.rank === 1 || (scores.rank === 2 && scores.shape[1] === 1)) || B === 0)
    throw new ShapeError({ op: OP, arg: 'scores', expected: '[B] or [B, 1] with B ≥ 1', actual: scores.shape })
  if (!(Array.isArray(groups) || ArrayBuffer.isView(groups))) throw new ArgumentError({ op: OP, arg: 'groups', expected: 'an array of group ids', actual: typeof groups })
  if (groups.length !== B) throw new ShapeError({ op: OP, arg: 'groups', expected: `length ${B} (rows of scores)`, actual: `length ${groups.length}` })
  const eta = opts.eta ?? 1
  if (!Number.isFinite(eta) || eta < 0) throw new ValueError({ op: OP, arg: 'eta', expected: 'a finite number ≥ 0', actual: eta })
  const reduce = opts.reduce ?? 'sum'
  if (reduce !== 'sum' && reduce !== 'mean') throw new ValueError({ op: OP, arg: 'reduce', expected: "'sum' or 'mean'", actual: String(reduce) })
  const variant = opts.variant ?? 'fixed'
  if (variant !== 'fixed' && variant !== 'fairtorch') throw new ValueError({ op: OP, arg: 'variant', expected: "'fixed' or 'fairtorch'", actual: String(variant) })
  const input = opts.input ?? 'probs'
  if (input !== 'probs' && input !== 'logits') throw new ValueError({ op: OP, arg: 'input', expected: "'probs' or 'logits'", actual: String(input) })
  let G = 0
  for (let i = 0; i < B; i++) {
    const g = groups[i]!
    if (!Number.isInteger(g) || g < 0) throw new ValueError({ op: OP, arg: `groups[${i}]`, expected: 'an integer group id ≥ 0', actual: g })
    G = Math.max(G, g + 1)
  }
  const count = new Float64Array(G)
  for (let i = 0; i < B; i++) count[groups[i]!]!++
  const present = [...count.keys()].filter(g => count[g]! > 0)
  // Averaging weights as a constant [B, G'] matrix, so one matmul gives every group mean and the gradient
  // flows to the scores only.
  const avg = new Float64Array(B * present.length)
  const col = new Map(present.map((g, j) => [g, j]))
  for (let i = 0; i < B; i++) avg[i * present.length + col.get(groups[i]!)!] = 1 / count[groups[i]!]!
  return scope(() => {
    const p0 = reshape(scores, [1, B])
    const p = input === 'logits' ? sigmoid(p0) : p0
    const W = tensor(avg, [B, present.length], scores.dtype)
    const mu = matmul(p, W)
    const all = mean(p)
    let total: Tensor
    if (variant === 'fixed') total = sum(square(sub(mu, all)))
    else {
      const first = present.indexOf(0) >= 0 ? 0 : present[0]!
      const m0 = reshape(matmul(p, tensor(Array.from({ length: B }, (_, i) => avg[i * present.length + col.get(first)!]!), [B, 1], scores.dtype)), [])
      total = mul(square(sub(m0, all)), tensor(present.length, [], scores.dtype))
    }
    const rows = reduce === 'mean' ? 2 * present.length : 1
    return mul(total, tensor(eta / rows, [], scores.dtype))
  })
}
