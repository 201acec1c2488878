/** Host-side data of the conformance harness: seeded arrays, row slicing and packing, the per-pattern problems. */
import { mask as masks } from '../../mask.js'
import type { ReferenceOptions } from '../reference.js'
import type { ConformanceRunOptions, HostArray, Pattern } from './types.js'

/** xorshift32 scaled to [-1, 1): enough for reproducible test inputs. */
export function random(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return (x / 4294967296) * 2 - 1
  }
}

export const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1)
export const host = (rand: () => number, shape: readonly [number, number, number, number], amp = 1): HostArray => ({
  values: Float64Array.from({ length: size(shape) }, () => amp * rand()),
  shape,
})

/** Rows `idx` (in order) along axis 2. */
export function pick(x: HostArray, idx: readonly number[]): HostArray {
  const [B, H, T, D] = x.shape
  const out = new Float64Array(B * H * idx.length * D)
  for (let bh = 0, o = 0; bh < B * H; bh++)
    for (const i of idx) {
      out.set(x.values.subarray((bh * T + i) * D, (bh * T + i + 1) * D), o)
      o += D
    }
  return { values: out, shape: [B, H, idx.length, D] }
}
export const span = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i)
export const sliceT = (x: HostArray, a: number, b: number): HostArray => pick(x, span(a, b))

/** Concatenate along axis 2. */
export function catT(parts: readonly HostArray[]): HostArray {
  const [B, H, , D] = parts[0]!.shape
  const T = parts.reduce((n, p) => n + p.shape[2], 0)
  const out = new Float64Array(B * H * T * D)
  for (let bh = 0, o = 0; bh < B * H; bh++)
    for (const p of parts) {
      const n = p.shape[2] * D
      out.set(p.values.subarray(bh * n, (bh + 1) * n), o)
      o += n
    }
  return { values: out, shape: [B, H, T, D] }
}

/** Batch entry b of a [B, …] array as a [1, …] array. */
export function batch(x: HostArray, b: number): HostArray {
  const n = size(x.shape.slice(1))
  return { values: x.values.slice(b * n, (b + 1) * n), shape: [1, x.shape[1], x.shape[2], x.shape[3]] }
}

export function shuffle(rand: () => number, xs: number[]): number[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(((rand() + 1) / 2) * (i + 1))
    ;[xs[i], xs[j]] = [xs[j]!, xs[i]!]
  }
  return xs
}

export function randomCuts(rand: () => number, n: number, count: number): number[] {
  const cuts = new Set<number>()
  for (let i = 0; i < count * 4 && cuts.size < count && n > 1; i++) cuts.add(1 + Math.floor(((rand() + 1) / 2) * (n - 1)))
  return [...cuts].sort((a, b) => a - b)
}

// ---- problems per pattern -----------------------------------------------------------------------------------------

export interface Problem {
  readonly pattern: Pattern
  readonly q: HostArray
  readonly k: HostArray
  readonly v: HostArray
  readonly opts: ConformanceRunOptions
  /** Resolved absolute position of query row 0 (bottom-right alignment). */
  readonly qOff: number
}

export function problem(rand: () => number, pattern: Pattern, gqa: boolean, amp = 1): Problem {
  const cross = pattern === 'NC' || pattern === 'CC'
  const [Tq, Tk] = cross ? [5, 8] : [7, 7]
  const [B, H, Hkv, D, Dv] = [2, 4, gqa ? 2 : 4, 5, 3]
  return {
    pattern,
    q: host(rand, [B, H, Tq, D], amp),
    k: host(rand, [B, Hkv, Tk, D], amp),
    v: host(rand, [B, Hkv, Tk, Dv]),
    opts: pattern === 'CS' || pattern === 'CC' ? { causal: true } : {},
    qOff: Math.max(0, Tk - Tq),
  }
}

export const foldCausal = (o: ConformanceRunOptions): ReferenceOptions => {
  const m = masks.and(...(o.causal ? [masks.causal] : []), ...(o.mask ? [o.mask] : []))
  return {
    mask: m,
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
    ...(o.queryOffset !== undefined ? { queryOffset: o.queryOffset } : {}),
    ...(o.keyOffset !== undefined ? { keyOffset: o.keyOffset } : {}),
  }
}


export function concatCot(cot: readonly Float64Array[], H: number, lens: readonly number[], Dv: number): Float64Array {
  return catT(cot.map((c, i) => ({ values: c, shape: [1, H, lens[i]!, Dv] as const }))).values
}

/** Stack [1, H, L_b, D] arrays into [B, H, Lmax, D], sequence b starting at row padOf(b), zeros elsewhere. */
export function padBatch(xs: readonly HostArray[], Lmax: number, padOf: (b: number) => number): HostArray {
  const [, H, , D] = xs[0]!.shape
  const out = new Float64Array(xs.length * H * Lmax * D)
  xs.forEach((x, b) => {
    const L = x.shape[2]
    for (let h = 0; h < H; h++) out.set(x.values.subarray(h * L * D, (h + 1) * L * D), ((b * H + h) * Lmax + padOf(b)) * D)
  })
  return { values: out, shape: [xs.length, H, Lmax, D] }
}
