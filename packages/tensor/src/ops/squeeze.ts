import type { DType } from '../dtype.js'
import { ShapeError } from '../errors.js'
import { normAxes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { ShapeGuard, Squeezed, Valid } from '../types/shapeTypes.js'
import { reshape } from './reshape.js'

const squeezeImpl = (x: Tensor, axis?: number | readonly number[]): Tensor => {
  let axes: number[]
  if (axis === undefined) axes = x.shape.flatMap((d, i) => (d === 1 ? [i] : []))
  else {
    axes = normAxes('squeeze', axis, x.rank)
    for (const a of axes)
      if (x.shape[a] !== 1)
        throw new ShapeError({ op: 'squeeze', arg: 'axis', expected: 'an axis of size 1', actual: x.shape }, `axis ${a} has size ${x.shape[a]}`)
  }
  return reshape(x, x.shape.filter((_, i) => !axes.includes(i)))
}

/**
 * Drop size-1 axes: all of them, or only `axis` (a number or a list; ShapeError when such a dim is not 1).
 * A view sharing storage with `x`; its gradient is a reshape.
 */
export const squeeze: {
  <D extends DType, S extends Shape>(x: Tensor<D, S>): Tensor<D, Valid<Squeezed<S>>>
  <D extends DType, S extends Shape, const A extends number>(x: Tensor<D, S>, axis: A & NoInfer<ShapeGuard<Squeezed<S, A>, S, A>>): Tensor<D, Valid<Squeezed<S, A>>>
  <D extends DType>(x: Tensor<D>, axis: readonly number[]): Tensor<D>
} = guard('squeeze', {
  Tensor: (x: Tensor) => squeezeImpl(x),
  'Tensor, number | Array': squeezeImpl,
})
