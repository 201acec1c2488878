import t from 'tap'
import {
  ArgumentError,
  AxisError,
  DTypeError,
  f16Round,
  grad,
  logSoftmax,
  logSumExp,
  memory,
  mul,
  scope,
  softmax,
  sum,
  tensor,
  withBackend,
  type DType,
  type Tensor,
} from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray, sizeOf, suiteBackends, tol } from './helpers/numeric.js'

// ---- a plain-JS float64 reference ----------------------------------------------------------------------------

type Axis = number | number[] | undefined

const normalise = (axis: Axis, rank: number, fallback: 'all' | 'last'): number[] => {
  if (rank === 0) return []
  if (axis === undefined) return fallback === 'all' ? Array.from({ length: rank }, (_, i) => i) : [rank - 1]
  return (typeof axis === 'number' ? [axis] : axis).map(a => (a < 0 ? a + rank : a)).sort((a, b) => a - b)
}

/** Flat input indices of each slice along `axes`. */
function groups(shape: readonly number[], axes: readonly number[]): number[][] {
  const keep = shape.map((_, i) => i).filter(i => !axes.includes(i))
  const members: number[][] = Array.from({ length: sizeOf(keep.map(i => shape[i]!)) }, () => [])
  for (let i = 0; i < sizeOf(shape); i++) {
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
  return members
}

// The reference shifts by the max too: without it exp(1e4) is Infinity even in float64.
const refLse = (xs: number[]): number => {
  const m = Math.max(...xs)
  if (m === -Infinity) return -Infinity
  return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0))
}

function refSoftmax(v: readonly number[], shape: readonly number[], axis: Axis, log: boolean): number[] {
  const out = new Array<number>(v.length)
  for (const m of groups(shape, normalise(axis, shape.length, 'last'))) {
    const lse = refLse(m.map(i => v[i]!))
    for (const i of m) out[i] = log ? v[i]! - lse : Math.exp(v[i]! - lse)
  }
  return out
}

function refLogSumExp(v: readonly number[], shape: readonly number[], axis: Axis, keepDims: boolean): { values: number[]; shape: number[] } {
  const axes = normalise(axis, shape.length, 'all')
  return {
    values: groups(shape, axes).map(m => refLse(m.map(i => v[i]!))),
    shape: keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i)),
  }
}

const roundTo = (dtype: DType, x: number): number => (dtype === 'float32' ? Math.fround(x) : dtype === 'float16' ? f16Round(x) : x)
const randomShape = (rand: () => number, rank: number): number[] => Array.from({ length: rank }, () => 1 + Math.floor(rand() * 3))

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

const axisOpt = (axis: Axis): { axis?: number | number[] } => (axis === undefined ? {} : { axis })

for (const backend of suiteBackends()) {
  t.test(`${backend}: softmax, logSoftmax, logSumExp against a float64 reference`, async t => {
    const rand = prng(2024)
    await withBackend(backend, async () => {
      const base = memory().tensors
      for (const dtype of ['float64', 'float32'] as const)
        for (let trial = 0; trial < 15; trial++) {
          const rank = trial % 5
          const shape = randomShape(rand, rank)
          const axis = randomAxis(rand, rank)
          const keepDims = rand() < 0.5
          const v = randomArray(rand, sizeOf(shape), -5, 5).map(x => roundTo(dtype, x))
          const x = tensor(v, shape, dtype)
          const msg = `${dtype} [${shape}] axis=${JSON.stringify(axis)}`
          const s = axis === undefined && rand() < 0.5 ? softmax(x) : softmax(x, axisOpt(axis))
          const l = logSoftmax(x, axisOpt(axis))
          const e = logSumExp(x, { ...axisOpt(axis), keepDims })
          t.same(s.shape, shape)
          t.equal(s.dtype, dtype)
          assertClose(t, await s.data(), refSoftmax(v, shape, axis, false).map(y => roundTo(dtype, y)), { ...tol(dtype), msg: `softmax ${msg}` })
          assertClose(t, await l.data(), refSoftmax(v, shape, axis, true).map(y => roundTo(dtype, y)), { ...tol(dtype), msg: `logSoftmax ${msg}` })
          const ref = refLogSumExp(v, shape, axis, keepDims)
          t.same(e.shape, ref.shape, `logSumExp ${msg} keepDims=${keepDims}: shape`)
          assertClose(t, await e.data(), ref.values.map(y => roundTo(dtype, y)), { ...tol(dtype), msg: `logSumExp ${msg} keepDims=${keepDims}` })
          for (const d of [x, s, l, e]) d.dispose()
        }
      t.equal(memory().tensors, base, 'no stray tensors')
    })
  })
}

