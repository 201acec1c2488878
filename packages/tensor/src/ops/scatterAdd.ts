import type { DType } from '../dtype.js'
import { DTypeError, ShapeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { shapesEqual } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { checkIndices, indexAxis } from './gather.js'

const scatterAddImpl = (x: Tensor, indices: Tensor, updates: Tensor, axis = 0): Tensor => {
  if (x.dtype === 'bool') throw new DTypeError({ op: 'scatterAdd', arg: 'x', expected: 'a numeric dtype', actual: x.dtype })
  if (updates.dtype !== x.dtype)
    throw new DTypeError({ op: 'scatterAdd', arg: 'updates', expected: `${x.dtype} like x`, actual: updates.dtype }, 'dtypes differ (cast explicitly)')
  const a = indexAxis('scatterAdd', x, axis)
  checkIndices('scatterAdd', 'indices', indices, x.shape[a]!, `dim ${a} of [${x.shape.join(',')}]`)
  const want = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)]
  if (!shapesEqual(updates.shape, want))
    throw new ShapeError(
      { op: 'scatterAdd', arg: 'updates', expected: want, actual: updates.shape },
      `updates must be x.shape[:axis] + indices.shape + x.shape[axis+1:], x is [${x.shape.join(',')}], indices is [${indices.shape.join(',')}]`,
    )
  return runOp1('scatterAdd', Kernel.ScatterAdd, [x, indices, updates], { axis: a }, true)
}

/**
 * A copy of `x` with `updates` added at `indices` along `axis` (default 0); repeated indices accumulate. The
 * adjoint of `gather`: `updates` has shape x.shape[:axis] + indices.shape + x.shape[axis+1:].
 */
export const scatterAdd: <D extends DType>(x: Tensor<D>, indices: Tensor, updates: Tensor<D>, axis?: number) => Tensor<D> = guard('scatterAdd', {
  'Tensor, Tensor, Tensor': (x: Tensor, i: Tensor, u: Tensor) => scatterAddImpl(x, i, u),
  'Tensor, Tensor, Tensor, number': scatterAddImpl,
})
