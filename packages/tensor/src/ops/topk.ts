import { full } from '../creation/fill.js'
import type { DType } from '../dtype.js'
import { fromValues } from '../engine.js'
import { ValueError } from '../errors.js'
import { runOp } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { sizeOf, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { add } from './binary.js'
import { indexAxis } from './gather.js'
import { reshape } from './reshape.js'
import { scatterAdd } from './scatterAdd.js'
import { permute } from './transpose.js'

/**
 * @internal zeros of `shape` with `dy` added where `indices` (int32, the shape of `dy`) point along `axis`: the
 * adjoint of taking values along an axis, as topk and sort do. Built from public ops by moving `axis` last and
 * turning lane positions into flat offsets, so every backend gets it.
 */
export function scatterAlongAxis(dy: Tensor, indices: Tensor, axis: number, shape: Shape): Tensor {
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

export interface TopKOptions {
  /** Axis to select along, default -1. */
  readonly axis?: number
  /** The k largest (default) or the k smallest. */
  readonly largest?: boolean
}

const topkImpl = (x: Tensor, k: number, opts: TopKOptions = {}): { values: Tensor; indices: Tensor } => {
  const axis = indexAxis('topk', x, opts.axis ?? -1)
  const n = x.shape[axis]!
  if (!Number.isInteger(k) || k < 0 || k > n)
    throw new ValueError({ op: 'topk', arg: 'k', expected: `an integer in [0, ${n}] (dim ${axis} of [${x.shape.join(',')}])`, actual: k })
  const largest = opts.largest ?? true
  const [values, indices] = runOp('topk', Kernel.TopK, [x], { k, axis, largest }, (dys, { inputs, outputs }) => [
    scatterAlongAxis(dys[0]!, outputs[1]!, axis, inputs[0]!.shape),
  ]) as [Tensor, Tensor]
  return { values, indices }
}

/**
 * The k largest (or smallest) entries along `axis` (default -1), sorted, with their int32 positions. Ties keep
 * the lower index first; NaN ranks last in either order, so it is picked only when nothing else is left. The
 * gradient flows to `values` and is scattered back through `indices`.
 */
export const topk: <D extends DType>(x: Tensor<D>, k: number, opts?: TopKOptions) => { values: Tensor<D>; indices: Tensor<'int32'> } = guard('topk', {
  'Tensor, number': (x: Tensor, k: number) => topkImpl(x, k),
  'Tensor, number, Object': topkImpl,
})