t.test('float16', async t => {
  const rand = prng(5)
  const shape = [2, 6]
  const v = randomArray(rand, 12, -8, 8).map(f16Round)
  const x = tensor(v, shape, 'float16')
  const s = softmax(x)
  const l = logSoftmax(x, { axis: 0 })
  const e = logSumExp(x, { axis: -1 })
  assertClose(t, await s.data(), refSoftmax(v, shape, -1, false).map(f16Round), { ...tol('float16'), msg: 'softmax f16' })
  assertClose(t, await l.data(), refSoftmax(v, shape, 0, true).map(f16Round), { ...tol('float16'), msg: 'logSoftmax f16' })
  assertClose(t, await e.data(), refLogSumExp(v, shape, -1, false).values.map(f16Round), { ...tol('float16'), msg: 'logSumExp f16' })
  for (const d of [x, s, l, e]) d.dispose()
})

t.test('exact at logits of ±1e4', async t => {
  const base = memory().tensors
  const v = [1e4, 1e4 - 1, -1e4, 1e4 - 30]
  const e1 = Math.exp(-1)
  const e30 = Math.exp(-30)
  const z = 1 + e1 + e30
  const soft = [1 / z, e1 / z, 0, e30 / z]
  const logs = [-Math.log(z), -1 - Math.log(z), -2e4 - Math.log(z), -30 - Math.log(z)]
  const lse = 1e4 + Math.log(z)
  for (const dtype of ['float64', 'float32'] as const) {
    const x = tensor(v, [4], dtype)
    const neg = tensor(v.map(a => -a), [4], dtype)
    const s = softmax(x)
    const l = logSoftmax(x)
    const e = logSumExp(x)
    const en = logSumExp(neg)
    const { atol, rtol } = dtype === 'float64' ? { atol: 1e-15, rtol: 1e-14 } : { atol: 1e-8, rtol: 1e-7 }
    assertClose(t, await s.data(), soft.map(y => roundTo(dtype, y)), { atol, rtol, msg: `softmax ${dtype}` })
    assertClose(t, await l.data(), logs.map(y => roundTo(dtype, y)), { atol, rtol, msg: `logSoftmax ${dtype}` })
    // One rounding of the float64 result: exactly the nearest value of the dtype.
    t.equal((await e.data())[0], roundTo(dtype, lse), `logSumExp ${dtype}`)
    t.equal((await en.data())[0], roundTo(dtype, 1e4 + Math.log(1 + Math.exp(-2e4 + 1))), `logSumExp of negated ${dtype}`)
    for (const d of [x, neg, s, l, e, en]) d.dispose()
  }
  t.equal(memory().tensors, base)
})

t.test('-Infinity entries and rows', async t => {
  const x = tensor([0, -Infinity, 0, -Infinity, -Infinity, -Infinity], [2, 3], 'float32')
  const s = softmax(x)
  const l = logSoftmax(x)
  const e = logSumExp(x, { axis: 1 })
  const ek = logSumExp(x, { axis: -1, keepDims: true })
  const sv = Array.from(await s.data())
  const lv = Array.from(await l.data())
  t.same(sv.slice(0, 3), [0.5, 0, 0.5])
  t.same(lv.slice(0, 3), [Math.fround(-Math.LN2), -Infinity, Math.fround(-Math.LN2)])
  t.ok(sv.slice(3).every(Number.isNaN), 'an all -Infinity row has no distribution: NaN, as documented')
  t.ok(lv.slice(3).every(Number.isNaN))
  t.same(Array.from(await e.data()), [Math.fround(Math.LN2), -Infinity], 'an all -Infinity row: logSumExp is -Infinity, not NaN')
  t.same(ek.shape, [2, 1])
  const empty = tensor([], [2, 0], 'float64')
  const ee = logSumExp(empty, { axis: 1 })
  t.same(Array.from(await ee.data()), [-Infinity, -Infinity], 'an empty logSumExp is -Infinity')
  const inf = tensor([1, Infinity], [2], 'float64')
  const ei = logSumExp(inf)
  t.same(Array.from(await ei.data()), [Infinity])
  // The gradient of an all -Infinity row is 0 (no finite nudge changes it), never NaN.
  const g = grad((z: Tensor) => sum(logSumExp(z, { axis: 1 })))(tensor([0, -Infinity, 0, -Infinity, -Infinity, -Infinity], [2, 3], 'float64'))
  t.same(Array.from(await g.data()), [0.5, 0, 0.5, 0, 0, 0])
  for (const d of [x, s, l, e, ek, empty, ee, inf, ei, g]) d.dispose()
})

