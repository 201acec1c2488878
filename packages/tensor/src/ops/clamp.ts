import type { DType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { broadcastShapes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { constantLike } from './internal.js'

type Bound = Tensor | number

function checkBound(arg: 'min' | 'max', v: Bound, x: Tensor): void {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return // NaN propagates, as in PyTorch
    if ((x.dtype === 'int32' || x.dtype === 'uint32') && !Number.isInteger(v) && Number.isFinite(v))
      throw new DTypeError({ op: 'clamp', arg, expected: `an integer to clamp ${x.dtype}`, actual: v })
    return
  }
  if (v.dtype !== x.dtype) throw new DTypeError({ op: 'clamp', arg, expected: `${x.dtype} like x`, actual: v.dtype }, 'dtypes differ (cast one explicitly)')
}

/** Integer tensors cannot hold ±Infinity: an infinite bound is the dtype's extreme instead. */
function boundValue(v: number, dtype: DType): number {
  if (Number.isFinite(v) || Number.isNaN(v)) return v
  if (dtype === 'int32') return v > 0 ? 2 ** 31 - 1 : -(2 ** 31)
  if (dtype === 'uint32') return v > 0 ? 2 ** 32 - 1 : 0
  return v
}

function clampImpl(x: Tensor, min: Bound, max: Bound): Tensor {
  if (x.dtype === 'bool') throw new DTypeError({ op: 'clamp', arg: 'x', expected: 'a numeric dtype', actual: x.dtype })
  checkBound('min', min, x)
  checkBound('max', max, x)
  const lo = typeof min === 'number' ? constantLike(boundValue(min, x.dtype), x) : min
  const hi = typeof max === 'number' ? constantLike(boundValue(max, x.dtype), x) : max
  try {
    const shape = broadcastShapes('clamp', broadcastShapes('clamp', x.shape, lo.shape, ['x', 'min']), hi.shape, ['x/min', 'max'])
    return runOp1('clamp', Kernel.Clamp, [x, lo, hi], { shape }, true)
  } finally {
    if (lo !== min) lo.dispose()
    if (hi !== max) hi.dispose()
  }
}

/**
 * Limit `x` to `[min, max]` elementwise: `min(max(x, min), max)`, so `min > max` gives `max` (numpy, PyTorch).
 * Bounds are numbers (adopting x's dtype; ±Infinity for a one-sided clamp) or tensors of x's dtype that
 * broadcast with it. The gradient passes to x where min ≤ x ≤ max, and to the bound that was returned elsewhere.
 */
export const clamp: {
  <D extends DType, S extends Shape>(x: Tensor<D, S>, min: number, max: number): Tensor<D, S>
  <D extends DType>(x: Tensor<D>, min: Tensor<D> | number, max: Tensor<D> | number): Tensor<D>
} = guard('clamp', {
  'Tensor, Tensor | number, Tensor | number': clampImpl,
})
