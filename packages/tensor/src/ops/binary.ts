import type { GradFn } from '../autodiff/tape.js'
import { isFloat, type DType, type FloatDType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel, type BinaryFn } from '../kernelContract.js'
import { broadcastShapes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { Broadcast, Check, Valid } from '../types/shapeTypes.js'
import { withConstant } from './internal.js'
import { floor, log } from './unary.js'
import { unbroadcast } from './unbroadcast.js'

/**
 * A binary elementwise op with numpy broadcasting. Two tensors must share a dtype (cast explicitly: heed never
 * promotes behind your back); a JS number adopts the tensor's dtype. Literal shapes that cannot broadcast are a
 * compile error; runtime shapes are checked at run time.
 */
export interface BinaryOp<_Allowed extends DType, Out extends DType | 'same' = 'same'> {
  <D extends DType, A extends Shape, B extends Shape>(
    a: Tensor<D, A>,
    // NoInfer: D comes from a alone, so a float32/float64 pair is a compile error instead of D = the union.
    b: Tensor<NoInfer<D>, B>,
    ...shapeCheck: Check<Broadcast<A, B>>
  ): Tensor<Out extends 'same' ? D : Out, Valid<Broadcast<A, B>>>
  <D extends DType, A extends Shape>(a: Tensor<D, A>, b: number | boolean): Tensor<Out extends 'same' ? D : Out, A>
  <D extends DType, B extends Shape>(a: number | boolean, b: Tensor<D, B>): Tensor<Out extends 'same' ? D : Out, B>
}

type Domain = 'float' | 'numeric' | 'any' | 'bool'
const inDomain = (d: DType, domain: Domain): boolean =>
  domain === 'any' || (domain === 'float' ? isFloat(d) : domain === 'bool' ? d === 'bool' : d !== 'bool')
const domainWords: Record<Domain, string> = { float: 'a float dtype', numeric: 'a numeric dtype', any: 'any dtype', bool: 'bool' }

type BinaryGrad = (dy: Tensor, a: Tensor, b: Tensor, y: Tensor) => readonly [Tensor | null, Tensor | null]

function binary<A extends DType, O extends DType | 'same' = 'same'>(name: BinaryFn, domain: Domain, outDtype: O | 'same', grad?: BinaryGrad): BinaryOp<A, O> {
  const rule: GradFn | undefined =
    grad &&
    ((dys, { inputs, outputs }) => {
      const [a, b] = inputs as [Tensor, Tensor]
      const [ga, gb] = grad(dys[0]!, a, b, outputs[0]!)
      return [ga && unbroadcast(ga, a.shape), gb && unbroadcast(gb, b.shape)]
    })
  const impl = (a: Tensor, b: Tensor): Tensor => {
    if (a.dtype !== b.dtype)
      throw new DTypeError({ op: name, arg: 'b', expected: `${a.dtype} like a`, actual: b.dtype }, 'dtypes differ (cast one explicitly)')
    if (!inDomain(a.dtype, domain)) throw new DTypeError({ op: name, arg: 'a', expected: domainWords[domain], actual: a.dtype })
    const shape = broadcastShapes(name, a.shape, b.shape)
    const out: DType | 'same' = outDtype
    const dtype = out === 'same' ? a.dtype : out
    return runOp1(name, Kernel.Binary, [a, b], { fn: name, shape, dtype }, rule)
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

export const add: BinaryOp<Numeric> = binary('add', 'numeric', 'same', dy => [dy, dy])
export const sub: BinaryOp<Numeric> = binary('sub', 'numeric', 'same', dy => [dy, neg1(dy)])
export const mul: BinaryOp<Numeric> = binary('mul', 'numeric', 'same', (dy, a, b) => [mul(dy, b), mul(dy, a)])
export const div: BinaryOp<Numeric> = binary('div', 'numeric', 'same', (dy, a, b) => {
  const ga = div(dy, b)
  return [ga, neg1(mul(ga, div(a, b)))]
})
/** a ** b. The gradient with respect to `b` is 0 where a = 0 (PyTorch's convention), not NaN. */
export const pow: BinaryOp<FloatDType> = binary('pow', 'float', 'same', (dy, a, b, y) => {
  const ga = mul(dy, mul(b, pow(a, withConstant(1, b, one => sub(b, one)))))
  // log is taken of a with its zeros replaced by 1, not masked after the fact: where() stops the value but a
  // second-order pass would still multiply the masked branch's 1/a = ∞ by a zero cotangent and get NaN.
  const zero = equalRaw(a, 0)
  const safeLog = where(zero, 0, log(where(zero, 1, a)))
  return [ga, mul(dy, mul(y, safeLog))]
})
/** Elementwise max; on ties the gradient is split evenly between a and b (as PyTorch does). */
export const maximum: BinaryOp<Numeric> = binary('maximum', 'numeric', 'same', (dy, a, b) => tieSplit(dy, a, b, 'greater'))
export const minimum: BinaryOp<Numeric> = binary('minimum', 'numeric', 'same', (dy, a, b) => tieSplit(dy, a, b, 'less'))
/** Floor modulo (result has the sign of b, as numpy's `%`). a - floor(a/b)·b, so d/da = 1, d/db = -floor(a/b). */
export const mod: BinaryOp<Numeric> = binary('mod', 'numeric', 'same', (dy, a, b) => [dy, neg1(mul(dy, floor(div(a, b))))])
export const atan2: BinaryOp<FloatDType> = binary('atan2', 'float', 'same', (dy, a, b) => {
  const den = add(mul(a, a), mul(b, b))
  return [mul(dy, div(b, den)), neg1(mul(dy, div(a, den)))]
})

export const equal: BinaryOp<DType, 'bool'> = binary('equal', 'any', 'bool')
export const notEqual: BinaryOp<DType, 'bool'> = binary('notEqual', 'any', 'bool')
export const less: BinaryOp<Numeric, 'bool'> = binary('less', 'numeric', 'bool')
export const lessEqual: BinaryOp<Numeric, 'bool'> = binary('lessEqual', 'numeric', 'bool')
export const greater: BinaryOp<Numeric, 'bool'> = binary('greater', 'numeric', 'bool')
export const greaterEqual: BinaryOp<Numeric, 'bool'> = binary('greaterEqual', 'numeric', 'bool')
export const logicalAnd: BinaryOp<'bool'> = binary('logicalAnd', 'bool', 'same')
export const logicalOr: BinaryOp<'bool'> = binary('logicalOr', 'bool', 'same')
export const logicalXor: BinaryOp<'bool'> = binary('logicalXor', 'bool', 'same')

// ---- helpers for gradient rules (raw kernels: no tape, no validation) ----

const neg1 = (t: Tensor): Tensor => runOp1('neg', Kernel.Unary, [t], { fn: 'neg' }, (dys) => [neg1(dys[0]!)])
const raw = (fn: BinaryFn, a: Tensor, b: Tensor, dtype: DType): Tensor =>
  runOp1(fn, Kernel.Binary, [a, b], { fn, shape: broadcastShapes(fn, a.shape, b.shape), dtype })
const equalRaw = (a: Tensor, v: number): Tensor => withConstant(v, a, c => raw('equal', a, c, 'bool'))

function tieSplit(dy: Tensor, a: Tensor, b: Tensor, wins: 'greater' | 'less'): [Tensor, Tensor] {
  const half = withConstant(0.5, dy, h => mul(dy, h))
  const aWins = raw(wins, a, b, 'bool')
  const tie = raw('equal', a, b, 'bool')
  const bWins = raw(wins, b, a, 'bool')
  const pick = (w: Tensor) => where(tie, half, withConstant(0, dy, z => where(w, dy, z)))
  return [pick(aWins), pick(bWins)]
}

// where lives here (not in its own module) because the gradient rules above need it without a cycle.
const whereImpl = (cond: Tensor, a: Tensor, b: Tensor): Tensor => {
  if (cond.dtype !== 'bool') throw new DTypeError({ op: 'where', arg: 'cond', expected: 'bool', actual: cond.dtype })
  if (a.dtype !== b.dtype) throw new DTypeError({ op: 'where', arg: 'b', expected: `${a.dtype} like a`, actual: b.dtype }, 'dtypes differ')
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, a.shape, ['cond', 'a']), b.shape, ['cond/a', 'b'])
  return runOp1('where', Kernel.Where, [cond, a, b], { shape }, (dys, { inputs }) => {
    const [c, x, y] = inputs as [Tensor, Tensor, Tensor]
    const dy = dys[0]!
    const ga = withConstant(0, dy, z => where(c, dy, z))
    const gb = withConstant(0, dy, z => where(c, z, dy))
    return [null, unbroadcast(ga, x.shape), unbroadcast(gb, y.shape)]
  })
}

/** Pick `a` where `cond` is true, else `b` (all three broadcast). Numbers adopt the other branch's dtype. */
export const where: <D extends DType, S extends Shape>(cond: Tensor, a: Tensor<D, S> | number, b: Tensor<D> | number) => Tensor<D> = guard('where', {
  'Tensor, Tensor, Tensor': whereImpl,
  'Tensor, Tensor, number | boolean': (c: Tensor, a: Tensor, b: number) => withConstant(b, a, k => whereImpl(c, a, k)),
  'Tensor, number | boolean, Tensor': (c: Tensor, a: number, b: Tensor) => withConstant(a, b, k => whereImpl(c, k, b)),
  'Tensor, number | boolean, number | boolean': (c: Tensor, a: number, b: number) =>
    withConstant(a, c, ka => withConstant(b, c, kb => whereImpl(c, ka, kb), 'float32'), 'float32'),
})
