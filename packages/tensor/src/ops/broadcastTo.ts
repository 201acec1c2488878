import type { DType } from '../dtype.js'
import { ShapeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { assertShape, broadcastShapes, shapesEqual, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

const broadcastToImpl = (x: Tensor, shape: Shape): Tensor => {
  assertShape('broadcastTo', 'shape', shape)
  const out = broadcastShapes('broadcastTo', x.shape, shape, ['x', 'shape'])
  if (!shapesEqual(out, shape))
    throw new ShapeError({ op: 'broadcastTo', arg: 'shape', expected: `a shape x [${x.shape.join(',')}] broadcasts to`, actual: shape })
  return runOp1('broadcastTo', Kernel.BroadcastTo, [x], { shape: out }, true)
}

/** Materialise `x` broadcast to `shape` (numpy rules). */
export const broadcastTo: <D extends DType, const S extends Shape>(x: Tensor<D>, shape: S) => Tensor<D, S> = guard('broadcastTo', {
  'Tensor, Array': broadcastToImpl,
})
