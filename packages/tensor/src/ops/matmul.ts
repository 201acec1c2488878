import type { DType } from '../dtype.js'
import { ArgumentError, DTypeError, ShapeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { broadcastShapes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { MatMulShape, ShapeGuard, SwapLast, Valid } from '../types/shapeTypes.js'

export interface MatMulOptions {
  /** Multiply by `a` with its last two dims swapped (ignored when `a` is 1-D). */
  readonly transposeA?: boolean
  /** Multiply by `b` with its last two dims swapped (ignored when `b` is 1-D): `matmul(q, k, { transposeB: true })` is q·kᵀ. */
  readonly transposeB?: boolean
}

/**
 * The dtypes matmul takes (checked at run time, like the elementwise ops, so code holding a plain `Tensor` needs no
 * cast); int32 wraps around on overflow as it does in C and WGSL.
 */
export type MatMulDType = 'float32' | 'float16' | 'float64' | 'int32'

// A flag that is literally true swaps the operand's last dims; absent or false keeps them; a runtime boolean leaves
// the shape to the run-time check.
type Operand<S extends Shape, O, K extends keyof MatMulOptions> = K extends keyof O
  ? [O[K]] extends [true]
    ? SwapLast<S>
    : [O[K]] extends [false | undefined]
      ? S
      : Shape
  : S

export interface MatMul {
  <D extends DType, A extends Shape, B extends Shape>(
    a: Tensor<D, A>,
    b: Tensor<NoInfer<D>, B> & NoInfer<ShapeGuard<MatMulShape<A, B>, A, B>>,
  ): Tensor<D, Valid<MatMulShape<A, B>>>
  <D extends DType, A extends Shape, B extends Shape, const O extends MatMulOptions>(
    a: Tensor<D, A>,
    b: Tensor<NoInfer<D>, B> & NoInfer<ShapeGuard<MatMulShape<Operand<A, O, 'transposeA'>, Operand<B, O, 'transposeB'>>, Operand<A, O, 'transposeA'>, Operand<B, O, 'transposeB'>>>,
    opts: O,
  ): Tensor<D, Valid<MatMulShape<Operand<A, O, 'transposeA'>, Operand<B, O, 'transposeB'>>>>
}

const DTYPES: readonly DType[] = ['float32', 'float16', 'float64', 'int32']

/** @internal validated inputs only. int32 products are not differentiable. */
const mm = (a: Tensor, b: Tensor, transposeA: boolean, transposeB: boolean): Tensor =>
  runOp1('matmul', Kernel.MatMul, [a, b], { transposeA, transposeB }, a.dtype !== 'int32')

const isFlag = (u: unknown): u is boolean | undefined => u === undefined || typeof u === 'boolean'

function matmulImpl(a: Tensor, b: Tensor, opts: MatMulOptions = {}): Tensor {
  for (const key of Object.keys(opts))
    if (key !== 'transposeA' && key !== 'transposeB')
      throw new ArgumentError({ op: 'matmul', arg: 'opts', expected: 'options transposeA, transposeB', actual: key }, 'unknown option')
  if (!isFlag(opts.transposeA)) throw new ArgumentError({ op: 'matmul', arg: 'opts.transposeA', expected: 'a boolean', actual: typeof opts.transposeA })
  if (!isFlag(opts.transposeB)) throw new ArgumentError({ op: 'matmul', arg: 'opts.transposeB', expected: 'a boolean', actual: typeof opts.transposeB })
  if (a.dtype !== b.dtype)
    throw new DTypeError({ op: 'matmul', arg: 'b', expected: `${a.dtype} like a`, actual: b.dtype }, 'dtypes differ (cast one explicitly)')
  if (!DTYPES.includes(a.dtype)) throw new DTypeError({ op: 'matmul', arg: 'a', expected: 'float32, float16, float64 or int32', actual: a.dtype })
  if (a.rank === 0) throw new ShapeError({ op: 'matmul', arg: 'a', expected: 'rank >= 1', actual: a.shape }, 'scalars cannot be multiplied with matmul (use mul)')
  if (b.rank === 0) throw new ShapeError({ op: 'matmul', arg: 'b', expected: 'rank >= 1', actual: b.shape }, 'scalars cannot be multiplied with matmul (use mul)')
  const tA = opts.transposeA === true && a.rank >= 2
  const tB = opts.transposeB === true && b.rank >= 2
  const ka = a.shape[a.rank - (tA ? 2 : 1)]!
  const kb = b.shape[b.rank === 1 ? 0 : b.rank - (tB ? 1 : 2)]!
  if (ka !== kb) {
    const how = [tA ? 'transposeA' : '', tB ? 'transposeB' : ''].filter(s => s).join(' and ')
    throw new ShapeError({ op: 'matmul' }, `inner dims differ, a is [${a.shape.join(',')}], b is [${b.shape.join(',')}]${how ? ` (with ${how})` : ''}`)
  }
  broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2), [`a [${a.shape.join(',')}] batch dims`, `b [${b.shape.join(',')}] batch dims`])
  return mm(a, b, tA, tB)
}

/**
 * Matrix product with numpy semantics: `[..., m, k] × [..., k, n] → [..., m, n]` with broadcast batch dims; a 1-D
 * `a` is a row vector and a 1-D `b` a column vector, and the promoted dim is dropped from the result. Float
 * dtypes accumulate in float64 on the CPU. Literal shapes whose inner dims differ are a compile error.
 */
export const matmul: MatMul = guard('matmul', {
  'Tensor, Tensor': (a: Tensor, b: Tensor) => matmulImpl(a, b),
  'Tensor, Tensor, Object': matmulImpl,
})
