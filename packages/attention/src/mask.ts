import { nonNegativeInt, positiveInt, ArgumentError, ValueError, kindOf } from '@heed/tensor'

/**
 * Masks are pure predicates over absolute positions: `test(b, h, pq, pk)` says whether query position `pq` of
 * head `h` in batch `b` may attend to key position `pk`. They are data (a small tree of nodes) rather than opaque
 * closures, so that the same mask runs as a TypeScript predicate on the CPU, compiles to a WGSL function on
 * WebGPU, and classifies whole tiles of the score matrix (skip / evaluate / take all) in closed form.
 * `custom(fn)` accepts any closure: it runs on the CPU and is precomputed into a dense table for WebGPU.
 */
export type MaskNode =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'causal' }
  | { readonly kind: 'window'; readonly size: number }
  | { readonly kind: 'sinks'; readonly count: number }
  | { readonly kind: 'chunk'; readonly size: number }
  | { readonly kind: 'segments'; readonly q: Int32Array; readonly k: Int32Array }
  | { readonly kind: 'and'; readonly parts: readonly Mask[] }
  | { readonly kind: 'or'; readonly parts: readonly Mask[] }
  | { readonly kind: 'not'; readonly part: Mask }
  | { readonly kind: 'perHead'; readonly heads: readonly Mask[] }
  | { readonly kind: 'custom'; readonly fn: (b: number, h: number, pq: number, pk: number) => boolean }

/** How a rectangular tile of positions relates to a mask: no pair allowed, some, or every pair. */
export type TileClass = 'none' | 'partial' | 'full'

/** Inclusive position ranges of a tile. */
export interface Tile {
  readonly q0: number
  readonly q1: number
  readonly k0: number
  readonly k1: number
}

const MASK_KINDS: Record<MaskNode['kind'], true> = { all: true, none: true, causal: true, window: true, sinks: true, chunk: true, segments: true, and: true, or: true, not: true, perHead: true, custom: true }

