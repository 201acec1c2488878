import type { DType } from '../dtype.js'
import { ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

function triangle(op: 'tril' | 'triu', x: Tensor, k = 0): Tensor {
  if (x.rank < 2) throw new ShapeError({ op, arg: 'x', expected: 'rank ≥ 2 (matrices in the last two dims)', actual: x.shape })
  if (!Number.isInteger(k)) throw new ValueError({ op, arg: 'k', expected: 'an integer diagonal offset', actual: k })
  const upper = op === 'triu'
  return runOp1(op, Kernel.Triangle, [x], { k, upper }, true)
}

type TriangleOp = <D extends DType, S extends Shape>(x: Tensor<D, S>, k?: number) => Tensor<D, S>

/** Lower triangle of the last two dims (batched): keeps `j - i <= k`, zeros above. k > 0 keeps more diagonals. */
export const tril: TriangleOp = guard('tril', {
  Tensor: (x: Tensor) => triangle('tril', x),
  'Tensor, number': (x: Tensor, k: number) => triangle('tril', x, k),
})

/** Upper triangle of the last two dims (batched): keeps `j - i >= k`, zeros below. */
export const triu: TriangleOp = guard('triu', {
  Tensor: (x: Tensor) => triangle('triu', x),
  'Tensor, number': (x: Tensor, k: number) => triangle('triu', x, k),
})
