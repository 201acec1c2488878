import { broadcastTo, matmul, permute, reshape, scope, ShapeError, slice, type Tensor, positiveInt } from '@heed/tensor'
import type { Mask } from '../mask.js'
import { asBatched, type AttentionFn } from '../multiHeadAttention.js'
import { scaledDotProductAttention } from '../sdpa.js'
import { repeatKvHeads } from './lightningAttention.js'
import { sdpaOf } from './namedOperator.js'
import { flag, operatorOptions } from './strict.js'

/** Positional attention's weights, x·W layout: scores come from positions only, values from the data. */
export interface PositionalParams {
  /** [dPos, heads·headDim] */
  readonly Wq: Tensor
  /** [dPos, heads·headDim] */
  readonly Wk: Tensor
  /** [dModel, heads·valueDim] */
  readonly Wv: Tensor
  /** [heads·valueDim, dModel] */
  readonly Wo: Tensor
}

export interface PositionalMaps {
  /** [1, H, T, headDim]: P·W_Q per head. */
  readonly q: Tensor
  /** [1, H, T, headDim]: P·W_K per head. */
  readonly k: Tensor
}

export interface PositionalOptions {
  /** Heads H of the positional maps. */
  readonly heads: number
  /** Default false (the paper's layer sees the whole input). */
  readonly causal?: boolean
  /** Score scale (default 1/√D). */
  readonly scale?: number
  /** And-ed with the positional pattern. */
  readonly mask?: Mask
  /** Precomputed `positionalMaps` (the attention pattern depends on the length only, so it can be cached). */
  readonly maps?: PositionalMaps
}

const OP = 'positionalAttention'

const heads = (op: string, h: unknown): number => positiveInt(op, 'heads', h)

/** Per-head queries and keys of the positional encodings `P [T, dPos]`: the only inputs of the attention pattern. */
export function positionalMaps(P: Tensor, params: Pick<PositionalParams, 'Wq' | 'Wk'>, opts: { readonly heads: number }): PositionalMaps {
  const op = 'positionalMaps'
  operatorOptions(op, opts, ['heads'], '{ heads }')
  const H = heads(op, opts.heads)
  if (P.rank !== 2) throw new ShapeError({ op, arg: 'P', expected: 'rank 2 [T, dPos]', actual: P.shape })
  const [T, dPos] = P.shape as [number, number]
  for (const [arg, w] of [['Wq', params.Wq], ['Wk', params.Wk]] as const)
    if (w?.rank !== 2 || w.shape[0] !== dPos || w.shape[1]! % H !== 0) throw new ShapeError({ op, arg: `params.${arg}`, expected: `[${dPos}, heads·headDim] with heads = ${H}`, actual: w?.shape })
  if (params.Wq.shape[1] !== params.Wk.shape[1]) throw new ShapeError({ op, arg: 'params.Wk', expected: params.Wq.shape, actual: params.Wk.shape })
  const d = params.Wq.shape[1]! / H
  return scope(() => {
    const split = (y: Tensor): Tensor => permute(reshape(y, [1, T, H, d]), [0, 2, 1, 3])
    return { q: split(matmul(P, params.Wq)), k: split(matmul(P, params.Wk)) }
  })
}

/**
 * Positional attention (Back de Luca et al., ICML 2025): `out = Σ_h softmax((P W_Q^h)(P W_K^h)ᵀ·s) X W_V^h W_O`
 * with `P [T, dPos]` positional encodings, not the data. The pattern A depends on positions alone (so it is the
 * same for every input and can be cached through `maps`), and the layer is linear in X for fixed weights.
 * `x [B, T, dModel]` or `[T, dModel]` → the same shape. Differentiable in P, the weights and x.
 */
export function positionalAttention(P: Tensor, x: Tensor, params: PositionalParams, opts: PositionalOptions): Tensor {
  operatorOptions(OP, opts, ['heads', 'causal', 'scale', 'mask', 'maps'], '{ heads, … }')
  flag(OP, 'causal', opts.causal)
  const H = heads(OP, opts.heads)
  const dModel = params.Wo?.shape[1]
  if (params.Wv?.rank !== 2 || params.Wo?.rank !== 2 || params.Wv.shape[1] !== params.Wo.shape[0] || params.Wv.shape[1]! % H !== 0 || params.Wv.shape[0] !== dModel)
    throw new ShapeError({ op: OP, arg: 'params.Wv', expected: `Wv [dModel, heads·valueDim] and Wo [heads·valueDim, dModel]`, actual: [params.Wv?.shape, params.Wo?.shape] })
  return scope(() => {
    const { x3, unbatched } = asBatched(OP, x, dModel!)
    const [B, T] = x3.shape as [number, number]
    const maps = opts.maps ?? positionalMaps(P, params, { heads: H })
    if (maps.q.shape[2]! < T) throw new ShapeError({ op: OP, arg: 'maps', expected: `maps for at least ${T} positions`, actual: maps.q.shape })
    const dv = params.Wv.shape[1]! / H
    const v = permute(reshape(matmul(x3, params.Wv), [B, T, H, dv]), [0, 2, 1, 3])
    const o = positional(maps)(broadcastTo(slice(maps.q, [null, null, [0, T]]), [B, H, T, maps.q.shape[3]!]), v, v, {
      causal: opts.causal ?? false,
      queryOffset: 0,
      keyOffset: 0,
      ...(opts.mask ? { mask: opts.mask } : {}),
      ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
    }).out
    const y = matmul(reshape(permute(o, [0, 2, 1, 3]), [B, T, H * dv]), params.Wo)
    return unbatched ? reshape(y, [T, dModel!]) : y
  })
}

/**
 * Positional attention as a layer operator: ignores the data's q and k and attends with the maps' rows at the call's
 * absolute positions (heads from `headOffset`), over the given values. Softmax attention with a mask and offsets,
 * so it runs against a KV cache (`incremental: 'merge'`; the cache's keys are not read, only its values and passes).
 */
export function positional(maps: PositionalMaps): AttentionFn {
  const op = 'positional'
  if (maps?.q?.rank !== 4 || maps.k?.rank !== 4 || maps.q.shape[0] !== 1 || maps.q.shape.some((d, i) => d !== maps.k.shape[i]))
    throw new ShapeError({ op, arg: 'maps', expected: '{ q, k } of one shape [1, H, T, headDim]', actual: [maps?.q?.shape, maps?.k?.shape] })
  const fn = (q: Tensor, _k: Tensor, v: Tensor, o: Parameters<AttentionFn>[3]) => {
    const [B, Hq, Tq] = q.shape as [number, number, number]
    const Tk = v.shape[2]!
    const h0 = o.headOffset ?? 0
    const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
    const kOff = o.keyOffset ?? 0
    const [, H, T, d] = maps.q.shape as [number, number, number, number]
    if (h0 + Hq > H || qOff < 0 || kOff < 0 || qOff + Tq > T || kOff + Tk > T)
      throw new ShapeError({ op, arg: 'maps', expected: `heads [${h0}, ${h0 + Hq}) and positions up to ${Math.max(qOff + Tq, kOff + Tk)}`, actual: maps.q.shape })
    return scope(() => {
      const rows = (m: Tensor, a: number, n: number): Tensor => broadcastTo(slice(m, [null, [h0, h0 + Hq], [a, a + n]]), [B, Hq, n, d])
      return scaledDotProductAttention(rows(maps.q, qOff, Tq), rows(maps.k, kOff, Tk), repeatKvHeads(v, Hq), { ...sdpaOf(o), queryOffset: qOff, keyOffset: kOff })
    })
  }
  return Object.assign(fn, { incremental: 'merge' as const })
}
