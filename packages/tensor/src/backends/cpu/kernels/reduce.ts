import type { DType } from '../../../dtype.js'
import { reducedShape } from '../../../shape.js'
import type { CpuKernelTable } from '../types.js'
import { reduceAxes } from '../util.js'

/** attrs of every reduction kernel: axes (sorted, normalised), keepDims. */
interface ReduceAttrs {
  axes: number[]
  keepDims: boolean
}

export const reduceKernels: CpuKernelTable = {
  /** Sum, accumulated in float64 whatever the storage dtype (the reference path). attrs: ReduceAttrs, dtype. */
  Sum: ([x], attrs) => {
    const { axes, keepDims } = attrs as unknown as ReduceAttrs
    const dtype = (attrs['dtype'] as DType | undefined) ?? x!.dtype
    const values = reduceAxes(
      x!,
      axes,
      dtype,
      () => 0,
      (acc, v) => acc + v,
      acc => acc,
    )
    return { values, shape: reducedShape(x!.shape, axes, keepDims), dtype }
  },
}
