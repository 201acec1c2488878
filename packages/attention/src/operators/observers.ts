import { ArgumentError, greater, mean, nonNegativeInt, mul, scope, ShapeError, sqrt, square, sub, sum, tensor, ValueError, where, type Tensor, kindOf } from '@heed/tensor'
import type { AttentionFn } from '../multiHeadAttention.js'
import { rowArgmax, type ObserveOptions } from '../observe.js'
import { operatorOptions, tensorArg } from './strict.js'
import { checkQkv } from '../sdpa.js'

/** Retrieval heads score above this (Wu et al. 2024: under 5% of heads do). */
export const RETRIEVAL_THRESHOLD = 0.1

export interface RetrievalScoreOptions extends Omit<ObserveOptions, 'rows' | 'cols'> {
  /** Token id at each key position (prompt, then what was generated). */
  readonly tokens: ArrayLike<number>
  /** The needle's key positions [start, end). */
  readonly needle: readonly [number, number]
  /** The token each query row generated (the decode step's output). */
  readonly generated: ArrayLike<number>
}

/**
 * Retrieval score from per-row argmax (Wu et al. 2024, `nightdessert/Retrieval_Head`), host side:
 * `argmax [B, H, Tq]` key indices (from `rowArgmax`), and a step adds 1/|needle| to a head when its argmax key is in
 * the needle and holds the token the step generated (a copy-paste). Returns [B·H] scores (row-major b, h).
 */
export function retrievalScoreFromArgmax(argmax: ArrayLike<number>, shape: readonly [number, number, number], opts: Omit<RetrievalScoreOptions, keyof ObserveOptions>): Float64Array {
  const op = 'retrievalScoreFromArgmax'
  if (!isArrayLike(argmax)) throw new ArgumentError({ op, arg: 'argmax', expected: 'the argmax key of each row, an array [B·H·Tq]', actual: kindOf(argmax) })
  if (!Array.isArray(shape) || shape.length !== 3) throw new ArgumentError({ op, arg: 'shape', expected: '[B, H, Tq]', actual: kindOf(shape) })
  shape.forEach((d, i) => nonNegativeInt(op, `shape[${i}]`, d))
  // the options of the matching retrievalScore call are welcome (its attention keys are ignored here): others are a mistake
  operatorOptions(op, opts, Object.keys(RETRIEVAL_SCORE_OPTIONS), '{ tokens, needle, generated }')
  return scoreFromArgmax(op, argmax, shape, opts)
}

const isArrayLike = (v: unknown): v is ArrayLike<unknown> => v !== null && typeof v === 'object' && Number.isSafeInteger((v as { length?: unknown }).length)
const SCORE_KEYS: Record<'tokens' | 'needle' | 'generated', true> = { tokens: true, needle: true, generated: true }
const RETRIEVAL_SCORE_OPTIONS: Record<keyof RetrievalScoreOptions, true> = { ...SCORE_KEYS, scale: true, causal: true, queryOffset: true, keyOffset: true, mask: true, scoreMod: true }

function scoreFromArgmax(op: string, argmax: ArrayLike<number>, shape: readonly [number, number, number], opts: Omit<RetrievalScoreOptions, keyof ObserveOptions>): Float64Array {
  const [B, H, Tq] = shape
  if (argmax.length !== B * H * Tq) throw new ShapeError({ op, arg: 'argmax', expected: `${B * H * Tq} indices [B, H, Tq]`, actual: argmax.length })
  if (!isArrayLike(opts.tokens)) throw new ArgumentError({ op, arg: 'tokens', expected: 'the token id of each key, an array', actual: kindOf(opts.tokens) })
  const [a, b] = opts.needle ?? []
  if (!Number.isInteger(a) || !Number.isInteger(b) || a! < 0 || b! <= a!) throw new ValueError({ op, arg: 'needle', expected: 'a non-empty [start, end) of key positions', actual: opts.needle })
  if (opts.generated?.length !== Tq) throw new ValueError({ op, arg: 'generated', expected: `${Tq} tokens (one per query row)`, actual: opts.generated?.length })
  const out = new Float64Array(B * H)
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < Tq; i++) {
      const j = Number(argmax[bh * Tq + i])
      if (j >= a! && j < b! && Number(opts.tokens[j]) === Number(opts.generated[i])) out[bh]! += 1 / (b! - a!)
    }
  return out
}

/**
 * The retrieval score of every head for decode steps `q [B, H, Tq, D]` over keys `k` (prompt + generated; pass the
 * sdpa options of the forward, e.g. `causal`). Argmax rows come from `rowArgmax` (exact, tiled); any backend.
 */
export async function retrievalScore(q: Tensor, k: Tensor, opts: RetrievalScoreOptions): Promise<Float64Array> {
  const op = 'retrievalScore'
  checkQkv(op, q, k, k)
  operatorOptions(op, opts, Object.keys(RETRIEVAL_SCORE_OPTIONS), '{ tokens, needle, generated, … }')
  const { tokens, needle, generated, ...observe } = opts
  if (tokens?.length !== k.shape[2] && (observe.keyOffset ?? 0) === 0)
    throw new ValueError({ op: 'retrievalScore', arg: 'tokens', expected: `${k.shape[2]} token ids (one per key)`, actual: tokens?.length })
  const am = rowArgmax(q, k, observe)
  try {
    return scoreFromArgmax(op, await am.data(), [q.shape[0]!, q.shape[1]!, q.shape[2]!], { tokens, needle, generated })
  } finally {
    am.dispose()
  }
}

