import t, { type Test } from 'tap'
import {
  ArgumentError,
  AxisError,
  DTypeError,
  ValueError,
  argmax,
  argmin,
  cast,
  cumsum,
  f16Round,
  grad,
  max,
  mean,
  memory,
  min,
  mul,
  prod,
  scope,
  std,
  sum,
  tensor,
  variance,
  withBackend,
  type DType,
  type Tensor,
} from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray, sizeOf, suiteBackends, tol } from './helpers/numeric.js'

// ---- a plain-JS float64 reference ----------------------------------------------------------------------------

type Axis = number | number[] | undefined

const normalise = (axis: Axis, rank: number): number[] => {
  if (rank === 0) return []
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i)
  return (typeof axis === 'number' ? [axis] : axis).map(a => (a < 0 ? a + rank : a)).sort((a, b) => a - b)
}

/** Flat input indices of each output slot, each list in row-major order of the reduced axes. */
function groups(shape: readonly number[], axes: readonly number[]): { outShape: number[]; members: number[][] } {
  const keep = shape.map((_, i) => i).filter(i => !axes.includes(i))
  const outShape = keep.map(i => shape[i]!)
  const members: number[][] = Array.from({ length: sizeOf(outShape) }, () => [])
  const n = sizeOf(shape)
  for (let i = 0; i < n; i++) {
    let rem = i
    const idx = new Array<number>(shape.length)
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rem % shape[d]!
      rem = Math.floor(rem / shape[d]!)
    }
    let o = 0
    for (const d of keep) o = o * shape[d]! + idx[d]!
    members[o]!.push(i)
  }
  return { outShape, members }
}

function refReduce(v: readonly number[], shape: readonly number[], axis: Axis, keepDims: boolean, f: (xs: number[]) => number): { values: number[]; shape: number[] } {
  const axes = normalise(axis, shape.length)
  const { outShape, members } = groups(shape, axes)
  return {
    values: members.map(m => f(m.map(i => v[i]!))),
    shape: keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : outShape,
  }
}

const refSum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
const refMean = (xs: number[]): number => refSum(xs) / xs.length
const refVar = (c: number) => (xs: number[]): number => {
  const m = refMean(xs)
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - c)
}
const firstIndex = (better: (a: number, b: number) => boolean) => (xs: number[]): number => {
  let best = 0
  for (let i = 1; i < xs.length; i++) if (better(xs[i]!, xs[best]!)) best = i
  return best
}

interface Case {
  name: string
  op: (x: Tensor, opts: { axis?: number | number[]; keepDims?: boolean }) => Tensor
  ref: (xs: number[]) => number
  dtypes: readonly DType[]
  outDtype?: DType
  /** slices smaller than this are a ValueError (n - correction ≤ 0) */
  minCount?: number
}

const floats: readonly DType[] = ['float64', 'float32']
const cases: Case[] = [
  { name: 'sum', op: sum, ref: refSum, dtypes: [...floats, 'int32', 'uint32'] },
  { name: 'mean', op: mean, ref: refMean, dtypes: floats },
  { name: 'max', op: max, ref: xs => Math.max(...xs), dtypes: [...floats, 'int32', 'uint32'] },
  { name: 'min', op: min, ref: xs => Math.min(...xs), dtypes: [...floats, 'int32', 'uint32'] },
  { name: 'prod', op: prod, ref: xs => xs.reduce((a, b) => a * b, 1), dtypes: [...floats, 'int32', 'uint32'] },
  { name: 'argmax', op: argmax, ref: firstIndex((a, b) => a > b), dtypes: [...floats, 'int32', 'uint32'], outDtype: 'int32' },
  { name: 'argmin', op: argmin, ref: firstIndex((a, b) => a < b), dtypes: [...floats, 'int32', 'uint32'], outDtype: 'int32' },
  { name: 'variance', op: variance, ref: refVar(0), dtypes: floats },
  { name: 'variance ddof=1', op: (x, o) => variance(x, { ...o, correction: 1 }), ref: refVar(1), dtypes: floats, minCount: 2 },
  { name: 'std', op: std, ref: xs => Math.sqrt(refVar(0)(xs)), dtypes: floats },
  { name: 'std ddof=1', op: (x, o) => std(x, { ...o, correction: 1 }), ref: xs => Math.sqrt(refVar(1)(xs)), dtypes: floats, minCount: 2 },
]

