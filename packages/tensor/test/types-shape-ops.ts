/**
 * Type-level tests of the shape ops. `npx tsc -p tsconfig.json` is the real test: each `@ts-expect-error` must
 * meet an error (an unused one fails the type-check) and each `Expect<Equal<…>>` must hold. At run time the
 * same calls are checked to throw or to give the shapes the types promise.
 */
import t from 'tap'
import { AxisError, ShapeError, dispose, expandDims, permute, squeeze, tensor, transpose, type Shape, type Tensor } from '@heed/tensor'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
type Expect<T extends true> = T
type ShapeOfT<X> = X extends Tensor<infer _D, infer S> ? S : never

t.test('literal result shapes', async t => {
  const x = tensor([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]]) // [2, 3, 4]
  const tr = transpose(x)
  const pm = permute(x, [1, 2, 0])
  const tp = transpose(x, [0, 2, 1])
  const e0 = expandDims(x, 0)
  const e2 = expandDims(x, 2)
  const eLast = expandDims(x, -1)
  const m = tensor([[1, 2, 3]]) // [1, 3]
  const sq = squeeze(m)
  const sq0 = squeeze(m, 0)
  type _cases = [
    Expect<Equal<ShapeOfT<typeof x>, readonly [2, 3, 4]>>,
    Expect<Equal<ShapeOfT<typeof tr>, readonly [4, 3, 2]>>,
    Expect<Equal<ShapeOfT<typeof pm>, readonly [3, 4, 2]>>,
    Expect<Equal<ShapeOfT<typeof tp>, readonly [2, 4, 3]>>,
    Expect<Equal<ShapeOfT<typeof e0>, readonly [1, 2, 3, 4]>>,
    Expect<Equal<ShapeOfT<typeof e2>, readonly [2, 3, 1, 4]>>,
    Expect<Equal<ShapeOfT<typeof eLast>, readonly [2, 3, 4, 1]>>,
    Expect<Equal<ShapeOfT<typeof sq>, readonly [3]>>,
    Expect<Equal<ShapeOfT<typeof sq0>, readonly [3]>>,
  ]
  t.same(tr.shape, [4, 3, 2])
  t.same(pm.shape, [3, 4, 2])
  t.same(tp.shape, [2, 4, 3])
  t.same(e0.shape, [1, 2, 3, 4])
  t.same(e2.shape, [2, 3, 1, 4])
  t.same(eLast.shape, [2, 3, 4, 1])
  t.same(sq.shape, [3])
  t.same(sq0.shape, [3])
  dispose([x, tr, pm, tp, e0, e2, eLast, m, sq, sq0])
})

t.test('runtime shapes fall back to readonly number[]', async t => {
  const shape: number[] = [2, 3]
  const x = tensor(new Float32Array(6), shape)
  const tr = transpose(x)
  const pm = permute(x, [1, 0])
  const e = expandDims(x, 1)
  const neg = expandDims(tensor([1, 2]), -2) // negative axes other than -1 are not resolved statically
  const sq = squeeze(x)
  type _cases = [
    Expect<Equal<ShapeOfT<typeof tr>, Shape>>,
    Expect<Equal<ShapeOfT<typeof pm>, Shape>>,
    Expect<Equal<ShapeOfT<typeof e>, Shape>>,
    Expect<Equal<ShapeOfT<typeof neg>, Shape>>,
    Expect<Equal<ShapeOfT<typeof sq>, Shape>>,
  ]
  t.same(neg.shape, [1, 2])
  dispose([x, tr, pm, e, neg, sq])
})

t.test('literal shape clashes are compile errors', async t => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]) // [2, 3]
  // @ts-expect-error: permute needs one axis per dim of a [2, 3] tensor
  t.throws(() => permute(x, [0]), AxisError)
  // @ts-expect-error: three axes for a rank-2 shape
  t.throws(() => transpose(x, [0, 1, 2]), AxisError)
  // @ts-expect-error: axis 2 does not exist in a rank-2 shape
  t.throws(() => permute(x, [0, 2]), AxisError)
  // @ts-expect-error: expandDims can insert at most at position rank
  t.throws(() => expandDims(x, 3), AxisError)
  // @ts-expect-error: dim 1 of [2, 3] is 3, not 1
  t.throws(() => squeeze(x, 1), ShapeError)
  // @ts-expect-error: squeeze axis past the rank
  t.throws(() => squeeze(x, 2), AxisError)
  x.dispose()
})
