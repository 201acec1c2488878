import {
  add,
  argmax,
  concat,
  div,
  DTypeError,
  exp,
  expandDims,
  greater,
  hasKernel,
  kernelOp,
  logicalAnd,
  matmul,
  max,
  mul,
  registerKernel,
  reshape,
  scope,
  ShapeError,
  sub,
  take,
  tanh,
  tensor,
  ValueError,
  where,
  type Tensor,
  positiveInt,
} from '@heed/tensor'
import type { CpuKernel, CpuTensor } from '@heed/tensor/cpu'
import { AttentionKernel, attentionGeometry, type AttentionGeometry } from './kernels/attrs.js'
import type { Mask } from './mask.js'
import type { ScoreMod } from './scoreMod.js'
import { attentionAttrs, checkQkv, SDPA_OPTIONS, type SdpaOptions } from './sdpa.js'
import { operatorOptions } from './operators/strict.js'

/**
 * Exact, lazy observation of softmax attention: with the row logsumexp saved
 * by the forward pass, p_ij = exp(S'_ij − lse_i) is exact, so any slice of P is recomputed from q and k alone in
 * O(slice · D) without the T×T matrix. Scores are recomputed with tensor ops (so this runs on every backend and
 * is differentiable); masks and positional score mods are evaluated on the host into tables the size of the slice.
 */

export type Indices = readonly number[] | Int32Array

export interface ObserveOptions extends Omit<SdpaOptions, 'blockSize'> {
  /** Query rows to observe (default all). */
  readonly rows?: Indices
  /** Key columns to observe (default all). */
  readonly cols?: Indices
}

interface Resolved {
  readonly scale: number
  readonly qOffset: number
  readonly kOffset: number
  readonly mask: Mask
  readonly scoreMod: ScoreMod | undefined
}

// scores only: there is no v, so Dv reads as D
function geometry(op: string, q: Tensor, k: Tensor): AttentionGeometry {
  checkQkv(op, q, k, k)
  return attentionGeometry(q, k, k)
}

function indices(op: string, arg: string, idx: Indices | undefined, n: number): Int32Array | undefined {
  if (idx === undefined) return undefined
  if (!(Array.isArray(idx) || idx instanceof Int32Array)) throw new ValueError({ op, arg, expected: 'an array or Int32Array of indices', actual: typeof idx })
  for (const i of idx)
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new ValueError({ op, arg, expected: `integers in [0, ${n})`, actual: i })
  return Int32Array.from(idx)
}

function checkLse(op: string, lse: Tensor, q: Tensor): void {
  const want = q.shape.slice(0, 3)
  if (lse.rank !== 3 || lse.shape.some((d, i) => d !== want[i])) throw new ShapeError({ op, arg: 'lse', expected: `[${want.join(', ')}] (q's leading dims)`, actual: lse.shape })
  if (lse.dtype !== q.dtype) throw new DTypeError({ op, arg: 'lse', expected: `${q.dtype} like q`, actual: lse.dtype })
}

const range = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i)

// ---- score mods ------------------------------------------------------------------------------------------------

/** Attrs of the custom score-mod kernels: the closure and the absolute positions of the score rows and columns. */
interface ScoreModAttrs {
  readonly mod: ScoreMod
  readonly pq: Int32Array
  readonly pk: Int32Array
}

/** Custom score mods are opaque closures: they run in a CPU kernel (differentiable through `derivative`). */
const customModKernel =
  (derivative: boolean): CpuKernel<ScoreModAttrs> =>
  (inputs, attrs) => {
    const s = inputs[0]!
    const { mod, pq, pk } = attrs
    const [B, H, R, C] = s.shape as [number, number, number, number]
    const out = new (s.values.constructor as Float64ArrayConstructor)(s.values.length)
    for (let b = 0, i = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let r = 0; r < R; r++)
          for (let c = 0; c < C; c++, i++) {
            const x = s.values[i]!
            out[i] = derivative ? mod.derivative(x, b, h, pq[r]!, pk[c]!) : mod.apply(x, b, h, pq[r]!, pk[c]!)
          }
    return { values: out, shape: s.shape, dtype: s.dtype } satisfies CpuTensor
  }

function ensureObserveKernels(): void {
  if (hasKernel('cpu', AttentionKernel.ScoreModCustom)) return
  registerKernel('cpu', AttentionKernel.ScoreModCustom, customModKernel(false))
  registerKernel('cpu', AttentionKernel.ScoreModCustomGrad, customModKernel(true))
}

