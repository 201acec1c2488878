import { positiveInt, ArgumentError, concat, DTypeError, matmul, permute, random, reshape, scope, ShapeError, slice, take, tensor, ValueError, type FloatDType, type Tensor } from '@heed/tensor'
import { cachedAttention, chunkPositions, headPolicy, kvCache, mergeAttention, type HeadPolicy, type KvCache, type KvView } from './kvCache.js'
import { mask as masks, type Mask } from './mask.js'
import { rope, type RopeOptions } from './rope.js'
import type { ScoreMod } from './scoreMod.js'
import { scaledDotProductAttention, type AttentionResult } from './sdpa.js'
import { knownOptions } from '@heed/tensor'
import { objectArg, operatorOptions, tensorArg } from './operators/strict.js'

/**
 * What a layer passes to a pluggable attention operator: the sdpa options over absolute positions. Masks and score
 * mods number query heads from 0 within the call; `headOffset` is the layer index of the call's head 0.
 */
export interface AttentionFnOptions {
  /** Causal over absolute positions (`pk ≤ pq`). */
  readonly causal?: boolean
  /** Absolute position of query row 0. */
  readonly queryOffset?: number
  /** Absolute position of key row 0. */
  readonly keyOffset?: number
  /** The layer's mask, over absolute positions; query heads numbered from 0 within the call. */
  readonly mask?: Mask
  /** The layer's score mod, over absolute positions. */
  readonly scoreMod?: ScoreMod
  /** Score scale (default 1/√D). */
  readonly scale?: number
  /** Layer index of the call's query head 0 (a layer may split its heads between operators). */
  readonly headOffset?: number
  /**
   * The layer's input rows of this call, `[B, T, dModel]` (after the block's norm, before the q/k/v maps): for
   * operators that route or read memory from the token itself (MoH's router, Titans' memory).
   */
  readonly input?: Tensor
  /** The operator's own parameters (what its `init` made), when it has any. */
  readonly params?: unknown
}

/** What an operator with its own parameters is told when the layer initialises them. */
export interface OperatorInitOptions {
  /** Model width (the layer's input and output width). */
  readonly dModel: number
  /** Query heads of the run the operator serves (and the kv heads they read). */
  readonly heads: number
  /** Key/value heads of the run (fewer than `heads` under grouped-query attention). */
  readonly kvHeads: number
  /** Head dimension D. */
  readonly headDim: number
  /** Seed the operator should draw its initial parameters from (distinct per operator of a layer). */
  readonly seed: number
  /** Dtype of the parameters. */
  readonly dtype: FloatDType
  /** Backend the parameters live on (default: the current backend). */
  readonly backend?: string
}

/**
 * An attention operator in the shape of `scaledDotProductAttention`: q [B, H, Tq, D], k [B, Hkv, Tk, D],
 * v [B, Hkv, Tk, Dv] → out [B, H, Tq, Dv] (+ the row logsumexp when it is a softmax state).
 *
 * `incremental` says how it runs against a KV cache (absent: it has no incremental form, and a layer refuses a
 * cache):
 * - `'merge'`: it honours `mask`, `queryOffset` and `keyOffset` and returns `lse`, so the cache's passes (sinks,
 *   ring laps) are attended separately and merged exactly (softmax operators);
 * - `'prefix'`: it needs every key from the first position on, bottom-right aligned with the queries (a
 *   recurrence that recomputes its state from the prefix): full-policy heads only;
 * - `'state'`: it carries a constant-size recurrent state between chunks (`step`; Lightning): the cache holds that
 *   state instead of keys, so memory and time per token stay flat however long the stream runs. A layer's `cache()`
 *   gives kv heads read only by such operators the `recurrent` policy (no keys kept), unless `policies` say otherwise.
 */
