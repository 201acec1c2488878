import type { GradFn } from '../autodiff/tape.js'
import type { DType } from '../dtype.js'
import { ArgumentError, DTypeError, ShapeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { broadcastShapes, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import type { Check, MatMulShape, SwapLast, Valid } from '../types/shapeTypes.js'
import { reshape } from './reshape.js'
import { unbroadcast } from './unbroadcast.js'

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
    b: Tensor<NoInfer<D>, B>,
    ...shapeCheck: Check<MatMulShape<A, B>>
  ): Tensor<D, Valid<MatMulShape<A, B>>>
  <D extends DType, A extends Shape, B extends Shape, const O extends MatMulOptions>(
    a: Tensor<D, A>,
    b: Tensor<NoInfer<D>, B>,
    opts: O,
    ...shapeCheck: Check<MatMulShape<Operand<A, O, 'transposeA'>, Operand<B, O, 'transposeB'>>>
  ): Tensor<D, Valid<MatMulShape<Operand<A, O, 'transposeA'>, Operand<B, O, 'transposeB'>>>>
}

const DTYPES: readonly DType[] = ['float32', 'float16', 'float64', 'int32']

/**
 * VJP of y = op(A)·op(B) (op = optional transpose), written on the promoted matrices: a 1-D `a` is [1, k], a 1-D
 * `b` is [k, 1], and the cotangent gets those dims back. Each product below is the usual dA = dY·Bᵀ, dB = Aᵀ·dY
 * rearranged so that no transposed copy is made outside the kernel; unbroadcast sums over broadcast batch dims.
 */
const matmulGrad: GradFn = (dys, { inputs, attrs, needs }) => {
  const a = inputs[0]!
  const b = inputs[1]!
  const dy = dys[0]!
  const a1 = a.rank === 1
  const b1 = b.rank === 1
  const tA = attrs['transposeA'] === true && !a1
  const tB = attrs['transposeB'] === true && !b1
  const a2 = a1 ? reshape(a, [1, a.shape[0]!]) : a
  const b2 = b1 ? reshape(b, [b.shape[0]!, 1]) : b
  const batch = dy.shape.slice(0, dy.rank - (a1 ? 0 : 1) - (b1 ? 0 : 1))
  const m = a1 ? 1 : dy.shape[batch.length]!
  const n = b1 ? 1 : dy.shape[dy.rank - 1]!
  const g = a1 || b1 ? reshape(dy, [...batch, m, n]) : dy
  // a product per operand, and each is as large as the forward one: skip the operand nothing differentiates
  const wantA = needs?.[0] ?? true
  const wantB = needs?.[1] ?? true
  let ga: Tensor | null = null
  let gb: Tensor | null = null
  if (!tA && !tB) {
    if (wantA) ga = mm(g, b2, false, true)
    if (wantB) gb = mm(a2, g, true, false)
  } else if (!tA && tB) {
    if (wantA) ga = mm(g, b2, false, false)
    if (wantB) gb = mm(g, a2, true, false)
  } else if (tA && !tB) {
    if (wantA) ga = mm(b2, g, false, true)
    if (wantB) gb = mm(a2, g, false, false)
  } else {
    if (wantA) ga = mm(b2, g, true, true)
    if (wantB) gb = mm(g, a2, true, true)
  }
  if (ga) ga = unbroadcast(ga, a2.shape)
  if (gb) gb = unbroadcast(gb, b2.shape)
  return [ga && (a1 ? reshape(ga, a.shape) : ga), gb && (b1 ? reshape(gb, b.shape) : gb)]
}

/** @internal validated inputs only. Records the gradient (itself made of matmuls, so higher orders work). */
const mm = (a: Tensor, b: Tensor, transposeA: boolean, transposeB: boolean): Tensor =>
  runOp1('matmul', Kernel.MatMul, [a, b], { transposeA, transposeB }, a.dtype === 'int32' ? undefined : matmulGrad)

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