/** `mod` applied to scores [B, H, R, C] whose rows sit at positions pq and columns at pk. */
function applyScoreMod(s: Tensor, mod: ScoreMod, pq: Int32Array, pk: Int32Array): Tensor {
  const n = mod.node
  const [, H, R, C] = s.shape as [number, number, number, number]
  // Additive positional biases become a host table [1, H, R, C]; s + (−x) equals the kernels' s − x exactly.
  const bias = (f: (h: number, dq: number, dk: number) => number): Tensor => {
    const t = new Float64Array(H * R * C)
    for (let h = 0, i = 0; h < H; h++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++, i++) t[i] = f(h, pq[r]!, pk[c]!)
    return add(s, tensor(t, [1, H, R, C], s.dtype, { backend: s.backend }))
  }
  switch (n.kind) {
    case 'alibi':
      return bias((h, a, b) => -(n.slopes[h % n.slopes.length]! * (a - b)))
    case 'relativeBias':
      return bias((h, a, b) => n.table[(h % n.heads) * (2 * n.maxDistance + 1) + Math.max(-n.maxDistance, Math.min(n.maxDistance, b - a)) + n.maxDistance]!)
    case 'softcap':
      return mul(tanh(div(s, n.cap)), n.cap)
    case 'compose':
      return n.mods.reduce((x, m) => applyScoreMod(x, m, pq, pk), s)
    case 'custom': {
      ensureObserveKernels()
      const attrs: ScoreModAttrs = { mod, pq, pk }
      return kernelOp('attentionProbs.scoreMod', AttentionKernel.ScoreModCustom, [s], attrs, (dys, { inputs }) => [
        mul(dys[0]!, kernelOp('attentionProbs.scoreMod.grad', AttentionKernel.ScoreModCustomGrad, [inputs[0]!], attrs)[0]!),
      ])[0]!
    }
  }
}

/** Host-evaluated mask table [B, H, R, C] (undefined when the mask allows every pair). */
function maskTable(m: Mask, g: AttentionGeometry, pq: Int32Array, pk: Int32Array, backend: string): Tensor | undefined {
  if (m.node.kind === 'all') return undefined
  const R = pq.length
  const C = pk.length
  const t = new Uint8Array(g.B * g.H * R * C)
  for (let b = 0, i = 0; b < g.B; b++)
    for (let h = 0; h < g.H; h++)
      for (let r = 0; r < R; r++) {
        const p = pq[r]!
        for (let c = 0; c < C; c++, i++) t[i] = m.test(b, h, p, pk[c]!) ? 1 : 0
      }
  return tensor(t, [g.B, g.H, R, C], 'bool', { backend })
}

/**
 * Modified scores S' [B, H, R, C] of the chosen rows and columns, and the allowed-pair table. GQA without
 * repeating K: the g query heads sharing a kv head are folded into the row axis of one matmul.
 */
function scores(q: Tensor, k: Tensor, g: AttentionGeometry, a: Resolved, rows: Int32Array | undefined, cols: Int32Array | undefined): { s: Tensor; allowed: Tensor | undefined } {
  const R = rows ? rows.length : g.Tq
  const C = cols ? cols.length : g.Tk
  const qs = rows ? take(q, tensor(rows, [R], 'int32', { backend: q.backend }), 2) : q
  const ks = cols ? take(k, tensor(cols, [C], 'int32', { backend: k.backend }), 2) : k
  const grouped = reshape(qs, [g.B, g.Hkv, (g.H / g.Hkv) * R, g.D])
  let s: Tensor = mul(reshape(matmul(grouped, ks, { transposeB: true }), [g.B, g.H, R, C]), a.scale)
  const pq = (rows ?? range(g.Tq)).map(i => i + a.qOffset)
  const pk = (cols ?? range(g.Tk)).map(j => j + a.kOffset)
  if (a.scoreMod) s = applyScoreMod(s, a.scoreMod, pq, pk)
  return { s, allowed: maskTable(a.mask, g, pq, pk, q.backend) }
}

/**
 * The forward's options, checked in the observing function's name. The forward's own `blockSize` is accepted (and
 * has no effect: the recomputed probabilities do not depend on the key tile), so the very options of the sdpa
 * call can be passed; any other key is a mistake.
 */
function resolve(op: string, q: Tensor, k: Tensor, opts: Omit<SdpaOptions, 'blockSize'>, extra: readonly string[]): Resolved {
  operatorOptions(op, opts, [...SDPA_OPTIONS, ...extra])
  const { scale, qOffset, kOffset, mask, scoreMod } = attentionAttrs(q, k, opts, op)
  return { scale, qOffset, kOffset, mask, scoreMod }
}

function probsOf(s: Tensor, allowed: Tensor | undefined, lseRows: Tensor): Tensor {
  const l = expandDims(lseRows, -1)
  // Rows that saw no key have lse = −∞; selecting −∞ (rather than multiplying by 0 afterwards) keeps NaN out of
  // both the values and the gradient.
  const live = greater(l, -Infinity)
  return exp(where(allowed ? logicalAnd(allowed, live) : live, sub(s, l), -Infinity))
}

