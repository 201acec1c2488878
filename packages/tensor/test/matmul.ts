import t, { type Test } from 'tap'
import {
  ArgumentError,
  DTypeError,
  matmul,
  memory,
  scope,
  ShapeError,
  sum,
  mul,
  tensor,
  type DType,
  type Tensor,
} from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray, sizeOf, suiteBackends } from './helpers/numeric.js'

// ---- plain-JS references -------------------------------------------------------------------------------------

interface Operand {
  readonly v: readonly number[]
  readonly shape: readonly number[]
}

/** Copy with the last two dims swapped. */
function swapLast(x: Operand): Operand {
  const r = x.shape.length
  const rows = x.shape[r - 2]!
  const cols = x.shape[r - 1]!
  const out = new Array<number>(x.v.length)
  for (let base = 0; base < x.v.length; base += rows * cols)
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[base + j * rows + i] = x.v[base + i * cols + j]!
  return { v: out, shape: [...x.shape.slice(0, -2), cols, rows] }
}

/**
 * numpy matmul in plain JS. `round` is applied after every multiply and every add: identity gives the float64
 * reference, Math.fround the naive float32 one whose error sets the float32 tolerance.
 */
function refMatmul(a: Operand, b: Operand, round: (x: number) => number = x => x): Operand {
  const a2 = a.shape.length === 1 ? { v: a.v, shape: [1, a.shape[0]!] } : a
  const b2 = b.shape.length === 1 ? { v: b.v, shape: [b.shape[0]!, 1] } : b
  const m = a2.shape[a2.shape.length - 2]!
  const k = a2.shape[a2.shape.length - 1]!
  const n = b2.shape[b2.shape.length - 1]!
  const ab = a2.shape.slice(0, -2)
  const bb = b2.shape.slice(0, -2)
  const r = Math.max(ab.length, bb.length)
  const pa = [...new Array<number>(r - ab.length).fill(1), ...ab]
  const pb = [...new Array<number>(r - bb.length).fill(1), ...bb]
  const batch = pa.map((d, i) => (d === 1 ? pb[i]! : d))
  const out: number[] = []
  const nb = sizeOf(batch)
  for (let z = 0; z < nb; z++) {
    // batch index → offsets of a and b, with broadcast dims pinned at 0
    let rem = z
    let ia = 0
    let ib = 0
    let sa = 1
    let sb = 1
    for (let d = r - 1; d >= 0; d--) {
      const idx = rem % batch[d]!
      rem = Math.floor(rem / batch[d]!)
      if (pa[d] !== 1) ia += idx * sa
      if (pb[d] !== 1) ib += idx * sb
      sa *= pa[d]!
      sb *= pb[d]!
    }
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0
        for (let p = 0; p < k; p++) acc = round(acc + round(a2.v[ia * m * k + i * k + p]! * b2.v[ib * k * n + p * n + j]!))
        out.push(acc)
      }
  }
  const shape = [...batch, ...(a.shape.length > 1 ? [m] : []), ...(b.shape.length > 1 ? [n] : [])]
  return { v: out, shape }
}

const maxAbsErr = (x: ArrayLike<number>, y: ArrayLike<number>): number => {
  let e = 0
  for (let i = 0; i < x.length; i++) e = Math.max(e, Math.abs(x[i]! - y[i]!))
  return e
}

/**
 * The float32 policy: the error against float64 may be at most twice the error of the naive float32 loop
 * (Math.fround after every operation), plus a small absolute slack for results that the naive loop gets exact.
 */
function assertF32(t: Test, actual: ArrayLike<number>, a: Operand, b: Operand, ref64: Operand, msg: string): void {
  const ref32 = refMatmul(a, b, Math.fround)
  const scale = Math.max(1, ...ref64.v.map(Math.abs))
  const bound = 2 * maxAbsErr(ref32.v, ref64.v) + 1e-7 * scale
  const err = maxAbsErr(actual, ref64.v)
  t.ok(err <= bound, `${msg}: float32 error ${err.toExponential(2)} within ${bound.toExponential(2)}`)
}

/** Random operand values stored exactly in `dtype` (float32 inputs are rounded first so references see them). */
function operand(rand: () => number, shape: readonly number[], dtype: DType, lo = -1, hi = 1): Operand {
  let v = randomArray(rand, sizeOf(shape), lo, hi)
  if (dtype === 'int32') v = v.map(x => Math.round(x * 10))
  else if (dtype !== 'float64') v = v.map(Math.fround)
  return { v, shape }
}

// [a shape, b shape]: 1-D operands, broadcast batch dims, odd sizes, row counts that are not multiples of the
// 4-row pass, and k beyond one 128-deep block.
const CASES: readonly (readonly [number[], number[]])[] = [
  [[3, 5], [5, 4]],
  [[1, 7], [7, 1]],
  [[5], [5]],
  [[5], [5, 3]],
  [[4, 5], [5]],
  [[7], [2, 7, 3]],
  [[2, 3, 7], [7]],
  [[2, 1, 3, 4], [5, 4, 6]],
  [[3, 4, 5], [5, 2]],
  [[6, 5], [3, 5, 2]],
  [[1, 2, 3], [4, 3, 2]],
  [[13, 17], [17, 9]],
  [[67, 130], [130, 33]],
  [[9, 300], [300, 11]],
]

