import type { Attrs } from '../../../backend.js'
import type { DType } from '../../../dtype.js'
import { erf, erfc } from '../../../math/erf.js'
import type { Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'
import { allocArray } from '../../../dtype.js'
import { sizeOf } from '../../../shape.js'
import { broadcastOffsets, mapBinary, mapTernary, mapUnary } from '../util.js'
import { broadcastPattern } from '../broadcastPattern.js'
import { float32Binary } from '../float32Binary.js'
import { float32Unary } from '../float32Unary.js'
import { float32Gelu, float32GeluBackward } from '../float32Gelu.js'

const SQRT1_2 = Math.SQRT1_2
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI)
const GELU_C = Math.sqrt(2 / Math.PI)
const GELU_K = 0.044715
const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))
const softplus = (x: number): number => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)))
// Φ(x) = ½·erfc(-x/√2): for x ≪ 0 the form ½(1 + erf) cancels to 0 long before Φ underflows.
const normalCdf = (x: number): number => 0.5 * erfc(-x * SQRT1_2)

/** Scalar functions behind the `Unary` kernel; the op layer decides which are public and their gradients. */
export const unaryFns: Readonly<Record<string, (x: number) => number>> = {
  neg: x => -x,
  abs: Math.abs,
  sign: x => (x > 0 ? 1 : x < 0 ? -1 : x),
  square: x => x * x,
  reciprocal: x => 1 / x,
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  expm1: Math.expm1,
  sqrt: Math.sqrt,
  rsqrt: x => 1 / Math.sqrt(x),
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  erf,
  floor: Math.floor,
  ceil: Math.ceil,
  round: x => {
    // round half to even, as numpy and torch do
    const r = Math.round(x)
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
  },
  sigmoid,
  relu: x => (x > 0 ? x : 0),
  step: x => (x > 0 ? 1 : 0),
  gelu: x => x * normalCdf(x),
  geluGrad: x => normalCdf(x) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x),
  // ½(1 + tanh u) = σ(2u): the σ form keeps the tail for x ≪ 0 where 1 + tanh u cancels to 0.
  geluTanh: x => x * sigmoid(2 * GELU_C * (x + GELU_K * x * x * x)),
  geluTanhGrad: x => {
    const s = sigmoid(2 * GELU_C * (x + GELU_K * x * x * x))
    return s + 2 * x * s * (1 - s) * GELU_C * (1 + 3 * GELU_K * x * x)
  },
  silu: x => x * sigmoid(x),
  siluGrad: x => {
    const s = sigmoid(x)
    return s * (1 + x * (1 - s))
  },
  softplus,
  logSigmoid: x => -softplus(-x),
  logicalNot: x => (x ? 0 : 1),
  isNaN: x => (Number.isNaN(x) ? 1 : 0),
  isFinite: x => (Number.isFinite(x) ? 1 : 0),
}

const trunc32 = (dtype: DType, f: (a: number, b: number) => number) =>
  dtype === 'int32' ? (a: number, b: number) => f(a, b) | 0 : dtype === 'uint32' ? (a: number, b: number) => f(a, b) >>> 0 : f

/** Scalar functions behind the `Binary` kernel. Integer `div` truncates toward zero, as C and WGSL do. */
export const binaryFns: Readonly<Record<string, (a: number, b: number) => number>> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => a ** b,
  maximum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)),
  minimum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)),
  mod: (a, b) => a - Math.floor(a / b) * b,
  atan2: Math.atan2,
  equal: (a, b) => (a === b ? 1 : 0),
  notEqual: (a, b) => (a !== b ? 1 : 0),
  less: (a, b) => (a < b ? 1 : 0),
  lessEqual: (a, b) => (a <= b ? 1 : 0),
  greater: (a, b) => (a > b ? 1 : 0),
  greaterEqual: (a, b) => (a >= b ? 1 : 0),
  logicalAnd: (a, b) => (a && b ? 1 : 0),
  logicalOr: (a, b) => (a || b ? 1 : 0),
  logicalXor: (a, b) => ((a ? 1 : 0) ^ (b ? 1 : 0)),
  // ReLU's gradient in one pass, (dy, x) ↦ dy where x > 0, else 0: as PyTorch's threshold_backward, a NaN or
  // infinite dy where x ≤ 0 gives 0 (dy · step(x) would give NaN)
  reluGrad: (dy, x) => (x > 0 ? dy : 0),
  // GELU's backward in one pass, (dy, x) ↦ dy · gelu′(x), exact and tanh forms
  geluBackward: (dy, x) => dy * unaryFns.geluGrad!(x),
  geluTanhBackward: (dy, x) => dy * unaryFns.geluTanhGrad!(x),
}

