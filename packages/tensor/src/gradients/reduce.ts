import { reducedShape, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { div, equal, mul, sub } from '../ops/binary.js'
import { broadcastTo } from '../ops/broadcastTo.js'
import { cast } from '../ops/cast.js'
import { cumsum, mean, prod, sum } from '../ops/reduce.js'
import { counts } from '../ops/reduceInternal.js'
import { reshape } from '../ops/reshape.js'
import { softmax } from '../ops/softmax.js'
import { exp } from '../ops/unary.js'
import { where } from '../ops/where.js'
import type { GradientTable } from './gradientTable.js'

/** A reduced cotangent (kept dims or not) reshaped so that it broadcasts against the input. */
const expandTo = (g: Tensor, shape: Shape, axes: readonly number[]): Tensor => reshape(g, reducedShape(shape, axes, true))

/** The reduced cotangent materialised over the input's shape. */
const spread = (g: Tensor, shape: Shape, axes: readonly number[]): Tensor => broadcastTo(expandTo(g, shape, axes), shape)

// Ties share the cotangent evenly (PyTorch's amax/amin), so the gradient stays a valid subgradient.
const extremeGrad: NonNullable<GradientTable['Max']> = (dys, { inputs, outputs, attrs: { axes } }) => {
  const xin = inputs[0]!
  const hit = cast(equal(xin, expandTo(outputs[0]!, xin.shape, axes)), xin.dtype)
  const ties = sum(hit, { axis: axes, keepDims: true })
  return [mul(hit, div(expandTo(dys[0]!, xin.shape, axes), ties))]
}

const momentGrad =
  (kind: 'variance' | 'std'): NonNullable<GradientTable['Variance']> =>
  (dys, { inputs, outputs, attrs: { axes, correction } }) => {
    const xin = inputs[0]!
    const denom = counts(xin, axes).n - correction
    const centred = sub(xin, mean(xin, { axis: axes, keepDims: true }))
    const dy = expandTo(dys[0]!, xin.shape, axes)
    if (kind === 'variance') return [mul(centred, div(dy, denom / 2))]
    // ∂std/∂x = (x - mean) / (denom · std); at std = 0 that is 0/0, and 0 is the subgradient we return.
    const y = expandTo(outputs[0]!, xin.shape, axes)
    const flat = equal(y, 0)
    const g = mul(centred, div(dy, mul(where(flat, 1, y), denom)))
    return [where(flat, 0, g)]
  }

export const reduceGradients = {
  Sum: (dys, { inputs, attrs: { axes } }) => [spread(dys[0]!, inputs[0]!.shape, axes)],
  Mean: (dys, { inputs, attrs: { axes } }) => [div(spread(dys[0]!, inputs[0]!.shape, axes), counts(inputs[0]!, axes).n)],
  Prod: (dys, { inputs, outputs, attrs: { axes } }) => {
    const xin = inputs[0]!
    // y / x fails at zeros, so count them per slice: with none, ∂y/∂xᵢ = y / xᵢ; with exactly one, only the
    // zero entry has a non-zero partial (the product of the others); with two or more every partial is 0.
    const isZero = equal(xin, 0)
    const zeros = sum(cast(isZero, xin.dtype), { axis: axes, keepDims: true })
    const safe = where(isZero, 1, xin)
    const others = prod(safe, { axis: axes, keepDims: true })
    const noZero = div(expandTo(outputs[0]!, xin.shape, axes), safe)
    const oneZero = where(isZero, others, 0)
    const partial = where(equal(zeros, 0), noZero, where(equal(zeros, 1), oneZero, 0))
    return [mul(partial, expandTo(dys[0]!, xin.shape, axes))]
  },
  Max: extremeGrad,
  Min: extremeGrad,
  Variance: momentGrad('variance'),
  Std: momentGrad('std'),
  // The adjoint of a running sum is the running sum taken the other way, with the same exclusivity.
  Cumsum: (dys, { attrs: { axes, reverse, exclusive } }) => [cumsum(dys[0]!, { axis: axes[0] ?? 0, reverse: !reverse, exclusive })],
  LogSumExp: (dys, { inputs, outputs, attrs: { axes } }) => {
    const xin = inputs[0]!
    // The weights come from the fused softmax, not exp(x - y): y rounded to float32 near 1e4 would put a
    // relative error of ~1e-3 into exp(x - y).
    const w = softmax(xin, { axis: axes })
    const g = mul(w, expandTo(dys[0]!, xin.shape, axes))
    // An all -Infinity slice stays -Infinity under any finite nudge, so its true gradient is 0 (softmax is NaN there).
    return [where(equal(expandTo(outputs[0]!, xin.shape, axes), -Infinity), 0, g)]
  },
  Softmax: (dys, { outputs, attrs: { axes } }) => {
    const y = outputs[0]!
    const dy = dys[0]!
    return [mul(y, sub(dy, sum(mul(dy, y), { axis: axes, keepDims: true })))]
  },
  LogSoftmax: (dys, { outputs, attrs: { axes } }) => {
    const dy = dys[0]!
    return [sub(dy, mul(exp(outputs[0]!), sum(dy, { axis: axes, keepDims: true })))]
  },
} satisfies GradientTable