export interface AttentionFn {
  (q: Tensor, k: Tensor, v: Tensor, opts: AttentionFnOptions): { readonly out: Tensor; readonly lse?: Tensor }
  readonly incremental?: 'merge' | 'prefix' | 'state'
  /**
   * `incremental: 'state'`: attend one chunk's queries to its own keys and values (bottom-right aligned, causal)
   * continuing from `state`, the operator's state after the earlier chunks (undefined at the start of a stream),
   * and return the chunk's output and the state after it (a pytree of tensors of constant size; the cache takes it
   * over). `opts.queryOffset` is the chunk's first position.
   */
  readonly step?: (q: Tensor, k: Tensor, v: Tensor, state: unknown, opts: AttentionFnOptions) => { readonly out: Tensor; readonly state: unknown }
  /**
   * Trainable parameters of the operator (a pytree of tensors: MoH's router, Titans' memory): the layer's `init`
   * calls it once per run of heads and stores the result in `MhaParams.op`, so `valueAndGrad` and the optimizers
   * train it with the layer (`initOperators`, passed back as `forward`'s `operatorParams`); each call gets its run's
   * part as `opts.params`.
   */
  readonly init?: (opts: OperatorInitOptions) => OperatorParams
}

export interface MultiHeadAttentionOptions {
  /** Model width: the input and output width of the layer. */
  readonly dModel: number
  /** Query heads. */
  readonly heads: number
  /** Key/value heads (grouped-query attention when fewer than `heads`; must divide it). Default `heads`. */
  readonly kvHeads?: number
  /** Default `dModel / heads`. */
  readonly headDim?: number
  /** Rotary embedding on q and k at absolute positions: `true` for the defaults (base 10000, half-split). */
  readonly rope?: boolean | RopeOptions
  /** Score scale (default 1/√headDim). */
  readonly scale?: number
  /**
   * The attention operator (default `scaledDotProductAttention`): one `AttentionFn` for every head, or a per-head
   * factory `(head) => AttentionFn` (told apart by arity: a function of at most one parameter is the factory).
   * Runs of consecutive heads with the same function are called once, on their slice of heads.
   */
  readonly attention?: AttentionFn | ((head: number) => AttentionFn)
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

/**
 * Parameters of an operator: a pytree of tensors (objects and arrays of tensors, as `valueAndGrad` and the
 * optimizers take them). Typed as `object`, not as a recursive tree, so the optimizers' mapped types stay shallow.
 */
export type OperatorParams = object

export interface InitOptions {
  /** Seed of the initial parameters (default 0). */
  readonly seed?: number
  /** Default float32. */
  readonly dtype?: FloatDType
  /** Backend the parameters live on (default: the current backend). */
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
  /** And-ed with the causal mask, over absolute positions. */
  readonly mask?: Mask
  /** Applied to every score, over absolute positions. */
  readonly scoreMod?: ScoreMod
  /** The operators' own parameters (`initOperators`), when an operator of the layer has an `init`. */
  readonly operatorParams?: readonly OperatorParams[]
}

/** Options of a layer's `cache()` (see `KvCacheOptions`). */
export interface CacheOptions {
  /** Sequences decoded side by side (the leading dim of `x`). */
  readonly batch: number
  /**
   * Most tokens a `full` kv head holds (an append past it is a `CacheOverflowError`); required when some head is
   * full. Streaming heads hold `sink + recent − 1 + chunk` slots and recurrent ones none, whatever the stream
   * length, so a cache without full heads needs no capacity and its stream may run past any value given here.
   */
  readonly capacity?: number
  /**
   * One policy per kv head (`headPolicy.full()`, `.streaming(sink, recent)`, `.recurrent()`). Default: `recurrent`
   * for kv heads read only by operators with a recurrent state (`incremental: 'state'`, Lightning), `full` for
   * the others. A softmax operator cannot read a recurrent head (an error at `forward`).
   */
  readonly policies?: readonly HeadPolicy[]
  /** Longest chunk a streaming head takes in one append (default 64); the layer splits longer ones. */
  readonly chunk?: number
  /** Storage dtype of keys and values: float32 (default), float16 or float64. */
  readonly dtype?: FloatDType
  /** Backend of the storage (default: the current one). */
  readonly backend?: string
}

export interface MultiHeadAttention {
  readonly dModel: number
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly rope: RopeOptions | undefined
  /** The operator of each query head (undefined: scaledDotProductAttention everywhere). */
  readonly attention: readonly AttentionFn[] | undefined
  init(opts?: InitOptions): MhaParams
  /** `x [B, T, dModel]` or `[T, dModel]` → the same shape. */
  forward(params: MhaParams, x: Tensor, opts?: ForwardOptions): Tensor
  /** A KV cache shaped for this layer. */
  cache(opts: CacheOptions): KvCache
  /**
   * The operators' own parameters, one entry per run of heads (`{}` for a run without any), or undefined when no
   * operator has an `init`: pass them as `forward`'s `operatorParams`.
   */
  initOperators(opts?: InitOptions): readonly OperatorParams[] | undefined
}

/** Rows of x as [B, T, dModel], and whether x came without a batch axis. */
export function asBatched(op: string, x: Tensor, dModel: number): { x3: Tensor; unbatched: boolean } {
  tensorArg(op, 'x', x, `a Tensor [B, T, ${dModel}] or [T, ${dModel}]`)
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
const INIT_KEYS = Object.keys({ seed: true, dtype: true, backend: true } satisfies Record<keyof InitOptions, true>)
const CACHE_KEYS = Object.keys({ batch: true, capacity: true, policies: true, chunk: true, dtype: true, backend: true } satisfies Record<keyof CacheOptions, true>)

export function multiHeadAttention(opts: MultiHeadAttentionOptions): MultiHeadAttention {
  return mhaLayer(opts, 'multiHeadAttention')
}

/**
 * @internal `multiHeadAttention` with its construction checks in the name of `checkOp` (the public function
 * called: `transformerBlock` builds its attention with it); the layer's methods keep their own names.
 */
export function mhaLayer(opts: MultiHeadAttentionOptions, checkOp: string): MultiHeadAttention {
  const op = 'multiHeadAttention'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op: checkOp, arg: 'opts', expected: '{ dModel, heads, … }', actual: opts === null ? 'null' : typeof opts })
  knownOptions(checkOp, opts, ['dModel', 'heads', 'kvHeads', 'headDim', 'rope', 'scale', 'attention'])
  if (opts.rope !== undefined && typeof opts.rope !== 'boolean' && (opts.rope === null || typeof opts.rope !== 'object'))
    throw new ArgumentError({ op: checkOp, arg: 'rope', expected: 'a boolean or { base, style }', actual: opts.rope === null ? 'null' : typeof opts.rope === 'string' ? `'${opts.rope}'` : typeof opts.rope })
  if (typeof opts.rope === 'object') knownOptions(`${checkOp}: rope`, opts.rope, ['base', 'style'])
  const dModel = positiveInt(checkOp, 'dModel', opts.dModel)
  const heads = positiveInt(checkOp, 'heads', opts.heads)
  const kvHeads = positiveInt(checkOp, 'kvHeads', opts.kvHeads ?? heads)
  if (heads % kvHeads !== 0) throw new ValueError({ op: checkOp, arg: 'kvHeads', expected: `a divisor of heads (${heads})`, actual: kvHeads })
  if (opts.headDim === undefined && dModel % heads !== 0) throw new ValueError({ op: checkOp, arg: 'headDim', expected: `given, since dModel ${dModel} is not a multiple of heads ${heads}`, actual: undefined })
  const headDim = positiveInt(checkOp, 'headDim', opts.headDim ?? dModel / heads)
  const ropeOpts = opts.rope === true ? {} : opts.rope === false || opts.rope === undefined ? undefined : opts.rope
  if (ropeOpts && headDim % 2 !== 0) throw new ValueError({ op: checkOp, arg: 'headDim', expected: 'an even head dim with rope', actual: headDim })
  const scale = opts.scale
  const perHead = resolveAttention(checkOp, opts.attention, heads)
  const groups = perHead ? headRuns(perHead) : undefined

