import type { DType } from '../dtype.js'
import { ArgumentError, ValueError } from '../errors.js'
import { scope } from '../memory.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { knownOptions } from '../validate.js'
import { reshape } from './reshape.js'
import { assertNonEmpty, axesOf, boolOption, checkDType, counts, parseReduce, type ReduceOptions } from './reduceInternal.js'

export type { ReduceOptions } from './reduceInternal.js'

export interface VarianceOptions extends ReduceOptions {
  /** Subtracted from the element count in the denominator (numpy's `ddof`): 0 is the population variance, 1 Bessel's. */
  readonly correction?: number
}

export interface CumsumOptions {
  /** The axis to accumulate along; when omitted the tensor is flattened first and the result is 1-D (numpy). */
  readonly axis?: number
  /** Accumulate from the end of the axis. */
  readonly reverse?: boolean
  /** Leave each element out of its own sum (the first output is 0). */
  readonly exclusive?: boolean
}

/** Public face of a reduction that keeps the input dtype. */
export type ReduceOp<O = ReduceOptions> = <D extends DType>(x: Tensor<D>, opts?: O) => Tensor<D>

const reduceOp = <O extends ReduceOptions>(name: string, impl: (x: Tensor, opts: O) => Tensor): ReduceOp<O> =>
  guard(name, {
    Tensor: (x: Tensor) => impl(x, {} as O),
    'Tensor, Object': impl,
  })

// ---- sum, mean, prod --------------------------------------------------------------------------------------

const sumImpl = (x: Tensor, opts: ReduceOptions): Tensor => {
  const { axes, keepDims } = parseReduce('sum', x, opts, 'numeric')
  return runOp1('sum', Kernel.Sum, [x], { axes, keepDims }, true)
}

/** Sum over `axis` (all axes by default); an empty sum is 0. Accumulates in float64 on the CPU. */
export const sum: ReduceOp = reduceOp('sum', sumImpl)

const meanImpl = (x: Tensor, opts: ReduceOptions): Tensor => {
  const { axes, keepDims } = parseReduce('mean', x, opts, 'float')
  assertNonEmpty('mean', x, axes)
  return runOp1('mean', Kernel.Mean, [x], { axes, keepDims }, true)
}

/** Arithmetic mean over `axis` (float dtypes). An empty reduction is a ValueError, not NaN. */
export const mean: ReduceOp = reduceOp('mean', meanImpl)

const prodImpl = (x: Tensor, opts: ReduceOptions): Tensor => {
  const { axes, keepDims } = parseReduce('prod', x, opts, 'numeric')
  return runOp1('prod', Kernel.Prod, [x], { axes, keepDims }, true)
}

/** Product over `axis`; an empty product is 1. Integer products wrap modulo 2^32 like numpy's int32. */
export const prod: ReduceOp = reduceOp('prod', prodImpl)

// ---- max, min, argmax, argmin ------------------------------------------------------------------------------

const extremeImpl =
  (name: 'max' | 'min', kernel: typeof Kernel.Max | typeof Kernel.Min) =>
  (x: Tensor, opts: ReduceOptions): Tensor => {
    const { axes, keepDims } = parseReduce(name, x, opts, 'numeric')
    assertNonEmpty(name, x, axes)
    return runOp1(name, kernel, [x], { axes, keepDims }, true)
  }

/** Maximum over `axis`. NaN propagates; an empty reduction is a ValueError. Ties split the gradient evenly. */
export const max: ReduceOp = reduceOp('max', extremeImpl('max', Kernel.Max))
/** Minimum over `axis`. NaN propagates; an empty reduction is a ValueError. Ties split the gradient evenly. */
export const min: ReduceOp = reduceOp('min', extremeImpl('min', Kernel.Min))