const roundTo = (dtype: DType, x: number): number =>
  dtype === 'float32' ? Math.fround(x) : dtype === 'float16' ? f16Round(x) : dtype === 'int32' || dtype === 'uint32' ? x : x

/** Random values representable exactly in `dtype`; ints small enough that products of ≤ 8 do not overflow. */
function valuesFor(rand: () => number, dtype: DType, n: number): number[] {
  if (dtype === 'int32') return Array.from({ length: n }, () => Math.floor(rand() * 9) - 4)
  if (dtype === 'uint32') return Array.from({ length: n }, () => Math.floor(rand() * 5))
  return randomArray(rand, n, -2, 2).map(x => roundTo(dtype, x))
}

function randomShape(rand: () => number, rank: number, maxDim = 3): number[] {
  return Array.from({ length: rank }, () => 1 + Math.floor(rand() * maxDim))
}

/** An axis argument of every flavour: omitted, one (possibly negative), or a distinct list mixing signs. */
function randomAxis(rand: () => number, rank: number): Axis {
  const r = rand()
  if (rank === 0) return r < 0.5 ? undefined : r < 0.75 ? 0 : -1
  if (r < 0.2) return undefined
  if (r < 0.6) {
    const a = Math.floor(rand() * rank)
    return rand() < 0.5 ? a - rank : a
  }
  const list = Array.from({ length: rank }, (_, i) => i).filter(() => rand() < 0.5)
  return list.map(a => (rand() < 0.5 ? a - rank : a))
}

const optsOf = (axis: Axis, keepDims: boolean) => (axis === undefined ? { keepDims } : { axis, keepDims })

for (const backend of suiteBackends()) {
  t.test(`${backend}: reductions against a float64 reference`, async t => {
    const rand = prng(1234)
    await withBackend(backend, async () => {
      for (const c of cases)
        for (const dtype of c.dtypes) {
          const base = memory().tensors
          const isIntInput = dtype === 'int32' || dtype === 'uint32'
          for (let trial = 0; trial < 10; trial++) {
            const rank = trial % 5
            // Integer products must stay exact, so integer inputs keep few elements.
            const shape = randomShape(rand, rank, isIntInput ? 2 : 3)
            const axis = randomAxis(rand, rank)
            const keepDims = rand() < 0.5
            const v = valuesFor(rand, dtype, sizeOf(shape))
            const x = tensor(v, shape, dtype)
            const msg = `${c.name} ${dtype} [${shape}] axis=${JSON.stringify(axis)} keepDims=${keepDims}`
            if (refReduce(v, shape, axis, false, xs => xs.length).values.some(n => n < (c.minCount ?? 0))) {
              t.throws(() => c.op(x, optsOf(axis, keepDims)), ValueError, `${msg}: too few elements`)
              x.dispose()
              continue
            }
            const y = c.op(x, optsOf(axis, keepDims))
            const ref = refReduce(v, shape, axis, keepDims, c.ref)
            t.same(y.shape, ref.shape, `${msg}: shape`)
            t.equal(y.dtype, c.outDtype ?? dtype, `${msg}: dtype`)
            const expected = ref.values.map(e => (c.outDtype ? e : roundTo(dtype, e)))
            if (c.outDtype || isIntInput) t.same(Array.from(await y.data()), expected, msg)
            else assertClose(t, await y.data(), expected, { ...tol(dtype), msg })
            x.dispose()
            y.dispose()
          }
          t.equal(memory().tensors, base, `${c.name} ${dtype}: no stray tensors`)
        }
    })
  })
}

