import type { DType } from '../dtype.js'
import { ShapeError, ValueError } from '../errors.js'
import { runOp } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { normAxis } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

const splitImpl = (x: Tensor, sizesOrCount: number | readonly number[], axis = 0): Tensor[] => {
  if (x.rank === 0) throw new ShapeError({ op: 'split', arg: 'x', expected: 'rank ≥ 1', actual: x.shape })
  const a = normAxis('split', axis, x.rank)
  const n = x.shape[a]!
  let sizes: number[]
  if (typeof sizesOrCount === 'number') {
    const c = sizesOrCount
    if (!Number.isInteger(c) || c < 1 || n % c !== 0)
      throw new ValueError({ op: 'split', arg: 'count', expected: `a positive integer dividing dim ${a} of [${x.shape.join(',')}] (${n})`, actual: c })
    sizes = new Array<number>(c).fill(n / c)
  } else {
    sizes = [...sizesOrCount]
    if (!sizes.every(s => Number.isInteger(s) && s >= 0) || sizes.reduce((p, q) => p + q, 0) !== n)
      throw new ValueError({ op: 'split', arg: 'sizes', expected: `non-negative integers summing to dim ${a} of [${x.shape.join(',')}] (${n})`, actual: sizes })
  }
  const shapes = sizes.map(s => x.shape.map((d, j) => (j === a ? s : d)))
  return runOp('split', Kernel.Split, [x], { axis: a, shapes }, true)
}

/**
 * Cut `x` along `axis` (default 0) into `count` equal parts, or into parts of the given `sizes` (which must sum
 * to the dim; zero sizes give empty parts). Copies. The gradient concatenates.
 */
export const split: <D extends DType>(x: Tensor<D>, sizesOrCount: number | readonly number[], axis?: number) => Tensor<D>[] = guard('split', {
  'Tensor, number | Array': (x: Tensor, s: number | number[]) => splitImpl(x, s),
  'Tensor, number | Array, number': splitImpl,
})
