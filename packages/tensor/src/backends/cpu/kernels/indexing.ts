import type { Attrs } from '../../../backend.js'
import { allocArray, type DType } from '../../../dtype.js'
import { sizeOf, type Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'
import { takeFloat32 } from '../float32Pool.js'

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

/** x viewed as [outer, n, inner] around `axis`. */
function around(shape: Shape, axis: number): { outer: number; n: number; inner: number } {
  return { outer: sizeOf(shape.slice(0, axis)), n: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) }
}

/**
 * Order of one lane: ascending or descending, NaN the largest value (PyTorch: last ascending, first descending,
 * so topk picks it first), ties by position (a stable sort), so topk, sort and argsort agree on every backend.
 */
function laneOrder(lane: Float64Array, descending: boolean): number[] {
  const order = Array.from({ length: lane.length }, (_, i) => i)
  order.sort((i, j) => {
    const a = lane[i]!
    const b = lane[j]!
    const na = Number.isNaN(a)
    const nb = Number.isNaN(b)
    if (na || nb) return na === nb ? i - j : (na ? 1 : -1) * (descending ? -1 : 1)
    if (a !== b) return (a < b) !== descending ? -1 : 1
    return i - j
  })
  return order
}

/** The first `k` of each lane along `axis` in sorted order: values and their int32 positions. */
function sortedLanes(x: CpuTensor, axis: number, k: number, descending: boolean): [CpuTensor, CpuTensor] {
  const { outer, n, inner } = around(x.shape, axis)
  const shape = x.shape.map((d, i) => (i === axis ? k : d))
  const values = allocArray(x.dtype, sizeOf(shape))
  const indices = new Int32Array(values.length)
  const lane = new Float64Array(n)
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i
      for (let j = 0; j < n; j++) lane[j] = x.values[base + j * inner]!
      const order = laneOrder(lane, descending)
      const outBase = o * k * inner + i
      for (let j = 0; j < k; j++) {
        values[outBase + j * inner] = lane[order[j]!]!
        indices[outBase + j * inner] = order[j]!
      }
    }
  return [
    { values, shape, dtype: x.dtype },
    { values: indices, shape, dtype: 'int32' },
  ]
}

/**
 * ScatterAdd's float32 loop, monomorphic (the embedding gradient: [B·T] rows of D added into a [V, D] table),
 * in the same order as the general loop, so the sums are identical.
 */
function scatterAddF32(out: Float32Array, iv: ArrayLike<number>, uv: Float32Array, outer: number, n: number, m: number, inner: number): void {
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < m; j++) {
      const dst = (o * n + iv[j]!) * inner
      const src = (o * m + j) * inner
      for (let i = 0; i < inner; i++) out[dst + i] = out[dst + i]! + uv[src + i]!
    }
}

export const indexingKernels = {
  /**
   * numpy `take` along `axis`: out shape is x.shape[:axis] + indices.shape + x.shape[axis+1:]. Indices are
   * int32/uint32 in [0, x.shape[axis]) (checked by the op). attrs: axis.
   */
  Gather: ([x, idx], attrs): CpuTensor => {
    const axis = attr<number>(attrs, 'axis')
    const { outer, n, inner } = around(x!.shape, axis)
    const m = idx!.values.length
    const shape = [...x!.shape.slice(0, axis), ...idx!.shape, ...x!.shape.slice(axis + 1)]
    // every element is written: a float32 output may reuse a freed array
    const out = x!.dtype === 'float32' ? takeFloat32(outer * m * inner) : allocArray(x!.dtype, outer * m * inner)
    // operands hoisted out of the loops (a property read per element was most of the cost); rows of an embedding
    // table ([V, D] gathered along axis 0) are block copies
    const xv = x!.values
    const iv = idx!.values
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++) {
        const src = (o * n + iv[j]!) * inner
        const dst = (o * m + j) * inner
        if (inner >= 16) out.set(xv.subarray(src, src + inner), dst)
        else for (let i = 0; i < inner; i++) out[dst + i] = xv[src + i]!
      }
    return { values: out, shape, dtype: x!.dtype }
  },

  /**
   * The adjoint of Gather: a copy of x with updates added at the gathered positions (duplicates accumulate).
   * updates has shape x.shape[:axis] + indices.shape + x.shape[axis+1:]. attrs: axis.
   */
  ScatterAdd: ([x, idx, upd], attrs): CpuTensor => {
    const axis = attr<number>(attrs, 'axis')
    const { outer, n, inner } = around(x!.shape, axis)
    const m = idx!.values.length
    const out = allocArray(x!.dtype, x!.values.length)
    out.set(x!.values)
    const iv = idx!.values
    const uv = upd!.values
    if (out instanceof Float32Array && uv instanceof Float32Array) scatterAddF32(out, iv, uv, outer, n, m, inner)
    else
      for (let o = 0; o < outer; o++)
        for (let j = 0; j < m; j++) {
          const dst = (o * n + iv[j]!) * inner
          const src = (o * m + j) * inner
          for (let i = 0; i < inner; i++) out[dst + i] = out[dst + i]! + uv[src + i]!
        }
    return { values: out, shape: x!.shape, dtype: x!.dtype }
  },

  /** indices.shape + [depth], 1 at each index and 0 elsewhere. attrs: depth, dtype. */
  OneHot: ([idx], attrs): CpuTensor => {
    const depth = attr<number>(attrs, 'depth')
    const dtype = attr<DType>(attrs, 'dtype')
    const out = allocArray(dtype, idx!.values.length * depth)
    for (let i = 0; i < idx!.values.length; i++) out[i * depth + idx!.values[i]!] = 1
    return { values: out, shape: [...idx!.shape, depth], dtype }
  },

  /** [values, int32 indices] of the k largest (or smallest) along `axis`, sorted. attrs: k, axis, largest. */
  TopK: ([x], attrs) => sortedLanes(x!, attr<number>(attrs, 'axis'), attr<number>(attrs, 'k'), attr<boolean>(attrs, 'largest')),

  /** [values, int32 indices] sorted along `axis`: stable, NaN last in both orders. attrs: axis, descending. */
  Sort: ([x], attrs) => {
    const axis = attr<number>(attrs, 'axis')
    return sortedLanes(x!, axis, x!.shape[axis]!, attr<boolean>(attrs, 'descending'))
  },
} satisfies Partial<CpuKernelTable>