t.test('float16 inputs reduce in float64 and round once', async t => {
  const rand = prng(7)
  const shape = [3, 5]
  const v = randomArray(rand, 15, -4, 4).map(f16Round)
  const x = tensor(v, shape, 'float16')
  for (const c of cases.filter(c => c.dtypes.includes('float32'))) {
    const y = c.op(x, { axis: -1 })
    const ref = refReduce(v, shape, -1, false, c.ref)
    if (c.outDtype) t.same(Array.from(await y.data()), ref.values, `${c.name} f16`)
    else assertClose(t, await y.data(), ref.values.map(f16Round), { ...tol('float16'), msg: `${c.name} f16` })
    y.dispose()
  }
  // A float16 sum of 4096 values of 60 overflows (max 65504); the mean must not pass through that sum.
  const big = tensor(new Array<number>(4096).fill(60), [4096], 'float16')
  const m = mean(big)
  const s = std(big)
  t.same(Array.from(await m.data()), [60])
  t.same(Array.from(await s.data()), [0])
  for (const d of [x, big, m, s]) d.dispose()
})

t.test('adversarial magnitudes and special values', async t => {
  // Variance of a large offset with a tiny spread: one-pass formulas cancel catastrophically here.
  const v = [1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4]
  const x = tensor(v, [4], 'float64')
  const vr = variance(x)
  const sd = std(x, { correction: 1 })
  assertClose(t, await vr.data(), [1.25], { atol: 1e-9, rtol: 0 })
  assertClose(t, await sd.data(), [Math.sqrt(5 / 3)], { atol: 1e-9, rtol: 0 })
  const xf = tensor([1e4 + 0.5, 1e4 - 0.5], [2], 'float32')
  const vf = variance(xf)
  t.same(Array.from(await vf.data()), [0.25], 'float32 variance at 1e4 offset')
  // NaN propagates through max/min, and argmax points at it (numpy).
  const n = tensor([1, NaN, 3, -Infinity], [4], 'float64')
  const mx = max(n)
  const mn = min(n)
  const am = argmax(n)
  const an = argmin(n)
  t.ok(Number.isNaN((await mx.data())[0]!))
  t.ok(Number.isNaN((await mn.data())[0]!))
  t.same(Array.from(await am.data()), [1])
  t.same(Array.from(await an.data()), [1])
  const inf = tensor([-Infinity, 2, Infinity, 5], [4], 'float32')
  const mi = max(inf)
  const ni = min(inf)
  t.same([...(await mi.data()), ...(await ni.data())], [Infinity, -Infinity])
  for (const d of [x, vr, sd, xf, vf, n, mx, mn, am, an, inf, mi, ni]) d.dispose()
})

t.test('ties: argmax/argmin take the first; max/min split the gradient evenly', async t => {
  const x = tensor([[1, 3, 3], [1, 2, 0]], [2, 3], 'float64')
  const a = argmax(x, { axis: 1 })
  const b = argmin(x, { axis: 0 })
  const flat = argmax(x)
  t.same(Array.from(await a.data()), [1, 1])
  t.same(Array.from(await b.data()), [0, 1, 1])
  t.same(Array.from(await flat.data()), [1], 'no axis: flat row-major index')
  const gmax = grad((z: Tensor) => sum(max(z, { axis: 1 })))(x)
  t.same(Array.from(await gmax.data()), [0, 0.5, 0.5, 0, 1, 0])
  const gmin = grad((z: Tensor) => min(z))(x)
  t.same(Array.from(await gmin.data()), [0, 0, 0, 0, 0, 1])
  const gall = grad((z: Tensor) => max(z))(tensor([4, 4, 4, 4], [2, 2], 'float64'))
  t.same(Array.from(await gall.data()), [0.25, 0.25, 0.25, 0.25])
  for (const d of [x, a, b, flat, gmax, gmin, gall]) d.dispose()
})

