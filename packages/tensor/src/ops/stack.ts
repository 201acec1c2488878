import type { DType } from '../dtype.js'
import { ShapeError } from '../errors.js'
import { runOp, runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { normAxis } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { checkList } from './concat.js'

const stackImpl = (tensors: readonly Tensor[], axis = 0): Tensor => {
  checkList('stack', tensors)
  const first = tensors[0]!
  tensors.forEach((t, i) => {
    if (t.rank !== first.rank || t.shape.some((d, j) => d !== first.shape[j]))
      throw new ShapeError({ op: 'stack', arg: `tensors[${i}]` }, `all shapes must match, tensors[0] is [${first.shape.join(',')}], tensors[${i}] is [${t.shape.join(',')}]`)
  })
  const a = normAxis('stack', axis, first.rank + 1)
  const shape = [...first.shape.slice(0, a), tensors.length, ...first.shape.slice(a)]
  // Concat reads each input as [outer, size/outer] blocks, so it stacks without materialising expanded views.
  return runOp1('stack', Kernel.Concat, tensors, { axis: a, shape }, true)
}

/** Join tensors of one shape and dtype along a new `axis` (default 0, in [-rank-1, rank]). The gradient unstacks. */
export const stack: <D extends DType>(tensors: readonly Tensor<D>[], axis?: number) => Tensor<D> = guard('stack', {
  Array: (ts: Tensor[]) => stackImpl(ts),
  'Array, number': stackImpl,
})

const unstackImpl = (x: Tensor, axis = 0): Tensor[] => {
  if (x.rank === 0) throw new ShapeError({ op: 'unstack', arg: 'x', expected: 'rank ≥ 1', actual: x.shape })
  const a = normAxis('unstack', axis, x.rank)
  const inner = x.shape.filter((_, j) => j !== a)
  const shapes = Array.from({ length: x.shape[a]! }, () => inner)
  return runOp('unstack', Kernel.Split, [x], { axis: a, shapes }, true)
}

/** The slices of `x` along `axis` (default 0), that axis removed: the inverse of `stack`. The gradient stacks. */
export const unstack: <D extends DType>(x: Tensor<D>, axis?: number) => Tensor<D>[] = guard('unstack', {
  Tensor: (x: Tensor) => unstackImpl(x),
  'Tensor, number': unstackImpl,
})
