import type { GradFn } from '../autodiff/tape.js'
import { Kernel, type BinaryFn, type UnaryFn } from '../kernelContract.js'
import { scope } from '../memory.js'
import { runOp1 } from '../op.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { add, div, equal, greater, greaterEqual, less, lessEqual, logicalAnd, logicalOr, mul, pow, sub } from '../ops/binary.js'
import { cast } from '../ops/cast.js'
import { withConstant } from '../ops/internal.js'
import { reshape } from '../ops/reshape.js'
import { cos, exp, floor, log, logicalNot, neg, sigmoid, sign, sin, square } from '../ops/unary.js'
import { where } from '../ops/where.js'
import type { GradientTable } from './gradientTable.js'
import { unbroadcast } from './unbroadcast.js'

const scaleBy = (c: number, t: Tensor): Tensor => withConstant(c, t, k => mul(t, k))
const plus = (c: number, t: Tensor): Tensor => withConstant(c, t, k => add(t, k))
const minus = (c: number, t: Tensor): Tensor => withConstant(c, t, k => sub(k, t))

// ---- Unary: a rule per scalar function, (dy, x, y) ↦ dx ------------------------------------------------------

/** A fused derivative kernel, run as a differentiable kernel: its own rule (below) gives the next order. */
const derivative = (fn: UnaryFn, x: Tensor): Tensor => runOp1(fn, Kernel.Unary, [x], { fn }, true)

// φ(x)(2 - x²): d/dx of gelu' = Φ(x) + xφ(x).
const geluSecond = (x: Tensor): Tensor => mul(scaleBy(1 / Math.sqrt(2 * Math.PI), exp(scaleBy(-0.5, square(x)))), minus(2, square(x)))
const GELU_C = Math.sqrt(2 / Math.PI)
const GELU_K = 0.044715
// With s = σ(2u), u = c(x + kx³): d/dx of s + 2x·s(1-s)·u' is s(1-s)·(4u' + 4x·u'²·(1-2s) + 12ck·x²).
const geluTanhSecond = (x: Tensor): Tensor => {
  const x2 = square(x)
  const du = scaleBy(GELU_C, plus(1, scaleBy(3 * GELU_K, x2)))
  const s = sigmoid(scaleBy(2 * GELU_C, add(x, scaleBy(GELU_K, mul(x2, x)))))
  const ss = mul(s, minus(1, s))
  const inner = add(add(scaleBy(4, du), mul(scaleBy(4, x), mul(square(du), minus(1, scaleBy(2, s))))), scaleBy(12 * GELU_C * GELU_K, x2))
  return mul(ss, inner)
}
// σ(x)(1-σ(x))(2 + x(1-2σ(x))): d/dx of silu' = σ(1 + x(1-σ)).
const siluSecond = (x: Tensor): Tensor => {
  const s = sigmoid(x)
  return mul(mul(s, minus(1, s)), plus(2, mul(x, minus(1, scaleBy(2, s)))))
}

/**
 * A backward in one Binary kernel, (dy, x) ↦ dy · f′(x) (reluGrad, geluBackward): one pass over the activations
 * instead of a derivative and then a multiply, and no temporary.
 */
const fusedBackward = (fn: BinaryFn, dy: Tensor, x: Tensor): Tensor =>
  runOp1(fn, Kernel.Binary, [dy, x], { fn, shape: dy.shape, dtype: dy.dtype }, true)

