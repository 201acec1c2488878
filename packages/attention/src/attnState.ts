import {
  add,
  concat,
  div,
  DTypeError,
  exp,
  expandDims,
  full,
  greater,
  log,
  max,
  maximum,
  mul,
  scope,
  ShapeError,
  slice,
  stack,
  stopGradient,
  sub,
  sum,
  ValueError,
  where,
  zeros,
  type Tensor,
  positiveInt,
  isTensor,
  checkAllocation,
  ArgumentError,
} from '@heed/tensor'
import { checkQkv, scaledDotProductAttention, SDPA_OPTIONS, type SdpaOptions } from './sdpa.js'
import { operatorOptions, tensorArg } from './operators/strict.js'

/**
 * The state of softmax attention over some set of keys: the normalised output and the row logsumexp. Two states over
 * disjoint key sets merge into the state over their union (the online-softmax rescaling of Milakov & Gimelshein,
 * "Online normalizer calculation for softmax", 2018, as FlashAttention uses it), which is what makes split-KV
 * decode, chunked prefill and sink + window + retrieved-block compositions exact.
 */
export interface AttnState {
  /** [B, H, Tq, Dv] */
  readonly o: Tensor
  /** [B, H, Tq]; −∞ on rows that saw no key (their `o` is 0). */
  readonly lse: Tensor
}

const isState = (x: unknown): x is AttnState =>
  typeof x === 'object' && x !== null && 'o' in x && 'lse' in x && typeof (x as AttnState).o === 'object' && typeof (x as AttnState).lse === 'object'

function checkState(op: string, arg: string, s: unknown): AttnState {
  if (!isState(s)) throw new ValueError({ op, arg, expected: 'an AttnState { o, lse }', actual: typeof s })
  const { o, lse } = s
  if (o.rank !== 4) throw new ShapeError({ op, arg: `${arg}.o`, expected: 'rank 4 [B, H, Tq, Dv]', actual: o.shape })
  if (lse.rank !== 3 || lse.shape.some((d, i) => d !== o.shape[i]))
    throw new ShapeError({ op, arg: `${arg}.lse`, expected: `[${o.shape.slice(0, 3).join(', ')}] (o's leading dims)`, actual: lse.shape })
  if (lse.dtype !== o.dtype) throw new DTypeError({ op, arg: `${arg}.lse`, expected: `${o.dtype} like ${arg}.o`, actual: lse.dtype })
  return s
}

function checkSame(op: string, states: readonly AttnState[]): void {
  const first = states[0]!
  states.forEach((s, i) => {
    if (s.o.shape.some((d, j) => d !== first.o.shape[j]))
      throw new ShapeError({ op, arg: `state ${i}.o`, expected: `[${first.o.shape.join(', ')}] like state 0`, actual: s.o.shape })
    if (s.o.dtype !== first.o.dtype) throw new DTypeError({ op, arg: `state ${i}.o`, expected: `${first.o.dtype} like state 0`, actual: s.o.dtype })
  })
}

/**
 * n-way merge over a leading "part" axis: m = max lse, w = e^{lse − m}, o = Σ w·o / Σ w, lse = m + log Σ w.
 * The shift m is a constant of the math (the result does not depend on it), so it is taken out of the gradient;
 * that also keeps `maximum`'s tie rule and the −∞ − −∞ case out of the backward pass. Rows where every part is
 * the identity have m = −∞: they shift by 0 instead, so w = 0 exactly, and divide by 1 instead of 0, so they come
 * out as the identity (0, −∞) with zero, not NaN, gradients.
 */
function mergeStacked(o: Tensor, lse: Tensor): AttnState {
  return scope(() => {
    const m = stopGradient(max(lse, { axis: 0 }))
    const seen = greater(m, -Infinity)
    const shift = where(seen, m, 0)
    const w = exp(sub(lse, shift))
    const total = sum(w, { axis: 0 })
    const safeTotal = where(seen, total, 1)
    const out = div(sum(mul(o, expandDims(w, -1)), { axis: 0 }), expandDims(safeTotal, -1))
    const outLse = where(seen, add(shift, log(safeTotal)), -Infinity)
    return { o: out, lse: outLse }
  })
}

const IDENTITY_DTYPES = ['float32', 'float64', 'float16'] as const