t.test('integers: wrap-around products, ints through argmax, sum, cumsum', async t => {
  const p = tensor([65536, 32768, 65536, 65536], [2, 2], 'int32')
  const pr = prod(p, { axis: 1 })
  t.same(Array.from(await pr.data()), [-2147483648, 0], 'prod wraps modulo 2^32 like numpy int32')
  const u = tensor([4000000000, 300000000, 7, 1], [4], 'uint32')
  const um = max(u)
  const ua = argmin(u)
  const uc = cumsum(u, { axis: 0, exclusive: true })
  t.same(Array.from(await um.data()), [4000000000])
  t.same(Array.from(await ua.data()), [3])
  t.same(Array.from(await uc.data()), [0, 4000000000, 4300000000 - 2 ** 32, 4300000007 - 2 ** 32])
  t.equal(uc.dtype, 'uint32')
  for (const d of [p, pr, u, um, ua, uc]) d.dispose()
})

t.test('empty tensors', async t => {
  const e = tensor([], [2, 0], 'float32')
  const s = sum(e, { axis: 1 })
  const p = prod(e, { axis: 1 })
  t.same(Array.from(await s.data()), [0, 0], 'an empty sum is 0')
  t.same(Array.from(await p.data()), [1, 1], 'an empty product is 1')
  for (const op of [max, min, mean, argmax, argmin, variance, std] as ((x: Tensor, o: object) => Tensor)[])
    t.throws(() => op(e, { axis: 1 }), ValueError, `${op.name || 'op'} over an empty axis`)
  // An empty output needs no identity (numpy): reducing the non-empty axis of [2, 0] gives shape [0].
  const m = max(e, { axis: 0 })
  t.same(m.shape, [0])
  const c = cumsum(e, { axis: 1 })
  t.same(c.shape, [2, 0])
  const cf = cumsum(e)
  t.same(cf.shape, [0])
  for (const d of [e, s, p, m, c, cf]) d.dispose()
})

// ---- cumsum ------------------------------------------------------------------------------------------------

function refCumsum(v: readonly number[], shape: readonly number[], axis: number, reverse: boolean, exclusive: boolean): number[] {
  const out = new Array<number>(v.length).fill(0)
  for (const m of groups(shape, normalise(axis, shape.length)).members) {
    const order = reverse ? [...m].reverse() : m
    let s = 0
    for (const i of order) {
      if (exclusive) {
        out[i] = s
        s += v[i]!
      } else {
        s += v[i]!
        out[i] = s
      }
    }
  }
  return out
}

t.test('cumsum against a float64 reference', async t => {
  const rand = prng(99)
  const base = memory().tensors
  for (const dtype of ['float64', 'float32', 'int32'] as const)
    for (let trial = 0; trial < 12; trial++) {
      const rank = trial % 5
      const shape = randomShape(rand, rank)
      const axis = rank === 0 ? 0 : Math.floor(rand() * rank) - (rand() < 0.5 ? rank : 0)
      const reverse = rand() < 0.5
      const exclusive = rand() < 0.5
      const v = valuesFor(rand, dtype, sizeOf(shape))
      const x = tensor(v, shape, dtype)
      const y = cumsum(x, { axis, reverse, exclusive })
      const msg = `cumsum ${dtype} [${shape}] axis=${axis} reverse=${reverse} exclusive=${exclusive}`
      t.same(y.shape, shape, msg)
      assertClose(t, await y.data(), refCumsum(v, shape, axis, reverse, exclusive).map(e => roundTo(dtype, e)), { ...tol(dtype), msg })
      x.dispose()
      y.dispose()
    }
  const x = tensor([[1, 2], [3, 4]], [2, 2], 'float64')
  const flat = cumsum(x)
  t.same(flat.shape, [4], 'no axis: flattened like numpy')
  t.same(Array.from(await flat.data()), [1, 3, 6, 10])
  const s = tensor(5, [], 'float64')
  const cs = cumsum(s, { axis: -1, exclusive: true })
  t.same(cs.shape, [])
  t.same(Array.from(await cs.data()), [0])
  for (const d of [x, flat, s, cs]) d.dispose()
  t.equal(memory().tensors, base, 'no stray tensors')
})

