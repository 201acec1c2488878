import { isFloat, type DType, type FloatDType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel, type BinaryFn } from '../kernelContract.js'
import { broadcastShapes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { Broadcast, ShapeGuard, Valid } from '../types/shapeTypes.js'
import { withConstant } from './internal.js'

/**
 * A binary elementwise op with numpy broadcasting. Two tensors must share a dtype (cast explicitly: heed never
 * promotes behind your back); a JS number adopts the tensor's dtype. Literal shapes that cannot broadcast are a
 * compile error; runtime shapes are checked at run time.
 */
export interface BinaryOp<_Allowed extends DType, Out extends DType | 'same' = 'same'> {
  <D extends DType, A extends Shape, B extends Shape>(
    a: Tensor<D, A>,
    // NoInfer: D comes from a alone, so a float32/float64 pair is a compile error instead of D = the union.
    b: Tensor<NoInfer<D>, B> & NoInfer<ShapeGuard<Broadcast<A, B>, A, B>>,
  ): Tensor<Out extends 'same' ? D : Out, Valid<Broadcast<A, B>>>
  <D extends DType, A extends Shape>(a: Tensor<D, A>, b: number | boolean): Tensor<Out extends 'same' ? D : Out, A>
  <D extends DType, B extends Shape>(a: number | boolean, b: Tensor<D, B>): Tensor<Out extends 'same' ? D : Out, B>
}

type Domain = 'float' | 'numeric' | 'any' | 'bool'
const inDomain = (d: DType, domain: Domain): boolean =>
  domain === 'any' || (domain === 'float' ? isFloat(d) : domain === 'bool' ? d === 'bool' : d !== 'bool')
const domainWords: Record<Domain, string> = { float: 'a float dtype', numeric: 'a numeric dtype', any: 'any dtype', bool: 'bool' }

/** `differentiable`: recorded on the tape, the rule being the Binary entry for `name` in src/gradients/. */
function binary<A extends DType, O extends DType | 'same' = 'same'>(name: BinaryFn, domain: Domain, outDtype: O | 'same', differentiable = false): BinaryOp<A, O> {
  const impl = (a: Tensor, b: Tensor): Tensor => {
    if (a.dtype !== b.dtype)
      throw new DTypeError({ op: name, arg: 'b', expected: `${a.dtype} like a`, actual: b.dtype }, 'dtypes differ (cast one explicitly)')
    if (!inDomain(a.dtype, domain)) throw new DTypeError({ op: name, arg: 'a', expected: domainWords[domain], actual: a.dtype })
    const shape = broadcastShapes(name, a.shape, b.shape)
    const out: DType | 'same' = outDtype
    const dtype = out === 'same' ? a.dtype : out
    return runOp1(name, Kernel.Binary, [a, b], { fn: name, shape, dtype }, differentiable)
  }
  return guard(name, {
    'Tensor, Tensor': impl,
    'Tensor, number | boolean': (a: Tensor, b: number | boolean) => withConstant(checkScalar(name, 'b', b, a), a, c => impl(a, c)),
    'number | boolean, Tensor': (a: number | boolean, b: Tensor) => withConstant(checkScalar(name, 'a', a, b), b, c => impl(c, b)),
  })
}

/**
 * A JS number adopts the tensor's dtype, so it must be representable there: `add(int32, 2.5)` would otherwise
 * silently add 2, and `sub(uint32, -1)` would add 2^32 - 1.
 */
function checkScalar(op: string, arg: string, v: number | boolean, like: Tensor): number | boolean {
  if (typeof v === 'boolean' || isFloat(like.dtype) || like.dtype === 'bool') return v
  const [lo, hi] = like.dtype === 'uint32' ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1]
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new DTypeError({ op, arg, expected: `an integer in [${lo}, ${hi}] to combine with ${like.dtype}`, actual: v }, 'number does not fit the tensor dtype')
  return v
}

type Numeric = Exclude<DType, 'bool'>

export const add: BinaryOp<Numeric> = binary('add', 'numeric', 'same', true)
export const sub: BinaryOp<Numeric> = binary('sub', 'numeric', 'same', true)
export const mul: BinaryOp<Numeric> = binary('mul', 'numeric', 'same', true)
export const div: BinaryOp<Numeric> = binary('div', 'numeric', 'same', true)
/** a ** b. The gradient with respect to `b` is 0 where a = 0 (PyTorch's convention), not NaN. */
export const pow: BinaryOp<FloatDType> = binary('pow', 'float', 'same', true)
/** Elementwise max; on ties the gradient is split evenly between a and b (as PyTorch does). */
export const maximum: BinaryOp<Numeric> = binary('maximum', 'numeric', 'same', true)
export const minimum: BinaryOp<Numeric> = binary('minimum', 'numeric', 'same', true)
/** Floor modulo (result has the sign of b, as numpy's `%`). a - floor(a/b)·b, so d/da = 1, d/db = -floor(a/b). */
export const mod: BinaryOp<Numeric> = binary('mod', 'numeric', 'same', true)
export const atan2: BinaryOp<FloatDType> = binary('atan2', 'float', 'same', true)

export const equal: BinaryOp<DType, 'bool'> = binary('equal', 'any', 'bool')
export const notEqual: BinaryOp<DType, 'bool'> = binary('notEqual', 'any', 'bool')
export const less: BinaryOp<Numeric, 'bool'> = binary('less', 'numeric', 'bool')
export const lessEqual: BinaryOp<Numeric, 'bool'> = binary('lessEqual', 'numeric', 'bool')
export const greater: BinaryOp<Numeric, 'bool'> = binary('greater', 'numeric', 'bool')
export const greaterEqual: BinaryOp<Numeric, 'bool'> = binary('greaterEqual', 'numeric', 'bool')
export const logicalAnd: BinaryOp<'bool'> = binary('logicalAnd', 'bool', 'same')
export const logicalOr: BinaryOp<'bool'> = binary('logicalOr', 'bool', 'same')
export const logicalXor: BinaryOp<'bool'> = binary('logicalXor', 'bool', 'same')
