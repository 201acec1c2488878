import t from 'tap'
import {
  ArgumentError,
  AxisError,
  DTypeError,
  ShapeError,
  ValueError,
  add,
  argsort,
  gather,
  memory,
  mul,
  oneHot,
  scalar,
  scatterAdd,
  scope,
  setBackend,
  sort,
  sum,
  take,
  tensor,
  topk,
  type Tensor,
} from '@heed/tensor'
import { checkGrad, prng, randomArray, randomTensor, sizeOf, suiteBackends } from './helpers/numeric.js'
import { eachBackend } from './helpers/backends.js'

const rand = prng(7001)
const randInt = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1))
const randomShape = (rank: number, lo = 0, hi = 4): number[] => Array.from({ length: rank }, () => randInt(lo, hi))
const data = (x: Tensor): number[] => Array.from(x.dataSync())
const ints = (v: readonly number[], shape: readonly number[]): Tensor => tensor(Int32Array.from(v), shape, 'int32')
const weightsFor = (shape: readonly number[]): Tensor => tensor(randomArray(rand, sizeOf(shape)), shape, 'float64')
const weighted = (y: Tensor, w: Tensor): Tensor => sum(mul(y, w))
/** f's intermediates disposed on every evaluation, as checkGrad counts tensors. */
const scoped = (f: (...xs: Tensor[]) => Tensor) => (...xs: Tensor[]): Tensor => scope(() => f(...xs))

/** x as [outer, n, inner] around `axis`, the layout both references below walk. */
const around = (shape: readonly number[], axis: number) => ({
  outer: sizeOf(shape.slice(0, axis)),
  n: shape[axis]!,
  inner: sizeOf(shape.slice(axis + 1)),
})

function refGather(v: readonly number[], shape: readonly number[], idx: readonly number[], axis: number): number[] {
  const { outer, n, inner } = around(shape, axis)
  const out: number[] = []
  for (let o = 0; o < outer; o++) for (const j of idx) for (let i = 0; i < inner; i++) out.push(v[(o * n + j) * inner + i]!)
  return out
}

function refScatterAdd(v: readonly number[], shape: readonly number[], idx: readonly number[], upd: readonly number[], axis: number): number[] {
  const { outer, n, inner } = around(shape, axis)
  const out = [...v]
  const m = idx.length
  for (let o = 0; o < outer; o++)
    idx.forEach((j, k) => {
      for (let i = 0; i < inner; i++) out[(o * n + j) * inner + i]! += upd[(o * m + k) * inner + i]!
    })
  return out
}

/** Stable sort of each lane, NaN the largest value (PyTorch: last ascending, first descending): the contract of sort, argsort and topk. */
function refSort(v: readonly number[], shape: readonly number[], axis: number, descending: boolean, k = shape[axis]!): { values: number[]; indices: number[] } {
  const { outer, n, inner } = around(shape, axis)
  const values = new Array<number>(outer * k * inner)
  const indices = new Array<number>(outer * k * inner)
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const lane = Array.from({ length: n }, (_, j) => ({ j, x: v[(o * n + j) * inner + i]! }))
      const nan = lane.filter(e => Number.isNaN(e.x))
      const rest = lane.filter(e => !Number.isNaN(e.x))
      // Insertion sort, written independently of the kernel's comparator.
      const sorted: typeof rest = []
      for (const e of rest) {
        let p = sorted.length
        while (p > 0 && (descending ? sorted[p - 1]!.x < e.x : sorted[p - 1]!.x > e.x)) p--
        sorted.splice(p, 0, e)
      }
      const all = descending ? [...nan, ...sorted] : [...sorted, ...nan]
      for (let j = 0; j < k; j++) {
        values[(o * k + j) * inner + i] = all[j]!.x
        indices[(o * k + j) * inner + i] = all[j]!.j
      }
    }
  return { values, indices }
}

const f32 = (v: readonly number[]): number[] => v.map(Math.fround)
const baseline = memory().tensors