for (const backend of suiteBackends())
  t.test(`matmul on ${backend}`, async t => {
    const base = memory().tensors
    const rand = prng(7)

    const mk = (v: readonly number[] | ArrayLike<number>, shape: readonly number[], dtype: DType): Tensor => tensor(Array.from(v), shape, dtype, { backend })
    {
      for (const dtype of ['float64', 'float32', 'float16', 'int32'] as const)
        await t.test(dtype, async t => {
          for (const [sa, sb] of CASES) {
            const a = operand(rand, sa, dtype)
            const b = operand(rand, sb, dtype)
            const ta = mk(a.v, sa, dtype)
            const tb = mk(b.v, sb, dtype)
            const y = matmul(ta, tb)
            const ref = refMatmul(a, b)
            const msg = `[${sa}] x [${sb}] ${dtype}`
            t.same(y.shape, ref.shape, `${msg} shape`)
            t.equal(y.dtype, dtype)
            const got = await y.data()
            if (dtype === 'float64') assertClose(t, got, ref.v, { atol: 1e-13, rtol: 1e-12, msg })
            else if (dtype === 'float32') assertF32(t, got, a, b, ref, msg)
            else if (dtype === 'float16') {
              // one f16 rounding of an exactly accumulated sum: half an f16 ulp, relative 2^-11
              const k = sa[sa.length - 1]!
              assertClose(t, got, ref.v, { atol: 1e-3 * Math.sqrt(k), rtol: 2 ** -10, msg })
            } else t.same(Array.from(got), ref.v, msg)
            for (const x of [ta, tb, y]) x.dispose()
          }
        })

      await t.test('transposeA / transposeB', async t => {
        for (const dtype of ['float64', 'float32'] as const)
          for (const [tA, tB] of [[false, true], [true, false], [true, true]] as const)
            for (const [sa, sb] of [[[3, 5], [5, 4]], [[2, 1, 6, 5], [3, 5, 7]], [[5], [5, 4]], [[3, 5], [5]]] as const) {
              const a = operand(rand, sa, dtype)
              const b = operand(rand, sb, dtype)
              const storedA = tA && sa.length > 1 ? swapLast(a) : a
              const storedB = tB && sb.length > 1 ? swapLast(b) : b
              const ta = mk(storedA.v, storedA.shape, dtype)
              const tb = mk(storedB.v, storedB.shape, dtype)
              const y = matmul(ta, tb, { transposeA: tA, transposeB: tB })
              const ref = refMatmul(a, b)
              const msg = `[${sa}]${tA ? 'ᵀ' : ''} x [${sb}]${tB ? 'ᵀ' : ''} ${dtype}`
              t.same(y.shape, ref.shape, msg)
              if (dtype === 'float64') assertClose(t, await y.data(), ref.v, { atol: 1e-13, rtol: 1e-12, msg })
              else assertF32(t, await y.data(), a, b, ref, msg)
              for (const x of [ta, tb, y]) x.dispose()
            }
      })

      await t.test('float32 with adversarial magnitudes and long sums', async t => {
        // mixed signs over six decades (heavy cancellation) and a 2000-long dot product
        const cases: [number[], number[], number, number][] = [
          [[8, 64], [64, 8], -1e3, 1e3],
          [[4, 2000], [2000, 5], -1, 1],
          [[3, 257], [257, 6], 0, 1e-3],
        ]
        for (const [sa, sb, lo, hi] of cases) {
          const a = operand(rand, sa, 'float32', lo, hi)
          const b = operand(rand, sb, 'float32', -1, 1)
          // exponents spread over [1e-3, 1e3]
          const spread = { v: a.v.map((x, i) => Math.fround(x * 10 ** ((i % 7) - 3))), shape: a.shape }
          const ta = mk(spread.v, sa, 'float32')
          const tb = mk(b.v, sb, 'float32')
          const y = matmul(ta, tb)
          assertF32(t, await y.data(), spread, b, refMatmul(spread, b), `[${sa}] x [${sb}] in [${lo}, ${hi}]`)
          for (const x of [ta, tb, y]) x.dispose()
        }
      })

      await t.test('empty dims', async t => {
        const a = mk([], [3, 0], 'float32')
        const b = mk([], [0, 2], 'float32')
        const y = matmul(a, b)
        t.same(y.shape, [3, 2])
        t.same(Array.from(await y.data()), [0, 0, 0, 0, 0, 0], 'k = 0 sums to zero')
        const c = mk([], [2, 0], 'float32')
        const z = matmul(b, c)
        t.same(z.shape, [0, 0])
        for (const x of [a, b, c, y, z]) x.dispose()
      })

      await t.test('int32 wraps around on overflow', async t => {
        const a = mk([65536, 65536], [1, 2], 'int32')
        const b = mk([65536, 3], [2, 1], 'int32')
        const y = matmul(a, b)
        t.same(Array.from(await y.data()), [(65536 * 65536 + 65536 * 3) | 0])
        for (const x of [a, b, y]) x.dispose()
      })
    }
    t.equal(memory().tensors, base, 'memory back to baseline')
  })

