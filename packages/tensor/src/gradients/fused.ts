import { isRecording } from '../autodiff/tape.js'
import { Kernel, type CrossEntropyAttrs } from '../kernelContract.js'
import { scope } from '../memory.js'
import { runOp } from '../op.js'
import type { Tensor } from '../Tensor.js'
import { add, div, mul, notEqual, sub } from '../ops/binary.js'
import { cast } from '../ops/cast.js'
import { expandDims } from '../ops/expandDims.js'
import { oneHot } from '../ops/oneHot.js'
import { mean, sum } from '../ops/reduce.js'
import { softmax } from '../ops/softmax.js'
import { rsqrt } from '../ops/unary.js'
import type { GradientTable } from './gradientTable.js'

// The fused training-step kernels' backward kernels are not differentiable themselves, so under an enclosing
// recording (grad of grad) the rules take the composed form, whose ops the tape can follow.

/**
 * The backward as public ops, for grad of grad: r = 1/√(mean(x²) + eps), dx = r·g·dy − x·r³·mean(g·dy·x),
 * dgain = Σ_rows dy·x·r. Differentiable in dy, x and gain, unlike the fused kernel.
 */
function composedRmsNormBackward(dy: Tensor, x: Tensor, gain: Tensor, eps: number): [Tensor, Tensor] {
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

/** The gradient as public ops, for grad of grad: (softmax(x) − onehot(t)) · g per row, 0 on ignored rows. */
function composedCrossEntropyBackward(g: Tensor, logits: Tensor, targets: Tensor, a: CrossEntropyAttrs): Tensor {
  return scope(() => {
    const v = logits.shape[logits.rank - 1]!
    const keep = a.ignoreIndex === null ? undefined : notEqual(targets, a.ignoreIndex)
    const safe = keep ? mul(targets, cast(keep, 'int32')) : targets
    // 1 on rows that count (targets are ≥ 0 when nothing is ignored)
    const w = cast(keep ?? notEqual(targets, -1), logits.dtype)
    const rowScale = a.reduction === 'mean' ? div(mul(w, g), sum(w)) : mul(w, g)
    return mul(sub(softmax(logits), oneHot(safe, v, { dtype: logits.dtype as 'float32' })), expandDims(rowScale, -1))
  })
}

export const fusedGradients = {
  RmsNorm: (dys, { inputs, outputs, attrs: { eps } }) => {
    const [x, gain] = inputs as [Tensor, Tensor]
    const dy = dys[0]!
    if (isRecording()) return composedRmsNormBackward(dy, x, gain, eps)
    const [dx, dgain] = runOp('rmsNormGrad', Kernel.RmsNormGrad, [dy, x, gain, outputs[1]!], { eps })
    return [dx!, dgain!]
  },
  CrossEntropy: (dys, { inputs, outputs, attrs }) => {
    const [x, t] = inputs as [Tensor, Tensor]
    const g = dys[0]!
    if (isRecording()) return [composedCrossEntropyBackward(g, x, t, attrs), null]
    return [runOp('crossEntropyGrad', Kernel.CrossEntropyGrad, [g, x, t, outputs[1]!], attrs)[0]!, null]
  },
} satisfies GradientTable