for (const backend of suiteBackends())
  t.test(`indexing ops on ${backend}`, async t => {
    await setBackend(backend)

    t.test('gather and take', async t => {
      const base = memory().tensors
      for (let trial = 0; trial < 15; trial++) {
        const rank = randInt(1, 3)
        const shape = randomShape(rank, 1, 4)
        const axis = randInt(-rank, rank - 1)
        const a = (axis + rank) % rank
        const idxShape = randomShape(randInt(0, 2), 0, 3)
        const idxV = Array.from({ length: sizeOf(idxShape) }, () => randInt(0, shape[a]! - 1))
        const { t: x, v } = randomTensor(rand, shape)
        const idx = trial % 2 ? ints(idxV, idxShape) : tensor(Uint32Array.from(idxV), idxShape, 'uint32')
        const y = gather(x, idx, axis)
        t.same(y.shape, [...shape.slice(0, a), ...idxShape, ...shape.slice(a + 1)])
        t.same(data(y), refGather(v, shape, idxV, a), `gather [${shape}] axis ${axis} idx [${idxShape}]`)
        const y2 = take(x, idx, axis)
        t.same(data(y2), data(y))
        for (const u of [x, idx, y, y2]) u.dispose()
      }
      const x = tensor([[1, 2, 3], [4, 5, 6]], undefined, 'int32')
      const i = ints([5, 0, 5, 2], [2, 2])
      const y = take(x, i)
      t.same(y.shape, [2, 2])
      t.same(data(y), [6, 1, 6, 3])
      t.equal(y.dtype, 'int32')
      const i0 = scalar(1, 'int32')
      const y0 = gather(x, i0, 1)
      t.same(y0.shape, [2])
      t.same(data(y0), [2, 5])
      const ie = ints([], [0])
      const ye = gather(x, ie, 0)
      t.same(ye.shape, [0, 3])
      const xe = tensor([], [2, 0])
      const ye2 = gather(xe, i0, 0)
      t.same(ye2.shape, [0])
      for (const u of [x, i, y, i0, y0, ie, ye, xe, ye2]) u.dispose()
      t.equal(memory().tensors, base)
    })

    t.test('gather/take gradients accumulate repeated indices', async t => {
      const idx = ints([2, 0, 2, 2], [2, 2])
      const w = weightsFor([3, 2, 2])
      await checkGrad(t, scoped(x => weighted(gather(x, idx, -1), w)), [{ v: randomArray(rand, 9), shape: [3, 3] }], { msg: 'gather' })
      const w2 = weightsFor([2, 2])
      await checkGrad(t, scoped(x => weighted(take(x, idx), w2)), [{ v: randomArray(rand, 6), shape: [2, 3] }], { msg: 'take flat' })
      for (const u of [idx, w, w2]) u.dispose()
    })

    t.test('scatterAdd', async t => {
      const base = memory().tensors
      for (let trial = 0; trial < 10; trial++) {
        const rank = randInt(1, 3)
        const shape = randomShape(rank, 1, 4)
        const axis = randInt(-rank, rank - 1)
        const a = (axis + rank) % rank
        const m = randInt(0, 5)
        const idxV = Array.from({ length: m }, () => randInt(0, shape[a]! - 1))
        const updShape = [...shape.slice(0, a), m, ...shape.slice(a + 1)]
        const { t: x, v } = randomTensor(rand, shape)
        const { t: u, v: uv } = randomTensor(rand, updShape)
        const idx = ints(idxV, [m])
        const y = scatterAdd(x, idx, u, axis)
        t.same(y.shape, shape)
        t.same(data(y), refScatterAdd(v, shape, idxV, uv, a), `scatterAdd [${shape}] axis ${axis} idx [${idxV}]`)
        for (const z of [x, u, idx, y]) z.dispose()
      }
      const x = tensor([0, 0, 0], undefined, 'int32')
      const idx = ints([1, 1, 0, 1], [2, 2])
      const upd = tensor(Int32Array.from([1, 2, 3, 4]), [2, 2], 'int32')
      const y = scatterAdd(x, idx, upd)
      t.same(data(y), [3, 7, 0], 'duplicates accumulate, indices of any rank')
      t.same(data(x), [0, 0, 0], 'input untouched')
      for (const z of [x, idx, upd, y]) z.dispose()
      t.equal(memory().tensors, base)
    })

    t.test('scatterAdd gradients', async t => {
      const idx = ints([1, 0, 1], [3])
      const w = weightsFor([2, 3])
      await checkGrad(t, scoped((x, u) => weighted(scatterAdd(x, idx, u, 1), w)), [
        { v: randomArray(rand, 6), shape: [2, 3] },
        { v: randomArray(rand, 6), shape: [2, 3] },
      ], { msg: 'scatterAdd' })
      idx.dispose()
      w.dispose()
    })

    t.test('oneHot', async t => {
      const base = memory().tensors
      const idx = ints([0, 2, 1, 2], [2, 2])
      const y = oneHot(idx, 3)
      t.equal(y.dtype, 'float32')
      t.same(y.shape, [2, 2, 3])
      t.same(data(y), [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1])
      const yi = oneHot(idx, 4, { dtype: 'int32' })
      t.equal(yi.dtype, 'int32')
      t.same(yi.shape, [2, 2, 4])
      t.same(data(yi).slice(0, 8), [1, 0, 0, 0, 0, 0, 1, 0])
      const s = scalar(1, 'uint32')
      const ys = oneHot(s, 2, { dtype: 'bool' })
      t.same(ys.shape, [2])
      t.same(data(ys), [0, 1])
      const e = ints([], [0])
      const ye = oneHot(e, 0)
      t.same(ye.shape, [0, 0])
      for (const u of [idx, y, yi, s, ys, e, ye]) u.dispose()
      t.equal(memory().tensors, base)
    })

    t.test('sort and argsort: stable, NaN the largest value', async t => {
      const base = memory().tensors
      for (let trial = 0; trial < 12; trial++) {
        const rank = randInt(1, 3)
        const shape = randomShape(rank, 0, 5)
        const axis = randInt(-rank, rank - 1)
        const a = (axis + rank) % rank
        // Few distinct values and some NaN, so ties and NaN placement are exercised.
        const v = Array.from({ length: sizeOf(shape) }, () => (rand() < 0.15 ? NaN : randInt(-2, 2) / 2))
        const x = tensor(v, shape, 'float64')
        for (const descending of [false, true]) {
          const ref = refSort(v, shape, a, descending)
          const s = sort(x, { axis, descending })
          const i = argsort(x, { axis, descending })
          t.same(s.shape, shape)
          t.equal(i.dtype, 'int32')
          t.same(data(s), ref.values, `sort [${shape}] axis ${axis} desc ${descending}`)
          t.same(data(i), ref.indices, `argsort [${shape}] axis ${axis} desc ${descending}`)
          s.dispose()
          i.dispose()
        }
        x.dispose()
      }
      const x = tensor([3, -Infinity, NaN, 1, Infinity, 1, -0, 0])
      const s = sort(x)
      t.same(data(s), [-Infinity, -0, 0, 1, 1, 3, Infinity, NaN])
      const i = argsort(x, { descending: true })
      t.same(data(i), [2, 4, 0, 3, 5, 6, 7, 1], 'descending: NaN first (the largest, as in PyTorch)')
      const xi = tensor(Int32Array.from([2, -1, 2, 0]), [4], 'int32')
      const si = sort(xi)
      t.same(data(si), [-1, 0, 2, 2])
      t.equal(si.dtype, 'int32')
      for (const u of [x, s, i, xi, si]) u.dispose()
      t.equal(memory().tensors, base)
    })

    t.test('topk', async t => {
      const base = memory().tensors
      for (let trial = 0; trial < 12; trial++) {
        const rank = randInt(1, 3)
        const shape = randomShape(rank, 1, 5)
        const axis = randInt(-rank, rank - 1)
        const a = (axis + rank) % rank
        const k = randInt(0, shape[a]!)
        const v = Array.from({ length: sizeOf(shape) }, () => (rand() < 0.1 ? NaN : randInt(-3, 3) / 4))
        const x = tensor(v, shape)
        for (const largest of [true, false]) {
          const ref = refSort(v, shape, a, largest, k)
          const r = topk(x, k, { axis, largest })
          t.same(r.values.shape, shape.map((d, j) => (j === a ? k : d)))
          t.same(data(r.values), f32(ref.values), `topk [${shape}] k=${k} axis ${axis} largest ${largest}`)
          t.same(data(r.indices), ref.indices)
          r.values.dispose()
          r.indices.dispose()
        }
        x.dispose()
      }
      const x = tensor([[1, 5, 2, 5], [0, -1, 7, 3]])
      const r = topk(x, 2)
      t.same(data(r.values), [5, 5, 7, 3])
      t.same(data(r.indices), [1, 3, 2, 3])
      t.equal(r.indices.dtype, 'int32')
      for (const u of [x, r.values, r.indices]) u.dispose()
      t.equal(memory().tensors, base)
    })

    t.test('topk and sort gradients', async t => {
      // Distinct values: the gradient of a sort is only defined away from ties.
      const distinct = (n: number): number[] => Array.from({ length: n }, (_, i) => (i * 7919) % n).map(i => i / n - 0.5 + 0.01 * rand())
      const w = weightsFor([2, 3, 4])
      await checkGrad(t, scoped(x => weighted(topk(x, 2, { axis: 0 }).values, w)), [{ v: distinct(48), shape: [4, 3, 4] }], { msg: 'topk axis 0' })
      const w2 = weightsFor([4, 3, 2])
      await checkGrad(t, scoped(x => {
        const r = topk(x, 2, { largest: false })
        return add(weighted(r.values, w2), sum(r.values))
      }), [{ v: distinct(48), shape: [4, 3, 4] }], { msg: 'topk smallest' })
      const w3 = weightsFor([3, 5])
      await checkGrad(t, scoped(x => weighted(sort(x, { axis: 0, descending: true }), w3)), [{ v: distinct(15), shape: [3, 5] }], { msg: 'sort' })
      await checkGrad(t, scoped(x => weighted(sort(x), w3)), [{ v: distinct(15), shape: [3, 5] }], { msg: 'sort last axis' })
      const w4 = weightsFor([0, 3])
      await checkGrad(t, scoped(x => add(weighted(topk(x, 0, { axis: 0 }).values, w4), sum(x))), [{ v: distinct(6), shape: [2, 3] }], { msg: 'topk k=0' })
      for (const u of [w, w2, w3, w4]) u.dispose()
    })

    t.test('errors', async t => {
      const base = memory().tensors
      const x = tensor(new Float32Array(6), [2, 3])
      const xb = tensor([true, false])
      const fi = tensor([0, 1])
      const i = ints([0, 1], [2])
      const oob = ints([0, 3], [2])
      const neg = ints([-1], [1])
      const u22 = tensor(new Float32Array(4), [2, 2])
      const u22d = tensor(new Float64Array(4), [2, 2], 'float64')
      const s = scalar(1)
      const six = ints([6], [1])
      t.throws(() => gather(x, fi, 1), DTypeError, 'float indices')
      t.throws(() => gather(x, oob, 1), ValueError, 'index past the end')
      t.throws(() => gather(x, neg, 1), ValueError, 'negative index')
      const err = (() => {
        try {
          gather(x, oob, 1)
        } catch (e) {
          return e as Error
        }
        return undefined
      })()
      t.match(err?.message, /^gather: indices: .*\[0, 3\).*got 3/, 'message names op, argument, range and the bad value')
      t.throws(() => gather(x, i, 2), AxisError)
      t.throws(() => gather(x, i, 0.5), AxisError)
      t.throws(() => gather(s, i), ShapeError)
      t.throws(() => gather(x, [0, 1] as unknown as Tensor), ArgumentError)
      t.throws(() => take(x, fi), DTypeError)
      t.throws(() => take(x, six), ValueError)
      t.throws(() => scatterAdd(x, i, x, 1), ShapeError)
      t.throws(() => scatterAdd(x, i, u22d, 0), DTypeError)
      t.throws(() => scatterAdd(xb, i, xb), DTypeError)
      t.throws(() => scatterAdd(x, fi, u22, 1), DTypeError)
      t.throws(() => scatterAdd(x, oob, u22, 1), ValueError)
      t.throws(() => scatterAdd(x, i, u22, -3), AxisError)
      t.throws(() => oneHot(fi, 3), DTypeError)
      t.throws(() => oneHot(oob, 3), ValueError)
      t.throws(() => oneHot(i, 1.5), ValueError)
      t.throws(() => oneHot(i, -1), ValueError)
      t.throws(() => oneHot(i, 3, { dtype: 'complex64' as 'float32' }), DTypeError)
      t.throws(() => topk(x, 4), ValueError, 'k larger than the axis')
      t.throws(() => topk(x, -1), ValueError)
      t.throws(() => topk(x, 1, { axis: 2 }), AxisError)
      t.throws(() => topk(s, 1), ShapeError)
      t.throws(() => sort(x, { axis: -3 }), AxisError)
      t.throws(() => argsort(s), ShapeError)
      t.throws(() => sort('x' as unknown as Tensor), ArgumentError)
      for (const z of [x, xb, fi, i, oob, neg, u22, u22d, s, six]) z.dispose()
      t.equal(memory().tensors, base, 'failed calls leave no tensors behind')
    })
  })