// Integer products can exceed 2^53 before wrapping, so a float multiply would lose the low bits that
// two's-complement wrap-around keeps; Math.imul is the exact 32-bit product.
const intMul = (dtype: DType) => (dtype === 'uint32' ? (a: number, b: number) => Math.imul(a, b) >>> 0 : (a: number, b: number) => Math.imul(a, b))
const isIntDType = (d: DType): boolean => d === 'int32' || d === 'uint32'

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

export const elementwiseKernels = {
  /** attrs: fn (a key of unaryFns), dtype (output dtype; defaults to the input's). */
  Unary: ([x], attrs) => {
    const fn = attr<string>(attrs, 'fn')
    const dtype = attr<DType | undefined>(attrs, 'dtype') ?? x!.dtype
    const fast = dtype === 'float32' ? (float32Gelu(fn, x!) ?? float32Unary(fn, x!)) : undefined
    if (fast) return fast
    const f = fn === 'square' && isIntDType(x!.dtype) ? (v: number) => intMul(x!.dtype)(v, v) : unaryFns[fn]!
    return mapUnary(x!, dtype, f)
  },
  /** attrs: fn (a key of binaryFns), shape (broadcast output shape), dtype (output dtype). */
  Binary: ([a, b], attrs) => {
    const dtype = attr<DType>(attrs, 'dtype')
    const name = attr<string>(attrs, 'fn')
    const shape = attr<Shape>(attrs, 'shape')
    const fast = dtype === 'float32' ? (float32GeluBackward(name, a!, b!) ?? float32Binary(name, a!, b!, shape)) : undefined
    if (fast) return fast
    const fn = binaryFns[name]!
    const f = !isIntDType(a!.dtype) ? fn : name === 'mul' ? intMul(a!.dtype) : trunc32(dtype, fn)
    return mapBinary(a!, b!, shape, dtype, f)
  },
  /** where(cond, a, b); attrs: shape. */
  Where: ([c, a, b], attrs) => mapTernary(c!, a!, b!, attr<Shape>(attrs, 'shape'), a!.dtype, (p, x, y) => (p ? x : y)),
  /**
   * clamp(x, lo, hi) = min(max(x, lo), hi), so lo > hi gives hi (as numpy and PyTorch). NaN in any operand
   * propagates. attrs: shape.
   */
  Clamp: ([x, lo, hi], attrs) =>
    mapTernary(x!, lo!, hi!, attr<Shape>(attrs, 'shape'), x!.dtype, (v, l, h) =>
      Number.isNaN(v) || Number.isNaN(l) || Number.isNaN(h) ? NaN : Math.min(Math.max(v, l), h),
    ),
  /** Cast; attrs: dtype. Float→int truncates toward zero; anything→bool is `x != 0`. */
  Cast: ([x], attrs) => {
    const dtype = attr<DType>(attrs, 'dtype')
    const f = dtype === 'bool' ? (v: number) => (v !== 0 && !Number.isNaN(v) ? 1 : 0) : (v: number) => v
    return mapUnary(x!, dtype, f)
  },
  /** Shares the input's storage (stopGradient, views). */
  Identity: ([x]) => x!,
  /** Materialised broadcast; attrs: shape. */
  BroadcastTo: ([x], attrs) => {
    const shape = attr<Shape>(attrs, 'shape')
    const n = sizeOf(shape)
    const out = allocArray(x!.dtype, n)
    // the common patterns as block copies and fills (a bias row, a column, a scalar gradient spread over a batch)
    const p = broadcastPattern(x!.shape, shape)
    const xv = x!.values
    if (p?.kind === 'full') out.set(xv)
    else if (p?.kind === 'scalar') out.fill(n > 0 ? xv[0]! : 0)
    else if (p?.kind === 'inner') for (let o = 0; o < n; o += p.period) out.set(xv, o)
    else if (p?.kind === 'outer') for (let o = 0, r = 0; o < n; o += p.period, r++) out.fill(xv[r]!, o, o + p.period)
    if (p) return { values: out, shape, dtype: x!.dtype }
    const idx = broadcastOffsets(x!.shape, shape)
    for (let i = 0; i < n; i++) out[i] = x!.values[idx ? idx[i]! : i]!
    return { values: out, shape, dtype: x!.dtype }
  },
  /** Shares storage under a new shape of the same size. attrs: shape. */
  Reshape: ([x], attrs): CpuTensor => ({ values: x!.values, shape: attr<Shape>(attrs, 'shape'), dtype: x!.dtype }),
} satisfies Partial<CpuKernelTable>
