import type { DType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { Kernel } from '../kernelContract.js'
import { runOp1 } from '../op.js'
import { broadcastShapes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { withConstant } from './internal.js'

const whereImpl = (cond: Tensor, a: Tensor, b: Tensor): Tensor => {
  if (cond.dtype !== 'bool') throw new DTypeError({ op: 'where', arg: 'cond', expected: 'bool', actual: cond.dtype })
  if (a.dtype !== b.dtype) throw new DTypeError({ op: 'where', arg: 'b', expected: `${a.dtype} like a`, actual: b.dtype }, 'dtypes differ')
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, a.shape, ['cond', 'a']), b.shape, ['cond/a', 'b'])
  return runOp1('where', Kernel.Where, [cond, a, b], { shape }, true)
}

/** Pick `a` where `cond` is true, else `b` (all three broadcast). Numbers adopt the other branch's dtype. */
export const where: <D extends DType, S extends Shape>(cond: Tensor, a: Tensor<D, S> | number, b: Tensor<D> | number) => Tensor<D> = guard('where', {
  'Tensor, Tensor, Tensor': whereImpl,
  'Tensor, Tensor, number | boolean': (c: Tensor, a: Tensor, b: number) => withConstant(b, a, k => whereImpl(c, a, k)),
  'Tensor, number | boolean, Tensor': (c: Tensor, a: number, b: Tensor) => withConstant(a, b, k => whereImpl(c, k, b)),
  'Tensor, number | boolean, number | boolean': (c: Tensor, a: number, b: number) =>
    withConstant(a, c, ka => withConstant(b, c, kb => whereImpl(c, ka, kb), 'float32'), 'float32'),
})