const argImpl =
  (name: 'argmax' | 'argmin', kernel: typeof Kernel.ArgMax | typeof Kernel.ArgMin) =>
  (x: Tensor, opts: ReduceOptions = {}): Tensor => {
    const { axes, keepDims } = parseReduce(name, x, opts, 'any')
    assertNonEmpty(name, x, axes)
    return runOp1(name, kernel, [x], { axes, keepDims })
  }

/**
 * int32 index of the first maximum along `axis`. With several axes (or none given: all of them) the index
 * counts through those axes row-major, as numpy's flat index does. A NaN counts as the maximum. Not
 * differentiable.
 */
export const argmax: <D extends DType>(x: Tensor<D>, opts?: ReduceOptions) => Tensor<'int32'> = guard('argmax', {
  Tensor: (x: Tensor) => argImpl('argmax', Kernel.ArgMax)(x),
  'Tensor, Object': argImpl('argmax', Kernel.ArgMax),
})
/** int32 index of the first minimum along `axis`; see argmax. */
export const argmin: <D extends DType>(x: Tensor<D>, opts?: ReduceOptions) => Tensor<'int32'> = guard('argmin', {
  Tensor: (x: Tensor) => argImpl('argmin', Kernel.ArgMin)(x),
  'Tensor, Object': argImpl('argmin', Kernel.ArgMin),
})

// ---- variance, std -----------------------------------------------------------------------------------------

const momentImpl =
  (name: 'variance' | 'std') =>
  (x: Tensor, opts: VarianceOptions): Tensor => {
    const { axes, keepDims } = parseReduce(name, x, opts, 'float', ['correction'])
    const correction = opts.correction ?? 0
    if (typeof correction !== 'number') throw new ArgumentError({ op: name, arg: 'correction', expected: 'a number', actual: typeof correction })
    if (!Number.isFinite(correction) || correction < 0)
      throw new ValueError({ op: name, arg: 'correction', expected: 'a finite number ≥ 0', actual: correction })
    const { n, slices } = counts(x, axes)
    if (slices > 0 && n - correction <= 0)
      throw new ValueError({ op: name, arg: 'correction', expected: `less than the reduced element count ${n}`, actual: correction })
    return runOp1(name, name === 'variance' ? Kernel.Variance : Kernel.Std, [x], { axes, keepDims, correction }, true)
  }

/**
 * Variance over `axis`: Σ(x - mean)² / (n - correction), `correction` 0 by default (numpy's ddof). Computed in
 * two passes in float64 on the CPU. A reduction with n - correction ≤ 0 is a ValueError.
 */
export const variance: ReduceOp<VarianceOptions> = reduceOp('variance', momentImpl('variance'))
/** Standard deviation, the square root of `variance` (same options). Its gradient at std = 0 is taken as 0. */
export const std: ReduceOp<VarianceOptions> = reduceOp('std', momentImpl('std'))

// ---- cumsum ----------------------------------------------------------------------------------------------------

const cumsumImpl = (x: Tensor, opts: CumsumOptions): Tensor => {
  knownOptions('cumsum', opts, ['axis', 'reverse', 'exclusive'])
  checkDType('cumsum', x, 'numeric')
  const reverse = boolOption('cumsum', 'reverse', opts.reverse)
  const exclusive = boolOption('cumsum', 'exclusive', opts.exclusive)
  if (opts.axis === undefined) return scope(() => cumsumImpl(reshape(x, [-1]), { axis: 0, reverse, exclusive }))
  const axes = axesOf('cumsum', opts.axis, x.rank, false)
  // The adjoint of a running sum is the running sum taken the other way, with the same exclusivity.
  return runOp1('cumsum', Kernel.Cumsum, [x], { axes, reverse, exclusive }, true)
}

/** Running sum along `axis` (flattened when omitted), optionally `reverse` and/or `exclusive`. Shape is kept. */
export const cumsum: <D extends DType>(x: Tensor<D>, opts?: CumsumOptions) => Tensor<D> = guard('cumsum', {
  Tensor: (x: Tensor) => cumsumImpl(x, {}),
  'Tensor, Object': cumsumImpl,
})
