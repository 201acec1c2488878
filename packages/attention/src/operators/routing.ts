import {
  add, argmax, div, equal, expandDims, gather, greater, lessEqual, logicalAnd, matmul, maximum, mul, oneHot, reshape, scatterAdd, scope, ShapeError,
  softmax, sort, sqrt, sub, sum, tensor, topk, transpose, ValueError, where, zeros, ones, type Tensor,
} from '@heed/tensor'
import { checkQkv } from '../sdpa.js'
import { flag, operatorOptions, tensorArg } from './strict.js'

/**
 * Routing attention (Roy et al., "Efficient Content-Based Sparse Attention with Routing Transformers", TACL 2021).
 * Queries and keys are routed to `C` centroids on the unit sphere (online spherical k-means); each token attends
 * only to keys routed to the same centroid. Two routings:
 * - 'balanced' (the paper and `lucidrains/routing-transformer`): every centroid takes its top-`w` queries and its
 *   top-`w` keys by μ·x̂ (`w = T/C` by default), members attend within their cluster (causally by original
 *   position when causal), and a query's outputs over the clusters it joined are averaged (`scatter_mean`);
 *   a query no centroid picked gets 0. Membership depends on the whole sequence, so this is not prefix-consistent
 *   even when causal (the note's CAB caveat).
 * - 'argmax': every token joins its nearest centroid only. Each token's cluster depends on itself alone, so the
 *   causal form is prefix-consistent and has a decode form. Dense O(T²) evaluation here.
 * Cost of 'balanced': O(T·C·D) routing + O(C·w²·D) attention, O(T^1.5·D) at C = √T.
 *
 * The paper leaves open details of how centroids move; this library follows lucidrains: x̂ = x/‖x‖, assignment by
 * argmax μ·x̂, and μ ← normalize(λ·μ + (1 − λ)·normalize(mean of assigned x̂)) with λ = 0.999 (see {@link kmeansUpdate}).
 */
export interface RoutingOptions {
  /** Unit centroids `[H, C, D]` (one set per head) or `[C, D]` (shared). */
  readonly centroids: Tensor
  /** 'balanced' (default) or 'argmax'. */
  readonly assignment?: 'balanced' | 'argmax'
  /** Members per cluster for 'balanced' (default ⌈T/C⌉, the paper's `w = T/k`). */
  readonly window?: number
  /** Attend only to keys at or before the query's position (default false). */
  readonly causal?: boolean
  /** Default 1/√D. */
  readonly scale?: number
  /**
   * Shared-QK routing heads: a token's score with itself is replaced by −5·10⁴ (lucidrains' `TOKEN_SELF_ATTN_VALUE`)
   * so it attends to itself only when nothing else is visible. Default false.
   */
  readonly excludeSelf?: boolean
}

const OP = 'routingAttention'
const SELF = -5e4

function checkCentroids(op: string, c: unknown, H: number, D: number): Tensor {
  const t = c as Tensor
  if (typeof c !== 'object' || c === null || !('shape' in c) || !(t.rank === 2 || t.rank === 3))
    throw new ShapeError({ op, arg: 'centroids', expected: `a tensor [${H}, C, ${D}] or [C, ${D}]`, actual: c })
  if (t.shape[t.rank - 1] !== D || (t.rank === 3 && t.shape[0] !== H)) throw new ShapeError({ op, arg: 'centroids', expected: `[${H}, C, ${D}] or [C, ${D}]`, actual: t.shape })
  return t
}

/** Rows scaled to unit length (zero rows stay zero). */
export function unitRows(x: Tensor): Tensor {
  tensorArg('unitRows', 'x', x)
  if (x.rank < 1) throw new ShapeError({ op: 'unitRows', arg: 'x', expected: 'rank ≥ 1 (rows along the last axis)', actual: x.shape })
  return unit(x)
}
const unit = (x: Tensor): Tensor =>
  scope(() => div(x, maximum(sqrt(sum(mul(x, x), { axis: -1, keepDims: true })), 1e-12)))

/** μ·x̂ for every token and centroid: `[B, H, T, C]`. */
function routeScores(x: Tensor, centroids: Tensor): Tensor {
  const mu = centroids.rank === 2 ? expandDims(centroids, 0) : centroids
  return matmul(unit(x), transpose(mu, [0, 2, 1]))
}