export class Mask {
  /** @internal use the factories in `mask`. */
  constructor(readonly node: MaskNode) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(MASK_KINDS, (node as { kind?: unknown }).kind as string))
      throw new ArgumentError({ op: 'Mask', arg: 'node', expected: `a mask node (${Object.keys(MASK_KINDS).join(', ')}); build masks with the \`mask\` factories`, actual: kindOf(node) })
  }

  /** Whether query position `pq` may attend to key position `pk` (batch `b`, head `h`). */
  test(b: number, h: number, pq: number, pk: number): boolean {
    const n = this.node
    switch (n.kind) {
      case 'all':
        return true
      case 'none':
        return false
      case 'causal':
        return pk <= pq
      case 'window':
        return Math.abs(pq - pk) < n.size
      case 'sinks':
        return pk < n.count
      case 'chunk':
        return Math.floor(pq / n.size) === Math.floor(pk / n.size)
      case 'segments':
        return pq >= 0 && pk >= 0 && pq < n.q.length && pk < n.k.length && n.q[pq] === n.k[pk]
      case 'and':
        return n.parts.every(m => m.test(b, h, pq, pk))
      case 'or':
        return n.parts.some(m => m.test(b, h, pq, pk))
      case 'not':
        return !n.part.test(b, h, pq, pk)
      case 'perHead':
        return (n.heads[h] ?? n.heads[n.heads.length - 1]!).test(b, h, pq, pk)
      case 'custom':
        return n.fn(b, h, pq, pk)
    }
  }

  /**
   * Classify a tile in closed form for library masks (exact), conservatively ('partial') where that is not
   * possible (custom closures, segments). Used to skip fully masked tiles and to drop per-pair tests on full ones.
   */
  classify(h: number, t: Tile): TileClass {
    const n = this.node
    switch (n.kind) {
      case 'all':
        return 'full'
      case 'none':
        return 'none'
      case 'causal':
        return t.k1 <= t.q0 ? 'full' : t.k0 > t.q1 ? 'none' : 'partial'
      case 'window': {
        // |pq - pk| ranges over [minGap, maxGap] on the tile
        const maxGap = Math.max(Math.abs(t.q0 - t.k1), Math.abs(t.q1 - t.k0))
        const overlaps = t.q0 <= t.k1 && t.k0 <= t.q1
        const minGap = overlaps ? 0 : Math.min(Math.abs(t.q0 - t.k1), Math.abs(t.k0 - t.q1))
        return maxGap < n.size ? 'full' : minGap >= n.size ? 'none' : 'partial'
      }
      case 'sinks':
        return t.k1 < n.count ? 'full' : t.k0 >= n.count ? 'none' : 'partial'
      case 'chunk': {
        const cq0 = Math.floor(t.q0 / n.size)
        const cq1 = Math.floor(t.q1 / n.size)
        const ck0 = Math.floor(t.k0 / n.size)
        const ck1 = Math.floor(t.k1 / n.size)
        if (cq0 === cq1 && ck0 === ck1) return cq0 === ck0 ? 'full' : 'none'
        return cq1 < ck0 || ck1 < cq0 ? 'none' : 'partial'
      }
      case 'and': {
        let all = true
        for (const m of n.parts) {
          const c = m.classify(h, t)
          if (c === 'none') return 'none'
          if (c === 'partial') all = false
        }
        return all ? 'full' : 'partial'
      }
      case 'or': {
        let none = true
        for (const m of n.parts) {
          const c = m.classify(h, t)
          if (c === 'full') return 'full'
          if (c === 'partial') none = false
        }
        return none ? 'none' : 'partial'
      }
      case 'not': {
        const c = n.part.classify(h, t)
        return c === 'full' ? 'none' : c === 'none' ? 'full' : 'partial'
      }
      case 'perHead':
        return (n.heads[h] ?? n.heads[n.heads.length - 1]!).classify(h, t)
      default:
        return 'partial'
    }
  }

  /**
   * The same mask seen by a call whose head 0 is head `by` of the caller (a layer running a slice of its heads).
   * Structural, so a shifted library mask stays compilable to WGSL; only custom closures are wrapped.
   */
  shiftHeads(by: number): Mask {
    if (by === 0) return this
    const n = this.node
    switch (n.kind) {
      case 'and':
      case 'or':
        return new Mask({ kind: n.kind, parts: n.parts.map(m => m.shiftHeads(by)) })
      case 'not':
        return new Mask({ kind: 'not', part: n.part.shiftHeads(by) })
      case 'perHead': {
        // head h of the slice is head h + by of the caller; past the end the last mask applies, as in test()
        const last = n.heads[n.heads.length - 1]!
        const heads = n.heads.slice(by)
        return new Mask({ kind: 'perHead', heads: heads.length > 0 ? heads : [last] })
      }
      case 'custom': {
        const fn = n.fn
        return new Mask({ kind: 'custom', fn: (b, h, pq, pk) => fn(b, h + by, pq, pk) })
      }
      default:
        return this
    }
  }

  /** True when the mask (and all its parts) can be compiled to WGSL; custom closures cannot. */
  get compilable(): boolean {
    const n = this.node
    switch (n.kind) {
      case 'custom':
        return false
      case 'and':
      case 'or':
        return n.parts.every(m => m.compilable)
      case 'not':
        return n.part.compilable
      case 'perHead':
        return n.heads.every(m => m.compilable)
      default:
        return true
    }
  }

  /** A structural key: equal keys compile to the same WGSL (segments' ids travel as data, not in the key). */
  get key(): string {
    const n = this.node
    switch (n.kind) {
      case 'window':
        return `window(${n.size})`
      case 'sinks':
        return `sinks(${n.count})`
      case 'chunk':
        return `chunk(${n.size})`
      case 'and':
      case 'or':
        return `${n.kind}(${n.parts.map(m => m.key).join(',')})`
      case 'not':
        return `not(${n.part.key})`
      case 'perHead':
        return `perHead(${n.heads.map(m => m.key).join(',')})`
      default:
        return n.kind
    }
  }

  toString(): string {
    return `Mask(${this.key})`
  }
}

/** Positions are 32-bit integers in the kernels (WebGPU reads sizes and counts as i32): a larger size would wrap. */
const I32_MAX = 2 ** 31 - 1
const i32Count = (op: string, arg: string, v: number, min: 0 | 1): number => {
  const n = min === 1 ? positiveInt(op, arg, v) : nonNegativeInt(op, arg, v)
  if (n > I32_MAX) throw new ValueError({ op, arg, expected: `at most ${I32_MAX} (positions are 32-bit integers)`, actual: n })
  return n
}
/** @internal the most heads a per-head table is built for: a bound that keeps `perHead(2 ** 40, f)` from looping (or allocating) forever. */
export const MAX_HEADS = 65536
/** @internal a head count: a positive integer ≤ MAX_HEADS. */
export const headCount = (op: string, v: number, arg = 'heads'): number => {
  const n = positiveInt(op, arg, v)
  if (n > MAX_HEADS) throw new ValueError({ op, arg, expected: `at most ${MAX_HEADS} heads`, actual: n })
  return n
}
/** Segment ids: an array or typed array of integers. */
const idList = (op: string, arg: string, a: unknown): ArrayLike<number> => {
  if (a === null || typeof a !== 'object' || !Number.isSafeInteger((a as { length?: unknown }).length))
    throw new ArgumentError({ op, arg, expected: 'an array of integer segment ids', actual: kindOf(a) })
  return a as ArrayLike<number>
}

