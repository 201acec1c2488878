import { attnState } from './attnState.js'
import {
  positiveInt,
  nonNegativeInt,
  knownOptions,
  ArgumentError,
  bytesPerElement,
  concat,
  DisposedError,
  DTypeError,
  exp,
  dispose,
  full,
  greater,
  keep,
  log,
  maximum,
  mul,
  reshape,
  scope,
  ShapeError,
  slice,
  sub,
  add,
  div,
  where,
  writeSlice,
  ValueError,
  zeros,
  isTensor,
  type DType,
  type Tensor,
  checkAllocation,
} from '@heed/tensor'
import { Mask, mask as masks } from './mask.js'
import { ScoreMod } from './scoreMod.js'
import { scaledDotProductAttention, type AttentionResult } from './sdpa.js'
import { operatorOptions, tensorArg } from './operators/strict.js'

/**
 * Retention policy of one kv head.
 * - `full`: keeps every token, up to the cache's `capacity`.
 * - `streaming`: StreamingLLM / DuoAttention streaming heads: the first `sink` positions and the last `recent`
 *   ones, i.e. exactly what `mask.streaming(sink, recent)` lets a query see. Keys are cached after RoPE at their
 *   original positions (DuoAttention's choice); positions are never re-assigned inside the cache. Holds
 *   `sink + recent − 1 + chunk` slots whatever the stream length: `capacity` does not bound it.
 * - `recurrent`: keeps no keys at all. For kv heads read only by operators with a recurrent state (Lightning,
 *   `incremental: 'state'`): the cache holds their constant-size state instead (`recurrentState`). A layer's
 *   `cache()` picks it for such heads by default.
 */
export type HeadPolicy = { readonly kind: 'full' } | { readonly kind: 'streaming'; readonly sink: number; readonly recent: number } | { readonly kind: 'recurrent' }

const FULL: HeadPolicy = Object.freeze({ kind: 'full' })
const RECURRENT: HeadPolicy = Object.freeze({ kind: 'recurrent' })

export const headPolicy = {
  full: (): HeadPolicy => FULL,
  streaming: (sink: number, recent: number): HeadPolicy => {
    const op = 'headPolicy.streaming'
    if (!Number.isInteger(sink) || sink < 0) throw new ValueError({ op, arg: 'sink', expected: 'a non-negative integer', actual: sink })
    positiveInt(op, 'recent', recent)
    return Object.freeze({ kind: 'streaming', sink, recent })
  },
  recurrent: (): HeadPolicy => RECURRENT,
}

/** A full head's cache has no room for a chunk: names the head, the capacity, what is used and what came. */
/** The details of a CacheOverflowError, from its counts: a misuse of the constructor is itself a typed error. */
function overflowDetails(kvHead: number, capacity: number, used: number, requested: number) {
  const op = 'CacheOverflowError'
  nonNegativeInt(op, 'kvHead', kvHead)
  positiveInt(op, 'capacity', capacity)
  nonNegativeInt(op, 'used', used)
  positiveInt(op, 'requested', requested)
  return { op: 'kvCache.append', arg: 'k', expected: `at most ${capacity - used} new tokens (kv head ${kvHead}: capacity ${capacity}, ${used} used)`, actual: `${requested} tokens` }
}

export class CacheOverflowError extends ValueError {
  constructor(
    readonly kvHead: number,
    readonly capacity: number,
    readonly used: number,
    readonly requested: number,
  ) {
    super(overflowDetails(kvHead, capacity, used, requested), 'cache overflow')
  }
}

export interface KvCacheOptions {
  /** Sequences held side by side (the B of the keys and values appended). */
  readonly batch: number
  /** Key/value heads (fewer than the query heads under grouped-query attention). */
  readonly kvHeads: number
  /** Key head dimension D. */
  readonly headDim: number
  /** Value head dim (default `headDim`). */
  readonly valueDim?: number
  /**
   * Most tokens a `full` head holds: required when some head is `full`, and an append past it is a
   * `CacheOverflowError`. Streaming and recurrent heads hold a constant number of slots (see `chunk`), so a cache
   * without full heads needs none and its stream may run past any given value (`room` is then Infinity).
   */
  readonly capacity?: number
  /** float32 (default), float16 or float64. */
  readonly dtype?: 'float32' | 'float16' | 'float64'
  /** Backend the cache allocates on (default: the current backend). */
  readonly backend?: string
  /** One per kv head (default: all `full`). */
  readonly policies?: readonly HeadPolicy[]
  /**
   * Longest chunk a streaming head takes in one append (default 64). A streaming head holds
   * `sink + recent − 1 + chunk` slots, whatever the stream length; longer chunks are split by the layer.
   */
  readonly chunk?: number
}

