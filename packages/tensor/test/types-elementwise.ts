/**
 * Type-level tests: `npx tsc -p tsconfig.json` checks them. Each `@ts-expect-error` fails the type-check if the
 * error it marks disappears, and each `Equal` assertion fails it if the inferred type drifts.
 */
import t from 'tap'
import { add, clamp, exp, tensor, where, zeros, type Broadcast, type Shape, type Tensor } from '@heed/tensor'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const assertType = <T extends true>(_ok: T): void => {}

// Broadcast of literal shapes
assertType<Equal<Broadcast<readonly [2, 1], readonly [3]>, readonly [2, 3]>>(true)
assertType<Equal<Broadcast<readonly [], readonly [4, 5]>, readonly [4, 5]>>(true)
assertType<Equal<Broadcast<readonly [2, 3], readonly number[]>, Shape>>(true)
// @ts-expect-error: [2,3] and [4,3] do not broadcast, so the result is not a shape
assertType<Equal<Broadcast<readonly [2, 3], readonly [4, 3]>, readonly [4, 3]>>(true)

t.test('types', async t => {
  const m = tensor([[1, 2], [3, 4]])
  assertType<Equal<typeof m, Tensor<'float32', readonly [2, 2]>>>(true)
  const b = tensor([true, false])
  assertType<Equal<typeof b, Tensor<'bool', readonly [2]>>>(true)
  const f64 = tensor(new Float64Array(6), [2, 3])
  assertType<Equal<typeof f64, Tensor<'float64', readonly [2, 3]>>>(true)

  const a = zeros([2, 3])
  const c = zeros([4, 3])
  const r = zeros([2, 1])
  const s = zeros([3])
  // @ts-expect-error: literal shapes [2,3] and [4,3] cannot broadcast
  t.throws(() => add(a, c))
  const sum = add(r, s)
  assertType<Equal<typeof sum, Tensor<'float32', readonly [2, 3]>>>(true)
  const withNumber = add(a, 1)
  assertType<Equal<typeof withNumber, Tensor<'float32', readonly [2, 3]>>>(true)
  const e = exp(a)
  assertType<Equal<typeof e, Tensor<'float32', readonly [2, 3]>>>(true)
  const cl = clamp(a, 0, 1)
  assertType<Equal<typeof cl, Tensor<'float32', readonly [2, 3]>>>(true)
  const d64 = zeros([2, 3], { dtype: 'float64' })
  // @ts-expect-error: dtypes must match
  t.throws(() => add(a, d64))
  const w = where(b, 1, 2)
  t.same(sum.shape, [2, 3])
  for (const x of [m, b, f64, a, c, r, s, sum, withNumber, e, cl, d64, w]) x.dispose()
})
