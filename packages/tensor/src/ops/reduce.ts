import type { DType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { normAxes, reducedShape, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { broadcastTo } from './broadcastTo.js'
import { reshape } from './reshape.js'

export interface ReduceOptions {
  /** Axis or axes to reduce (negative counts from the end); all axes when omitted. */
  readonly axis?: number | readonly number[]
  /** Keep reduced axes as size-1 dims. */
  readonly keepDims?: boolean
}

/** @internal the reduced shape with kept dims, used to broadcast a cotangent back over the input. */
export const keptShape = (shape: Shape, axes: readonly number[]): number[] => reducedShape(shape, axes, true)

const sumImpl = (x: Tensor, opts: ReduceOptions = {}): Tensor => {
  if (x.dtype === 'bool') throw new DTypeError({ op: 'sum', arg: 'x', expected: 'a numeric dtype (cast bool first)', actual: x.dtype })
  const axes = normAxes('sum', opts.axis, x.rank)
  const keepDims = opts.keepDims ?? false
  return runOp1('sum', 'Sum', [x], { axes, keepDims }, (dys, { inputs }) => {
    const xin = inputs[0]!
    return [broadcastTo(reshape(dys[0]!, keptShape(xin.shape, axes)), xin.shape)]
  })
}

/** Sum over `axis` (all axes by default). Accumulates in float64 on the CPU. */
export const sum: <D extends DType>(x: Tensor<D>, opts?: ReduceOptions) => Tensor<D> = guard('sum', {
  Tensor: (x: Tensor) => sumImpl(x),
  'Tensor, Object': sumImpl,
})