/** Member positions per cluster, ascending: `[B, H, C, w]` int32. */
function members(x: Tensor, centroids: Tensor, w: number): Tensor {
  const r = transpose(routeScores(x, centroids), [0, 1, 3, 2])
  return sort(topk(r, w, { axis: -1 }).indices, { axis: -1 })
}

/**
 * Softmax attention of q `[…, Tq, D]` over k, v `[…, Tk, ·]` restricted to `allowed` (bool, broadcastable to the
 * scores); rows with nothing allowed give 0. Masked scores are a large finite negative, so no −∞ − (−∞) NaN.
 */
function maskedAttention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, scale: number, selfPair?: Tensor): Tensor {
  let s = mul(matmul(q, transpose(k, [...Array.from({ length: k.rank - 2 }, (_, i) => i), k.rank - 1, k.rank - 2])), scale)
  if (selfPair) s = where(selfPair, SELF, s)
  const p = where(allowed, softmax(where(allowed, s, -1e30), { axis: -1 }), 0)
  return matmul(p, v)
}

/**
 * Routing attention. q `[B, H, T, D]`, k `[B, H, T, D]`, v `[B, H, T, Dv]` (self-attention: routing compares
 * query and key positions; 'argmax' also takes Tk > T, queries being the last T positions) → `{ out [B, H, T, Dv] }`. Differentiable in q, k, v (routing itself is discrete);
 * CPU and WebGPU.
 */
export function routingAttention(q: Tensor, k: Tensor, v: Tensor, opts: RoutingOptions): { readonly out: Tensor } {
  checkQkv(OP, q, k, v)
  operatorOptions(OP, opts, ['centroids', 'assignment', 'window', 'causal', 'scale', 'excludeSelf'], '{ centroids, … }')
  flag(OP, 'causal', opts.causal)
  flag(OP, 'excludeSelf', opts.excludeSelf)
  const [B, H, T, D] = q.shape as [number, number, number, number]
  const Dv = v.shape[3]!
  const Tk = k.shape[2]!
  const assignment = opts.assignment ?? 'balanced'
  // Balanced membership compares queries and keys of one sequence; argmax routing also serves decode (Tq < Tk,
  // the last query aligned with the last key).
  if (k.shape[1] !== H || (assignment === 'balanced' ? Tk !== T : Tk < T))
    throw new ShapeError({ op: OP, arg: 'k', expected: `[${B}, ${H}, ${assignment === 'balanced' ? T : `≥ ${T}`}, ${D}] (one routing per head)`, actual: k.shape })
  const mu = checkCentroids(OP, opts.centroids, H, D)
  const C = mu.shape[mu.rank - 2]!
  const scale = opts.scale ?? 1 / Math.sqrt(D)
  if (!Number.isFinite(scale)) throw new ValueError({ op: OP, arg: 'scale', expected: 'a finite number', actual: scale })
  if (assignment !== 'balanced' && assignment !== 'argmax') throw new ValueError({ op: OP, arg: 'assignment', expected: "'balanced' or 'argmax'", actual: assignment })
  const causal = opts.causal ?? false
  const like = { backend: q.backend }
  return {
    out: scope(() => {
      if (assignment === 'argmax') {
        const cq = argmax(routeScores(q, mu), { axis: -1 })
        const ck = argmax(routeScores(k, mu), { axis: -1 })
        let allowed = equal(expandDims(cq, 3), expandDims(ck, 2))
        const posQ = expandDims(tensor(Int32Array.from({ length: T }, (_, i) => Tk - T + i), [T], 'int32', like), 1)
        const posK = expandDims(tensor(Int32Array.from({ length: Tk }, (_, j) => j), [Tk], 'int32', like), 0)
        if (causal) allowed = logicalAnd(allowed, lessEqual(posK, posQ))
        const self = opts.excludeSelf ? equal(posK, posQ) : undefined
        return maskedAttention(q, k, v, allowed, scale, self)
      }
      const w = opts.window ?? Math.ceil(T / C)
      if (!Number.isInteger(w) || w < 1 || w > T) throw new ValueError({ op: OP, arg: 'window', expected: `an integer in [1, ${T}]`, actual: w })
      const iq = members(q, mu, w)
      const ik = members(k, mu, w)
      // Flat row numbers into [B·H·T, ·] so one gather serves every (batch, head).
      const base = tensor(Int32Array.from({ length: B * H }, (_, bh) => bh * T), [B, H, 1, 1], 'int32', like)
      const fq = add(iq, base)
      const fk = add(ik, base)
      const rows = (x: Tensor, f: Tensor) => gather(reshape(x, [B * H * T, x.shape[3]!]), f, 0)
      const pq = expandDims(iq, 4)
      const pk = expandDims(ik, 3)
      const allowed = causal ? lessEqual(pk, pq) : tensor([true], [1], 'bool', like)
      const o = maskedAttention(rows(q, fq), rows(k, fk), rows(v, fk), allowed, scale, opts.excludeSelf ? equal(pk, pq) : undefined)
      const total = scatterAdd(zeros([B * H * T, Dv], { dtype: q.dtype, backend: q.backend }), fq, o, 0)
      const count = scatterAdd(zeros([B * H * T, 1], { dtype: q.dtype, backend: q.backend }), fq, ones([B, H, C, w, 1], { dtype: q.dtype, backend: q.backend }), 0)
      return reshape(div(total, maximum(count, 1)), [B, H, T, Dv])
    }),
  }
}

