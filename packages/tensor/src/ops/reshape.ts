import type { DType } from '../dtype.js'
import { ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { sizeOf, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

/** Resolve one `-1` entry and check sizes. */
function resolveShape(op: string, from: Shape, to: Shape): number[] {
  if (!Array.isArray(to) || !to.every(d => Number.isInteger(d) && d >= -1))
    throw new ValueError({ op, arg: 'shape', expected: 'an array of integers ≥ -1', actual: JSON.stringify(to) })
  const free = to.filter(d => d === -1).length
  if (free > 1) throw new ValueError({ op, arg: 'shape', expected: 'at most one -1', actual: to })
  const known = sizeOf(to.filter(d => d !== -1))
  const total = sizeOf(from)
  const out = to.map(d => (d === -1 ? (known === 0 ? 0 : total / known) : d))
  if (sizeOf(out) !== total || out.some(d => !Number.isInteger(d)))
    throw new ShapeError({ op, arg: 'shape' }, `cannot reshape [${from.join(',')}] (${total} elements) to [${to.join(',')}]`)
  return out
}

const reshapeImpl = (x: Tensor, shape: Shape): Tensor => {
  const out = resolveShape('reshape', x.shape, shape)
  return runOp1('reshape', Kernel.Reshape, [x], { shape: out }, true)
}

/** Same values under a new shape with the same element count (one dim may be -1). Shares storage. */
export const reshape: <D extends DType, const S extends Shape>(x: Tensor<D>, shape: S) => Tensor<D, S> = guard('reshape', {
  'Tensor, Array': reshapeImpl,
})