  const init = (o: InitOptions = {}): MhaParams => {
    operatorOptions('multiHeadAttention.init', o, INIT_KEYS, '{ seed?, dtype?, backend? }')
    const seed = o.seed ?? 0
    const dtype = o.dtype ?? 'float32'
    const w = (rows: number, cols: number, k: number): Tensor =>
      random.normal([rows, cols], { seed: seed * 4 + k, std: 1 / Math.sqrt(rows), dtype, ...(o.backend !== undefined ? { backend: o.backend } : {}) })
    return { Wq: w(dModel, heads * headDim, 0), Wk: w(dModel, kvHeads * headDim, 1), Wv: w(dModel, kvHeads * headDim, 2), Wo: w(heads * headDim, dModel, 3) }
  }

  // One entry per run of heads; runs without parameters hold {}, so the indices line up with `groups`.
  const initOperators = (o: InitOptions = {}): readonly OperatorParams[] | undefined => {
    if (!groups?.some(g => g.fn.init !== undefined)) return undefined
    const g = heads / kvHeads
    return groups.map((r, i) =>
      r.fn.init
        ? r.fn.init({ dModel, heads: r.h1 - r.h0, kvHeads: Math.max(1, Math.ceil((r.h1 - r.h0) / g)), headDim, seed: (o.seed ?? 0) * 64 + 17 + i, dtype: o.dtype ?? 'float32', ...(o.backend !== undefined ? { backend: o.backend } : {}) })
        : {},
    )
  }

