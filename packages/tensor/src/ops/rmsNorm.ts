import { isRecording } from '../autodiff/tape.js'
import { isFloat, type DType } from '../dtype.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { Kernel, type RmsNormAttrs } from '../kernelContract.js'
import { runOp } from '../op.js'
import { scope } from '../memory.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { add, mul, sub } from './binary.js'
import { mean, sum } from './reduce.js'
import { rsqrt } from './unary.js'

export interface RmsNormOptions {
  /** Added to the mean square before the square root (default 1e-6). */
  readonly eps?: number
}

/**
 * The backward as public ops, for grad of grad: r = 1/√(mean(x²) + eps), dx = r·g·dy − x·r³·mean(g·dy·x),
 * dgain = Σ_rows dy·x·r. Differentiable in dy, x and gain, unlike the fused kernel.
 */
function composedBackward(dy: Tensor, x: Tensor, gain: Tensor, eps: number): [Tensor, Tensor] {
  return scope(() => {
    const r = rsqrt(add(mean(mul(x, x), { axis: -1, keepDims: true }), eps))
    const gdy = mul(dy, gain)
    const s = mean(mul(gdy, x), { axis: -1, keepDims: true })
    const dx = sub(mul(gdy, r), mul(x, mul(mul(r, mul(r, r)), s)))
    const lead = Array.from({ length: x.rank - 1 }, (_, i) => i)
    const dgain = lead.length > 0 ? sum(mul(mul(dy, x), r), { axis: lead }) : mul(mul(dy, x), r)
    return [dx, dgain] as [Tensor, Tensor]
  })
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
  const [y, rstd] = runOp(op, Kernel.RmsNorm, [x, gain], { eps }, (dys, { inputs, outputs }) => {
    const [xin, g] = inputs as [Tensor, Tensor]
    const dy = dys[0]!
    // grad of grad records the backward itself: only the composed form is differentiable
    if (isRecording()) return composedBackward(dy, xin, g, eps)
    const [dx, dgain] = runOp('rmsNormGrad', Kernel.RmsNormGrad, [dy, xin, g, outputs[1]!], { eps })
    return [dx!, dgain!]
  })
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
