import { full, zerosShapedLike } from '../creation/fill.js'
import { fromValues } from '../engine.js'
import { sizeOf, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { add } from '../ops/binary.js'
import { gather } from '../ops/gather.js'
import { reshape } from '../ops/reshape.js'
import { scatterAdd } from '../ops/scatterAdd.js'
import { permute } from '../ops/transpose.js'
import type { GradientTable } from './gradientTable.js'

/**
 * Zeros of `shape` with `dy` added where `indices` (int32, the shape of `dy`) point along `axis`: the adjoint of
 * taking values along an axis, as topk and sort do. Built from public ops by moving `axis` last and turning lane
 * positions into flat offsets, so every backend gets it.
 */
function scatterAlongAxis(dy: Tensor, indices: Tensor, axis: number, shape: Shape): Tensor {
  const rank = shape.length
  const n = shape[axis]!
  const k = dy.shape[axis]!
  if (sizeOf(shape) === 0 || k === 0) return full(shape, 0, { dtype: dy.dtype, backend: dy.backend })
  const perm = [...Array.from({ length: rank }, (_, i) => i).filter(i => i !== axis), axis]
  const last = axis === rank - 1
  const dyL = last ? dy : permute(dy, perm)
  const idxL = last ? indices : permute(indices, perm)
  const rows = sizeOf(shape) / n
  const base = fromValues(Int32Array.from({ length: rows }, (_, r) => r * n), [rows, 1], 'int32', dy.backend)
  const flat = reshape(add(reshape(idxL, [rows, k]), base), [rows * k])
  const zeros = full([rows * n], 0, { dtype: dy.dtype, backend: dy.backend })
  const out = reshape(scatterAdd(zeros, flat, reshape(dyL, [rows * k]), 0), perm.map(p => shape[p]!))
  if (last) return out
  const inv = new Array<number>(rank)
  perm.forEach((p, i) => (inv[p] = i))
  return permute(out, inv)
}

export const indexingGradients = {
  // Scatter-add into zeros, so repeated indices accumulate.
  Gather: (dys, { inputs, attrs: { axis } }) => {
    const [x, idx] = inputs as [Tensor, Tensor]
    return [scatterAdd(zerosShapedLike('gather', x), idx, dys[0]!, axis), null]
  },
  ScatterAdd: (dys, { inputs, attrs: { axis } }) => {
    const dy = dys[0]!
    return [dy, null, gather(dy, inputs[1]!, axis)]
  },
  // The values' cotangent follows the permutation back through the indices (the second output).
  TopK: (dys, { inputs, outputs, attrs: { axis } }) => [scatterAlongAxis(dys[0]!, outputs[1]!, axis, inputs[0]!.shape)],
  Sort: (dys, { inputs, outputs, attrs: { axis } }) => [scatterAlongAxis(dys[0]!, outputs[1]!, axis, inputs[0]!.shape)],
} satisfies GradientTable