/** A run of consecutive slots holding consecutive positions. */
export interface KvRange {
  readonly slot: number
  readonly position: number
  readonly length: number
}

/**
 * One `scaledDotProductAttention` call over a view's whole storage: key slot `j` sits at absolute position
 * `keyOffset + j`, and `mask` admits exactly the slots whose stored position is that (plus the head's policy).
 */
export interface KvPass {
  readonly keyOffset: number
  readonly mask: Mask
  readonly ranges: readonly KvRange[]
}

/**
 * What queries of the last appended chunk must attend to, for a run of kv heads that share a policy (and so a
 * slot layout). `keys`/`values` ARE the cache's storage, not copies: do not dispose them, and read them before
 * the next append overwrites slots. Attention over the view is the lse-merge of one sdpa call per pass
 * (`cachedAttention` does it); a full head with consecutive positions has one pass, a streaming head at most three
 * (sinks, and the ring's two laps).
 */
export interface KvView {
  /** kv heads [h0, h1) served by this view. */
  readonly heads: readonly [number, number]
  readonly policy: HeadPolicy
  /** [B, h1 − h0, slots, D] */
  readonly keys: Tensor
  /** [B, h1 − h0, slots, Dv] */
  readonly values: Tensor
  readonly passes: readonly KvPass[]
  /** Absolute positions of the retained keys, ascending. */
  readonly positions: Int32Array
}

/** A run of kv heads with one policy: own storage, one slot layout. */
interface Group {
  readonly h0: number
  readonly h1: number
  readonly policy: HeadPolicy
  readonly slots: number
  readonly keys: Tensor
  readonly values: Tensor
  /** Absolute position held by each slot, −1 when empty. */
  readonly pos: Int32Array
  /** full: slots [0, used) are filled. */
  used: number
  /** streaming: the ring is slots [sink, slots); oldest entry at ring index `ringStart`. */
  ringStart: number
  ringCount: number
  view: KvView | undefined
}

/** The tensors of a state (a pytree of plain objects and arrays, as `dispose` walks it). */
function treeTensors(tree: unknown, out = new Set<Tensor>()): Set<Tensor> {
  if (isTensor(tree)) out.add(tree)
  else if (Array.isArray(tree)) for (const x of tree) treeTensors(x, out)
  else if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype) for (const x of Object.values(tree)) treeTensors(x, out)
  return out
}

const samePolicy = (a: HeadPolicy, b: HeadPolicy): boolean =>
  a.kind === b.kind && (a.kind !== 'streaming' || (b.kind === 'streaming' && a.sink === b.sink && a.recent === b.recent))

/** Positions of a chunk as an Int32Array: a start (consecutive run) or a list. */
export function chunkPositions(op: string, positions: number | ArrayLike<number>, T: number): Int32Array {
  if (typeof positions === 'number') {
    if (!Number.isSafeInteger(positions) || positions < 0) throw new ValueError({ op, arg: 'positions', expected: 'a non-negative integer start', actual: positions })
    return Int32Array.from({ length: T }, (_, i) => positions + i)
  }
  if (positions.length !== T) throw new ShapeError({ op, arg: 'positions', expected: `${T} positions, one per token`, actual: positions.length })
  const out = Int32Array.from(positions)
  for (let i = 0; i < T; i++)
    if (out[i] !== positions[i] || out[i]! < 0 || (i > 0 && out[i]! <= out[i - 1]!))
      throw new ValueError({ op, arg: 'positions', expected: 'strictly increasing non-negative integers', actual: Array.from(positions).slice(Math.max(0, i - 1), i + 1) })
  return out
}

/**
 * A preallocated KV cache for one layer. Storage is one `[B, n, slots, D]` key buffer and one value buffer per run
 * of consecutive kv heads with the same policy (a single pair when all heads share one, the usual case), written
 * in place with `writeSlice`: full heads fill slots in order, streaming heads keep their sinks in slots
 * [0, sink) and a ring after them. Positions are tracked per slot, so views hand out the storage itself plus
 * key offsets and masks that make `scaledDotProductAttention` exact: no copy per step.
 *
 * Ownership: the cache owns its buffers (they survive enclosing `scope`s) until `dispose()`. Appending is not
 * differentiable: use the cache for inference, not inside `valueAndGrad`.
 */
