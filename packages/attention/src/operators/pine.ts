import { add, checkAllocation, concat, nonNegativeInt, mul, reshape, scope, ShapeError, slice, stack, sub, tensor, ValueError, type Tensor } from '@heed/tensor'
import { attnState, type AttnState } from '../attnState.js'
import { mask as masks, type Mask } from '../mask.js'
import { colSetMass } from '../observe.js'
import type { RopeOptions } from '../rope.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult } from '../sdpa.js'
import { operatorOptions } from './strict.js'

export interface PineRope extends RopeOptions {
  /** Leading features of each head that rotate (default all; must be even). Partial rotary, as in GPT-NeoX. */
  readonly dims?: number
}

export interface PineOptions {
  /**
   * The documents as [start, end) row ranges, adjacent and ascending: the input is `[prefix, D1 … Dk, suffix]`.
   * Rows are positions (self-attention, Tq = Tk, no offsets).
   */
  readonly documents: readonly (readonly [number, number])[]
  /** PINE's own rotary embedding, applied to the *unrotated* q and k (default: base 10000, 'half'); false: none. */
  readonly rope?: PineRope | false
  /** Score scale (default 1/√D). */
  readonly scale?: number
  /** And-ed with PINE's mask. */
  readonly mask?: Mask
  /** The document order per (b, h, row), from `await pinePlan(…)`; needed off the host (WebGPU). */
  readonly plan?: PinePlan
}

/** Per batch entry, head and query row: the documents from farthest to nearest (own document last, if any). */
export interface PinePlan {
  readonly order: readonly (readonly (readonly (readonly number[])[])[])[]
}

export interface PineResult extends AttentionResult {
  readonly plan: PinePlan
}

const OP = 'pineAttention'

interface Layout {
  readonly T: number
  readonly docs: readonly (readonly [number, number])[]
  /** First document row, and one past the last. */
  readonly s: number
  readonly e: number
  /** Document index of each row, −1 outside the documents. */
  readonly docOf: Int32Array
}

function layout(documents: unknown, T: number, op: string = OP): Layout {
  if (!Array.isArray(documents)) throw new ValueError({ op, arg: 'documents', expected: 'an array of [start, end) row ranges', actual: typeof documents })
  const docs = documents as readonly (readonly [number, number])[]
  docs.forEach((d, i) => {
    const prev = i === 0 ? undefined : docs[i - 1]![1]
    if (!Array.isArray(d) || d.length !== 2 || !Number.isInteger(d[0]) || !Number.isInteger(d[1]) || d[0] < 0 || d[1] <= d[0] || d[1] > T || (prev !== undefined && d[0] !== prev))
      throw new ValueError({ op, arg: `documents[${i}]`, expected: `a non-empty [start, end) inside [0, ${T}] starting where the previous one ends`, actual: d })
  })
  const docOf = new Int32Array(T).fill(-1)
  docs.forEach(([a, b], m) => docOf.fill(m, a, b))
  return { T, docs, s: docs[0]?.[0] ?? 0, e: docs[docs.length - 1]?.[1] ?? 0, docOf }
}

/** PINE's mask: causal, plus every document row sees every other document in full. */
export function pineMask(documents: readonly (readonly [number, number])[], T: number): Mask {
  nonNegativeInt('pineMask', 'T', T)
  checkAllocation('pineMask', 'T', T, 'int32')
  const l = layout(documents, T, 'pineMask')
  return pineMaskOf(l)
}

function pineMaskOf(l: Layout): Mask {
  if (l.docs.length < 2) return masks.causal
  // ids: document rows carry their document, everything else −1; "both in documents, different ones".
  const inDocs = Int32Array.from(l.docOf, d => (d >= 0 ? 1 : 0))
  const same = masks.segments(l.docOf)
  const both = masks.segments(inDocs, Int32Array.from(inDocs, x => (x ? 1 : 2)))
  return masks.or(masks.causal, masks.and(both, masks.not(same)))
}

/** Rows of the key set of part `m` (a document), or of the rest (prefix and suffix) for m = −1. */
function partIds(l: Layout, m: number): Mask {
  const q = new Int32Array(l.T).fill(1)
  return masks.segments(q, Int32Array.from(l.docOf, d => (d === m ? 1 : 0)))
}

/**
 * Order of the documents for each (b, h, row) from the importance `imp[b, h, row, m]` (position-free attention mass
 * on document m over its length): ascending importance, so the most important lands nearest; ties to the lower
 * document id. A document row's own document goes last.
 */
function orderFrom(l: Layout, imp: ArrayLike<number>, B: number, H: number): number[][][][] {
  const K = l.docs.length
  const len = l.docs.map(([a, b]) => b - a)
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: H }, (_, h) =>
      Array.from({ length: l.T }, (_, i) => {
        if (i < l.s) return []
        const own = l.docOf[i]!
        const score = (m: number): number => Number(imp[((b * H + h) * l.T + i) * K + m]) / len[m]!
        const others = Array.from({ length: K }, (_, m) => m).filter(m => m !== own)
        others.sort((x, y) => score(x) - score(y) || x - y)
        return own >= 0 ? [...others, own] : others
      }),
    ),
  )
}

