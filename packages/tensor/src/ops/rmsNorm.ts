import { isFloat, type DType } from '../dtype.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { Kernel } from '../kernelContract.js'
import { runOp } from '../op.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

export interface RmsNormOptions {
  /** Added to the mean square before the square root (default 1e-6). */
  readonly eps?: number
}

const rmsNormImpl = (x: Tensor, gain: Tensor, opts: RmsNormOptions = {}): Tensor => {
  const op = 'rmsNorm'
  if (!isFloat(x.dtype)) throw new DTypeError({ op, arg: 'x', expected: 'a float dtype', actual: x.dtype })
  if (gain.dtype !== x.dtype) throw new DTypeError({ op, arg: 'gain', expected: x.dtype, actual: gain.dtype }, 'gain must have the dtype of x')
  if (x.rank < 1) throw new ShapeError({ op, arg: 'x', expected: 'rank ≥ 1', actual: x.shape })
  const d = x.shape[x.rank - 1]!
  if (gain.rank !== 1 || gain.shape[0] !== d) throw new ShapeError({ op, arg: 'gain', expected: [d], actual: gain.shape }, 'gain is one value per element of the last axis')
  const eps = opts.eps ?? 1e-6
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) throw new ValueError({ op, arg: 'eps', expected: 'a finite number ≥ 0', actual: eps })
  const [y, rstd] = runOp(op, Kernel.RmsNorm, [x, gain], { eps }, true)
  // the per-row 1/rms is kept for the backward by the tape (when one records); the caller gets y alone
  rstd!.dispose()
  return y!
}

/**
 * RMSNorm over the last axis (Zhang & Sennrich, 2019): x / √(mean(x²) + eps) · gain, with `gain` of shape
 * [x.shape[-1]]. One fused kernel forward (sums in float64, one rounding per element) and one backward kernel
 * giving dx and dgain together.
 */
export const rmsNorm: <D extends DType, S extends Shape>(x: Tensor<D, S>, gain: Tensor<D>, opts?: RmsNormOptions) => Tensor<D, S> = guard('rmsNorm', {
  'Tensor, Tensor': (x: Tensor, g: Tensor) => rmsNormImpl(x, g),
  'Tensor, Tensor, undefined': (x: Tensor, g: Tensor) => rmsNormImpl(x, g),
  'Tensor, Tensor, Object': rmsNormImpl,
})
