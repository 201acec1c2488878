import { concat, DTypeError, matmul, permute, random, reshape, scope, ShapeError, slice, ValueError, type FloatDType, type Tensor } from '@heed/tensor'
import { cachedAttention, chunkPositions, kvCache, type HeadPolicy, type KvCache } from './kvCache.js'
import type { Mask } from './mask.js'
import { rope, type RopeOptions } from './rope.js'
import type { ScoreMod } from './scoreMod.js'
import { scaledDotProductAttention } from './sdpa.js'

export interface MultiHeadAttentionOptions {
  readonly dModel: number
  readonly heads: number
  /** Key/value heads (grouped-query attention when fewer than `heads`; must divide it). Default `heads`. */
  readonly kvHeads?: number
  /** Default `dModel / heads`. */
  readonly headDim?: number
  /** Rotary embedding on q and k at absolute positions: `true` for the defaults (base 10000, half-split). */
  readonly rope?: boolean | RopeOptions
  /** Score scale (default 1/√headDim). */
  readonly scale?: number
}

/** A plain pytree, so `valueAndGrad` and the optimizers train it as is. x·W layout: `[in, out]`. */
export interface MhaParams {
  /** [dModel, heads·headDim] */
  readonly Wq: Tensor
  /** [dModel, kvHeads·headDim] */
  readonly Wk: Tensor
  /** [dModel, kvHeads·headDim] */
  readonly Wv: Tensor
  /** [heads·headDim, dModel] */
  readonly Wo: Tensor
}

export interface InitOptions {
  readonly seed?: number
  /** Default float32. */
  readonly dtype?: FloatDType
  readonly backend?: string
}

export interface ForwardOptions {
  /**
   * Absolute positions of the rows of x: a start (consecutive rows) or one per row, consecutive. Default: the
   * cache's `nextPosition`, or 0.
   */
  readonly positions?: number | ArrayLike<number>
  /** Appends this chunk's keys and values, then attends over everything the cache retains (inference only). */
  readonly cache?: KvCache
  /** Default true; a cache requires it. */
  readonly causal?: boolean
  readonly mask?: Mask
  readonly scoreMod?: ScoreMod
}

export interface CacheOptions {
  readonly batch: number
  readonly capacity: number
  readonly policies?: readonly HeadPolicy[]
  readonly chunk?: number
  readonly dtype?: FloatDType
  readonly backend?: string
}

export interface MultiHeadAttention {
  readonly dModel: number
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly rope: RopeOptions | undefined
  init(opts?: InitOptions): MhaParams
  /** `x [B, T, dModel]` or `[T, dModel]` → the same shape. */
  forward(params: MhaParams, x: Tensor, opts?: ForwardOptions): Tensor
  /** A KV cache shaped for this layer. */
  cache(opts: CacheOptions): KvCache
}

const positiveInt = (op: string, arg: string, v: unknown): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ValueError({ op, arg, expected: 'a positive integer', actual: v })
  return v
}

/** Rows of x as [B, T, dModel], and whether x came without a batch axis. */
export function asBatched(op: string, x: Tensor, dModel: number): { x3: Tensor; unbatched: boolean } {
  if ((x.rank !== 2 && x.rank !== 3) || x.shape[x.rank - 1] !== dModel)
    throw new ShapeError({ op, arg: 'x', expected: `[B, T, ${dModel}] or [T, ${dModel}]`, actual: x.shape })
  if (!['float32', 'float16', 'float64'].includes(x.dtype)) throw new DTypeError({ op, arg: 'x', expected: 'a float dtype', actual: x.dtype })
  return x.rank === 2 ? { x3: reshape(x, [1, x.shape[0]!, dModel]), unbatched: true } : { x3: x, unbatched: false }
}

/**
 * Multi-head (grouped-query) self-attention: `softmax(s·q kᵀ + mask) v` per head through
 * `scaledDotProductAttention`, with optional RoPE on absolute positions. Without a cache it attends within `x`;
 * with one it appends x's keys and values (after RoPE) and attends over what each kv head's policy retains,
 * splitting long chunks into the cache's `maxChunk` so streaming heads stay exact.
 */
