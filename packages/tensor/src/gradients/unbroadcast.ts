import { shapesEqual, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { reshape } from '../ops/reshape.js'
import { sum } from '../ops/reduce.js'

/**
 * @internal sum a cotangent of the broadcast shape back to an input's `shape`: the adjoint of broadcasting.
 * Every gradient rule of a broadcasting kernel ends here.
 */
export function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g
  const lead = g.rank - shape.length
  const axes: number[] = []
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i)
  return reshape(sum(g, { axis: axes, keepDims: false }), shape)
}