type UnaryRule = (dy: Tensor, x: Tensor, y: Tensor) => Tensor
// Functions without an entry (sign, floor, ceil, round, step, logicalNot, isNaN, isFinite) have a derivative that
// is 0 almost everywhere or none: their ops do not record them.
const unaryRules: { readonly [F in UnaryFn]?: UnaryRule } = {
  neg: dy => neg(dy),
  abs: (dy, x) => mul(dy, sign(x)),
  square: (dy, x) => mul(dy, scaleBy(2, x)),
  reciprocal: (dy, _x, y) => neg(mul(dy, mul(y, y))),
  exp: (dy, _x, y) => mul(dy, y),
  log: (dy, x) => div(dy, x),
  log1p: (dy, x) => div(dy, plus(1, x)),
  expm1: (dy, _x, y) => mul(dy, plus(1, y)),
  sqrt: (dy, _x, y) => div(dy, scaleBy(2, y)),
  rsqrt: (dy, _x, y) => mul(dy, scaleBy(-0.5, mul(y, mul(y, y)))),
  sin: (dy, x) => mul(dy, cos(x)),
  cos: (dy, x) => neg(mul(dy, sin(x))),
  tanh: (dy, _x, y) => mul(dy, minus(1, mul(y, y))),
  erf: (dy, x) => mul(dy, scaleBy(2 / Math.sqrt(Math.PI), exp(neg(square(x))))),
  sigmoid: (dy, _x, y) => mul(dy, mul(y, minus(1, y))),
  relu: (dy, x) => fusedBackward('reluGrad', dy, x),
  silu: (dy, x) => mul(dy, derivative('siluGrad', x)),
  softplus: (dy, x) => mul(dy, sigmoid(x)),
  logSigmoid: (dy, x) => mul(dy, sigmoid(neg(x))),
  gelu: (dy, x) => fusedBackward('geluBackward', dy, x),
  geluTanh: (dy, x) => fusedBackward('geluTanhBackward', dy, x),
  siluGrad: (dy, x) => mul(dy, siluSecond(x)),
  geluGrad: (dy, x) => mul(dy, geluSecond(x)),
  geluTanhGrad: (dy, x) => mul(dy, geluTanhSecond(x)),
}

// ---- Binary: a rule per scalar function, (dy, a, b, y) ↦ [da, db] over the broadcast shape --------------------

type BinaryRule = (dy: Tensor, a: Tensor, b: Tensor, y: Tensor) => readonly [Tensor | null, Tensor | null]

/** Elementwise max/min: on ties the cotangent is split evenly between a and b (as PyTorch does). */
function tieSplit(dy: Tensor, a: Tensor, b: Tensor, wins: (p: Tensor, q: Tensor) => Tensor): [Tensor, Tensor] {
  const half = scaleBy(0.5, dy)
  const tie = equal(a, b)
  const pick = (w: Tensor) => where(tie, half, withConstant(0, dy, z => where(w, dy, z)))
  return [pick(wins(a, b)), pick(wins(b, a))]
}

// Comparisons and logical functions have no entry: they return bool and cut the tape.
const binaryRules: { readonly [F in BinaryFn]?: BinaryRule } = {
  add: dy => [dy, dy],
  sub: dy => [dy, neg(dy)],
  mul: (dy, a, b) => [mul(dy, b), mul(dy, a)],
  div: (dy, a, b) => {
    const ga = div(dy, b)
    return [ga, neg(mul(ga, div(a, b)))]
  },
  // The gradient with respect to b is 0 where a = 0 (PyTorch's convention), not NaN.
  pow: (dy, a, b, y) => {
    const ga = mul(dy, mul(b, pow(a, withConstant(1, b, one => sub(b, one)))))
    // log is taken of a with its zeros replaced by 1, not masked after the fact: where() stops the value but a
    // second-order pass would still multiply the masked branch's 1/a = ∞ by a zero cotangent and get NaN.
    const zero = withConstant(0, a, z => equal(a, z))
    const safeLog = where(zero, 0, log(where(zero, 1, a)))
    return [ga, mul(dy, mul(y, safeLog))]
  },
  maximum: (dy, a, b) => tieSplit(dy, a, b, greater),
  minimum: (dy, a, b) => tieSplit(dy, a, b, less),
  // a - floor(a/b)·b, so d/da = 1, d/db = -floor(a/b).
  mod: (dy, a, b) => [dy, neg(mul(dy, floor(div(a, b))))],
  atan2: (dy, a, b) => {
    const den = add(mul(a, a), mul(b, b))
    return [mul(dy, div(b, den)), neg(mul(dy, div(a, den)))]
  },
  // dy where x > 0: its own derivative masks the incoming cotangent the same way (x only gates).
  reluGrad: (g, _dy, x) => [fusedBackward('reluGrad', g, x), null],
  // ∂/∂dy = gelu′(x), ∂/∂x = dy · gelu″(x).
  geluBackward: (g, dy, x) => [mul(g, derivative('geluGrad', x)), mul(g, mul(dy, geluSecond(x)))],
  geluTanhBackward: (g, dy, x) => [mul(g, derivative('geluTanhGrad', x)), mul(g, mul(dy, geluTanhSecond(x)))],
}

