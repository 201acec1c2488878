import type { DType } from '../dtype.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { knownOptions } from '../validate.js'
import { axesOf, checkDType, parseReduce, type ReduceOptions } from './reduceInternal.js'

export interface SoftmaxOptions {
  /** Axis or axes normalised over (negative counts from the end); the last axis by default. */
  readonly axis?: number | readonly number[]
}

const logSumExpImpl = (x: Tensor, opts: ReduceOptions): Tensor => {
  const { axes, keepDims } = parseReduce('logSumExp', x, opts, 'float')
  return runOp1('logSumExp', Kernel.LogSumExp, [x], { axes, keepDims }, true)
}

/**
 * log Σ exp(x) over `axis` (all axes by default), max-shifted and accumulated in float64: exact at logits of
 * ±1e4. An all -Infinity (or empty) slice gives -Infinity, not NaN; a +Infinity entry gives +Infinity.
 */
export const logSumExp: <D extends DType>(x: Tensor<D>, opts?: ReduceOptions) => Tensor<D> = guard('logSumExp', {
  Tensor: (x: Tensor) => logSumExpImpl(x, {}),
  'Tensor, Object': logSumExpImpl,
})

const softmaxAxes = (op: string, x: Tensor, opts: SoftmaxOptions): number[] => {
  knownOptions(op, opts, ['axis'])
  checkDType(op, x, 'float')
  return axesOf(op, opts.axis ?? -1, x.rank)
}

const softmaxImpl = (x: Tensor, opts: SoftmaxOptions): Tensor => {
  const axes = softmaxAxes('softmax', x, opts)
  return runOp1('softmax', Kernel.Softmax, [x], { axes }, true)
}

const logSoftmaxImpl = (x: Tensor, opts: SoftmaxOptions): Tensor => {
  const axes = softmaxAxes('logSoftmax', x, opts)
  return runOp1('logSoftmax', Kernel.LogSoftmax, [x], { axes }, true)
}

/**
 * exp(x) / Σ exp(x) along `axis` (default -1; several axes normalise jointly), max-shifted in float64 so that
 * logits of ±1e4 and -Infinity entries are exact. A slice that is entirely -Infinity has no distribution and
 * gives NaN, as in PyTorch and JAX; mask such rows yourself if they can occur.
 */
export const softmax: <D extends DType, S extends Shape>(x: Tensor<D, S>, opts?: SoftmaxOptions) => Tensor<D, S> = guard('softmax', {
  Tensor: (x: Tensor) => softmaxImpl(x, {}),
  'Tensor, Object': softmaxImpl,
})

/** x - logSumExp(x) along `axis` (default -1), computed stably; an all -Infinity slice gives NaN (see softmax). */
export const logSoftmax: <D extends DType, S extends Shape>(x: Tensor<D, S>, opts?: SoftmaxOptions) => Tensor<D, S> = guard('logSoftmax', {
  Tensor: (x: Tensor) => logSoftmaxImpl(x, {}),
  'Tensor, Object': logSoftmaxImpl,
})
