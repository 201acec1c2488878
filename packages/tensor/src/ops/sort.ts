import type { DType } from '../dtype.js'
import { runOp } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { knownOptions } from '../validate.js'
import { indexAxis } from './gather.js'

export interface SortOptions {
  /** Axis to sort along, default -1. */
  readonly axis?: number
  /** Largest first; default ascending. */
  readonly descending?: boolean
}

function sortBoth(op: string, x: Tensor, opts: SortOptions, differentiable: boolean): [Tensor, Tensor] {
  knownOptions(op, opts, ['axis', 'descending'])
  const axis = indexAxis(op, x, opts.axis ?? -1)
  const descending = opts.descending ?? false
  return runOp(
    op,
    Kernel.Sort,
    [x],
    { axis, descending },
    differentiable,
  ) as [Tensor, Tensor]
}

const sortImpl = (x: Tensor, opts: SortOptions = {}): Tensor => {
  // The tape keeps its own handle on the indices for the gradient; the caller's copy is not needed.
  const [values, indices] = sortBoth('sort', x, opts, true)
  indices.dispose()
  return values
}

const argsortImpl = (x: Tensor, opts: SortOptions = {}): Tensor => {
  const [values, indices] = sortBoth('argsort', x, opts, false)
  values.dispose()
  return indices
}

/** Sorted copy along `axis` (default -1). Stable; NaN is the largest value, as in PyTorch (last ascending, first with `descending`). The gradient follows the permutation. */
export const sort: <D extends DType, S extends Shape>(x: Tensor<D, S>, opts?: SortOptions) => Tensor<D, S> = guard('sort', {
  Tensor: (x: Tensor) => sortImpl(x),
  'Tensor, Object': sortImpl,
})

/** int32 positions that sort `x` along `axis` (default -1); stable, NaN the largest value, as `sort`. Not differentiable. */
export const argsort: <S extends Shape>(x: Tensor<DType, S>, opts?: SortOptions) => Tensor<'int32', S> = guard('argsort', {
  Tensor: (x: Tensor) => argsortImpl(x),
  'Tensor, Object': argsortImpl,
})