/**
 * Vision-aware head divergence (seed #24): `VHD_h = mean_{b, rows} ‖o_h(x; image) − o_h(x; no image)‖₂`
 * from the two runs' per-head outputs `[B, H, T, Dv]` (rows aligned). Returns [H]; differentiable.
 */
export function headDivergence(withImage: Tensor, withoutImage: Tensor): Tensor {
  const op = 'headDivergence'
  tensorArg(op, 'withImage', withImage, 'a Tensor [B, H, T, Dv]')
  tensorArg(op, 'withoutImage', withoutImage, 'a Tensor [B, H, T, Dv]')
  if (withImage.rank !== 4 || withImage.shape.some((d, i) => d !== withoutImage.shape[i]))
    throw new ShapeError({ op, arg: 'withoutImage', expected: withImage.shape, actual: withoutImage.shape })
  return scope(() => {
    const n2 = sum(square(sub(withImage, withoutImage)), { axis: 3 })
    // ‖0‖ has no derivative; identical rows take the zero subgradient instead of NaN.
    const some = greater(n2, 0)
    return mean(where(some, sqrt(where(some, n2, 1)), 0), { axis: [0, 2] })
  })
}

/**
 * VHR head scales: the `top` heads by VHD (a count, or a fraction of the heads when below 1) get `alpha`
 * (default 2, from a third-party summary: unverified), the others 1. Ties go to the lower head.
 */
export function vhrScales(vhd: ArrayLike<number>, opts: { readonly top: number; readonly alpha?: number }): number[] {
  const op = 'vhrScales'
  operatorOptions(op, opts, ['top', 'alpha'], '{ top, alpha? }')
  const H = vhd.length
  const alpha = opts.alpha ?? 2
  if (!Number.isFinite(alpha)) throw new ValueError({ op, arg: 'alpha', expected: 'a finite number', actual: alpha })
  const top = opts.top < 1 ? Math.round(opts.top * H) : opts.top
  if (!Number.isInteger(top) || top < 0 || top > H) throw new ValueError({ op, arg: 'top', expected: `a count in [0, ${H}] or a fraction in [0, 1)`, actual: opts.top })
  const order = Array.from({ length: H }, (_, h) => h).sort((x, y) => Number(vhd[y]) - Number(vhd[x]) || x - y)
  const picked = new Set(order.slice(0, top))
  return Array.from({ length: H }, (_, h) => (picked.has(h) ? alpha : 1))
}

/**
 * An operator whose head h's output is multiplied by `scales[headOffset + h]` (VHR, ablations, gates). lse is passed
 * through unchanged only when every scale of the call is 1, since a scaled output is no longer a softmax state.
 */
export function scaleHeads(fn: AttentionFn, scales: readonly number[]): AttentionFn {
  return scaleHeadsAs('scaleHeads', fn, scales)
}

/** @internal `scaleHeads`, its argument errors in the name of `op` (`operators.scaled` is this under a layer-ops name). */
export function scaleHeadsAs(op: string, fn: AttentionFn, scales: readonly number[]): AttentionFn {
  if (typeof fn !== 'function') throw new ValueError({ op, arg: 'fn', expected: 'an AttentionFn', actual: typeof fn })
  if (!Array.isArray(scales)) throw new ArgumentError({ op, arg: 'scales', expected: 'an array of per-head scales', actual: scales === null ? 'null' : typeof scales })
  scales.forEach((s, h) => {
    if (!Number.isFinite(s)) throw new ValueError({ op, arg: `scales[${h}]`, expected: 'a finite number', actual: s })
  })
  const scaled = (q: Tensor, k: Tensor, v: Tensor, o: Parameters<AttentionFn>[3]) => {
    const h0 = o.headOffset ?? 0
    const Hq = q.shape[1]!
    if (h0 + Hq > scales.length) throw new ValueError({ op, arg: 'scales', expected: `a scale for heads [${h0}, ${h0 + Hq})`, actual: scales.length })
    const mine = scales.slice(h0, h0 + Hq)
    if (mine.every(s => s === 1)) return fn(q, k, v, o)
    return scope(() => {
      const r = fn(q, k, v, o)
      return { out: mul(r.out, tensor(mine, [1, Hq, 1, 1], r.out.dtype, { backend: r.out.backend })) }
    })
  }
  if (fn.incremental === undefined) return scaled
  const step = fn.step
  if (step === undefined) return Object.assign(scaled, { incremental: fn.incremental })
  // a recurrent operator: its step is scaled the same way, the state passes through unchanged
  const scaledStep: NonNullable<AttentionFn['step']> = (q, k, v, state, o) => {
    const h0 = o.headOffset ?? 0
    const Hq = q.shape[1]!
    if (h0 + Hq > scales.length) throw new ValueError({ op, arg: 'scales', expected: `a scale for heads [${h0}, ${h0 + Hq})`, actual: scales.length })
    const mine = scales.slice(h0, h0 + Hq)
    const r = step(q, k, v, state, o)
    if (mine.every(s => s === 1)) return r
    const out = scope(() => mul(r.out, tensor(mine, [1, Hq, 1, 1], r.out.dtype, { backend: r.out.backend })))
    r.out.dispose()
    return { out, state: r.state }
  }
  return Object.assign(scaled, { incremental: fn.incremental, step: scaledStep })
}