  const forward = (params: MhaParams, x: Tensor, fo: ForwardOptions = {}): Tensor => {
    const fop = 'multiHeadAttention.forward'
    objectArg(fop, 'params', params, 'the layer parameters (layer.init())')
    tensorArg(fop, 'x', x, `a Tensor [B, T, ${dModel}] or [T, ${dModel}]`)
    operatorOptions(fop, fo, ['positions', 'cache', 'causal', 'mask', 'scoreMod', 'operatorParams'])
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
    const ops = fo.operatorParams
    if (groups?.some(g => g.fn.init !== undefined) && (!Array.isArray(ops) || ops.length !== groups.length))
      throw new ShapeError({ op: fop, arg: 'operatorParams', expected: `${groups.length} entries (the operators' own parameters, from initOperators)`, actual: Array.isArray(ops) ? ops.length : typeof ops })
    if (cache) cache.ensureRoom(T)
    if (cache && groups)
      for (const g of groups)
        if (g.fn.incremental !== 'merge' && g.fn.incremental !== 'prefix' && !(g.fn.incremental === 'state' && typeof g.fn.step === 'function'))
          throw new ValueError({ op: fop, arg: 'attention', expected: `operators with an incremental form (fn.incremental 'merge', 'prefix' or 'state' with a step) when a cache is used`, actual: `${describe(g.fn)} on heads [${g.h0}, ${g.h1}) has none` })
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
        o = groups
          ? runGroups(fop, groups, q, k, v, { causal, queryOffset: start, keyOffset: start, ...extra, input: x3 }, headDim, ops)
          : scaledDotProductAttention(q, k, v, { causal, queryOffset: start, keyOffset: start, ...extra }).out
      } else {
        const outs: Tensor[] = []
        const step = Math.min(T, cache.maxChunk)
        for (let i0 = 0; i0 < T; i0 += step) {
          const i1 = Math.min(T, i0 + step)
          const piece = (y: Tensor): Tensor => (i0 === 0 && i1 === T ? y : slice(y, [null, null, [i0, i1]]))
          cache.append(piece(k), piece(v), start + i0)
          const rows = i0 === 0 && i1 === T ? x3 : slice(x3, [null, [i0, i1]])
          outs.push(groups ? cachedGroups(fop, groups, piece(q), cache, { queryOffset: start + i0, ...extra }, rows, ops, piece(k), piece(v)) : cachedAttention(piece(q), cache, { queryOffset: start + i0, ...extra }).out)
        }
        cache.compact()
        o = outs.length === 1 ? outs[0]! : concat(outs, 2)
      }
      const y = matmul(reshape(permute(o, [0, 2, 1, 3]), [B, T, heads * headDim]), params.Wo)
      return unbatched ? reshape(y, [T, dModel]) : y
    })
  }

  // kv heads read only by operators with a recurrent state keep no keys by default
  const stateOnly = groups?.every(g => g.fn.incremental !== 'state') === false
    ? Array.from({ length: kvHeads }, (_, kh) => groups.every(g => g.fn.incremental === 'state' || g.h1 <= kh * (heads / kvHeads) || g.h0 >= (kh + 1) * (heads / kvHeads)))
    : undefined
  const cache = (o: CacheOptions): KvCache => {
    operatorOptions('multiHeadAttention.cache', o, CACHE_KEYS, '{ batch, capacity?, … }')
    positiveInt('multiHeadAttention.cache', 'batch', o.batch)
    return kvCache({
      batch: o?.batch,
      kvHeads,
      headDim,
      ...(o?.capacity !== undefined ? { capacity: o.capacity } : {}),
      dtype: o?.dtype ?? 'float32',
      ...(o?.policies !== undefined ? { policies: o.policies } : stateOnly ? { policies: stateOnly.map(r => (r ? headPolicy.recurrent() : headPolicy.full())) } : {}),
      ...(o.chunk !== undefined ? { chunk: o.chunk } : {}),
      ...(o.backend !== undefined ? { backend: o.backend } : {}),
    })
  }

  return { dModel, heads, kvHeads, headDim, rope: ropeOpts, attention: perHead, init, forward, cache, initOperators }
}