function resolve(q: Tensor, k: Tensor, v: Tensor, opts: PineOptions, op: string = OP): { l: Layout; rotary: number; rope: PineRope | false } {
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, ['documents', 'rope', 'scale', 'mask', ...(op === OP ? ['plan'] : [])], '{ documents, … }')
  if (opts.rope !== undefined && opts.rope !== false) operatorOptions(`${op}: rope`, opts.rope, ['base', 'style', 'dims'], 'RoPE options { base, style, dims } or false')
  const [, , Tq, D] = q.shape as [number, number, number, number]
  if (k.shape[2] !== Tq) throw new ShapeError({ op, arg: 'k', expected: `${Tq} keys (PINE is self-attention over one sequence)`, actual: k.shape })
  const l = layout(opts.documents, Tq, op)
  const rope = opts.rope ?? {}
  const rotary = rope === false ? 0 : (rope.dims ?? D)
  if (rope !== false && (!Number.isInteger(rotary) || rotary < 2 || rotary % 2 !== 0 || rotary > D))
    throw new ValueError({ op, arg: 'rope.dims', expected: `an even number of rotating features in [2, ${D}]`, actual: rotary })
  if (rope !== false && rope.base !== undefined && !(Number.isFinite(rope.base) && rope.base > 1)) throw new ValueError({ op, arg: 'rope.base', expected: 'a finite number > 1', actual: rope.base })
  if (rope !== false && rope.style !== undefined && rope.style !== 'half' && rope.style !== 'interleaved') throw new ValueError({ op, arg: 'rope.style', expected: "'half' or 'interleaved'", actual: rope.style })
  return { l, rotary, rope }
}

/** Position-free importance of each document for each row: [B, H, T, K] attention mass (not yet length-normalised). */
function importance(q: Tensor, k: Tensor, v: Tensor, l: Layout, opts: PineOptions): Tensor {
  return scope(() => {
    const m = opts.mask ? masks.and(pineMaskOf(l), opts.mask) : pineMaskOf(l)
    const o = { mask: m, queryOffset: 0, keyOffset: 0, ...(opts.scale !== undefined ? { scale: opts.scale } : {}) }
    const { lse } = scaledDotProductAttention(q, k, v, o)
    return colSetMass(q, k, lse, l.docs.map(([a, b]) => Array.from({ length: b - a }, (_, j) => a + j)), o)
  })
}

/** The document order PINE uses, on any backend (importances read back with `await data()`). */
export async function pinePlan(q: Tensor, k: Tensor, v: Tensor, opts: Omit<PineOptions, 'plan'>): Promise<PinePlan> {
  const { l } = resolve(q, k, v, opts, 'pinePlan')
  if (l.docs.length === 0) return { order: orderFrom(l, [], q.shape[0]!, q.shape[1]!) }
  const imp = importance(q, k, v, l, opts)
  try {
    return { order: orderFrom(l, await imp.data(), q.shape[0]!, q.shape[1]!) }
  } finally {
    imp.dispose()
  }
}

/**
 * Rotate the first `dims` features of x [B, H, T, D] by a position per (b, h, t) (the rope of `rope.ts`, with a
 * position table instead of one position per row).
 */
function rotate(x: Tensor, pos: Float64Array, dims: number, opts: RopeOptions): Tensor {
  const [B, H, T, D] = x.shape as [number, number, number, number]
  const half = dims / 2
  const base = opts.base ?? 10000
  const c = new Float64Array(B * H * T * half)
  const s = new Float64Array(B * H * T * half)
  for (let r = 0; r < B * H * T; r++)
    for (let i = 0; i < half; i++) {
      const a = pos[r]! * base ** (-(2 * i) / dims)
      c[r * half + i] = Math.cos(a)
      s[r * half + i] = Math.sin(a)
    }
  const like = { backend: x.backend }
  const cos = tensor(c, [B, H, T, half], x.dtype, like)
  const sin = tensor(s, [B, H, T, half], x.dtype, like)
  const rot = dims === D ? x : slice(x, [null, null, null, [0, dims]])
  let x1: Tensor
  let x2: Tensor
  if ((opts.style ?? 'half') === 'half') {
    x1 = slice(rot, [null, null, null, [0, half]])
    x2 = slice(rot, [null, null, null, [half, dims]])
  } else {
    const pairs = reshape(rot, [B, H, T, half, 2])
    x1 = reshape(slice(pairs, [null, null, null, null, [0, 1]]), [B, H, T, half])
    x2 = reshape(slice(pairs, [null, null, null, null, [1, 2]]), [B, H, T, half])
  }
  const r1 = sub(mul(x1, cos), mul(x2, sin))
  const r2 = add(mul(x2, cos), mul(x1, sin))
  const out = (opts.style ?? 'half') === 'half' ? concat([r1, r2], 3) : reshape(stack([r1, r2], 4), [B, H, T, dims])
  return dims === D ? out : concat([out, slice(x, [null, null, null, [dims, D]])], 3)
}