const masks = (op: string, parts: readonly unknown[]): Mask[] =>
  parts.map((m, i) => {
    if (!(m instanceof Mask)) throw new ArgumentError({ op, arg: `mask ${i}`, expected: 'a Mask', actual: typeof m })
    return m
  })

const ALL = new Mask({ kind: 'all' })
const NONE = new Mask({ kind: 'none' })
const CAUSAL = new Mask({ kind: 'causal' })

/** Mask constructors and combinators. */
export const mask = {
  /** Every pair. */
  all: ALL,
  /** No pair. */
  none: NONE,
  /** `pk ≤ pq`. */
  causal: CAUSAL,
  /** `|pq − pk| < size` (combine with `causal` for a sliding window over the past). */
  window: (size: number): Mask => new Mask({ kind: 'window', size: i32Count('mask.window', 'size', size, 1) }),
  /** The first `count` positions (attention sinks): `pk < count`. */
  sinks: (count: number): Mask => new Mask({ kind: 'sinks', count: i32Count('mask.sinks', 'count', count, 0) }),
  /** StreamingLLM / DuoAttention streaming heads: `causal ∧ (pk < nSink ∨ pq − pk < nRecent)`. */
  streaming: (nSink: number, nRecent: number): Mask => {
    const sinks = i32Count('mask.streaming', 'nSink', nSink, 0)
    const recent = i32Count('mask.streaming', 'nRecent', nRecent, 1)
    return mask.and(CAUSAL, mask.or(mask.sinks(sinks), mask.window(recent)))
  },
  /** Block-local attention: `⌊pq/size⌋ = ⌊pk/size⌋`. */
  chunk: (size: number): Mask => new Mask({ kind: 'chunk', size: i32Count('mask.chunk', 'size', size, 1) }),
  /**
   * Packed variable-length sequences: `ids[pq] = ids[pk]` (positions index into the id arrays). Pass `kIds` when
   * keys are numbered differently from queries.
   */
  segments: (ids: ArrayLike<number>, kIds: ArrayLike<number> = ids): Mask => {
    for (const [arg, a] of [['ids', idList('mask.segments', 'ids', ids)], ['kIds', idList('mask.segments', 'kIds', kIds)]] as const)
      for (let i = 0; i < a.length; i++)
        if (!Number.isInteger(a[i])) throw new ValueError({ op: 'mask.segments', arg, expected: 'integer segment ids', actual: a[i] })
    return new Mask({ kind: 'segments', q: Int32Array.from(ids), k: Int32Array.from(kIds) })
  },
  and: (...parts: Mask[]): Mask => (parts.length === 0 ? ALL : parts.length === 1 ? masks('mask.and', parts)[0]! : new Mask({ kind: 'and', parts: masks('mask.and', parts) })),
  or: (...parts: Mask[]): Mask => (parts.length === 0 ? NONE : parts.length === 1 ? masks('mask.or', parts)[0]! : new Mask({ kind: 'or', parts: masks('mask.or', parts) })),
  not: (part: Mask): Mask => new Mask({ kind: 'not', part: masks('mask.not', [part])[0]! }),
  /** A different mask per head: `f(h)` for h in [0, heads). */
  perHead: (heads: number, f: (h: number) => Mask): Mask =>
    new Mask({ kind: 'perHead', heads: masks('mask.perHead', Array.from({ length: headCount('mask.perHead', heads) }, (_, h) => f(h))) }),
  /**
   * Any predicate. Runs as is on the CPU. On WebGPU a closure cannot run in a shader, so each call evaluates it
   * on the host for every (b, h, query, key) and uploads a dense bit table: B·H·Tq·Tk/8 bytes and B·H·Tq·Tk
   * closure calls per attention call (e.g. 16 MiB and 134M calls at B=1, H=8, T=4096). Prefer the library masks
   * for long sequences: they compile to WGSL and cost nothing per pair.
   */
  custom: (fn: (b: number, h: number, pq: number, pk: number) => boolean): Mask => {
    if (typeof fn !== 'function') throw new ArgumentError({ op: 'mask.custom', arg: 'fn', expected: 'a function', actual: typeof fn })
    return new Mask({ kind: 'custom', fn })
  },
}
