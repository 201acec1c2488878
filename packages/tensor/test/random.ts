import t from 'tap'
import { ArgumentError, DTypeError, ValueError, memory, random, rng, type Tensor } from '@heed/tensor'
import { suiteBackends } from './helpers/numeric.js'

/** The PCG reference (pcg32_srandom_r / pcg32_random_r) in BigInt, as an independent oracle. */
function pcgReference(seed: bigint, stream: bigint): () => number {
  const M = (1n << 64n) - 1n
  const inc = ((stream << 1n) | 1n) & M
  let s = 0n
  const step = () => {
    s = (s * 6364136223846793005n + inc) & M
  }
  step()
  s = (s + (seed & M)) & M
  step()
  return () => {
    const old = s
    step()
    const xs = Number((((old >> 18n) ^ old) >> 27n) & 0xffffffffn)
    const rot = Number(old >> 59n)
    return ((xs >>> rot) | (xs << (-rot & 31))) >>> 0
  }
}

const values = (x: Tensor): number[] => Array.from(x.dataSync())
const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length
const std = (v: readonly number[]) => {
  const m = mean(v)
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length)
}

t.test('rng matches the PCG reference stream', async t => {
  const g = rng(42, 54)
  t.same(
    Array.from({ length: 6 }, () => g.nextUint32()),
    [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e],
    'pcg32-demo values for seed 42, stream 54',
  )
  for (const [seed, stream] of [[0, 0], [123456789, 7], [-1, 3], [2 ** 53 - 1, 2 ** 40]] as const) {
    const a = rng(seed, stream)
    const b = pcgReference(BigInt.asUintN(64, BigInt(seed)), BigInt(stream))
    const ok = Array.from({ length: 2000 }, () => a.nextUint32() === b()).every(Boolean)
    t.ok(ok, `seed ${seed} stream ${stream} agrees with BigInt reference for 2000 outputs`)
  }
})

t.test('rng: floats, ints, split, clone', async t => {
  const g = rng(1)
  for (let i = 0; i < 1000; i++) {
    const x = g.next()
    if (!(x >= 0 && x < 1)) t.fail(`next() out of [0,1): ${x}`)
  }
  const counts = new Array<number>(7).fill(0)
  for (let i = 0; i < 70000; i++) counts[g.int(-3, 4) + 3]!++
  t.ok(counts.every(c => Math.abs(c - 10000) < 500), 'int(-3,4) is uniform over 7 values')
  const big = g.int(-2147483648, 2147483648)
  t.ok(Number.isInteger(big) && big >= -2147483648 && big < 2147483648, 'full 2^32 range')

  const c = g.clone()
  t.same(Array.from({ length: 5 }, () => g.normal()), Array.from({ length: 5 }, () => c.normal()), 'clone continues identically (incl. normal spare)')
  const s1 = rng(9).split()
  const s2 = rng(9).split()
  t.equal(s1.nextUint32(), s2.nextUint32(), 'split is deterministic')
  const parent = rng(9)
  const child = parent.split()
  t.not(child.nextUint32(), parent.nextUint32(), 'child stream differs from parent')
  t.throws(() => rng(1.5), ValueError)
  t.throws(() => rng(0, Number.NaN), ValueError)
})