export const attnState = {
  /**
   * The identity (0, −∞): the state of attention over no keys. Give the output shape [B, H, Tq, Dv] (and dtype,
   * default float32) or a tensor/state to copy shape, dtype and backend from.
   */
  identity(like: readonly number[] | Tensor | AttnState, dtype?: 'float32' | 'float64' | 'float16'): AttnState {
    const op = 'attnState.identity'
    if (!isState(like) && !Array.isArray(like) && !isTensor(like))
      throw new ArgumentError({ op, arg: 'like', expected: 'a shape [B, H, Tq, Dv], a Tensor or an attention state', actual: like === null ? 'null' : typeof like })
    const ref = isState(like) ? like.o : Array.isArray(like) ? undefined : (like as Tensor)
    if (ref) tensorArg(op, 'like', ref)
    const shape = ref ? ref.shape : (like as readonly number[])
    if (shape.length !== 4 || shape.some(d => !Number.isInteger(d) || d < 0))
      throw new ShapeError({ op, arg: 'like', expected: '[B, H, Tq, Dv] of non-negative integers', actual: shape })
    if (dtype !== undefined && !(IDENTITY_DTYPES as readonly unknown[]).includes(dtype))
      throw new DTypeError({ op, arg: 'dtype', expected: IDENTITY_DTYPES.join(', '), actual: typeof dtype === 'string' ? dtype : typeof dtype })
    const dt = dtype ?? (ref?.dtype as 'float32' | 'float64' | 'float16' | undefined) ?? 'float32'
    checkAllocation(op, 'like', shape.reduce((a, b) => a * b, 1), dt)
    const opts = ref ? { dtype: dt, backend: ref.backend } : { dtype: dt }
    return { o: zeros(shape, opts), lse: full(shape.slice(0, 3), -Infinity, opts) }
  },

  /** The state over the union of the two key sets. Associative and commutative; `identity` is neutral. */
  merge(a: AttnState, b: AttnState): AttnState {
    const op = 'attnState.merge'
    const states = [checkState(op, 'a', a), checkState(op, 'b', b)]
    checkSame(op, states)
    return scope(() => {
      // Two-way form avoids stacking: m = max(l1, l2) elementwise.
      const m = stopGradient(maximum(a.lse, b.lse))
      const seen = greater(m, -Infinity)
      const shift = where(seen, m, 0)
      const w1 = exp(sub(a.lse, shift))
      const w2 = exp(sub(b.lse, shift))
      const total = where(seen, add(w1, w2), 1)
      const o = div(add(mul(a.o, expandDims(w1, -1)), mul(b.o, expandDims(w2, -1))), expandDims(total, -1))
      return { o, lse: where(seen, add(shift, log(total)), -Infinity) }
    })
  },

  /** Merge any number of states at once (one pass, not a chain of pairwise merges). */
  mergeAll(states: readonly AttnState[]): AttnState {
    const op = 'attnState.mergeAll'
    if (!Array.isArray(states) || states.length === 0) throw new ValueError({ op, arg: 'states', expected: 'a non-empty array of AttnState', actual: Array.isArray(states) ? 0 : typeof states })
    states.forEach((s, i) => checkState(op, `state ${i}`, s))
    checkSame(op, states)
    if (states.length === 1) {
      const only = states[0]!
      return scope(() => ({ o: mul(only.o, 1), lse: mul(only.lse, 1) }))
    }
    return scope(() =>
      mergeStacked(
        stack(states.map(s => s.o)),
        stack(states.map(s => s.lse)),
      ),
    )
  },
}

export interface SplitKvOptions extends SdpaOptions {
  /** Number of (near-)equal key chunks. */
  readonly splits?: number
  /** Keys per chunk (the last one may be shorter). Give `splits` or `chunkSize`, or explicit `boundaries`. */
  readonly chunkSize?: number
  /** Explicit chunk starts after 0, strictly increasing inside (0, Tk): keys [0, b0), [b0, b1), …, [bn, Tk). */
  readonly boundaries?: readonly number[]
}

function chunkStarts(op: string, total: number, opts: { splits?: number; chunkSize?: number; boundaries?: readonly number[] }, what: string): number[] {
  const given = [opts.splits, opts.chunkSize, opts.boundaries].filter(x => x !== undefined).length
  if (given > 1) throw new ValueError({ op, arg: 'splits', expected: 'only one of splits, chunkSize, boundaries', actual: given })
  if (opts.boundaries !== undefined) {
    const b = opts.boundaries
    b.forEach((x, i) => {
      if (!Number.isInteger(x) || x <= (i === 0 ? 0 : b[i - 1]!) || x >= total)
        throw new ValueError({ op, arg: 'boundaries', expected: `strictly increasing integers inside (0, ${total})`, actual: [...b] })
    })
    return [0, ...b]
  }
  let size: number
  if (opts.chunkSize !== undefined) {
    positiveInt(op, 'chunkSize', opts.chunkSize)
    size = opts.chunkSize
  } else {
    const n = opts.splits ?? 1
    positiveInt(op, 'splits', n)
    size = Math.ceil(total / Math.min(n, Math.max(1, total)))
  }
  const starts: number[] = []
  for (let s = 0; s < Math.max(total, 1); s += size) starts.push(s)
  if (total === 0) throw new ShapeError({ op, arg: what }, `${what} is empty; there is nothing to split`)
  return starts
}

const sliceSeq = (x: Tensor, start: number, end: number): Tensor => slice(x, [0, 0, start, 0], [-1, -1, end - start, -1])