t.test('matmul gradients (finite differences, float64)', async t => {
  const rand = prng(11)
  // a weight tensor makes the scalar loss sensitive to every output element differently
  const loss = (y: () => Tensor, w: Operand): Tensor => scope(() => sum(mul(y(), tensor([...w.v], w.shape, 'float64'))))
  const cases: [number[], number[], boolean, boolean][] = [
    [[3, 4], [4, 2], false, false],
    [[2, 1, 3, 4], [5, 4, 2], false, false],
    [[3, 4], [2, 4, 5], false, false],
    [[4], [4, 3], false, false],
    [[2, 3, 4], [4], false, false],
    [[4], [4], false, false],
    [[3], [2, 3, 2], false, false],
    [[2, 3, 4], [2, 5, 4], false, true],
    [[4, 3], [4, 5], true, false],
    [[2, 4, 3], [1, 5, 4], true, true],
    [[5], [2, 3, 5], true, true],
    // one weight for every batch (a linear layer): dW is one product over the flattened batch rows
    [[2, 3, 4], [4, 5], false, false],
    [[2, 2, 3, 4], [5, 4], false, true],
  ]
  for (const [sa, sb, tA, tB] of cases) {
    const a = operand(rand, sa, 'float64')
    const b = operand(rand, sb, 'float64')
    const eff = (o: Operand, tr: boolean): Operand => (tr && o.shape.length > 1 ? swapLast(o) : o)
    const yShape = refMatmul(eff(a, tA), eff(b, tB)).shape
    const w = operand(rand, yShape, 'float64')
    await checkGrad(t, (x, z) => loss(() => matmul(x!, z!, { transposeA: tA, transposeB: tB }), w), [a, b], {
      msg: `[${sa}]${tA ? 'ᵀ' : ''} x [${sb}]${tB ? 'ᵀ' : ''}`,
    })
  }
})

t.test('matmul second-order gradient', async t => {
  // d/da of sum((a·b)²) involves matmul's own VJP; checking its gradient exercises the rule of the rule
  const { valueAndGrad } = await import('@heed/tensor')
  const rand = prng(5)
  const a = operand(rand, [2, 3], 'float64')
  const b = operand(rand, [3, 2], 'float64')
  const inner = valueAndGrad((x: Tensor, z: Tensor) => scope(() => { const y = matmul(x, z); return sum(mul(y, y)) }))
  await checkGrad(
    t,
    (x, z) =>
      scope(() => {
        const [v, g] = inner(x!, z!)
        v.dispose()
        return sum(mul(g, g))
      }),
    [a, b],
    { msg: 'grad of grad', atol: 1e-5 },
  )
})

t.test('matmul validation', async t => {
  const base = memory().tensors
  const a = tensor([[1, 2, 3], [4, 5, 6]])
  const b = tensor(new Float32Array(20), [4, 5])
  const f64 = tensor(new Float64Array(6), [3, 2])
  const s = tensor(2)
  const bool = tensor([[true, false]])
  const u32 = tensor(new Uint32Array(6), [3, 2])
  const any = matmul as unknown as (...args: unknown[]) => Tensor
  t.throws(() => any(a, b), { name: 'ShapeError', message: 'matmul: inner dims differ, a is [2,3], b is [4,5]' })
  t.throws(() => any(a, b), ShapeError)
  t.throws(() => any(a, b, { transposeA: true }), /inner dims differ, a is \[2,3\], b is \[4,5\] \(with transposeA\)/)
  t.throws(() => any(a, f64), DTypeError)
  t.throws(() => any(bool, bool), DTypeError)
  t.throws(() => any(u32, u32), DTypeError)
  t.throws(() => any(s, a), ShapeError)
  t.throws(() => any(a, s), ShapeError)
  const b1 = tensor(new Float32Array(2 * 3 * 4), [2, 3, 4])
  const b2 = tensor(new Float32Array(3 * 4 * 5), [3, 4, 5])
  t.throws(() => any(b1, b2), { name: 'ShapeError', message: /not broadcastable/ })
  t.throws(() => any(a, [1, 2]), ArgumentError)
  t.throws(() => any(a), ArgumentError)
  t.throws(() => any(a, a, { transposeB: 'yes' }), ArgumentError)
  t.throws(() => any(a, a, { transpose: true }), ArgumentError)
  for (const x of [a, b, f64, s, bool, u32, b1, b2]) x.dispose()
  t.equal(memory().tensors, base)
})
