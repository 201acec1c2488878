/**
 * Compile-time shape checks of matmul. `tsc` fails on an unused `@ts-expect-error`, so each one below proves that
 * the call is a compile error; the same calls are also rejected at run time.
 */
import t from 'tap'
import { matmul, memory, ShapeError, zeros, type Shape, type Tensor } from '@heed/tensor'
import type { MatMulShape, ShapeMismatch } from '../src/types/shapeTypes.js'

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends <T>() => T extends Y ? 1 : 2 ? true : false
const expectType = <T extends true>(_ok: T): void => {}

// Pure type-level results.
expectType<Equal<MatMulShape<readonly [2, 3], readonly [3, 4]>, readonly [2, 4]>>(true)
expectType<Equal<MatMulShape<readonly [5, 1, 2, 3], readonly [7, 3, 4]>, readonly [5, 7, 2, 4]>>(true)
expectType<Equal<MatMulShape<readonly [3], readonly [3]>, readonly []>>(true)
expectType<Equal<MatMulShape<readonly [3], readonly [8, 3, 4]>, readonly [8, 4]>>(true)
expectType<Equal<MatMulShape<readonly [8, 2, 3], readonly [3]>, readonly [8, 2]>>(true)
expectType<Equal<MatMulShape<readonly [2, 3], readonly [4, 5]>, ShapeMismatch<'matmul: inner dims differ'>>>(true)
expectType<Equal<MatMulShape<readonly [2, 2, 3], readonly [3, 3, 4]>, ShapeMismatch<'matmul: batch dims are not broadcastable'>>>(true)
expectType<Equal<MatMulShape<readonly [], readonly [3]>, ShapeMismatch<'matmul: operands need rank >= 1'>>>(true)
// Runtime shapes (or runtime dims) fall back to a runtime check.
expectType<Equal<MatMulShape<Shape, readonly [3, 4]>, Shape>>(true)
expectType<Equal<MatMulShape<readonly [2, number], readonly [3, 4]>, readonly [2, 4]>>(true)

t.test('literal shapes give literal results and mismatches are compile errors', async t => {
  const base = memory().tensors
  const a = zeros([2, 3])
  const b = zeros([3, 4])
  const c: Tensor<'float32', readonly [2, 4]> = matmul(a, b)
  t.same(c.shape, [2, 4])
  const bb = zeros([5, 3, 4])
  const d: Tensor<'float32', readonly [5, 2, 4]> = matmul(a, bb)
  t.same(d.shape, [5, 2, 4])
  const e: Tensor<'float32', readonly [2, 2]> = matmul(a, a, { transposeB: true })
  t.same(e.shape, [2, 2])
  const f: Tensor<'float32', readonly [3, 3]> = matmul(a, a, { transposeA: true })
  t.same(f.shape, [3, 3])

  const wrong = zeros([4, 5])
  // @ts-expect-error inner dims 3 and 4 differ
  t.throws(() => matmul(a, wrong), ShapeError)
  // @ts-expect-error q·k without the transpose: [2,3] × [2,3]
  t.throws(() => matmul(a, a), ShapeError)
  // @ts-expect-error the transpose makes the inner dims 2 and 4
  t.throws(() => matmul(a, b, { transposeA: true }), ShapeError)
  const v = zeros([4])
  // @ts-expect-error vector of 4 against a [2,3] matrix
  t.throws(() => matmul(a, v), ShapeError)
  const batchA = zeros([2, 2, 3])
  const batchB = zeros([3, 3, 4])
  // @ts-expect-error batch dims 2 and 3 do not broadcast
  t.throws(() => matmul(batchA, batchB), ShapeError)
  const f64 = zeros([3, 4], { dtype: 'float64' })
  // @ts-expect-error dtypes differ
  t.throws(() => matmul(a, f64))

  for (const x of [a, b, c, bb, d, e, f, wrong, v, batchA, batchB, f64]) x.dispose()
  t.equal(memory().tensors, base)
})