/** The sdpa options without the splitting keys, with both offsets resolved against the full problem. */
function baseOptions(q: Tensor, k: Tensor, opts: SplitKvOptions): SdpaOptions & { queryOffset: number; keyOffset: number } {
  const { splits: _s, chunkSize: _c, boundaries: _b, ...rest } = opts
  return { ...rest, queryOffset: opts.queryOffset ?? Math.max(0, k.shape[2]! - q.shape[2]!), keyOffset: opts.keyOffset ?? 0 }
}

/**
 * Split-KV attention (FlashDecoding): attend to each key chunk separately, at its true absolute positions, and
 * merge the states. Equal to `scaledDotProductAttention(q, k, v, opts)`; the chunks are independent, which is
 * what lets a backend spread one long decode row over many workers.
 */
const SPLIT_KV_KEYS: Record<Exclude<keyof SplitKvOptions, keyof SdpaOptions>, true> = { splits: true, chunkSize: true, boundaries: true }

export function splitKvAttention(q: Tensor, k: Tensor, v: Tensor, opts: SplitKvOptions = {}): AttnState & { out: Tensor } {
  const op = 'splitKvAttention'
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, [...SDPA_OPTIONS, ...Object.keys(SPLIT_KV_KEYS)])
  const Tk = k.shape[2]!
  const starts = chunkStarts(op, Tk, opts, 'k')
  const base = baseOptions(q, k, opts)
  const state = scope(() => {
    const parts = starts.map((s, i) => {
      const e = starts[i + 1] ?? Tk
      const r = scaledDotProductAttention(q, sliceSeq(k, s, e), sliceSeq(v, s, e), { ...base, keyOffset: base.keyOffset + s })
      return { o: r.out, lse: r.lse }
    })
    return attnState.mergeAll(parts)
  })
  return { ...state, out: state.o }
}

export interface ChunkedPrefillOptions extends SdpaOptions {
  /** Query rows per chunk (the last may be shorter). */
  readonly chunkSize?: number
  /** Explicit query chunk starts after 0, strictly increasing inside (0, Tq). */
  readonly boundaries?: readonly number[]
}

/**
 * Chunked prefill: process the queries in chunks, each against the keys already in the cache (all visible to the
 * whole chunk) merged with the keys that arrive with the chunk (causal among themselves). The concatenation of
 * the chunk outputs equals one-shot attention with the same options, causal or not; without `causal` every key
 * after the cached prefix counts as arriving with the chunk.
 */
const CHUNKED_PREFILL_KEYS: Record<Exclude<keyof ChunkedPrefillOptions, keyof SdpaOptions>, true> = { chunkSize: true, boundaries: true }

export function chunkedPrefill(q: Tensor, k: Tensor, v: Tensor, opts: ChunkedPrefillOptions = {}): AttnState & { out: Tensor } {
  const op = 'chunkedPrefill'
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, [...SDPA_OPTIONS, ...Object.keys(CHUNKED_PREFILL_KEYS)])
  const Tq = q.shape[2]!
  const Tk = k.shape[2]!
  const { chunkSize, boundaries, ...sdpa } = opts
  const starts = chunkStarts(op, Tq, { ...(chunkSize !== undefined ? { chunkSize } : {}), ...(boundaries !== undefined ? { boundaries } : {}), ...(chunkSize === undefined && boundaries === undefined ? { chunkSize: 64 } : {}) }, 'q')
  const base = baseOptions(q, k, sdpa)
  const clampK = (x: number): number => Math.max(0, Math.min(Tk, x))
  const state = scope(() => {
    const outs = starts.map((s, i) => {
      const e = starts[i + 1] ?? Tq
      const qc = sliceSeq(q, s, e)
      const chunkOpts = { ...base, queryOffset: base.queryOffset + s }
      // Keys strictly before the chunk's first query position: the cache.
      const past = clampK(base.queryOffset + s - base.keyOffset)
      const end = opts.causal ? Math.max(past, clampK(base.queryOffset + e - base.keyOffset)) : Tk
      const parts: AttnState[] = []
      for (const [a, b] of [[0, past], [past, end]] as const) {
        if (b <= a) continue
        const r = scaledDotProductAttention(qc, sliceSeq(k, a, b), sliceSeq(v, a, b), { ...chunkOpts, keyOffset: base.keyOffset + a })
        parts.push({ o: r.out, lse: r.lse })
      }
      if (parts.length === 0) {
        // Every key lies after the chunk (keyOffset past it): causal leaves these rows empty.
        const like = { dtype: q.dtype, backend: q.backend }
        return { o: zeros([q.shape[0]!, q.shape[1]!, e - s, v.shape[3]!], like), lse: full([q.shape[0]!, q.shape[1]!, e - s], -Infinity, like) }
      }
      return parts.length === 1 ? parts[0]! : attnState.merge(parts[0]!, parts[1]!)
    })
    return outs.length === 1 ? outs[0]! : { o: concat(outs.map(x => x.o), 2), lse: concat(outs.map(x => x.lse), 2) }
  })
  return { ...state, out: state.o }
}