const KV_CACHE_OPTIONS: Record<keyof KvCacheOptions, true> = { batch: true, kvHeads: true, headDim: true, valueDim: true, capacity: true, dtype: true, backend: true, policies: true, chunk: true }
const KV_CACHE_KEYS = Object.keys(KV_CACHE_OPTIONS)

export class KvCache {
  readonly batch: number
  readonly kvHeads: number
  readonly headDim: number
  readonly valueDim: number
  /** Most tokens a full head holds (Infinity for a cache without full heads: nothing else bounds a stream). */
  readonly capacity: number
  readonly dtype: DType
  readonly policies: readonly HeadPolicy[]
  /** Longest chunk one append takes (Infinity when every head is full: then only `capacity` bounds it). */
  readonly maxChunk: number
  private readonly groups: Group[]
  private appended = 0
  private last = -1
  private disposed = false
  /** Recurrent states of `incremental: 'state'` operators, by key, with the position each expects next. */
  private readonly states = new Map<string, { state: unknown; next: number }>()
  /** @internal set by `attend` while a subscription owns the cache. */
  owner: object | undefined

  constructor(opts: KvCacheOptions) {
    const op = 'kvCache'
    if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ batch, kvHeads, headDim, capacity, … }', actual: String(opts) })
    knownOptions(op, opts, KV_CACHE_KEYS)
    this.batch = positiveInt(op, 'batch', opts.batch)
    this.kvHeads = positiveInt(op, 'kvHeads', opts.kvHeads)
    this.headDim = positiveInt(op, 'headDim', opts.headDim)
    this.valueDim = positiveInt(op, 'valueDim', opts.valueDim ?? opts.headDim)
    const chunk = positiveInt(op, 'chunk', opts.chunk ?? 64)
    this.dtype = opts.dtype ?? 'float32'
    if (!['float32', 'float16', 'float64'].includes(this.dtype)) throw new DTypeError({ op, arg: 'dtype', expected: 'a float dtype', actual: this.dtype })
    const policies = opts.policies ?? Array.from({ length: this.kvHeads }, () => FULL)
    if (policies.length !== this.kvHeads) throw new ValueError({ op, arg: 'policies', expected: `one policy per kv head (${this.kvHeads})`, actual: policies.length })
    policies.forEach((p, h) => {
      const ok = p?.kind === 'full' || p?.kind === 'recurrent' || (p?.kind === 'streaming' && Number.isInteger(p.sink) && p.sink >= 0 && Number.isInteger(p.recent) && p.recent >= 1)
      if (!ok) throw new ValueError({ op, arg: `policies[${h}]`, expected: "{ kind: 'full' }, { kind: 'streaming', sink ≥ 0, recent ≥ 1 } or { kind: 'recurrent' } (see headPolicy)", actual: JSON.stringify(p) })
    })
    this.policies = [...policies]
    const hasFull = policies.some(p => p.kind === 'full')
    if (opts.capacity === undefined && hasFull)
      throw new ValueError({ op, arg: 'capacity', expected: 'a positive integer: the most tokens a full kv head holds', actual: 'undefined' })
    this.capacity = opts.capacity === undefined ? Infinity : positiveInt(op, 'capacity', opts.capacity)
    const runs: [number, number][] = []
    for (let h = 0; h < this.kvHeads; h++) {
      const r = runs[runs.length - 1]
      if (r && samePolicy(policies[r[0]]!, policies[h]!)) r[1] = h + 1
      else runs.push([h, h + 1])
    }
    const made: Tensor[] = []
    try {
      this.groups = runs.map(([h0, h1]) => {
        const policy = policies[h0]!
        const slots = policy.kind === 'full' ? this.capacity : policy.kind === 'recurrent' ? 0 : policy.sink + policy.recent - 1 + chunk
        const fill = { dtype: this.dtype, ...(opts.backend !== undefined ? { backend: opts.backend } : {}) }
        // A size the user chose (capacity, or the window) is blamed by name before any allocation is tried.
        const arg = policy.kind === 'full' ? 'capacity' : 'policies'
        checkAllocation(op, arg, this.batch * (h1 - h0) * slots * Math.max(this.headDim, this.valueDim), this.dtype)
        const keys = keep(zeros([this.batch, h1 - h0, slots, this.headDim], fill))
        made.push(keys)
        const values = keep(zeros([this.batch, h1 - h0, slots, this.valueDim], fill))
        made.push(values)
        return { h0, h1, policy, slots, keys, values, pos: new Int32Array(slots).fill(-1), used: 0, ringStart: 0, ringCount: 0, view: undefined }
      })
    } catch (err) {
      for (const t of made) t.dispose()
      throw err
    }
    this.maxChunk = this.policies.some(p => p.kind === 'streaming') ? chunk : Infinity
  }

  /** Tokens appended so far. */
  get length(): number {
    return this.appended
  }

  /** The position a continuing chunk starts at: one past the last appended position (0 when empty). */
  get nextPosition(): number {
    return this.last + 1
  }

  /** Free slots of the fullest `full` head (Infinity when there is none): the most tokens the stream can still take. */
  get room(): number {
    let r = Infinity
    for (const g of this.groups) if (g.policy.kind === 'full') r = Math.min(r, g.slots - g.used)
    return r
  }

  /** Tokens kv head `h` currently retains (slots in use). */
  retained(h: number): number {
    const g = this.groupOf('kvCache.retained', h)
    return g.policy.kind === 'full' ? g.used : g.pos.reduce((n, p) => n + (p >= 0 ? 1 : 0), 0)
  }

  /**
   * Bytes of storage held: keys and values of every head run, plus the recurrent states. Constant over the cache's
   * life once every state exists (after the first chunk).
   */
  bytes(): number {
    let n = 0
    for (const g of this.groups) n += (g.keys.size + g.values.size) * bytesPerElement(this.dtype)
    for (const { state } of this.states.values()) for (const t of treeTensors(state)) n += t.size * bytesPerElement(t.dtype)
    return n
  }

  /**
   * The recurrent state stored under `key` (undefined before the first chunk): what an `incremental: 'state'`
   * operator carries between chunks instead of keys. Owned by the cache: read it, do not dispose it. `position`
   * is where the chunk about to be attended starts; a state that expects another one (a gap or a repeat) is an error.
   */
  recurrentState(key: string, position: number): unknown {
    const op = 'kvCache.recurrentState'
    this.live(op)
    const s = this.states.get(key)
    if (s !== undefined && s.next !== position)
      throw new ValueError({ op, arg: 'position', expected: `the chunk after the state's last token (position ${s.next}): a recurrent state absorbs consecutive tokens`, actual: position })
    return s?.state
  }

  /**
   * Store the state after a chunk that ends before `next` (the cache takes its tensors over and frees the state it
   * replaces, except tensors the new one shares).
   */
  setRecurrentState(key: string, state: unknown, next: number): void {
    this.live('kvCache.setRecurrentState')
    const old = this.states.get(key)
    keep(state)
    this.states.set(key, { state, next })
    if (old !== undefined) {
      const now = treeTensors(state)
      for (const t of treeTensors(old.state)) if (!now.has(t)) t.dispose()
    }
  }

  /** Throw the overflow error if a `full` head cannot take `tokens` more. */
  ensureRoom(tokens: number): void {
    nonNegativeInt('kvCache.ensureRoom', 'tokens', tokens)
    for (const g of this.groups)
      if (g.policy.kind === 'full' && g.used + tokens > g.slots) throw new CacheOverflowError(g.h0, g.slots, g.used, tokens)
  }

  /**
   * Write `k [B, Hkv, T, D]` and `v [B, Hkv, T, Dv]` at `positions` (a start, or T strictly increasing integers;
   * default `nextPosition`), all after the last appended position. Streaming heads first drop what no query of
   * this chunk can see. Checks everything before writing, so a rejected append leaves the cache as it was.
   */
  append(k: Tensor, v: Tensor, positions?: number | ArrayLike<number>): void {
    const op = 'kvCache.append'
    this.live(op)
    tensorArg(op, 'k', k, 'a Tensor [B, Hkv, T, D]')
    tensorArg(op, 'v', v, 'a Tensor [B, Hkv, T, Dv]')
    const B = this.batch
    for (const [arg, t, D] of [['k', k, this.headDim], ['v', v, this.valueDim]] as const) {
      if (t.rank !== 4 || t.shape[0] !== B || t.shape[1] !== this.kvHeads || t.shape[3] !== D)
        throw new ShapeError({ op, arg, expected: `[${B}, ${this.kvHeads}, T, ${D}]`, actual: t.shape })
      if (t.dtype !== this.dtype) throw new DTypeError({ op, arg, expected: `${this.dtype} like the cache`, actual: t.dtype })
    }
    const T = k.shape[2]!
    if (v.shape[2] !== T) throw new ShapeError({ op, arg: 'v' }, `k and v differ in length, k is [${k.shape.join(',')}], v is [${v.shape.join(',')}]`)
    if (T === 0) return
    const pos = chunkPositions(op, positions ?? this.nextPosition, T)
    if (pos[0]! <= this.last) throw new ValueError({ op, arg: 'positions', expected: `positions after the last appended one (${this.last})`, actual: pos[0] })
    this.ensureRoom(T)
    const start = pos[0]!
    for (const g of this.groups) {
      if (g.policy.kind !== 'streaming') continue
      const { sink, recent } = g.policy as { sink: number; recent: number }
      this.evict(g, start - recent + 1)
      const ring = g.slots - sink
      let toRing = 0
      for (let i = 0; i < T; i++) if (pos[i]! >= sink) toRing++
      if (g.ringCount + toRing > ring)
        throw new ValueError({ op, arg: 'k', expected: `chunks of at most ${ring - g.ringCount} tokens for the streaming heads from kv head ${g.h0} (the cache's \`chunk\` option)`, actual: `${T} tokens` })
    }
    scope(() => {
      for (const g of this.groups) {
        // recurrent heads keep no keys: their operators carry a state instead
        if (g.policy.kind === 'recurrent') continue
        const slot = this.placeChunk(g, pos)
        const one = this.groups.length === 1
        const kg = one ? k : slice(k, [null, [g.h0, g.h1]])
        const vg = one ? v : slice(v, [null, [g.h0, g.h1]])
        // Write each maximal block of consecutive target slots with one writeSlice.
        for (let i0 = 0; i0 < T; ) {
          let i1 = i0 + 1
          while (i1 < T && slot[i1] === slot[i1 - 1]! + 1) i1++
          const whole = i0 === 0 && i1 === T
          writeSlice(g.keys, whole ? kg : slice(kg, [null, null, [i0, i1]]), { axis: 2, offset: slot[i0]! })
          writeSlice(g.values, whole ? vg : slice(vg, [null, null, [i0, i1]]), { axis: 2, offset: slot[i0]! })
          i0 = i1
        }
        for (let i = 0; i < T; i++) g.pos[slot[i]!] = pos[i]!
        g.view = undefined
      }
    })
    this.appended += T
    this.last = pos[T - 1]!
  }

  /**
   * Drop what no future query will attend to: a streaming head keeps its sinks and the last `recent − 1` tokens
   * (the next query brings the `recent`-th). Call it after attending the current chunk; full heads keep everything.
   */
  compact(): void {
    this.live('kvCache.compact')
    for (const g of this.groups) if (g.policy.kind === 'streaming') this.evict(g, this.last + 2 - g.policy.recent)
  }

  /** Views for every run of same-policy kv heads, in head order. */
  views(): KvView[] {
    this.live('kvCache.views')
    return this.groups.map(g => (g.view ??= this.makeView(g)))
  }

  /** The view serving kv head `h` (default: the only run; an error when heads differ in policy). */
  view(h?: number): KvView {
    const op = 'kvCache.view'
    this.live(op)
    if (h === undefined) {
      if (this.groups.length !== 1)
        throw new ArgumentError({ op, arg: 'h', expected: 'a kv head index, or views(), when heads have different policies', actual: 'undefined' })
      return this.views()[0]!
    }
    const g = this.groupOf(op, h)
    return (g.view ??= this.makeView(g))
  }

  /** Free the storage. Idempotent; any later use is a DisposedError. */
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    for (const g of this.groups) {
      g.keys.dispose()
      g.values.dispose()
      g.view = undefined
    }
    for (const { state } of this.states.values()) dispose(state)
    this.states.clear()
  }

  get isDisposed(): boolean {
    return this.disposed
  }

  private live(op: string): void {
    if (this.disposed) throw new DisposedError({ op }, 'the cache was disposed')
  }

  private groupOf(op: string, h: number): Group {
    if (!Number.isInteger(h) || h < 0 || h >= this.kvHeads) throw new ValueError({ op, arg: 'h', expected: `a kv head in [0, ${this.kvHeads})`, actual: h })
    return this.groups.find(g => h >= g.h0 && h < g.h1)!
  }

  /** Streaming: drop ring entries (oldest first) at positions below `keepFrom`. */
  private evict(g: Group, keepFrom: number): void {
    if (g.policy.kind !== 'streaming') return
    const ring = g.slots - g.policy.sink
    while (g.ringCount > 0) {
      const s = g.policy.sink + g.ringStart
      if (g.pos[s]! >= keepFrom) break
      g.pos[s] = -1
      g.ringStart = (g.ringStart + 1) % ring
      g.ringCount--
      g.view = undefined
    }
  }

  /** Target slot of each token of a chunk, advancing the group's counters (room was checked). */
  private placeChunk(g: Group, pos: Int32Array): Int32Array {
    const slot = new Int32Array(pos.length)
    if (g.policy.kind === 'full') {
      for (let i = 0; i < pos.length; i++) slot[i] = g.used++
      return slot
    }
    const { sink } = g.policy as { sink: number }
    const ring = g.slots - sink
    for (let i = 0; i < pos.length; i++) {
      if (pos[i]! < sink) slot[i] = pos[i]!
      else slot[i] = sink + ((g.ringStart + g.ringCount++) % ring)
    }
    return slot
  }

  private makeView(g: Group): KvView {
    // Maximal runs of slots whose position − slot is constant; runs sharing that offset share one sdpa pass.
    const byOffset = new Map<number, KvRange[]>()
    const positions: number[] = []
    for (let s = 0; s < g.slots; ) {
      const p0 = g.pos[s]!
      if (p0 < 0) {
        s++
        continue
      }
      let n = 1
      while (s + n < g.slots && g.pos[s + n] === p0 + n) n++
      const off = p0 - s
      const list = byOffset.get(off) ?? []
      list.push({ slot: s, position: p0, length: n })
      byOffset.set(off, list)
      for (let i = 0; i < n; i++) positions.push(p0 + i)
      s += n
    }
    const policyMask = g.policy.kind === 'streaming' ? masks.streaming(g.policy.sink, g.policy.recent) : undefined
    const passes: KvPass[] = [...byOffset.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([keyOffset, ranges]) => {
        const admit = masks.or(...ranges.map(r => rangeMask(r.position, r.position + r.length)))
        return { keyOffset, ranges, mask: policyMask ? masks.and(admit, policyMask) : admit }
      })
    return {
      heads: [g.h0, g.h1],
      policy: g.policy,
      keys: g.keys,
      values: g.values,
      passes,
      positions: Int32Array.from(positions.sort((a, b) => a - b)),
    }
  }
}