/**
 * Exact attention probabilities P = softmax(S') for chosen query rows and/or key columns, recomputed from `lse`
 * (the second output of `scaledDotProductAttention`, or of any operator with the same scores). Pass the same
 * mask/score-mod/scale/offset options as the forward call. Returns [B, H, |rows|, |cols|] (all rows or columns
 * when omitted). Differentiable with respect to q, k and lse. Masked entries and rows are exactly 0.
 */
export function attentionProbs(q: Tensor, k: Tensor, lse: Tensor, opts: ObserveOptions = {}): Tensor {
  const op = 'attentionProbs'
  const g = geometry(op, q, k)
  checkLse(op, lse, q)
  const a = resolve(op, q, k, opts, ['rows', 'cols'])
  const rows = indices(op, 'rows', opts.rows, g.Tq)
  const cols = indices(op, 'cols', opts.cols, g.Tk)
  return scope(() => {
    const { s, allowed } = scores(q, k, g, a, rows, cols)
    const l = rows ? take(lse, tensor(rows, [rows.length], 'int32', { backend: lse.backend }), 2) : lse
    return probsOf(s, allowed, l)
  })
}

export interface ChunkOptions {
  /** Query rows per step: memory stays O(chunkSize · Tk). Default 64. */
  readonly chunkSize?: number
}

function chunks(op: string, Tq: number, size: number | undefined): Int32Array[] {
  const n = size ?? 64
  positiveInt(op, 'chunkSize', n)
  const out: Int32Array[] = []
  for (let s = 0; s < Tq; s += n) out.push(Int32Array.from({ length: Math.min(n, Tq - s) }, (_, i) => s + i))
  return out
}

/**
 * int32 [B, H, Tq]: the key index each query row attends to most (the first on ties), −1 on fully masked rows.
 * Computed from the scores (argmax of P is argmax of S') a query chunk at a time. This is the retrieval-head
 * score's copy test.
 */
export function rowArgmax(q: Tensor, k: Tensor, opts: Omit<ObserveOptions, 'rows' | 'cols'> & ChunkOptions = {}): Tensor {
  const op = 'rowArgmax'
  const g = geometry(op, q, k)
  const a = resolve(op, q, k, opts, ['chunkSize'])
  const parts = chunks(op, g.Tq, opts.chunkSize)
  if (parts.length === 0) return tensor(new Int32Array(0), [g.B, g.H, 0], 'int32', { backend: q.backend })
  return scope(() => {
    const outs = parts.map(rows =>
      scope(() => {
        const { s, allowed } = scores(q, k, g, a, rows, undefined)
        const masked = allowed ? where(allowed, s, -Infinity) : s
        return where(greater(max(masked, { axis: -1 }), -Infinity), argmax(masked, { axis: -1 }), -1)
      }),
    )
    return outs.length === 1 ? outs[0]! : concat(outs, 2)
  })
}

/**
 * Σ_{j ∈ set} P_ij for each query row and each set of key indices: [B, H, Tq, |sets|] (ACT/VAR sink masses, MIA
 * region ratios). One matmul of each query chunk's probabilities with a 0/1 membership matrix; differentiable.
 */
export function colSetMass(q: Tensor, k: Tensor, lse: Tensor, sets: readonly Indices[], opts: Omit<ObserveOptions, 'rows' | 'cols'> & ChunkOptions = {}): Tensor {
  const op = 'colSetMass'
  const g = geometry(op, q, k)
  checkLse(op, lse, q)
  operatorOptions(op, opts, [...SDPA_OPTIONS, 'chunkSize'])
  if (!Array.isArray(sets) || sets.length === 0) throw new ValueError({ op, arg: 'sets', expected: 'a non-empty array of index sets', actual: Array.isArray(sets) ? 0 : typeof sets })
  const member = new Float64Array(g.Tk * sets.length)
  sets.forEach((set, c) => {
    for (const j of indices(op, `sets[${c}]`, set, g.Tk)!) member[j * sets.length + c] = 1
  })
  const a = resolve(op, q, k, opts, ['chunkSize'])
  const parts = chunks(op, g.Tq, opts.chunkSize)
  return scope(() => {
    const m = tensor(member, [g.Tk, sets.length], q.dtype, { backend: q.backend })
    const outs = parts.map(rows => {
      const { s, allowed } = scores(q, k, g, a, rows, undefined)
      const l = take(lse, tensor(rows, [rows.length], 'int32', { backend: lse.backend }), 2)
      return matmul(probsOf(s, allowed, l), m)
    })
    return outs.length === 1 ? outs[0]! : concat(outs, 2)
  })
}
