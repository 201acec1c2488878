import type { Attrs } from '../../../backend.js'
import { allocArray, type AnyTypedArray, type DType } from '../../../dtype.js'
import { sizeOf, stridesOf, type Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

/**
 * Read `counts` elements per axis from `src`, starting at flat `offset` and advancing `strides[d]` per step
 * along axis d, into a fresh row-major array. Transpose and strided slice are both this walk, so one odometer
 * serves both (and negative strides fall out for free).
 */
function stridedRead(src: AnyTypedArray, dtype: DType, counts: Shape, strides: readonly number[], offset: number): AnyTypedArray {
  const n = sizeOf(counts)
  const out = allocArray(dtype, n)
  const rank = counts.length
  const len = rank > 0 ? counts[rank - 1]! : 0
  if (n > 0 && strides[rank - 1] === 1 && len >= 8) return runRead(src, out, counts, strides, offset, len)
  const ctr = new Array<number>(rank).fill(0)
  let off = offset
  for (let i = 0; i < n; i++) {
    out[i] = src[off]!
    for (let d = rank - 1; d >= 0; d--) {
      ctr[d]!++
      off += strides[d]!
      if (ctr[d]! < counts[d]!) break
      off -= strides[d]! * counts[d]!
      ctr[d] = 0
    }
  }
  return out
}

/**
 * stridedRead when the last axis is read contiguously (a head split [B, T, H, D] → [B, H, T, D], a slice of whole
 * rows): the odometer steps once per run of `len` elements, and each run is one block copy (a loop for short runs,
 * where a subarray view would cost more than it moves). Same result as the element walk.
 */
function runRead(src: AnyTypedArray, out: AnyTypedArray, counts: Shape, strides: readonly number[], offset: number, len: number): AnyTypedArray {
  const outer = counts.length - 1
  const ctr = new Array<number>(outer).fill(0)
  const o = out as Float64Array
  const s = src as Float64Array
  let off = offset
  for (let i = 0; i < o.length; i += len) {
    if (len >= 16) o.set(s.subarray(off, off + len), i)
    else for (let j = 0; j < len; j++) o[i + j] = s[off + j]!
    for (let d = outer - 1; d >= 0; d--) {
      ctr[d]!++
      off += strides[d]!
      if (ctr[d]! < counts[d]!) break
      off -= strides[d]! * counts[d]!
      ctr[d] = 0
    }
  }
  return out
}

/** Product of the dims before `axis`: the number of independent rows a concat or split walks. */
const outerOf = (shape: Shape, axis: number): number => sizeOf(shape.slice(0, axis))

export const shapeKernels = {
  /** attrs: perm (output axis i is input axis perm[i]). */
  Transpose: ([x], attrs): CpuTensor => {
    const perm = attr<readonly number[]>(attrs, 'perm')
    const st = stridesOf(x!.shape)
    const shape = perm.map(p => x!.shape[p]!)
    return { values: stridedRead(x!.values, x!.dtype, shape, perm.map(p => st[p]!), 0), shape, dtype: x!.dtype }
  },

  /**
   * Strided slice. attrs: begin (first index per axis, in range when that axis' count is > 0), step (non-zero,
   * may be negative), size (count per axis), shape (output shape: `size` with integer-indexed axes dropped; same
   * element count).
   */
  Slice: ([x], attrs): CpuTensor => {
    const begin = attr<readonly number[]>(attrs, 'begin')
    const step = attr<readonly number[]>(attrs, 'step')
    const size = attr<readonly number[]>(attrs, 'size')
    const shape = attr<Shape>(attrs, 'shape')
    const st = stridesOf(x!.shape)
    if (sizeOf(size) === 0) return { values: allocArray(x!.dtype, 0), shape, dtype: x!.dtype }
    const offset = begin.reduce((acc, b, d) => acc + b * st[d]!, 0)
    const strides = step.map((s, d) => s * st[d]!)
    return { values: stridedRead(x!.values, x!.dtype, size, strides, offset), shape, dtype: x!.dtype }
  },

  /**
   * Concatenate along `axis` of the output `shape`. Each input is read as [outer, size/outer] row blocks with
   * outer = prod(shape[:axis]); so `stack` uses this kernel too, its inputs lacking the new axis.
   * attrs: axis, shape.
   */
  Concat: (xs, attrs): CpuTensor => {
    const axis = attr<number>(attrs, 'axis')
    const shape = attr<Shape>(attrs, 'shape')
    const dtype = xs[0]!.dtype
    const out = allocArray(dtype, sizeOf(shape))
    const outer = outerOf(shape, axis)
    if (outer === 0 || out.length === 0) return { values: out, shape, dtype }
    const row = out.length / outer
    let col = 0
    for (const x of xs) {
      const chunk = x.values.length / outer
      for (let o = 0; o < outer; o++) out.set(x.values.subarray(o * chunk, (o + 1) * chunk), o * row + col)
      col += chunk
    }
    return { values: out, shape, dtype }
  },

  /**
   * The inverse of Concat: cut `x` along `axis` into outputs of the given `shapes`, each read as
   * [outer, size/outer] blocks with outer = prod(x.shape[:axis]) (unstack drops the axis in its shapes).
   * attrs: axis, shapes.
   */
  Split: ([x], attrs): CpuTensor[] => {
    const axis = attr<number>(attrs, 'axis')
    const shapes = attr<readonly Shape[]>(attrs, 'shapes')
    const outer = outerOf(x!.shape, axis)
    const row = outer === 0 ? 0 : x!.values.length / outer
    let col = 0
    return shapes.map(shape => {
      const out = allocArray(x!.dtype, sizeOf(shape))
      const chunk = outer === 0 ? 0 : out.length / outer
      for (let o = 0; o < outer && chunk > 0; o++) out.set(x!.values.subarray(o * row + col, o * row + col + chunk), o * chunk)
      col += chunk
      return { values: out, shape, dtype: x!.dtype }
    })
  },

  /** Constant padding. attrs: before, after (non-negative, one per axis), value. */
  Pad: ([x], attrs): CpuTensor => {
    const before = attr<readonly number[]>(attrs, 'before')
    const after = attr<readonly number[]>(attrs, 'after')
    const value = attr<number>(attrs, 'value')
    const inShape = x!.shape
    const shape = inShape.map((d, i) => d + before[i]! + after[i]!)
    const out = allocArray(x!.dtype, sizeOf(shape))
    out.fill(value)
    const n = x!.values.length
    if (n === 0) return { values: out, shape, dtype: x!.dtype }
    const ost = stridesOf(shape)
    const rank = inShape.length
    const ctr = new Array<number>(rank).fill(0)
    let off = before.reduce((acc, b, d) => acc + b * ost[d]!, 0)
    for (let i = 0; i < n; i++) {
      out[off] = x!.values[i]!
      for (let d = rank - 1; d >= 0; d--) {
        ctr[d]!++
        off += ost[d]!
        if (ctr[d]! < inShape[d]!) break
        off -= ost[d]! * inShape[d]!
        ctr[d] = 0
      }
    }
    return { values: out, shape, dtype: x!.dtype }
  },

  /**
   * Keep one triangle of the last two dims (batched), zeros elsewhere. attrs: k (diagonal offset), upper
   * (false: keep j - i <= k, as tril; true: keep j - i >= k, as triu).
   */
  Triangle: ([x], attrs): CpuTensor => {
    const k = attr<number>(attrs, 'k')
    const upper = attr<boolean>(attrs, 'upper')
    const shape = x!.shape
    const rows = shape[shape.length - 2]!
    const cols = shape[shape.length - 1]!
    const out = allocArray(x!.dtype, x!.values.length)
    const mat = rows * cols
    const batches = mat === 0 ? 0 : out.length / mat
    for (let b = 0; b < batches; b++)
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) {
          const keep = upper ? j - i >= k : j - i <= k
          const idx = b * mat + i * cols + j
          if (keep) out[idx] = x!.values[idx]!
        }
    return { values: out, shape, dtype: x!.dtype }
  },
  /**
   * In place: copy src into dst along `axis` starting at `offset`, and return dst itself (shared storage). The one
   * mutating kernel, for preallocated buffers such as KV caches. attrs: axis, offset.
   */
  WriteSlice: ([dst, src], attrs) => {
    const axis = attrs['axis'] as number
    const offset = attrs['offset'] as number
    const outer = dst!.shape.slice(0, axis).reduce((a, b) => a * b, 1)
    const inner = dst!.shape.slice(axis + 1).reduce((a, b) => a * b, 1)
    const dA = dst!.shape[axis]!
    const sA = src!.shape[axis]!
    const d = dst!.values
    const v = src!.values
    for (let o = 0; o < outer; o++) {
      const from = o * sA * inner
      d.set(v.subarray(from, from + sA * inner), (o * dA + offset) * inner)
    }
    return dst!
  },
} satisfies Partial<CpuKernelTable>