export function multiHeadAttention(opts: MultiHeadAttentionOptions): MultiHeadAttention {
  const op = 'multiHeadAttention'
  const dModel = positiveInt(op, 'dModel', opts.dModel)
  const heads = positiveInt(op, 'heads', opts.heads)
  const kvHeads = positiveInt(op, 'kvHeads', opts.kvHeads ?? heads)
  if (heads % kvHeads !== 0) throw new ValueError({ op, arg: 'kvHeads', expected: `a divisor of heads (${heads})`, actual: kvHeads })
  if (opts.headDim === undefined && dModel % heads !== 0) throw new ValueError({ op, arg: 'headDim', expected: `given, since dModel ${dModel} is not a multiple of heads ${heads}`, actual: undefined })
  const headDim = positiveInt(op, 'headDim', opts.headDim ?? dModel / heads)
  const ropeOpts = opts.rope === true ? {} : opts.rope === false || opts.rope === undefined ? undefined : opts.rope
  if (ropeOpts && headDim % 2 !== 0) throw new ValueError({ op, arg: 'headDim', expected: 'an even head dim with rope', actual: headDim })
  const scale = opts.scale

  const init = (o: InitOptions = {}): MhaParams => {
    const seed = o.seed ?? 0
    const dtype = o.dtype ?? 'float32'
    const w = (rows: number, cols: number, k: number): Tensor =>
      random.normal([rows, cols], { seed: seed * 4 + k, std: 1 / Math.sqrt(rows), dtype, ...(o.backend !== undefined ? { backend: o.backend } : {}) })
    return { Wq: w(dModel, heads * headDim, 0), Wk: w(dModel, kvHeads * headDim, 1), Wv: w(dModel, kvHeads * headDim, 2), Wo: w(heads * headDim, dModel, 3) }
  }

  const forward = (params: MhaParams, x: Tensor, fo: ForwardOptions = {}): Tensor => {
    const fop = 'multiHeadAttention.forward'
    const unbatched = x.rank === 2
    const [B, T] = scope(() => asBatched(fop, x, dModel).x3.shape) as readonly number[] as [number, number]
    const cache = fo.cache
    const causal = fo.causal ?? true
    if (cache) {
      if (!causal) throw new ValueError({ op: fop, arg: 'causal', expected: 'true with a cache (decoding is causal)', actual: false })
      if (cache.batch !== B || cache.kvHeads !== kvHeads || cache.headDim !== headDim || cache.valueDim !== headDim)
        throw new ShapeError({ op: fop, arg: 'cache', expected: `a cache of batch ${B}, ${kvHeads} kv heads, head dim ${headDim}`, actual: `batch ${cache.batch}, ${cache.kvHeads} kv heads, head dim ${cache.headDim}/${cache.valueDim}` })
    }
    const pos = chunkPositions(fop, fo.positions ?? cache?.nextPosition ?? 0, T)
    for (let i = 1; i < T; i++)
      if (pos[i] !== pos[0]! + i) throw new ValueError({ op: fop, arg: 'positions', expected: 'consecutive positions (masks see row i at start + i)', actual: Array.from(pos.slice(i - 1, i + 1)) })
    const start = T > 0 ? pos[0]! : 0
    for (const [name, w, shape] of [['Wq', params.Wq, [dModel, heads * headDim]], ['Wk', params.Wk, [dModel, kvHeads * headDim]], ['Wv', params.Wv, [dModel, kvHeads * headDim]], ['Wo', params.Wo, [heads * headDim, dModel]]] as const)
      if (w?.rank !== 2 || w.shape[0] !== shape[0] || w.shape[1] !== shape[1]) throw new ShapeError({ op: fop, arg: `params.${name}`, expected: shape, actual: w?.shape })
    if (cache) cache.ensureRoom(T)
    return scope(() => {
      const x3 = unbatched ? reshape(x, [1, T, dModel]) : x
      const split = (y: Tensor, n: number): Tensor => permute(reshape(y, [B, T, n, headDim]), [0, 2, 1, 3])
      let q = split(matmul(x3, params.Wq), heads)
      let k = split(matmul(x3, params.Wk), kvHeads)
      const v = split(matmul(x3, params.Wv), kvHeads)
      if (ropeOpts) {
        q = rope(q, pos, ropeOpts)
        k = rope(k, pos, ropeOpts)
      }
      const extra = { ...(fo.mask ? { mask: fo.mask } : {}), ...(fo.scoreMod ? { scoreMod: fo.scoreMod } : {}), ...(scale !== undefined ? { scale } : {}) }
      let o: Tensor
      if (!cache) {
        o = scaledDotProductAttention(q, k, v, { causal, queryOffset: start, keyOffset: start, ...extra }).out
      } else {
        const outs: Tensor[] = []
        const step = Math.min(T, cache.maxChunk)
        for (let i0 = 0; i0 < T; i0 += step) {
          const i1 = Math.min(T, i0 + step)
          const piece = (y: Tensor): Tensor => (i0 === 0 && i1 === T ? y : slice(y, [null, null, [i0, i1]]))
          cache.append(piece(k), piece(v), start + i0)
          outs.push(cachedAttention(piece(q), cache, { queryOffset: start + i0, ...extra }).out)
        }
        cache.compact()
        o = outs.length === 1 ? outs[0]! : concat(outs, 2)
      }
      const y = matmul(reshape(permute(o, [0, 2, 1, 3]), [B, T, heads * headDim]), params.Wo)
      return unbatched ? reshape(y, [T, dModel]) : y
    })
  }

  const cache = (o: CacheOptions): KvCache =>
    kvCache({
      batch: o.batch,
      kvHeads,
      headDim,
      capacity: o.capacity,
      dtype: o.dtype ?? 'float32',
      ...(o.policies !== undefined ? { policies: o.policies } : {}),
      ...(o.chunk !== undefined ? { chunk: o.chunk } : {}),
      ...(o.backend !== undefined ? { backend: o.backend } : {}),
    })

  return { dModel, heads, kvHeads, headDim, rope: ropeOpts, init, forward, cache }
}
