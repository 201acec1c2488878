import type { GradFn } from '../autodiff/tape.js'
import { isFloat, type DType, type FloatDType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { runOp1 } from '../op.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { add, div, mul, sub } from './binary.js'
import { withConstant } from './internal.js'

/** A unary elementwise op: same shape and dtype out. */
// `Allowed` documents the dtypes accepted; it is checked at run time (a DTypeError), not in the type.
export type UnaryOp<_Allowed extends DType = DType> = <D extends DType, S extends Shape>(x: Tensor<D, S>) => Tensor<D, S>

type Domain = 'float' | 'numeric' | 'any'

/** @internal raw elementwise function without a gradient (used inside gradient rules). */
export const unaryRaw = (fn: string, x: Tensor): Tensor => runOp1(fn, 'Unary', [x], { fn })

function unary<A extends DType>(name: string, domain: Domain, grad?: GradFn): UnaryOp<A> {
  const impl = (x: Tensor): Tensor => {
    if ((domain === 'float' && !isFloat(x.dtype)) || (domain === 'numeric' && x.dtype === 'bool'))
      throw new DTypeError({ op: name, arg: 'x', expected: domain === 'float' ? 'a float dtype (cast first)' : 'a numeric dtype', actual: x.dtype })
    return runOp1(name, 'Unary', [x], { fn: name }, grad)
  }
  return guard(name, { Tensor: impl })
}

// Gradient rules take (dy, x, y) from the saved tensors and are written with public ops.
const g =
  (f: (dy: Tensor, x: Tensor, y: Tensor) => Tensor): GradFn =>
  (dys, { inputs, outputs }) => [f(dys[0]!, inputs[0]!, outputs[0]!)]

const scaleBy = (c: number, t: Tensor): Tensor => withConstant(c, t, k => mul(t, k))
const plus = (c: number, t: Tensor): Tensor => withConstant(c, t, k => add(t, k))

export const neg: UnaryOp<Exclude<DType, 'bool'>> = unary('neg', 'numeric', g(dy => neg(dy)))
export const abs: UnaryOp<Exclude<DType, 'bool'>> = unary('abs', 'numeric', g((dy, x) => mul(dy, unaryRaw('sign', x))))
export const sign: UnaryOp<Exclude<DType, 'bool'>> = unary('sign', 'numeric')
export const square: UnaryOp<Exclude<DType, 'bool'>> = unary('square', 'numeric', g((dy, x) => mul(dy, scaleBy(2, x))))
export const reciprocal: UnaryOp<FloatDType> = unary('reciprocal', 'float', g((dy, _x, y) => neg(mul(dy, mul(y, y)))))
export const exp: UnaryOp<FloatDType> = unary('exp', 'float', g((dy, _x, y) => mul(dy, y)))
export const log: UnaryOp<FloatDType> = unary('log', 'float', g((dy, x) => div(dy, x)))
export const log1p: UnaryOp<FloatDType> = unary('log1p', 'float', g((dy, x) => div(dy, plus(1, x))))
export const expm1: UnaryOp<FloatDType> = unary('expm1', 'float', g((dy, _x, y) => mul(dy, plus(1, y))))
export const sqrt: UnaryOp<FloatDType> = unary('sqrt', 'float', g((dy, _x, y) => div(dy, scaleBy(2, y))))
export const rsqrt: UnaryOp<FloatDType> = unary('rsqrt', 'float', g((dy, _x, y) => mul(dy, scaleBy(-0.5, mul(y, mul(y, y))))))
export const sin: UnaryOp<FloatDType> = unary('sin', 'float', g((dy, x) => mul(dy, unaryRaw('cos', x))))
export const cos: UnaryOp<FloatDType> = unary('cos', 'float', g((dy, x) => neg(mul(dy, unaryRaw('sin', x)))))
export const tanh: UnaryOp<FloatDType> = unary('tanh', 'float', g((dy, _x, y) => mul(dy, withConstant(1, y, one => sub(one, mul(y, y))))))
export const erf: UnaryOp<FloatDType> = unary(
  'erf',
  'float',
  g((dy, x) => mul(dy, scaleBy(2 / Math.sqrt(Math.PI), unaryRaw('exp', neg(mul(x, x)))))),
)
export const floor: UnaryOp<FloatDType> = unary('floor', 'float')
export const ceil: UnaryOp<FloatDType> = unary('ceil', 'float')
export const round: UnaryOp<FloatDType> = unary('round', 'float')
export const sigmoid: UnaryOp<FloatDType> = unary(
  'sigmoid',
  'float',
  g((dy, _x, y) => mul(dy, mul(y, withConstant(1, y, one => sub(one, y))))),
)
export const relu: UnaryOp<Exclude<DType, 'bool'>> = unary('relu', 'numeric', g((dy, x) => mul(dy, unaryRaw('step', x))))
export const silu: UnaryOp<FloatDType> = unary('silu', 'float', g((dy, x) => mul(dy, unaryRaw('siluGrad', x))))
export const softplus: UnaryOp<FloatDType> = unary('softplus', 'float', g((dy, x) => mul(dy, unaryRaw('sigmoid', x))))
export const logSigmoid: UnaryOp<FloatDType> = unary('logSigmoid', 'float', g((dy, x) => mul(dy, unaryRaw('sigmoid', neg(x)))))

const geluExact: UnaryOp<FloatDType> = unary('gelu', 'float', g((dy, x) => mul(dy, unaryRaw('geluGrad', x))))
const geluTanh: UnaryOp<FloatDType> = unary('geluTanh', 'float', g((dy, x) => mul(dy, unaryRaw('geluTanhGrad', x))))

/** GELU, exact (erf) by default as in PyTorch; `{ approximate: 'tanh' }` for the tanh form. */
export function gelu<D extends DType, S extends Shape>(x: Tensor<D, S>, opts: { readonly approximate?: 'none' | 'tanh' } = {}): Tensor<D, S> {
  return opts.approximate === 'tanh' ? geluTanh(x) : geluExact(x)
}

/** Elementwise logical not of a bool tensor. */
export const logicalNot: UnaryOp<'bool'> = unary('logicalNot', 'any')