/** `lo ≤ pk < hi`, in closed form so the kernels skip every tile outside it. */
const rangeMask = (lo: number, hi: number): Mask => (lo === 0 ? masks.sinks(hi) : masks.and(masks.not(masks.sinks(lo)), masks.sinks(hi)))

/** Create a preallocated KV cache (see `KvCache`). */
export const kvCache = (opts: KvCacheOptions): KvCache => new KvCache(opts)

export interface CachedAttentionOptions {
  /** Absolute position of query row 0 (default: the start of the last appended chunk, `nextPosition − Tq`). */
  readonly queryOffset?: number
  /** Add `pk ≤ pq` (default true). */
  readonly causal?: boolean
  /** And-ed with the causal mask, over absolute positions. */
  readonly mask?: Mask
  /** Applied to every score, over absolute positions (as in `scaledDotProductAttention`). */
  readonly scoreMod?: ScoreMod
  /** Score scale (default 1/√D). */
  readonly scale?: number
  /** Key block size of the blocked (online-softmax) kernel (default 64). */
  readonly blockSize?: number
}

/**
 * Merge attention states over disjoint key sets (`o = Σ e^{lse_i − m} o_i / Σ e^{lse_i − m}`); fully masked
 * parts (lse = −∞) are the identity, and an all-masked row stays (0, −∞).
 */
