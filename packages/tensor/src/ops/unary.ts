import type { GradFn } from '../autodiff/tape.js'
import { isFloat, type DType, type FloatDType } from '../dtype.js'
import { DTypeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel, type UnaryFn } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { add, div, mul, sub } from './binary.js'
import { withConstant } from './internal.js'

/** A unary elementwise op: same shape and dtype out. */
// `Allowed` documents the dtypes accepted; it is checked at run time (a DTypeError), not in the type.
export type UnaryOp<_Allowed extends DType = DType> = <D extends DType, S extends Shape>(x: Tensor<D, S>) => Tensor<D, S>

type Domain = 'float' | 'numeric' | 'bool'
const domainWords: Record<Domain, string> = { float: 'a float dtype (cast first)', numeric: 'a numeric dtype', bool: 'bool' }
const inDomain = (d: DType, domain: Domain): boolean => (domain === 'float' ? isFloat(d) : domain === 'bool' ? d === 'bool' : d !== 'bool')


function unary<A extends DType>(name: UnaryFn, domain: Domain, grad?: GradFn, fn: UnaryFn = name): UnaryOp<A> {
  const impl = (x: Tensor): Tensor => {
    if (!inDomain(x.dtype, domain)) throw new DTypeError({ op: name, arg: 'x', expected: domainWords[domain], actual: x.dtype })
    return runOp1(name, Kernel.Unary, [x], { fn }, grad)
  }
  return guard(name, { Tensor: impl })
}

// Gradient rules take (dy, x, y) from the saved tensors and are written with public, differentiable ops, so
// that grad of grad is right too. Fused derivative kernels (siluGrad, geluGrad) carry their own rule for the
// next order instead of being a dead end on the tape.
const g =
  (f: (dy: Tensor, x: Tensor, y: Tensor) => Tensor): GradFn =>
  (dys, { inputs, outputs }) => [f(dys[0]!, inputs[0]!, outputs[0]!)]

const scaleBy = (c: number, t: Tensor): Tensor => withConstant(c, t, k => mul(t, k))
const plus = (c: number, t: Tensor): Tensor => withConstant(c, t, k => add(t, k))
const minus = (c: number, t: Tensor): Tensor => withConstant(c, t, k => sub(k, t))

/** A fused derivative kernel whose own derivative is `next(x)`. */
const fused = (fn: UnaryFn, next: (x: Tensor) => Tensor) => (x: Tensor): Tensor =>
  runOp1(fn, Kernel.Unary, [x], { fn }, g((dy, xx) => mul(dy, next(xx))))

// σ(x)(1-σ(x))(2 + x(1-2σ(x))): d/dx of silu' = σ(1 + x(1-σ)).
const siluGrad = fused('siluGrad', x => {
  const s = sigmoid(x)
  return mul(mul(s, minus(1, s)), plus(2, mul(x, minus(1, scaleBy(2, s)))))
})
// φ(x)(2 - x²): d/dx of gelu' = Φ(x) + xφ(x).
const geluGrad2 = (x: Tensor): Tensor => mul(scaleBy(1 / Math.sqrt(2 * Math.PI), exp(scaleBy(-0.5, square(x)))), minus(2, square(x)))
const geluGrad = fused('geluGrad', geluGrad2)
const GELU_C = Math.sqrt(2 / Math.PI)
const GELU_K = 0.044715
// With s = σ(2u), u = c(x + kx³): d/dx of s + 2x·s(1-s)·u' is s(1-s)·(4u' + 4x·u'²·(1-2s) + 12ck·x²).
const geluTanhGrad2 = (x: Tensor): Tensor => {
  const x2 = square(x)
  const du = scaleBy(GELU_C, plus(1, scaleBy(3 * GELU_K, x2)))
  const s = sigmoid(scaleBy(2 * GELU_C, add(x, scaleBy(GELU_K, mul(x2, x)))))
  const ss = mul(s, minus(1, s))
  const inner = add(add(scaleBy(4, du), mul(scaleBy(4, x), mul(square(du), minus(1, scaleBy(2, s))))), scaleBy(12 * GELU_C * GELU_K, x2))
  return mul(ss, inner)
}
const geluTanhGrad = fused('geluTanhGrad', geluTanhGrad2)

/**
 * GELU's backward in one kernel, (dy, x) ↦ dy · gelu′(x), rather than gelu′(x) then a multiply: one pass over the
 * activations and no temporary. Its own rule gives the next order: ∂/∂dy = gelu′(x), ∂/∂x = dy · gelu″(x).
 */
const geluBackward =
  (fn: 'geluBackward' | 'geluTanhBackward', first: (x: Tensor) => Tensor, second: (x: Tensor) => Tensor) =>
  (dy: Tensor, x: Tensor): Tensor =>
    runOp1(fn, Kernel.Binary, [dy, x], { fn, shape: dy.shape, dtype: dy.dtype }, (gs, { inputs }) => {
      const [d, xx] = inputs as [Tensor, Tensor]
      return [mul(gs[0]!, first(xx)), mul(gs[0]!, mul(d, second(xx)))]
    })
const geluExactBackward = geluBackward('geluBackward', x => geluGrad(x), geluGrad2)
const geluTanhBackward = geluBackward('geluTanhBackward', x => geluTanhGrad(x), geluTanhGrad2)