/**
 * For part m (a document; −1 for prefix + suffix), the position at which to rotate each query row so that
 * ⟨R(e)q_i, R(j)k_j⟩ sees the PINE distance p̂_q(i) − p̂_k(i, j) for the keys j of that part (keys keep their
 * original rotation; every re-assignment is a per-row shift of a whole part, so it moves to the query side).
 */
function queryPositions(l: Layout, order: PinePlan['order'], B: number, H: number, m: number): Float64Array {
  const out = new Float64Array(B * H * l.T)
  const len = l.docs.map(([a, b]) => b - a)
  const total = l.e - l.s
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < l.T; i++) {
        const idx = (b * H + h) * l.T + i
        if (i < l.s) {
          out[idx] = i
          continue
        }
        const own = l.docOf[i]!
        // Document rows sit in their own document, laid out last; prefix/suffix rows keep their position.
        const pq = own >= 0 ? l.s + total - len[own]! + (i - l.docs[own]![0]) : i
        if (m < 0) {
          out[idx] = pq
          continue
        }
        let start = l.s
        for (const n of order[b]![h]![i]!) {
          if (n === m) break
          start += len[n]!
        }
        out[idx] = pq - start + l.docs[m]![0]
      }
  return out
}

/**
 * PINE, position-invariant inference (Wang et al. 2024, `wzq016/PINE`) on an input `[prefix, D1 … Dk,
 * suffix]` given unrotated q and k:
 * - mask: causal, plus bidirectional attention between different documents;
 * - positions, per (b, h, query row): documents sorted by their position-free importance
 *   `Imp(i, D_m) = Σ_{j∈D_m} softmax(q_i k_jᵀ·s)_j / |D_m|` (ascending, ties to the lower id), laid out one after
 *   the other from the first document row, the query's own document last; the query sits in its own document; rows
 *   outside the documents keep their positions as queries;
 * - then softmax attention with position-resolved RoPE `q_iᵀ R(θ(p̂_q − p̂_k)) k_j`.
 *
 * Computed without a per-pair rotation: the keys of one part share one shift per row, so each part is one sdpa
 * with queries rotated at per-row positions, and the k + 1 states merge exactly. Permuting the documents leaves
 * the suffix rows unchanged and permutes the document rows (up to importance ties). Differentiable in q, k, v for
 * a fixed order.
 */
export function pineAttention(q: Tensor, k: Tensor, v: Tensor, opts: PineOptions): PineResult {
  const { l, rotary, rope } = resolve(q, k, v, opts)
  const [B, H] = q.shape as [number, number]
  let plan = opts.plan
  if (plan === undefined) {
    if (l.docs.length === 0) plan = { order: orderFrom(l, [], B, H) }
    else {
      if (q.backend !== 'cpu') throw new ValueError({ op: OP, arg: 'plan', expected: `a plan from \`await pinePlan(q, k, v, opts)\` on the ${q.backend} backend`, actual: undefined })
      const imp = importance(q, k, v, l, opts)
      plan = { order: orderFrom(l, imp.dataSync(), B, H) }
      imp.dispose()
    }
  }
  const shaped = (x: unknown, n: number): x is readonly unknown[] => Array.isArray(x) && x.length === n
  if (!(shaped(plan.order, B) && plan.order.every(x => shaped(x, H) && x.every(y => shaped(y, l.T)))))
    throw new ValueError({ op: OP, arg: 'plan', expected: `a plan for B=${B}, H=${H}, T=${l.T} (pinePlan with the same inputs)`, actual: typeof plan })
  const order = plan.order
  const full = opts.mask ? masks.and(pineMaskOf(l), opts.mask) : pineMaskOf(l)
  const o = { queryOffset: 0, keyOffset: 0, ...(opts.scale !== undefined ? { scale: opts.scale } : {}) }
  const merged = scope(() => {
    const kr = rope === false ? k : rotate(k, Float64Array.from({ length: k.shape[0]! * k.shape[1]! * l.T }, (_, r) => r % l.T), rotary, rope)
    const parts: AttnState[] = [-1, ...l.docs.map((_, m) => m)].map(m => {
      const qr = rope === false ? q : rotate(q, queryPositions(l, order, B, H, m), rotary, rope)
      const r = scaledDotProductAttention(qr, kr, v, { ...o, mask: masks.and(partIds(l, m), full) })
      return { o: r.out, lse: r.lse }
    })
    return parts.length === 1 ? parts[0]! : attnState.mergeAll(parts)
  })
  return { out: merged.o, lse: merged.lse, plan }
}