t.test('same seed, same numbers; different seeds differ', async t => {
  const base = memory().tensors
  for (const backend of suiteBackends()) {
    const a = random.normal([4, 5], { seed: 3, backend })
    const b = random.normal([4, 5], { seed: 3, backend })
    const c = random.normal([4, 5], { seed: 4, backend })
    t.same(values(a), values(b), `${backend}: normal deterministic`)
    t.notSame(values(a), values(c), `${backend}: normal differs by seed`)
    const u1 = random.uniform([100], { seed: 3, dtype: 'float64', backend })
    const u2 = random.uniform([100], { seed: 3, dtype: 'float32', backend })
    t.same(values(u2), values(u1).map(Math.fround), 'float32 values are the float64 draws rounded')
    const g1 = rng(11)
    const g2 = rng(11)
    const r1 = [random.randint([10], { high: 100, rng: g1 }), random.bernoulli([10], { rng: g1 })]
    const r2 = [random.randint([10], { high: 100, rng: g2 }), random.bernoulli([10], { rng: g2 })]
    t.same(r1.map(values), r2.map(values), 'a shared generator advances the same way')
    for (const x of [a, b, c, u1, u2, ...r1, ...r2]) x.dispose()
  }
  random.seed(5)
  const d1 = random.uniform([8])
  const d1b = random.uniform([8])
  random.seed(5)
  const d2 = random.uniform([8])
  t.same(values(d1), values(d2), 'random.seed resets the default generator')
  t.notSame(values(d1), values(d1b), 'the default generator advances')
  for (const x of [d1, d1b, d2]) x.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('moments, ranges and dtypes on 1e5 samples', async t => {
  const base = memory().tensors
  const n = 100_000
  const u = random.uniform([n], { low: -2, high: 3, seed: 1 })
  t.equal(u.dtype, 'float32')
  const uv = values(u)
  t.ok(uv.every(x => x >= -2 && x < 3), 'uniform in [low, high)')
  t.ok(Math.abs(mean(uv) - 0.5) < 0.02, `uniform mean ${mean(uv)}`)
  t.ok(Math.abs(std(uv) - 5 / Math.sqrt(12)) < 0.02, `uniform std ${std(uv)}`)

  const z = random.normal([n], { mean: 3, std: 2, dtype: 'float64', seed: 2 })
  t.equal(z.dtype, 'float64')
  const zv = values(z)
  t.ok(Math.abs(mean(zv) - 3) < 0.03, `normal mean ${mean(zv)}`)
  t.ok(Math.abs(std(zv) - 2) < 0.03, `normal std ${std(zv)}`)
  const within1 = zv.filter(x => Math.abs(x - 3) < 2).length / n
  t.ok(Math.abs(within1 - 0.6827) < 0.01, `P(|z| < 1σ) = ${within1}`)

  const b = random.bernoulli([n], { p: 0.3, seed: 3 })
  t.equal(b.dtype, 'bool')
  const bv = values(b)
  t.ok(bv.every(x => x === 0 || x === 1), 'bernoulli is 0/1')
  t.ok(Math.abs(mean(bv) - 0.3) < 0.01, `bernoulli mean ${mean(bv)}`)
  const b0 = random.bernoulli([100], { p: 0, seed: 3 })
  const b1 = random.bernoulli([100], { p: 1, seed: 3 })
  t.ok(values(b0).every(x => x === 0) && values(b1).every(x => x === 1), 'p = 0 and p = 1 are exact')

  const r = random.randint([n], { low: -5, high: 5, seed: 4 })
  t.equal(r.dtype, 'int32')
  const rv = values(r)
  t.ok(rv.every(x => Number.isInteger(x) && x >= -5 && x < 5), 'randint in [low, high)')
  t.ok(Math.abs(mean(rv) - -0.5) < 0.05, `randint mean ${mean(rv)}`)
  t.equal(new Set(rv).size, 10, 'every value drawn')
  const ru = random.randint([1000], { high: 2 ** 32, dtype: 'uint32', seed: 4 })
  t.equal(ru.dtype, 'uint32')
  t.ok(values(ru).some(x => x >= 2 ** 31), 'uint32 covers the upper half')

  const h = random.uniform([2, 3, 4], { dtype: 'float16', seed: 5, low: 0.999, high: 1 })
  t.same(h.shape, [2, 3, 4])
  t.ok(values(h).every(x => x >= 0.999 && x < 1), 'float16 rounding never reaches high')
  const e = random.normal([0, 3], { seed: 1 })
  t.same(e.shape, [0, 3], 'empty shapes work')
  const s = random.normal([], { seed: 1 })
  t.same(s.shape, [], 'scalars work')
  for (const x of [u, z, b, b0, b1, r, ru, h, e, s]) x.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('validation', async t => {
  const base = memory().tensors
  t.throws(() => random.uniform([2], { low: 1, high: 1 }), ValueError)
  t.throws(() => random.uniform([2], { low: 0, high: Infinity }), ValueError)
  t.throws(() => random.uniform([2], { dtype: 'int32' as 'float32' }), DTypeError)
  t.throws(() => random.uniform([-1] as number[]), ValueError)
  t.throws(() => random.uniform([1.5] as number[]), ValueError)
  t.throws(() => random.uniform('3' as unknown as number[]), ValueError)
  t.throws(() => random.normal([2], { std: -1 }), ValueError)
  t.throws(() => random.normal([2], { mean: Number.NaN }), ValueError)
  t.throws(() => random.bernoulli([2], { p: 1.5 }), ValueError)
  t.throws(() => random.bernoulli([2], { p: -0.1 }), ValueError)
  t.throws(() => random.randint([2], { low: 3, high: 3 }), ValueError)
  t.throws(() => random.randint([2], { low: 0.5, high: 3 }), ValueError)
  t.throws(() => random.randint([2], { high: 2 ** 31 + 1 }), ValueError)
  t.throws(() => random.randint([2], { low: -1, high: 3, dtype: 'uint32' }), ValueError)
  t.throws(() => random.randint([2], { high: 3, dtype: 'float32' as 'int32' }), DTypeError)
  t.throws(() => random.randint([2], undefined as unknown as { high: number }), ArgumentError)
  t.throws(() => random.uniform([2], { seed: 1, rng: rng(1) }), ArgumentError)
  t.throws(() => random.uniform([2], { rng: {} as never }), ArgumentError)
  t.throws(() => random.uniform([2], { seed: 0.5 }), ValueError)
  t.throws(() => random.seed(Number.NaN), ValueError)
  const err = t.throws(() => random.bernoulli([2], { p: 2 })) as unknown as Error
  t.match(err.message, /random\.bernoulli: p: .*probability/, 'message names op and argument')
  t.equal(memory().tensors, base, 'no tensors from failed calls')
})