t.test('rank 0 and multi-axis softmax', async t => {
  const x = tensor(3, [], 'float64')
  const s = softmax(x)
  const l = logSoftmax(x, { axis: 0 })
  const e = logSumExp(x, { axis: -1 })
  t.same([...(await s.data()), ...(await l.data()), ...(await e.data())], [1, 0, 3])
  const m = tensor([1, 2, 3, 4], [2, 2], 'float64')
  const sm = softmax(m, { axis: [0, 1] })
  const z = Math.E + Math.E ** 2 + Math.E ** 3 + Math.E ** 4
  assertClose(t, await sm.data(), [1, 2, 3, 4].map(a => Math.E ** a / z), { atol: 1e-15, rtol: 1e-14 })
  for (const d of [x, s, l, e, m, sm]) d.dispose()
})

// ---- gradients ---------------------------------------------------------------------------------------------

t.test('gradients by central differences', async t => {
  const rand = prng(77)
  type Op = (x: Tensor, axis: Axis, keepDims: boolean) => Tensor
  const ops: [string, Op][] = [
    ['softmax', (x, axis) => softmax(x, axisOpt(axis))],
    ['logSoftmax', (x, axis) => logSoftmax(x, axisOpt(axis))],
    ['logSumExp', (x, axis, keepDims) => logSumExp(x, { ...axisOpt(axis), keepDims })],
  ]
  const run = async (name: string, op: Op, shape: number[], axis: Axis, keepDims: boolean, v: number[], eps?: number): Promise<void> => {
    const probe = tensor(v, shape, 'float64')
    const out = op(probe, axis, keepDims)
    // Random weights so the softmax rows do not sum the cotangent away.
    const w = tensor(randomArray(rand, out.size, -1, 1), out.shape, 'float64')
    probe.dispose()
    out.dispose()
    await checkGrad(t, x => scope(() => sum(mul(op(x, axis, keepDims), w))), [{ v, shape }], {
      msg: `${name} [${shape}] axis=${JSON.stringify(axis)} keepDims=${keepDims}`,
      ...(eps === undefined ? {} : { eps }),
    })
    w.dispose()
  }
  for (const [name, op] of ops) {
    for (let trial = 0; trial < 6; trial++) {
      const rank = trial % 5
      const shape = randomShape(rand, rank)
      await run(name, op, shape, randomAxis(rand, rank), rand() < 0.5, randomArray(rand, sizeOf(shape), -3, 3))
    }
    // Large logits: the rule must use the stable forward values, not exp of raw logits.
    await run(`${name} near 1e4`, op, [2, 3], -1, false, randomArray(rand, 6, 1e4 - 2, 1e4 + 2), 1e-4)
    // -Infinity entries in otherwise finite rows get a zero gradient.
    if (name !== 'logSoftmax') await run(`${name} with -Infinity`, op, [2, 3], 1, true, [0.5, -Infinity, 1, -Infinity, 2, -0.5])
  }
})

// ---- validation ----------------------------------------------------------------------------------------------

t.test('validation errors', async t => {
  const base = memory().tensors
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], 'float32')
  const i = tensor([1, 2, 3], [3], 'int32')
  const b = tensor([true, false], [2], 'bool')
  const ops: [string, (x: Tensor, o?: object) => Tensor][] = [
    ['softmax', softmax],
    ['logSoftmax', logSoftmax],
    ['logSumExp', logSumExp],
  ]
  for (const [name, op] of ops) {
    t.throws(() => op(i), DTypeError, `${name}: int input`)
    t.throws(() => op(b), DTypeError, `${name}: bool input`)
    t.throws(() => op(x, { axis: 1.5 }), AxisError, `${name}: non-integer axis`)
    t.throws(() => op(x, { axis: 2 }), AxisError, `${name}: axis past the rank`)
    t.throws(() => op(x, { axis: -3 }), AxisError, `${name}: negative axis past the rank`)
    t.throws(() => op(x, { axis: [1, -1] }), AxisError, `${name}: duplicate axes`)
    t.throws(() => op(x, { axis: 'last' }), ArgumentError, `${name}: axis of the wrong kind`)
    t.throws(() => (op as (...a: unknown[]) => unknown)(x, -1), ArgumentError, `${name}: options must be an object`)
    t.throws(() => (op as (...a: unknown[]) => unknown)([1, 2, 3]), ArgumentError, `${name}: not a tensor`)
    t.throws(() => (op as (...a: unknown[]) => unknown)(x, {}, {}), ArgumentError, `${name}: too many arguments`)
  }
  t.throws(() => logSumExp(x, { keepDims: 'yes' as never }), ArgumentError)
  for (const d of [x, i, b]) d.dispose()
  t.equal(memory().tensors, base, 'failed calls leave no tensors')
})