export function mergeAttention(parts: readonly AttentionResult[]): AttentionResult {
  if (!Array.isArray(parts)) throw new ArgumentError({ op: 'mergeAttention', arg: 'parts', expected: 'an array of attention results { out, lse }', actual: parts === null ? 'null' : typeof parts })
  parts.forEach((p, i) => {
    if (p === null || typeof p !== 'object') throw new ArgumentError({ op: 'mergeAttention', arg: `parts[${i}]`, expected: 'an attention result { out, lse }', actual: p === null ? 'null' : typeof p })
    tensorArg('mergeAttention', `parts[${i}].out`, p.out)
    tensorArg('mergeAttention', `parts[${i}].lse`, p.lse)
  })
  if (parts.length === 1) return parts[0]!
  if (parts.length === 0) throw new ValueError({ op: 'mergeAttention', arg: 'parts', expected: 'at least one attention result', actual: 0 })
  // the (o, lse) monoid of attnState, in the {out, lse} spelling of sdpa results
  const merged = attnState.mergeAll(parts.map(p => ({ o: p.out, lse: p.lse })))
  return { out: merged.o, lse: merged.lse }
}

/**
 * Attention of `q [B, H, Tq, D]` over everything the cache retains, under each head's policy: exactly
 * `scaledDotProductAttention` over the full sequence with the policy's mask (streaming heads: `mask.streaming`),
 * as long as the queries belong to the last appended chunk. Masks and score mods see absolute positions and
 * the layer's query head index.
 */