const unaryGrad: GradFn<{ readonly fn: UnaryFn }> = (dys, { inputs, outputs, attrs }) => {
  const rule = unaryRules[attrs.fn]
  if (!rule) throw new Error(`internal: Unary ${attrs.fn} was recorded but has no gradient rule`)
  return [rule(dys[0]!, inputs[0]!, outputs[0]!)]
}

const binaryGrad: GradFn<{ readonly fn: BinaryFn }> = (dys, { inputs, outputs, attrs }) => {
  const rule = binaryRules[attrs.fn]
  if (!rule) throw new Error(`internal: Binary ${attrs.fn} was recorded but has no gradient rule`)
  const [a, b] = inputs as [Tensor, Tensor]
  const [ga, gb] = rule(dys[0]!, a, b, outputs[0]!)
  return [ga && unbroadcast(ga, a.shape), gb && unbroadcast(gb, b.shape)]
}

// Masks (no gradient of their own) route dy to the operand min(max(x, lo), hi) returned: x where lo ≤ x ≤ hi,
// lo where x < lo ≤ hi, hi where max(x, lo) > hi. The three masks partition dy (NaN positions get none).
const clampGrad: GradFn = (dys, { inputs }) =>
  scope(() => {
    const [x, lo, hi] = inputs as [Tensor, Tensor, Tensor]
    const dy = dys[0]!
    const xGeLo = greaterEqual(x, lo)
    const xLtLo = less(x, lo)
    const loLeHi = lessEqual(lo, hi)
    const toX = logicalAnd(xGeLo, lessEqual(x, hi))
    const toLo = logicalAnd(xLtLo, loLeHi)
    const toHi = logicalOr(logicalAnd(xGeLo, greater(x, hi)), logicalAnd(xLtLo, logicalNot(loLeHi)))
    const route = (m: Tensor, shape: Shape): Tensor => unbroadcast(where(m, dy, 0), shape)
    return [route(toX, x.shape), route(toLo, lo.shape), route(toHi, hi.shape)]
  })

export const elementwiseGradients = {
  Unary: unaryGrad,
  Binary: binaryGrad,
  Where: (dys, { inputs }) => {
    const [c, x, y] = inputs as [Tensor, Tensor, Tensor]
    const dy = dys[0]!
    const ga = withConstant(0, dy, z => where(c, dy, z))
    const gb = withConstant(0, dy, z => where(c, z, dy))
    return [null, unbroadcast(ga, x.shape), unbroadcast(gb, y.shape)]
  },
  Clamp: clampGrad,
  // Recorded only for float → float casts: anything through an integer or bool cuts the tape.
  Cast: (dys, { inputs }) => [cast(dys[0]!, inputs[0]!.dtype)],
  Identity: dys => [dys[0]!],
  BroadcastTo: (dys, { inputs }) => [unbroadcast(dys[0]!, inputs[0]!.shape)],
  Reshape: (dys, { inputs }) => [reshape(dys[0]!, inputs[0]!.shape)],
} satisfies GradientTable
