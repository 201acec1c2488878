import { add, broadcastTo, concat, exp, expandDims, matmul, max, mean, mul, reshape, scope, ShapeError, slice, softmax, sub, tensor, transpose, ValueError, where, type Tensor, positiveInt } from '@heed/tensor'
import { attnState } from '../attnState.js'
import { mask as masks } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult } from '../sdpa.js'
import { flag, operatorOptions } from './strict.js'

/**
 * Combiner-Fixed (Ren et al., "Combiner: Full Attention Transformer with Sparse Computation Cost", NeurIPS 2021;
 * `sqrt_fixed_full` in google-research/combiner). The sequence is cut into segments of `L` tokens. Query i
 * (segment σ(i)) takes one softmax over
 *   - the keys of its own segment (causal: j ≤ i), and
 *   - one summary key k̄_r = pool_{j∈r}(k_j) per other segment r (causal: r < σ(i)),
 * and a summary's value is the attention of the pooled query q̄_r over its own span: v̄_r = Σ_{j∈r} softmax_j(q̄_r·k_j) v_j.
 * Expanding p(j|i) = a_{i,r(j)}·softmax_j(q̄_r·k_j) gives a row-stochastic distribution with full support over
 * every allowed key ("full attention capability") at O(T·(L + T/L)·D) cost, O(T√T·D) at L = √T.
 *
 * The note finds no explicit 1/√D in the official functions; the scale here is one parameter (default 1/√D)
 * applied to every score, local, summary and span.
 */
export interface CombinerOptions {
  /** Tokens per segment L (default ⌈√T⌉; the paper's LM setup uses 128 at T = 2048). The last may be shorter. */
  readonly segmentLength?: number
  /** Span summary of keys and queries: 'max' (the official 'identity-max', default) or 'mean'. */
  readonly pool?: 'max' | 'mean'
  /** Causal: own segment up to i, summaries of completed earlier segments only (default false). */
  readonly causal?: boolean
  /** Default 1/√D. */
  readonly scale?: number
}

const OP = 'combinerAttention'

interface Plan {
  readonly L: number
  readonly n: number
  readonly causal: boolean
  readonly scale: number
  readonly pool: 'max' | 'mean'
}

function plan(op: string, q: Tensor, k: Tensor, v: Tensor, opts: CombinerOptions): Plan {
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, ['segmentLength', 'pool', 'causal', 'scale'])
  flag(op, 'causal', opts.causal)
  const T = q.shape[2]!
  if (k.shape[2] !== T) throw new ShapeError({ op, arg: 'k', expected: `${T} keys like q (summaries pool the queries of each key segment)`, actual: k.shape })
  const L = opts.segmentLength ?? Math.max(1, Math.ceil(Math.sqrt(T)))
  positiveInt(op, 'segmentLength', L)
  const pool = opts.pool ?? 'max'
  if (pool !== 'max' && pool !== 'mean') throw new ValueError({ op, arg: 'pool', expected: "'max' or 'mean'", actual: pool })
  const scale = opts.scale ?? 1 / Math.sqrt(q.shape[3]!)
  if (!Number.isFinite(scale)) throw new ValueError({ op, arg: 'scale', expected: 'a finite number', actual: scale })
  return { L, n: Math.max(1, Math.ceil(T / L)), causal: opts.causal ?? false, scale, pool }
}

/** Pool each segment of `[B, h, T, D]` along T → `[B, h, n, D]`. */
function poolSegments(x: Tensor, p: Plan): Tensor {
  const T = x.shape[2]!
  const parts: Tensor[] = []
  for (let r = 0; r < p.n; r++) {
    const seg = slice(x, [null, null, [r * p.L, Math.min(T, (r + 1) * p.L)]])
    parts.push(p.pool === 'max' ? max(seg, { axis: 2, keepDims: true }) : mean(seg, { axis: 2, keepDims: true }))
  }
  return parts.length === 1 ? parts[0]! : concat(parts, 2)
}

/** `[B, Hkv, n, D]` → `[B, H, n, D]`, query head h reading kv head ⌊h/g⌋. */
function repeatHeads(x: Tensor, H: number): Tensor {
  const [B, Hkv, n, D] = x.shape as [number, number, number, number]
  if (Hkv === H) return x
  return reshape(broadcastTo(expandDims(x, 2), [B, Hkv, H / Hkv, n, D]), [B, H, n, D])
}

