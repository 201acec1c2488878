import type { DType } from '../dtype.js'
import { ArgumentError, DTypeError, ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { normAxis } from '../shape.js'
import { isTensor, type Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

/** @internal shared checks of concat and stack: a non-empty list of live tensors of one dtype. */
export function checkList(op: string, tensors: readonly unknown[]): asserts tensors is readonly Tensor[] {
  if (tensors.length === 0) throw new ValueError({ op, arg: 'tensors', expected: 'at least one tensor', actual: 'an empty list' })
  tensors.forEach((t, i) => {
    if (!isTensor(t)) throw new ArgumentError({ op, arg: `tensors[${i}]`, expected: 'a Tensor', actual: typeof t })
  })
  const first = tensors[0] as Tensor
  tensors.forEach((t, i) => {
    if ((t as Tensor).dtype !== first.dtype)
      throw new DTypeError({ op, arg: `tensors[${i}]`, expected: `${first.dtype} like tensors[0]`, actual: (t as Tensor).dtype }, 'dtypes differ (cast explicitly)')
  })
}

const concatImpl = (tensors: readonly Tensor[], axis = 0): Tensor => {
  checkList('concat', tensors)
  const first = tensors[0]!
  if (first.rank === 0) throw new ShapeError({ op: 'concat', arg: 'tensors[0]', expected: 'rank ≥ 1 (use stack for scalars)', actual: first.shape })
  const a = normAxis('concat', axis, first.rank)
  tensors.forEach((t, i) => {
    if (t.rank !== first.rank || t.shape.some((d, j) => j !== a && d !== first.shape[j]))
      throw new ShapeError(
        { op: 'concat', arg: `tensors[${i}]` },
        `dims other than axis ${a} must match, tensors[0] is [${first.shape.join(',')}], tensors[${i}] is [${t.shape.join(',')}]`,
      )
  })
  const sizes = tensors.map(t => t.shape[a]!)
  const shape = first.shape.map((d, j) => (j === a ? sizes.reduce((p, q) => p + q, 0) : d))
  return runOp1('concat', Kernel.Concat, tensors, { axis: a, shape }, true)
}

/** Join tensors of one dtype along an existing `axis` (default 0); all other dims must match. The gradient splits. */
export const concat: <D extends DType>(tensors: readonly Tensor<D>[], axis?: number) => Tensor<D> = guard('concat', {
  Array: (ts: Tensor[]) => concatImpl(ts),
  'Array, number': concatImpl,
})
