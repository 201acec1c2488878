import type { DType } from '../dtype.js'
import { AxisError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { normAxis, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { Permuted, ShapeGuard, Transposed, Valid } from '../types/shapeTypes.js'

/** @internal normalise a permutation of `rank` axes (negative axes allowed); AxisError unless it is one. */
export function normPerm(op: string, axes: readonly number[], rank: number): number[] {
  if (axes.length !== rank)
    throw new AxisError({ op, arg: 'axes', expected: `a permutation of all ${rank} axes`, actual: axes }, `axes has ${axes.length} entries for a rank-${rank} tensor`)
  const perm = axes.map(a => normAxis(op, a, rank, 'axes'))
  if (new Set(perm).size !== rank) throw new AxisError({ op, arg: 'axes', expected: 'each axis exactly once', actual: axes }, 'repeated axis')
  return perm
}

function permuteImpl(op: string, x: Tensor, axes: readonly number[]): Tensor {
  const perm = normPerm(op, axes, x.rank)
  return runOp1(op, Kernel.Transpose, [x], { perm }, true)
}

/** Reverse the axes (a matrix transpose for rank 2); with `axes`, the same as `permute(x, axes)`. */
export const transpose: {
  <D extends DType, S extends Shape>(x: Tensor<D, S>): Tensor<D, Transposed<S>>
  <D extends DType, S extends Shape, const P extends readonly number[]>(x: Tensor<D, S>, axes: P & NoInfer<ShapeGuard<Permuted<S, P>, S, P>>): Tensor<D, Valid<Permuted<S, P>>>
} = guard('transpose', {
  Tensor: (x: Tensor) => permuteImpl('transpose', x, Array.from({ length: x.rank }, (_, i) => x.rank - 1 - i)),
  'Tensor, Array': (x: Tensor, axes: number[]) => permuteImpl('transpose', x, axes),
})

/** Reorder axes: output axis i is input axis `axes[i]` (negative axes count from the end). Copies. */
export const permute: <D extends DType, S extends Shape, const P extends readonly number[]>(
  x: Tensor<D, S>,
  axes: P & NoInfer<ShapeGuard<Permuted<S, P>, S, P>>,
) => Tensor<D, Valid<Permuted<S, P>>> = guard('permute', {
  'Tensor, Array': (x: Tensor, axes: number[]) => permuteImpl('permute', x, axes),
})