interface Parts {
  readonly local: AttentionResult
  readonly summary: AttentionResult
  /** [B, H, n, D] summary keys, one per segment. */
  readonly kBar: Tensor
  /** [B, H, n, D] pooled queries. */
  readonly qBar: Tensor
}

function parts(q: Tensor, k: Tensor, v: Tensor, p: Plan): Parts {
  const T = q.shape[2]!
  const H = q.shape[1]!
  const sc = { scale: p.scale, queryOffset: 0, keyOffset: 0 }
  const segOf = Int32Array.from({ length: T }, (_, j) => Math.floor(j / p.L))
  const segIds = Int32Array.from({ length: p.n }, (_, r) => r)
  const qBar = poolSegments(q, p)
  const kBar = repeatHeads(poolSegments(k, p), H)
  // Span values: pooled query r attends to the keys of segment r only (non-causally: the segment is complete).
  const vBar = scaledDotProductAttention(qBar, k, v, { ...sc, mask: masks.segments(segIds, segOf) }).out
  const local = scaledDotProductAttention(q, k, v, { ...sc, causal: p.causal, mask: masks.chunk(p.L) })
  const other = masks.not(masks.segments(segOf, segIds))
  const summary = scaledDotProductAttention(q, kBar, vBar, {
    ...sc,
    mask: p.causal ? masks.custom((_b, _h, pq, r) => r < Math.floor(pq / p.L)) : other,
  })
  return { local, summary, kBar, qBar }
}

/**
 * Combiner-Fixed attention on self-attention inputs q `[B, H, T, D]`, k `[B, Hkv, T, D]`, v `[B, Hkv, T, Dv]`.
 * Returns the output and the lse of the joint softmax (local keys and summaries), so its states merge like any
 * softmax attention's. One segment (L ≥ T) is exact softmax attention. Differentiable; CPU and WebGPU.
 */
export function combinerAttention(q: Tensor, k: Tensor, v: Tensor, opts: CombinerOptions = {}): AttentionResult {
  const p = plan(OP, q, k, v, opts)
  return scope(() => {
    const { local, summary } = parts(q, k, v, p)
    const m = attnState.merge({ o: local.out, lse: local.lse }, { o: summary.out, lse: summary.lse })
    return { out: m.o, lse: m.lse }
  })
}

/**
 * The expanded attention `[B, H, T, T]`: p(j|i) = a_ij on the own segment, a_{i,r}·softmax_j(q̄_r·k_j) on other
 * allowed segments. Dense (O(T²) memory): for analysis and tests; `P V` equals {@link combinerAttention}'s output.
 */
export function combinerWeights(q: Tensor, k: Tensor, opts: CombinerOptions = {}): Tensor {
  const p = plan('combinerWeights', q, k, k, opts)
  const [B, H, T] = q.shape as [number, number, number, number]
  const like = { backend: q.backend }
  return scope(() => {
    const { local, summary, kBar, qBar } = parts(q, k, k, p)
    const kh = repeatHeads(k, H)
    const allowedLocal = tensor(Array.from({ length: T * T }, (_, x) => {
      const [i, j] = [Math.floor(x / T), x % T]
      return Math.floor(i / p.L) === Math.floor(j / p.L) && (!p.causal || j <= i)
    }), [T, T], 'bool', like)
    const allowedSummary = tensor(Array.from({ length: T * p.n }, (_, x) => {
      const [i, r] = [Math.floor(x / p.n), x % p.n]
      const s = Math.floor(i / p.L)
      return p.causal ? r < s : r !== s
    }), [T, p.n], 'bool', like)
    const member = tensor(Array.from({ length: p.n * T }, (_, x) => Math.floor((x % T) / p.L) === Math.floor(x / T)), [p.n, T], 'bool', like)
    // The joint softmax's normaliser is the merged lse; each part's probabilities are exp(score − lse).
    const lse = attnState.merge({ o: local.out, lse: local.lse }, { o: summary.out, lse: summary.lse }).lse
    const l4 = expandDims(lse, 3)
    const kT = transpose(kh, [0, 1, 3, 2])
    const pLocal = where(allowedLocal, exp(sub(mul(matmul(q, kT), p.scale), l4)), 0)
    const pSummary = where(allowedSummary, exp(sub(mul(matmul(q, transpose(kBar, [0, 1, 3, 2])), p.scale), l4)), 0)
    const span = softmax(where(member, mul(matmul(qBar, kT), p.scale), -Infinity), { axis: -1 })
    return reshape(add(pLocal, matmul(pSummary, span)), [B, H, T, T])
  })
}