/**
 * Spherical k-means objective Σ_x (1 − max_c μ_c·x̂) over x `[B, H, N, D]` (summed over batch, per head): the
 * quantity a hard update (`decay = 0`) never increases on fixed data. Returns `[H]`.
 */
export function kmeansObjective(x: Tensor, centroids: Tensor): Tensor {
  tensorArg('kmeansObjective', 'x', x, 'a Tensor [B, H, N, D]')
  if (x.rank !== 4) throw new ShapeError({ op: 'kmeansObjective', arg: 'x', expected: 'rank 4 [B, H, N, D]', actual: x.shape })
  const H = x.shape[1]!
  checkCentroids('kmeansObjective', centroids, H, x.shape[3]!)
  return scope(() => {
    const best = topk(routeScores(x, centroids), 1, { axis: -1 }).values
    return sum(sub(1, best), { axis: [0, 2, 3] })
  })
}

/**
 * One online k-means step on x `[B, H, N, D]` (pass queries and keys concatenated along N, as the paper updates from
 * both): each x̂ joins its nearest centroid; a centroid with members moves to
 * normalize(λ·μ + (1 − λ)·normalize(mean of its x̂)); one without stays. `decay` λ defaults to 0.999; λ = 0 is the
 * hard (Lloyd) update. Returns centroids shaped like the input (`[H, C, D]` or `[C, D]`, shared over heads).
 */
export function kmeansUpdate(x: Tensor, centroids: Tensor, opts: { readonly decay?: number } = {}): Tensor {
  const op = 'kmeansUpdate'
  tensorArg(op, 'x', x, 'a Tensor [B, H, N, D]')
  operatorOptions(op, opts, ['decay'])
  if (x.rank !== 4) throw new ShapeError({ op, arg: 'x', expected: 'rank 4 [B, H, N, D]', actual: x.shape })
  const [, H, , D] = x.shape as [number, number, number, number]
  const mu = checkCentroids(op, centroids, H, D)
  const decay = opts.decay ?? 0.999
  if (!(decay >= 0 && decay <= 1)) throw new ValueError({ op, arg: 'decay', expected: 'a number in [0, 1]', actual: decay })
  const C = mu.shape[mu.rank - 2]!
  return scope(() => {
    const xh = unit(x)
    const assign = oneHot(argmax(routeScores(x, mu), { axis: -1 }), C, { dtype: x.dtype })
    // Per head, or pooled over heads when the centroids are shared.
    const axes = mu.rank === 3 ? [0] : [0, 1]
    const sums = sum(matmul(transpose(assign, [0, 1, 3, 2]), xh), { axis: axes })
    const counts = sum(assign, { axis: [...axes, 2] })
    const mean = unit(sums)
    const moved = unit(add(mul(mu, decay), mul(mean, 1 - decay)))
    return where(greater(expandDims(counts, -1), 0), moved, mu)
  })
}
