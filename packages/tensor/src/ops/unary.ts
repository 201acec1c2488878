import { isFloat, type DType, type FloatDType } from '../dtype.js'
import { DTypeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel, type UnaryFn } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { knownOptions } from '../validate.js'

/** A unary elementwise op: same shape and dtype out. */
// `Allowed` documents the dtypes accepted; it is checked at run time (a DTypeError), not in the type.
export type UnaryOp<_Allowed extends DType = DType> = <D extends DType, S extends Shape>(x: Tensor<D, S>) => Tensor<D, S>

type Domain = 'float' | 'numeric' | 'bool'
const domainWords: Record<Domain, string> = { float: 'a float dtype (cast first)', numeric: 'a numeric dtype', bool: 'bool' }
const inDomain = (d: DType, domain: Domain): boolean => (domain === 'float' ? isFloat(d) : domain === 'bool' ? d === 'bool' : d !== 'bool')

/** `differentiable`: recorded on the tape, the rule being the Unary entry for `fn` in src/gradients/. */
function unary<A extends DType>(name: UnaryFn, domain: Domain, differentiable: boolean, fn: UnaryFn = name): UnaryOp<A> {
  const impl = (x: Tensor): Tensor => {
    if (!inDomain(x.dtype, domain)) throw new DTypeError({ op: name, arg: 'x', expected: domainWords[domain], actual: x.dtype })
    return runOp1(name, Kernel.Unary, [x], { fn }, differentiable)
  }
  return guard(name, { Tensor: impl })
}

export const neg: UnaryOp<Exclude<DType, 'bool'>> = unary('neg', 'numeric', true)
export const abs: UnaryOp<Exclude<DType, 'bool'>> = unary('abs', 'numeric', true)
/** -1, 0 or 1 (NaN stays NaN). Not differentiable: its derivative is 0 almost everywhere, so it cuts the tape. */
export const sign: UnaryOp<Exclude<DType, 'bool'>> = unary('sign', 'numeric', false)
export const square: UnaryOp<Exclude<DType, 'bool'>> = unary('square', 'numeric', true)
export const reciprocal: UnaryOp<FloatDType> = unary('reciprocal', 'float', true)
export const exp: UnaryOp<FloatDType> = unary('exp', 'float', true)
export const log: UnaryOp<FloatDType> = unary('log', 'float', true)
export const log1p: UnaryOp<FloatDType> = unary('log1p', 'float', true)
export const expm1: UnaryOp<FloatDType> = unary('expm1', 'float', true)
export const sqrt: UnaryOp<FloatDType> = unary('sqrt', 'float', true)
export const rsqrt: UnaryOp<FloatDType> = unary('rsqrt', 'float', true)
export const sin: UnaryOp<FloatDType> = unary('sin', 'float', true)
export const cos: UnaryOp<FloatDType> = unary('cos', 'float', true)
export const tanh: UnaryOp<FloatDType> = unary('tanh', 'float', true)
export const erf: UnaryOp<FloatDType> = unary('erf', 'float', true)
export const floor: UnaryOp<FloatDType> = unary('floor', 'float', false)
export const ceil: UnaryOp<FloatDType> = unary('ceil', 'float', false)
/** Round half to even (numpy, PyTorch): round(0.5) = 0, round(1.5) = 2, round(-2.5) = -2. */
export const round: UnaryOp<FloatDType> = unary('round', 'float', false)
export const sigmoid: UnaryOp<FloatDType> = unary('sigmoid', 'float', true)
export const relu: UnaryOp<Exclude<DType, 'bool'>> = unary('relu', 'numeric', true)
export const silu: UnaryOp<FloatDType> = unary('silu', 'float', true)
export const softplus: UnaryOp<FloatDType> = unary('softplus', 'float', true)
export const logSigmoid: UnaryOp<FloatDType> = unary('logSigmoid', 'float', true)

const geluExact: UnaryOp<FloatDType> = unary('gelu', 'float', true)
const geluTanh: UnaryOp<FloatDType> = unary('gelu', 'float', true, 'geluTanh')

export interface GeluOptions {
  /** 'none' (default): x·Φ(x) with the exact erf, as PyTorch; 'tanh': the tanh approximation. */
  readonly approximate?: 'none' | 'tanh'
}

const GELU_KEYS: Record<keyof GeluOptions, true> = { approximate: true }
const GELU_OPTIONS = Object.keys(GELU_KEYS)

/** GELU, exact (erf) by default as in PyTorch; `{ approximate: 'tanh' }` for the tanh form. */
export const gelu: <D extends DType, S extends Shape>(x: Tensor<D, S>, opts?: GeluOptions) => Tensor<D, S> = guard('gelu', {
  Tensor: (x: Tensor) => geluExact(x),
  'Tensor, undefined': (x: Tensor) => geluExact(x),
  'Tensor, Object': (x: Tensor, opts: GeluOptions) => {
    knownOptions('gelu', opts, GELU_OPTIONS)
    const a = opts.approximate ?? 'none'
    if (a !== 'none' && a !== 'tanh') throw new ValueError({ op: 'gelu', arg: 'approximate', expected: "'none' or 'tanh'", actual: String(a) })
    return a === 'tanh' ? geluTanh(x) : geluExact(x)
  },
})

/** Elementwise logical not of a bool tensor. */
export const logicalNot: UnaryOp<'bool'> = unary('logicalNot', 'bool', false)