t.teardown(() => {
  if (memory().tensors !== baseline) console.error(`indexing: ${memory().tensors - baseline} tensors leaked`)
})

void eachBackend(t, 'index checks before dispatch: the same typed error on every backend, and topk ranks NaN highest', async t => {
  const x = tensor([1, 2, 3, 4], [4])
  for (const [name, f] of [
    ['gather past the end', () => gather(x, tensor([5], [1], 'int32'))],
    ['gather negative', () => gather(x, tensor([-1], [1], 'int32'))],
    ['take flat past the end', () => take(x, tensor([4], [1], 'int32'))],
    ['oneHot index ≥ depth', () => oneHot(tensor([3], [1], 'int32'), 3)],
    ['oneHot depth 0', () => oneHot(tensor([0], [1], 'int32'), 0)],
  ] as const)
    t.throws(f, ValueError, name)
  // the device is still usable, and a device-computed index never reads out of bounds
  const y = gather(x, tensor([3, 0], [2], 'int32'))
  t.same(Array.from(await y.data()), [4, 1], 'a valid gather after the errors')
  const { values, indices } = topk(tensor([1, NaN, 3, 2], [4]), 2)
  t.ok(Number.isNaN((await values.data())[0]!), 'NaN first with largest')
  t.same(Array.from(await indices.data()), [1, 2])
  const low = topk(tensor([1, NaN, 3, 2], [4]), 2, { largest: false })
  t.same(Array.from(await low.indices.data()), [0, 3], 'NaN last with largest: false')
  for (const u of [x, y, values, indices, low.values, low.indices]) u.dispose()
})