// ---- pluggable attention operators --------------------------------------------------------------------------------

interface HeadRun {
  readonly h0: number
  readonly h1: number
  readonly fn: AttentionFn
}

const describe = (fn: AttentionFn): string => (fn.name ? `operator '${fn.name}'` : 'an anonymous operator')

function resolveAttention(op: string, a: MultiHeadAttentionOptions['attention'], heads: number): AttentionFn[] | undefined {
  if (a === undefined) return undefined
  if (typeof a !== 'function') throw new ArgumentError({ op, arg: 'attention', expected: 'an AttentionFn or a per-head factory (head) => AttentionFn', actual: typeof a })
  // An AttentionFn takes (q, k, v, opts); a factory takes (head).
  if (a.length > 1) return Array.from({ length: heads }, () => a as AttentionFn)
  const factory = a as (head: number) => AttentionFn
  return Array.from({ length: heads }, (_, h) => {
    const fn = factory(h)
    if (typeof fn !== 'function') throw new ArgumentError({ op, arg: 'attention', expected: `the factory to return an AttentionFn for head ${h}`, actual: typeof fn })
    return fn
  })
}

/** Maximal runs of consecutive heads sharing one function (by identity). */
function headRuns(fns: readonly AttentionFn[]): HeadRun[] {
  const runs: HeadRun[] = []
  for (let h = 0; h < fns.length; ) {
    let e = h + 1
    while (e < fns.length && fns[e] === fns[h]) e++
    runs.push({ h0: h, h1: e, fn: fns[h]! })
    h = e
  }
  return runs
}

/** The caller's mask and mod seen from a call whose head 0 is layer head `by`. */
function shifted(o: { readonly mask?: Mask; readonly scoreMod?: ScoreMod }, by: number): { mask?: Mask; scoreMod?: ScoreMod } {
  const m = o.mask
  const s = o.scoreMod
  return {
    ...(m ? { mask: m.shiftHeads(by) } : {}),
    ...(s ? { scoreMod: s.shiftHeads(by) } : {}),
  }
}

/**
 * k/v heads for query heads [x0, x1) of a layer with `g` query heads per kv head, such that the operator's own
 * grouped-query rule (local head l reads kv head ⌊l / g'⌋) holds: a slice when the run covers whole kv groups or
 * sits inside one, else each query head gets its own copy of its kv head.
 */