const CACHED_ATTENTION_OPTIONS: Record<keyof CachedAttentionOptions, true> = { queryOffset: true, causal: true, mask: true, scoreMod: true, scale: true, blockSize: true }

export function cachedAttention(q: Tensor, cache: KvCache, opts: CachedAttentionOptions = {}): AttentionResult {
  const op = 'cachedAttention'
  tensorArg(op, 'q', q)
  if (!(cache instanceof KvCache)) throw new ArgumentError({ op, arg: 'cache', expected: 'a KvCache (see kvCache)', actual: cache === null ? 'null' : Array.isArray(cache) ? 'an array' : typeof cache })
  if (cache.isDisposed) throw new DisposedError({ op, arg: 'cache' }, 'the cache was disposed')
  operatorOptions(op, opts, Object.keys(CACHED_ATTENTION_OPTIONS))
  if (q.rank !== 4 || q.shape[0] !== cache.batch || q.shape[3] !== cache.headDim || q.shape[1]! % cache.kvHeads !== 0)
    throw new ShapeError({ op, arg: 'q', expected: `[${cache.batch}, a multiple of ${cache.kvHeads} heads, Tq, ${cache.headDim}]`, actual: q.shape })
  const Tq = q.shape[2]!
  const g = q.shape[1]! / cache.kvHeads
  const queryOffset = opts.queryOffset ?? cache.nextPosition - Tq
  const views = cache.views()
  const none = views.find(v => v.policy.kind === 'recurrent')
  if (none !== undefined)
    throw new ValueError({ op, arg: 'cache', expected: "kv heads that keep keys (policy 'full' or 'streaming') for softmax attention", actual: `kv heads [${none.heads[0]}, ${none.heads[1]}) with policy 'recurrent' (only operators with a recurrent state read those)` })
  return scope(() => {
    const parts = views.map(view => {
      const [h0, h1] = view.heads
      const qh0 = h0 * g
      const qg = views.length === 1 ? q : slice(q, [null, [qh0, h1 * g]])
      // Each run's sdpa numbers its query heads from 0: shift them back for head-aware masks and mods.
      const userMask = opts.mask?.shiftHeads(qh0)
      const userMod = opts.scoreMod?.shiftHeads(qh0)
      if (view.passes.length === 0) {
        const out = zeros([cache.batch, qg.shape[1]!, Tq, cache.valueDim], { dtype: q.dtype, backend: q.backend })
        return { out, lse: full([cache.batch, qg.shape[1]!, Tq], -Infinity, { dtype: q.dtype, backend: q.backend }) }
      }
      const results = view.passes.map(pass =>
        scaledDotProductAttention(qg, view.keys, view.values, {
          queryOffset,
          keyOffset: pass.keyOffset,
          causal: opts.causal ?? true,
          mask: userMask ? masks.and(pass.mask, userMask) : pass.mask,
          ...(userMod ? { scoreMod: userMod } : {}),
          ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
          ...(opts.blockSize !== undefined ? { blockSize: opts.blockSize } : {}),
        }),
      )
      return mergeAttention(results)
    })
    if (parts.length === 1) return parts[0]!
    return { out: concat(parts.map(p => p.out), 1), lse: concat(parts.map(p => p.lse), 1) }
  })
}

