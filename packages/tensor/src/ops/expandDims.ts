import type { DType } from '../dtype.js'
import { normAxis, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { ExpandedDims, ShapeGuard, Valid } from '../types/shapeTypes.js'
import { reshape } from './reshape.js'

/**
 * Insert a size-1 axis so that it sits at `axis` of the result (`axis` in [-rank-1, rank]; -1 appends, as in
 * numpy). A view: it shares storage with `x`, and its gradient is a reshape.
 */
export const expandDims: <D extends DType, S extends Shape, const A extends number>(
  x: Tensor<D, S>,
  axis: A & NoInfer<ShapeGuard<ExpandedDims<S, A>, S, A>>,
) => Tensor<D, Valid<ExpandedDims<S, A>>> = guard('expandDims', {
  'Tensor, number': (x: Tensor, axis: number) => {
    const a = normAxis('expandDims', axis, x.rank + 1)
    return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)])
  },
})