function kvFor(x: Tensor, x0: number, x1: number, g: number): Tensor {
  const k0 = Math.floor(x0 / g)
  const k1 = Math.floor((x1 - 1) / g) + 1
  if ((x0 % g === 0 && x1 % g === 0) || k1 - k0 === 1) return k0 === 0 && k1 === x.shape[1] ? x : slice(x, [null, [k0, k1]])
  const idx = Int32Array.from({ length: x1 - x0 }, (_, i) => Math.floor((x0 + i) / g))
  return take(x, tensor(idx, [idx.length], 'int32', { backend: x.backend }), 1)
}

function checkOut(op: string, run: HeadRun, out: Tensor, want: readonly number[]): Tensor {
  if (out?.rank !== 4 || out.shape.some((d, i) => d !== want[i]))
    throw new ShapeError({ op, arg: 'attention', expected: `${describe(run.fn)} on heads [${run.h0}, ${run.h1}) to return out [${want.join(', ')}]`, actual: out?.shape })
  return out
}

type CallOptions = { readonly causal: boolean; readonly queryOffset: number; readonly keyOffset: number; readonly mask?: Mask; readonly scoreMod?: ScoreMod; readonly scale?: number }

/** No cache: each run of heads calls its operator on its slice of q (and the k/v heads those read). */
function runGroups(op: string, runs: readonly HeadRun[], q: Tensor, k: Tensor, v: Tensor, o: CallOptions & { readonly input: Tensor }, headDim: number, ops: readonly OperatorParams[] | undefined): Tensor {
  const [B, H, T] = q.shape as [number, number, number]
  const g = H / k.shape[1]!
  const outs = runs.map((r, i) => {
    const whole = r.h0 === 0 && r.h1 === H
    const qr = whole ? q : slice(q, [null, [r.h0, r.h1]])
    const { mask: _m, scoreMod: _s, ...rest } = o
    const res = r.fn(qr, kvFor(k, r.h0, r.h1, g), kvFor(v, r.h0, r.h1, g), { ...rest, ...shifted(o, r.h0), headOffset: r.h0, ...(r.fn.init ? { params: ops![i] } : {}) })
    return checkOut(op, r, res.out, [B, r.h1 - r.h0, T, headDim])
  })
  return outs.length === 1 ? outs[0]! : concat(outs, 1)
}