export const neg: UnaryOp<Exclude<DType, 'bool'>> = unary('neg', 'numeric', g(dy => neg(dy)))
export const abs: UnaryOp<Exclude<DType, 'bool'>> = unary('abs', 'numeric', g((dy, x) => mul(dy, sign(x))))
/** -1, 0 or 1 (NaN stays NaN). Not differentiable: its derivative is 0 almost everywhere, so it cuts the tape. */
export const sign: UnaryOp<Exclude<DType, 'bool'>> = unary('sign', 'numeric')
export const square: UnaryOp<Exclude<DType, 'bool'>> = unary('square', 'numeric', g((dy, x) => mul(dy, scaleBy(2, x))))
export const reciprocal: UnaryOp<FloatDType> = unary('reciprocal', 'float', g((dy, _x, y) => neg(mul(dy, mul(y, y)))))
export const exp: UnaryOp<FloatDType> = unary('exp', 'float', g((dy, _x, y) => mul(dy, y)))
export const log: UnaryOp<FloatDType> = unary('log', 'float', g((dy, x) => div(dy, x)))
export const log1p: UnaryOp<FloatDType> = unary('log1p', 'float', g((dy, x) => div(dy, plus(1, x))))
export const expm1: UnaryOp<FloatDType> = unary('expm1', 'float', g((dy, _x, y) => mul(dy, plus(1, y))))
export const sqrt: UnaryOp<FloatDType> = unary('sqrt', 'float', g((dy, _x, y) => div(dy, scaleBy(2, y))))
export const rsqrt: UnaryOp<FloatDType> = unary('rsqrt', 'float', g((dy, _x, y) => mul(dy, scaleBy(-0.5, mul(y, mul(y, y))))))
export const sin: UnaryOp<FloatDType> = unary('sin', 'float', g((dy, x) => mul(dy, cos(x))))
export const cos: UnaryOp<FloatDType> = unary('cos', 'float', g((dy, x) => neg(mul(dy, sin(x)))))
export const tanh: UnaryOp<FloatDType> = unary('tanh', 'float', g((dy, _x, y) => mul(dy, minus(1, mul(y, y)))))
export const erf: UnaryOp<FloatDType> = unary('erf', 'float', g((dy, x) => mul(dy, scaleBy(2 / Math.sqrt(Math.PI), exp(neg(square(x)))))))
export const floor: UnaryOp<FloatDType> = unary('floor', 'float')
export const ceil: UnaryOp<FloatDType> = unary('ceil', 'float')
/** Round half to even (numpy, PyTorch): round(0.5) = 0, round(1.5) = 2, round(-2.5) = -2. */
export const round: UnaryOp<FloatDType> = unary('round', 'float')
export const sigmoid: UnaryOp<FloatDType> = unary('sigmoid', 'float', g((dy, _x, y) => mul(dy, mul(y, minus(1, y)))))
/**
 * ReLU's backward in one kernel, dy where x > 0 else 0, rather than dy · step(x): one pass over the activations
 * instead of two and no mask tensor. Its own derivative masks the incoming cotangent the same way (x only gates).
 */
const reluMask = (dy: Tensor, x: Tensor): Tensor =>
  runOp1('reluGrad', Kernel.Binary, [dy, x], { fn: 'reluGrad', shape: dy.shape, dtype: dy.dtype }, (dys, { inputs }) => [reluMask(dys[0]!, inputs[1]!), null])

export const relu: UnaryOp<Exclude<DType, 'bool'>> = unary('relu', 'numeric', g((dy, x) => reluMask(dy, x)))
export const silu: UnaryOp<FloatDType> = unary('silu', 'float', g((dy, x) => mul(dy, siluGrad(x))))
export const softplus: UnaryOp<FloatDType> = unary('softplus', 'float', g((dy, x) => mul(dy, sigmoid(x))))
export const logSigmoid: UnaryOp<FloatDType> = unary('logSigmoid', 'float', g((dy, x) => mul(dy, sigmoid(neg(x)))))

const geluExact: UnaryOp<FloatDType> = unary('gelu', 'float', g((dy, x) => geluExactBackward(dy, x)))
const geluTanh: UnaryOp<FloatDType> = unary('gelu', 'float', g((dy, x) => geluTanhBackward(dy, x)), 'geluTanh')

export interface GeluOptions {
  /** 'none' (default): x·Φ(x) with the exact erf, as PyTorch; 'tanh': the tanh approximation. */
  readonly approximate?: 'none' | 'tanh'
}

/** GELU, exact (erf) by default as in PyTorch; `{ approximate: 'tanh' }` for the tanh form. */
export const gelu: <D extends DType, S extends Shape>(x: Tensor<D, S>, opts?: GeluOptions) => Tensor<D, S> = guard('gelu', {
  Tensor: (x: Tensor) => geluExact(x),
  'Tensor, undefined': (x: Tensor) => geluExact(x),
  'Tensor, Object': (x: Tensor, opts: GeluOptions) => {
    const a = opts.approximate ?? 'none'
    if (a !== 'none' && a !== 'tanh') throw new ValueError({ op: 'gelu', arg: 'approximate', expected: "'none' or 'tanh'", actual: String(a) })
    return a === 'tanh' ? geluTanh(x) : geluExact(x)
  },
})

/** Elementwise logical not of a bool tensor. */
export const logicalNot: UnaryOp<'bool'> = unary('logicalNot', 'bool')