// ---- gradients ---------------------------------------------------------------------------------------------

type Op = (x: Tensor, opts: { axis?: number | number[]; keepDims?: boolean }) => Tensor

/** A scalar loss Σ w ⊙ op(x) with fixed random weights, so every output element carries its own cotangent. */
async function gradCase(t: Test, rand: () => number, name: string, op: Op, shape: number[], axis: Axis, keepDims: boolean, v?: number[]): Promise<void> {
  const xv = v ?? randomArray(rand, sizeOf(shape), -1.5, 1.5)
  const probe = tensor(xv, shape, 'float64')
  const outShape = op(probe, optsOf(axis, keepDims))
  const w = tensor(randomArray(rand, outShape.size, 0.5, 1.5), outShape.shape, 'float64')
  probe.dispose()
  outShape.dispose()
  await checkGrad(t, x => scope(() => sum(mul(op(x, optsOf(axis, keepDims)), w))), [{ v: xv, shape }], {
    msg: `${name} [${shape}] axis=${JSON.stringify(axis)} keepDims=${keepDims}`,
    atol: 1e-6,
    rtol: 1e-5,
  })
  w.dispose()
}

t.test('gradients by central differences', async t => {
  const rand = prng(42)
  const ops: [string, Op][] = [
    ['sum', sum],
    ['mean', mean],
    ['max', max],
    ['min', min],
    ['prod', prod],
    ['variance', variance],
    ['variance ddof=1', (x, o) => variance(x, { ...o, correction: 1 })],
    ['std', std],
    ['std ddof=1', (x, o) => std(x, { ...o, correction: 1 })],
  ]
  for (const [name, op] of ops)
    for (let trial = 0; trial < 5; trial++) {
      const rank = trial
      const shape = randomShape(rand, rank)
      let axis = randomAxis(rand, rank)
      // ddof=1 needs at least two elements per slice.
      if (name.includes('ddof') && refReduce(new Array<number>(sizeOf(shape)).fill(0), shape, axis, false, xs => xs.length).values.some(n => n < 2)) {
        shape.splice(0, shape.length, ...(rank === 0 ? [] : shape.map(() => 2)))
        if (rank === 0) continue
        axis = undefined
      }
      await gradCase(t, rand, name, op, shape, axis, rand() < 0.5)
    }
  // Zeros in a product: one zero gets the product of the others, two zeros make every partial 0.
  await gradCase(t, rand, 'prod one zero', prod, [2, 3], 1, false, [0, 2, -3, 1.5, 0.5, 2])
  await gradCase(t, rand, 'prod two zeros', prod, [2, 3], 1, true, [0, 2, 0, 1.5, 0, -2])
  const g = grad((x: Tensor) => prod(x))(tensor([0, 2, 3], [3], 'float64'))
  t.same(Array.from(await g.data()), [6, 0, 0])
  const g2 = grad((x: Tensor) => prod(x))(tensor([0, 2, 0], [3], 'float64'))
  t.same(Array.from(await g2.data()), [0, 0, 0])
  const gs = grad((x: Tensor) => std(x))(tensor([3, 3, 3], [3], 'float64'))
  t.same(Array.from(await gs.data()), [0, 0, 0], 'std at a constant input: subgradient 0, not NaN')
  for (const d of [g, g2, gs]) d.dispose()

  for (let trial = 0; trial < 6; trial++) {
    const rank = 1 + (trial % 4)
    const shape = randomShape(rand, rank)
    const axis = Math.floor(rand() * rank) - (rand() < 0.5 ? rank : 0)
    const reverse = trial % 2 === 1
    const exclusive = trial % 3 === 0
    await gradCase(t, rand, `cumsum reverse=${reverse} exclusive=${exclusive}`, x => cumsum(x, { axis, reverse, exclusive }), shape, undefined, false)
  }
  await gradCase(t, rand, 'cumsum flattened', x => cumsum(x, { exclusive: true }), [2, 3], undefined, false)
})