/** With a cache: each run of heads over each view (same-policy kv heads) it reads, by the operator's incremental form. */
function cachedGroups(op: string, runs: readonly HeadRun[], q: Tensor, cache: KvCache, o: Omit<CallOptions, 'causal' | 'keyOffset'>, input: Tensor, ops: readonly OperatorParams[] | undefined, k: Tensor, v: Tensor): Tensor {
  const [B, H, Tq] = q.shape as [number, number, number]
  const g = H / cache.kvHeads
  const views = cache.views()
  const outs: Tensor[] = []
  for (const [i, r] of runs.entries()) {
    if (r.fn.incremental === 'state') {
      // the run's own state, carried by the cache between chunks: its keys are not read back from the cache
      const whole = r.h0 === 0 && r.h1 === H
      const user = { ...shifted(o, r.h0), ...(o.scale !== undefined ? { scale: o.scale } : {}), headOffset: r.h0, input, ...(r.fn.init ? { params: ops![i] } : {}) }
      const key = `heads ${r.h0}-${r.h1}`
      const res = r.fn.step!(whole ? q : slice(q, [null, [r.h0, r.h1]]), kvFor(k, r.h0, r.h1, g), kvFor(v, r.h0, r.h1, g), cache.recurrentState(key, o.queryOffset), { ...user, causal: true, queryOffset: o.queryOffset, keyOffset: o.queryOffset })
      cache.setRecurrentState(key, res.state, o.queryOffset + Tq)
      outs.push(checkOut(op, r, res.out, [B, r.h1 - r.h0, Tq, cache.valueDim]))
      continue
    }
    for (const view of views) {
      const x0 = Math.max(r.h0, view.heads[0] * g)
      const x1 = Math.min(r.h1, view.heads[1] * g)
      if (x0 >= x1) continue
      const qx = x0 === 0 && x1 === H ? q : slice(q, [null, [x0, x1]])
      // kv heads of the view are numbered from the view's first one.
      const local = (x: Tensor): Tensor => kvFor(x, x0 - view.heads[0] * g, x1 - view.heads[0] * g, g)
      const user = { ...shifted(o, x0), ...(o.scale !== undefined ? { scale: o.scale } : {}), headOffset: x0, input, ...(r.fn.init ? { params: ops![i] } : {}) }
      if (view.policy.kind === 'recurrent')
        throw new ValueError({ op, arg: 'cache', expected: `kv heads that keep keys for ${describe(r.fn)} on heads [${r.h0}, ${r.h1}) (policy 'full' or 'streaming')`, actual: `kv heads [${view.heads[0]}, ${view.heads[1]}) with policy 'recurrent'` })
      const res = r.fn.incremental === 'prefix' ? prefixCall(op, r, view, qx, local, o.queryOffset, user) : mergeCall(op, r, view, qx, local, o.queryOffset, user)
      outs.push(checkOut(op, r, res, [B, x1 - x0, Tq, cache.valueDim]))
    }
  }
  return outs.length === 1 ? outs[0]! : concat(outs, 1)
}

type UserOptions = { mask?: Mask; scoreMod?: ScoreMod; scale?: number; headOffset: number; input: Tensor; params?: unknown }

function mergeCall(op: string, r: HeadRun, view: KvView, q: Tensor, local: (x: Tensor) => Tensor, queryOffset: number, user: UserOptions): Tensor {
  const [B, Hq, Tq] = q.shape as [number, number, number]
  const keys = local(view.keys)
  const values = local(view.values)
  if (view.passes.length === 0) return scope(() => mul0(q, [B, Hq, Tq, values.shape[3]!]))
  const parts: AttentionResult[] = view.passes.map(pass => {
    const res = r.fn(q, keys, values, { ...user, causal: true, queryOffset, keyOffset: pass.keyOffset, mask: user.mask ? masks.and(pass.mask, user.mask) : pass.mask })
    if (res.lse === undefined && view.passes.length > 1)
      throw new ValueError({ op, arg: 'attention', expected: `${describe(r.fn)} (incremental 'merge') to return lse, to merge the cache's ${view.passes.length} passes`, actual: 'no lse' })
    return { out: res.out, lse: res.lse ?? res.out }
  })
  return parts.length === 1 ? parts[0]!.out : mergeAttention(parts).out
}

function prefixCall(op: string, r: HeadRun, view: KvView, q: Tensor, local: (x: Tensor) => Tensor, queryOffset: number, user: UserOptions): Tensor {
  const range = view.passes.length === 1 && view.passes[0]!.ranges.length === 1 ? view.passes[0]!.ranges[0]! : undefined
  if (view.policy.kind !== 'full' || range === undefined)
    throw new ValueError({ op, arg: 'attention', expected: `full-policy kv heads holding one run of consecutive positions for ${describe(r.fn)} (incremental 'prefix')`, actual: `kv heads [${view.heads[0]}, ${view.heads[1]}) with policy '${view.policy.kind}'` })
  const cut = (x: Tensor): Tensor => slice(local(x), [null, null, [range.slot, range.slot + range.length]])
  return r.fn(q, cut(view.keys), cut(view.values), { ...user, causal: true, queryOffset, keyOffset: range.position }).out
}

/** Zeros shaped like an empty attention result, on q's backend. */
const mul0 = (q: Tensor, shape: readonly number[]): Tensor => tensor(new Float64Array(shape.reduce((a, b) => a * b, 1)), shape, q.dtype, { backend: q.backend })
