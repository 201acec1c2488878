import type { Attrs } from '../../../backend.js'
import { allocArray, type DType } from '../../../dtype.js'
import { sizeOf, type Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

/** x viewed as [outer, n, inner] around `axis`. */
function around(shape: Shape, axis: number): { outer: number; n: number; inner: number } {
  return { outer: sizeOf(shape.slice(0, axis)), n: shape[axis]!, inner: sizeOf(shape.slice(axis + 1)) }
}

/**
 * Order of one lane: ascending or descending, NaN last either way, ties by position (a stable sort), so
 * topk, sort and argsort agree with each other on every backend.
 */
function laneOrder(lane: Float64Array, descending: boolean): number[] {
  const order = Array.from({ length: lane.length }, (_, i) => i)
  order.sort((i, j) => {
    const a = lane[i]!
    const b = lane[j]!
    const na = Number.isNaN(a)
    const nb = Number.isNaN(b)
    if (na || nb) return na === nb ? i - j : na ? 1 : -1
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
    const out = allocArray(x!.dtype, outer * m * inner)
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++) {
        const src = (o * n + idx!.values[j]!) * inner
        const dst = (o * m + j) * inner
        for (let i = 0; i < inner; i++) out[dst + i] = x!.values[src + i]!
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
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++) {
        const dst = (o * n + idx!.values[j]!) * inner
        const src = (o * m + j) * inner
        for (let i = 0; i < inner; i++) out[dst + i] = out[dst + i]! + upd!.values[src + i]!
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