t.test('argmax/argmin are not differentiable', async t => {
  const x = tensor([1, 2, 3], [3], 'float64')
  // The index enters the loss only as a constant weight: d/dz Σ z·argmax(z) is argmax(z) everywhere.
  const g = grad((z: Tensor) => scope(() => sum(mul(z, cast(argmax(z), 'float64')))))(x)
  const h = grad((z: Tensor) => scope(() => sum(mul(z, cast(argmin(z), 'float64')))))(x)
  t.same(Array.from(await g.data()), [2, 2, 2])
  t.same(Array.from(await h.data()), [0, 0, 0])
  for (const d of [x, g, h]) d.dispose()
})

// ---- validation ----------------------------------------------------------------------------------------------

t.test('validation errors', async t => {
  const base = memory().tensors
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], 'float32')
  const i = tensor([1, 2, 3], [3], 'int32')
  const b = tensor([true, false], [2], 'bool')
  const all: [string, Op][] = [
    ['sum', sum],
    ['mean', mean],
    ['max', max],
    ['min', min],
    ['prod', prod],
    ['argmax', argmax],
    ['argmin', argmin],
    ['variance', variance],
    ['std', std],
  ]
  for (const [name, op] of all) {
    t.throws(() => op(x, { axis: 1.5 }), AxisError, `${name}: non-integer axis`)
    t.throws(() => op(x, { axis: 2 }), AxisError, `${name}: axis past the rank`)
    t.throws(() => op(x, { axis: -3 }), AxisError, `${name}: negative axis past the rank`)
    t.throws(() => op(x, { axis: [0, -2] }), AxisError, `${name}: duplicate axes`)
    t.throws(() => op(x, { axis: 'a' as never }), ArgumentError, `${name}: axis of the wrong kind`)
    t.throws(() => op(x, { keepDims: 1 as never }), ArgumentError, `${name}: keepDims of the wrong kind`)
    t.throws(() => (op as (...a: unknown[]) => unknown)(x, 'axis'), ArgumentError, `${name}: options of the wrong kind`)
    t.throws(() => (op as (...a: unknown[]) => unknown)([1, 2]), ArgumentError, `${name}: not a tensor`)
    t.throws(() => (op as (...a: unknown[]) => unknown)(), ArgumentError, `${name}: no arguments`)
  }
  for (const op of [mean, variance, std]) t.throws(() => op(i), DTypeError, 'float-only reductions reject ints')
  for (const op of [sum, mean, max, min, prod, cumsum]) t.throws(() => op(b), DTypeError, 'bool needs a cast first')
  const ab = argmax(b)
  t.same(Array.from(await ab.data()), [0], 'argmax takes bool')
  ab.dispose()
  t.throws(() => variance(x, { axis: 1, correction: 3 }), ValueError, 'correction ≥ n')
  t.throws(() => std(x, { correction: -1 }), ValueError, 'negative correction')
  t.throws(() => std(x, { correction: 'one' as never }), ArgumentError, 'correction of the wrong kind')
  t.throws(() => cumsum(x, { axis: [0] as never }), ArgumentError, 'cumsum takes one axis')
  t.throws(() => cumsum(x, { axis: 2 }), AxisError)
  t.throws(() => cumsum(x, { axis: 0.5 }), AxisError)
  t.throws(() => cumsum(x, { reverse: 'yes' as never }), ArgumentError)
  const s0 = tensor(2, [], 'float32')
  t.throws(() => sum(s0, { axis: 1 }), AxisError, 'rank 0 takes only 0 and -1')
  t.throws(() => sum(s0, { axis: [0, -1] }), AxisError, 'rank 0: 0 and -1 are the same axis')
  t.throws(() => max(s0, { axis: 0.5 }), AxisError)
  s0.dispose()
  for (const d of [x, i, b]) d.dispose()
  t.equal(memory().tensors, base, 'failed calls leave no tensors')
})
