import t from 'tap'
import * as h from '@heed/tensor'
import {
  ArgumentError,
  DTypeError,
  ShapeError,
  cast,
  clamp,
  gelu,
  memory,
  scalar,
  tensor,
  where,
  withBackend,
  type DType,
  type Tensor,
} from '@heed/tensor'
import { assertClose, prng, randomArray, sizeOf, suiteBackends, tol } from './helpers/numeric.js'

type Fn1 = (x: Tensor) => Tensor
const op1 = (name: string): Fn1 => (h as unknown as Record<string, Fn1>)[name]!
type Fn2 = (a: Tensor | number, b: Tensor | number) => Tensor
const op2 = (name: string): Fn2 => (h as unknown as Record<string, Fn2>)[name]!

// Independent float64 references. erf has no Math counterpart: reference points are mpmath at 40 digits.
const sigmoidRef = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))
const softplusRef = (x: number): number => (x > 30 ? x + Math.exp(-x) : x < -30 ? Math.exp(x) : Math.log(1 + Math.exp(x)))
const roundHalfEven = (x: number): number => {
  const f = Math.floor(x)
  const d = x - f
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1
}

const unaryRefs: Record<string, { f: (x: number) => number; lo: number; hi: number }> = {
  neg: { f: x => -x, lo: -5, hi: 5 },
  abs: { f: Math.abs, lo: -5, hi: 5 },
  sign: { f: Math.sign, lo: -5, hi: 5 },
  square: { f: x => x * x, lo: -5, hi: 5 },
  reciprocal: { f: x => 1 / x, lo: 0.1, hi: 5 },
  exp: { f: Math.exp, lo: -10, hi: 10 },
  log: { f: Math.log, lo: 1e-3, hi: 100 },
  log1p: { f: Math.log1p, lo: -0.9, hi: 10 },
  expm1: { f: Math.expm1, lo: -3, hi: 3 },
  sqrt: { f: Math.sqrt, lo: 0, hi: 100 },
  rsqrt: { f: x => 1 / Math.sqrt(x), lo: 0.01, hi: 100 },
  sin: { f: Math.sin, lo: -10, hi: 10 },
  cos: { f: Math.cos, lo: -10, hi: 10 },
  tanh: { f: Math.tanh, lo: -5, hi: 5 },
  floor: { f: Math.floor, lo: -5, hi: 5 },
  ceil: { f: Math.ceil, lo: -5, hi: 5 },
  round: { f: roundHalfEven, lo: -5, hi: 5 },
  sigmoid: { f: sigmoidRef, lo: -20, hi: 20 },
  relu: { f: x => Math.max(x, 0), lo: -5, hi: 5 },
  silu: { f: x => x * sigmoidRef(x), lo: -10, hi: 10 },
  softplus: { f: softplusRef, lo: -20, hi: 20 },
  logSigmoid: { f: x => -softplusRef(-x), lo: -20, hi: 20 },
}

t.test('every unary op matches its float64 reference in float64, float32 and float16', async t => {
  const base = memory().tensors
  const rand = prng(1)
  for (const backend of suiteBackends())
    for (const [name, { f, lo, hi }] of Object.entries(unaryRefs)) {
      const v = randomArray(rand, 64, lo, hi)
      for (const dtype of ['float64', 'float32', 'float16'] as const) {
        const x = withBackend(backend, () => tensor(v, [8, 8], dtype))
        const xs = x.dataSync() // the inputs as the dtype holds them
        const y = op1(name)(x)
        t.equal(y.dtype, dtype, `${name} keeps ${dtype}`)
        t.same(y.shape, [8, 8])
        // float16 results are rounded once more, so allow one f16 ulp relative on top of the f32 tolerance.
        const { atol, rtol } = tol(dtype)
        assertClose(t, y.dataSync(), Array.from(xs, f), { atol, rtol, msg: `${name} ${dtype} on ${backend}` })
        x.dispose()
        y.dispose()
      }
    }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('erf against mpmath', async t => {
  // [x, erf(x)] at 40-digit precision, across the series / continued-fraction split at 1.5 and the old one at 3.
  const table: [number, number][] = [
    [-4, -0.9999999845827421],
    [-2.5, -0.99959304798255504],
    [-1, -0.84270079294971487],
    [-0.3, -0.32862675945912742],
    [0, 0],
    [1e-8, 1.1283791670955126e-8],
    [0.5, 0.52049987781304654],
    [1.4999, 0.96609325166229527],
    [1.5, 0.96610514647531073],
    [2, 0.99532226501895273],
    [2.9999, 0.99997789557351784],
    [3, 0.99997790950300141],
    [3.0001, 0.99997792342412981],
    [5, 0.99999999999846254],
  ]
  const x = tensor(table.map(r => r[0]), [table.length], 'float64')
  const y = h.erf(x)
  assertClose(t, y.dataSync(), table.map(r => r[1]), { atol: 2e-16, rtol: 0, msg: 'erf to 2e-16 absolute' })
  const exact32 = table.filter(r => Math.fround(r[0]) === r[0])
  const x32 = tensor(exact32.map(r => r[0]), [exact32.length], 'float32')
  const y32 = h.erf(x32)
  t.same(Array.from(y32.dataSync()), exact32.map(r => Math.fround(r[1])), 'float32 erf is the correctly rounded value')
  h.dispose([x, y, x32, y32])
})

t.test('gelu exact and tanh against mpmath, including the far negative tail', async t => {
  // x · Φ(x) and ½x(1 + tanh(√(2/π)(x + 0.044715x³))), mpmath at 80 digits (1 + tanh cancels ~37 of them at -10).
  const xs = [-10, -6, -5, -3, -1, -1e-3, 0.7, 3, 8]
  const exact = [
    -7.6198530241605261e-23, -5.9195258702261888e-9, -1.4332578593959696e-6, -0.0040496940948902836, -0.15865525393145705,
    -0.00049960105778608895, 0.53062544344384885, 2.9959503059051097, 7.999999999999995,
  ]
  const tanhForm = [
    -1.204092348209806e-37, -8.4396467007622971e-11, -2.291796196629506e-7, -0.0036373920817730188, -0.1588080093917233,
    -0.00049960105778641804, 0.53057013470511671, 2.996362607918227, 8.0,
  ]
  const x = tensor(xs, [xs.length], 'float64')
  const ge = gelu(x)
  const gt = gelu(x, { approximate: 'tanh' })
  // Relative 1e-12 with no absolute floor: the tails must be right, not merely small.
  assertClose(t, ge.dataSync(), exact, { atol: 0, rtol: 1e-12, msg: 'gelu exact' })
  assertClose(t, gt.dataSync(), tanhForm, { atol: 0, rtol: 1e-12, msg: 'gelu tanh' })
  t.throws(() => gelu(x, { approximate: 'erf' as 'tanh' }), h.ValueError)
  h.dispose([x, ge, gt])
})

t.test('softplus, logSigmoid and sigmoid at ±1e4 and tiny values do not overflow', async t => {
  const xs = [-1e4, -800, -1e-300, 0, 1e-300, 1e-8, 800, 1e4]
  for (const dtype of ['float64', 'float32'] as const) {
    const x = tensor(xs, [xs.length], dtype)
    const sp = h.softplus(x)
    const ls = h.logSigmoid(x)
    const sg = h.sigmoid(x)
    const xv = x.dataSync()
    const { atol, rtol } = tol(dtype)
    assertClose(t, sp.dataSync(), Array.from(xv, softplusRef), { atol: 0, rtol, msg: `softplus ${dtype}` })
    assertClose(t, ls.dataSync(), Array.from(xv, v => -softplusRef(-v)), { atol: 0, rtol, msg: `logSigmoid ${dtype}` })
    assertClose(t, sg.dataSync(), Array.from(xv, sigmoidRef), { atol, rtol, msg: `sigmoid ${dtype}` })
    t.equal(sp.dataSync()[7], dtype === 'float64' ? 1e4 : Math.fround(1e4), 'softplus(1e4) = 1e4 exactly')
    t.equal(ls.dataSync()[0], dtype === 'float64' ? -1e4 : Math.fround(-1e4), 'logSigmoid(-1e4) = -1e4 exactly')
    t.ok(Math.abs(sp.dataSync()[0]!) < 1e-300, 'softplus(-1e4) underflows to 0, not NaN')
    t.equal(sg.dataSync()[0], 0)
    t.equal(sg.dataSync()[7], 1)
    t.ok([...sp.dataSync(), ...ls.dataSync(), ...sg.dataSync()].every(Number.isFinite), 'all finite')
    h.dispose([x, sp, ls, sg])
  }
})

t.test('round is half to even', async t => {
  const x = tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999999999999994, 2.500001, -2.500001], [10], 'float64')
  const r = h.round(x)
  t.same(Array.from(r.dataSync()), [-2, -2, -0, 0, 2, 2, 4, 0, 3, -3])
  h.dispose([x, r])
})

t.test('float16 storage rounds once, to nearest even', async t => {
  // 1 + 2^-11 is the midpoint of 1 and 1 + 2^-10: ties to even (1). A hair above must round up, which a
  // float64 → float32 → float16 double rounding gets wrong.
  const vals = [1 + 2 ** -11, 1 + 2 ** -11 + 2 ** -40, 1 + 3 * 2 ** -11, 65504, 65519, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, -0, 1e-9]
  const want = [1, 1 + 2 ** -10, 1 + 2 ** -9, 65504, 65504, Infinity, 2 ** -24, 0, 2 ** -24, -0, 0]
  const x = tensor(vals, [vals.length], 'float16')
  t.same(Array.from(x.dataSync()), want, 'tensor() into float16')
  const x64 = tensor(vals, [vals.length], 'float64')
  const c = cast(x64, 'float16')
  t.same(Array.from(c.dataSync()), want, 'cast float64 → float16')
  const k = h.add(tensor([0], [1], 'float16'), 1 + 2 ** -11 + 2 ** -40)
  t.equal(k.dataSync()[0], 1 + 2 ** -10, 'a number operand is rounded once too')
  // f16 arithmetic: 2048 + 1 is not representable (spacing 2 above 2048) and ties to even.
  const s = h.add(tensor([2048, 2048], [2], 'float16'), tensor([1, 3], [2], 'float16'))
  t.same(Array.from(s.dataSync()), [2048, 2052])
  t.ok(Object.is(x.dataSync()[9], -0), '-0 survives')
  h.dispose([x, x64, c, k, s])
})

// ---- binary -------------------------------------------------------------------------------------------------

const binaryRefs: Record<string, { f: (a: number, b: number) => number; lo?: number; hi?: number; blo?: number }> = {
  add: { f: (a, b) => a + b },
  sub: { f: (a, b) => a - b },
  mul: { f: (a, b) => a * b },
  div: { f: (a, b) => a / b, blo: 0.5 },
  pow: { f: (a, b) => a ** b, lo: 0.1, hi: 3 },
  maximum: { f: Math.max },
  minimum: { f: Math.min },
  mod: { f: (a, b) => a - Math.floor(a / b) * b, blo: 0.5 },
  atan2: { f: Math.atan2 },
}

/** Random broadcast-compatible shape pairs, including rank 0 and size-0 dims. */
function shapePair(rand: () => number): [number[], number[]] {
  const rank = Math.floor(rand() * 4)
  const out = Array.from({ length: rank }, () => [0, 1, 2, 3][Math.floor(rand() * 4)]!)
  const sub = (): number[] => out.slice(Math.floor(rand() * (rank + 1))).map(d => (rand() < 0.4 ? 1 : d))
  return [sub(), sub()]
}

function broadcastRef(a: ArrayLike<number>, sa: readonly number[], b: ArrayLike<number>, sb: readonly number[], f: (x: number, y: number) => number) {
  const n = Math.max(sa.length, sb.length)
  const pa = [...Array<number>(n - sa.length).fill(1), ...sa]
  const pb = [...Array<number>(n - sb.length).fill(1), ...sb]
  const shape = pa.map((d, i) => (d === 1 ? pb[i]! : d))
  const out: number[] = []
  const idx = Array<number>(n).fill(0)
  const flat = (p: number[], i: number[]) => p.reduce((acc, d, k) => acc * d + (d === 1 ? 0 : i[k]!), 0)
  for (let k = 0; k < sizeOf(shape); k++) {
    let r = k
    for (let d = n - 1; d >= 0; d--) {
      idx[d] = r % shape[d]!
      r = Math.floor(r / shape[d]!)
    }
    out.push(f(a[flat(pa, idx)]!, b[flat(pb, idx)]!))
  }
  return { shape, out }
}

t.test('every binary op broadcasts like numpy on random shapes (rank 0, size-0 dims)', async t => {
  const base = memory().tensors
  const rand = prng(2)
  let sawEmpty = false
  let sawScalar = false
  for (const [name, { f, lo = -3, hi = 3, blo }] of Object.entries(binaryRefs))
    for (let trial = 0; trial < 12; trial++) {
      const [sa, sb] = shapePair(rand)
      sawEmpty ||= sizeOf(sa) === 0 || sizeOf(sb) === 0
      sawScalar ||= sa.length === 0 || sb.length === 0
      const av = randomArray(rand, sizeOf(sa), lo, hi)
      const bv = randomArray(rand, sizeOf(sb), blo ?? lo, hi)
      for (const dtype of ['float64', 'float32'] as const) {
        const a = tensor(av, sa, dtype)
        const b = tensor(bv, sb, dtype)
        const want = broadcastRef(a.dataSync(), sa, b.dataSync(), sb, f)
        const y = op2(name)(a, b)
        t.same(y.shape, want.shape, `${name} [${sa}] ⊕ [${sb}] shape`)
        assertClose(t, y.dataSync(), want.out, { ...tol(dtype), msg: `${name} ${dtype} [${sa}] ⊕ [${sb}]` })
        h.dispose([a, b, y])
      }
    }
  t.ok(sawEmpty && sawScalar, 'the random shapes covered rank 0 and size 0')
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('numbers as operands adopt the tensor dtype, on either side', async t => {
  const x = tensor([1, 2, 4], [3], 'float64')
  const cases: [Tensor, number[]][] = [
    [h.sub(x, 1), [0, 1, 3]],
    [h.sub(1, x), [0, -1, -3]],
    [h.div(1, x), [1, 0.5, 0.25]],
    [h.pow(2, x), [2, 4, 16]],
    [h.pow(x, 0.5), [1, Math.SQRT2, 2]],
  ]
  for (const [y, want] of cases) {
    t.equal(y.dtype, 'float64')
    assertClose(t, y.dataSync(), want, tol('float64'))
  }
  const i = tensor([7, -7], [2], 'int32')
  t.throws(() => h.add(i, 2.5), DTypeError, 'a fractional number with int32 is rejected, not truncated')
  t.throws(() => h.sub(tensor([1], [1], 'uint32'), -1), DTypeError, 'a negative number with uint32 is rejected')
  h.dispose([x, i, cases.map(c => c[0])])
})

t.test('int32 arithmetic: wrap-around, truncating division, floor mod', async t => {
  const a = tensor([7, -7, 7, -7, 2 ** 31 - 1, 46341, 0], [7], 'int32')
  const b = tensor([2, 2, -2, -2, 1, 46341, 3], [7], 'int32')
  t.same(Array.from(h.div(a, b).dataSync()), [3, -3, -3, 3, 2 ** 31 - 1, 1, 0], 'division truncates toward zero')
  t.same(Array.from(h.mod(a, b).dataSync()), [1, 1, -1, -1, 0, 0, 0], 'mod takes the sign of b')
  t.same(Array.from(h.add(a, b).dataSync()), [9, -5, 5, -9, -(2 ** 31), 92682, 3], 'add wraps at 2^31')
  // 46341² = 2147488281 wraps to -2147479015; (2^31-1)·(2^31-1) needs the exact low 32 bits (1).
  const m = h.mul(a, a)
  t.same(Array.from(m.dataSync()), [49, 49, 49, 49, 1, -2147479015, 0], 'mul wraps exactly (Math.imul)')
  t.same(Array.from(h.square(a).dataSync()), [49, 49, 49, 49, 1, -2147479015, 0], 'square too')
  const u = h.mul(tensor([0xffffffff], [1], 'uint32'), tensor([0xffffffff], [1], 'uint32'))
  t.same(Array.from(u.dataSync()), [1], 'uint32 mul wraps mod 2^32')
  t.equal(h.div(a, b).dtype, 'int32')
  t.same(Array.from(h.neg(a).dataSync()).slice(0, 2), [-7, 7])
  t.same(Array.from(h.abs(a).dataSync()).slice(0, 2), [7, 7])
  t.throws(() => h.exp(a), DTypeError, 'exp of int32 is a DTypeError')
  t.throws(() => h.pow(a, b), DTypeError, 'pow is float-only')
  h.dispose([a, b, m, u])
})

t.test('comparisons and logical ops give bool', async t => {
  const a = tensor([1, 2, 3, NaN], [4], 'float32')
  const b = tensor([2, 2, 2, NaN], [4], 'float32')
  const expect: Record<string, number[]> = {
    equal: [0, 1, 0, 0],
    notEqual: [1, 0, 1, 1],
    less: [1, 0, 0, 0],
    lessEqual: [1, 1, 0, 0],
    greater: [0, 0, 1, 0],
    greaterEqual: [0, 1, 1, 0],
  }
  for (const [name, want] of Object.entries(expect)) {
    const y = op2(name)(a, b)
    t.equal(y.dtype, 'bool', `${name} → bool`)
    t.same(Array.from(y.dataSync()), want, name)
    y.dispose()
  }
  const p = tensor([true, true, false, false])
  const q = tensor([true, false, true, false])
  t.equal(p.dtype, 'bool')
  for (const [name, want] of Object.entries({ logicalAnd: [1, 0, 0, 0], logicalOr: [1, 1, 1, 0], logicalXor: [0, 1, 1, 0] })) {
    const y = op2(name)(p, q)
    t.equal(y.dtype, 'bool')
    t.same(Array.from(y.dataSync()), want, name)
    y.dispose()
  }
  const n = h.logicalNot(p)
  t.same(Array.from(n.dataSync()), [0, 0, 1, 1])
  t.throws(() => h.logicalNot(a), DTypeError, 'logicalNot of float32 is a DTypeError')
  t.throws(() => h.logicalAnd(a, b), DTypeError)
  t.throws(() => h.less(p, q), DTypeError, 'ordering bools is rejected')
  const eqScalar = h.equal(a, 2)
  t.same(Array.from(eqScalar.dataSync()), [0, 1, 0, 0], 'comparison with a number')
  h.dispose([a, b, p, q, n, eqScalar])
})

t.test('where and clamp', async t => {
  const c = tensor([[true], [false]])
  const a = tensor([1, 2, 3], [3], 'float64')
  const w = where(c, a, -1)
  t.same(w.shape, [2, 3])
  t.same(Array.from(w.dataSync()), [1, 2, 3, -1, -1, -1])
  t.equal(w.dtype, 'float64', 'the number adopts the tensor branch dtype')
  t.throws(() => where(a, a, a), DTypeError, 'cond must be bool')
  t.throws(() => where(c, a, tensor([1], [1], 'float32')), DTypeError)
  t.throws(() => where(tensor([true, false]), a, a), ShapeError)

  const x = tensor([-3, -1, 0, 0.5, 1, 2, NaN], [7], 'float64')
  const y = clamp(x, -1, 1)
  t.same(Array.from(y.dataSync()), [-1, -1, 0, 0.5, 1, 1, NaN])
  const lo = tensor([[0], [-2]], [2, 1], 'float64')
  const y2 = clamp(x, lo, 0.75)
  t.same(y2.shape, [2, 7], 'tensor bounds broadcast')
  t.same(Array.from(y2.dataSync()), [0, 0, 0, 0.5, 0.75, 0.75, NaN, -2, -1, 0, 0.5, 0.75, 0.75, NaN])
  const y3 = clamp(x, 1, -1)
  t.same(Array.from(y3.dataSync()).slice(0, 6), [-1, -1, -1, -1, -1, -1], 'min > max gives max, as numpy')
  const i = tensor([-5, 3, 9], [3], 'int32')
  const yi = clamp(i, 0, Infinity)
  t.same(Array.from(yi.dataSync()), [0, 3, 9], 'an infinite bound on int32 is unbounded, not 0')
  t.equal(yi.dtype, 'int32')
  t.throws(() => clamp(i, 0.5, 2), DTypeError)
  t.throws(() => clamp(x, tensor([0], [1], 'float32'), 1), DTypeError)
  t.throws(() => clamp(x, tensor([0, 0], [2], 'float64'), 1), ShapeError)
  t.throws(() => clamp(x, '0' as unknown as number, 1), ArgumentError)
  h.dispose([c, a, w, x, y, lo, y2, y3, i, yi])
})

t.test('validation: dtype mismatch, shape mismatch, wrong kinds of argument', async t => {
  const base = memory().tensors
  const a = tensor([[1, 2, 3], [4, 5, 6]])
  const b = tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 2, 3]])
  const d = tensor([1, 2, 3], [3], 'float64')
  t.throws(() => h.add(a, d as unknown as typeof a), DTypeError, 'float32 + float64 is a DTypeError')
  try {
    h.add(a, b as never)
    t.fail('expected a ShapeError')
  } catch (e) {
    t.type(e, ShapeError)
    t.match((e as Error).message, /\[2,3\]/, 'names a')
    t.match((e as Error).message, /\[4,3\]/, 'names b')
    t.match((e as Error).message, /^add: /, 'names the op')
  }
  try {
    h.mul(a, 'x' as unknown as number)
    t.fail('expected an ArgumentError')
  } catch (e) {
    t.type(e, ArgumentError)
    const err = e as ArgumentError
    t.equal(err.op, 'mul')
    t.equal(err.arg, 'argument 1')
  }
  t.throws(() => (h.exp as (...a: unknown[]) => unknown)(), ArgumentError, 'too few arguments')
  t.throws(() => (h.exp as (...a: unknown[]) => unknown)(a, a), ArgumentError, 'too many arguments')
  t.throws(() => h.exp([1, 2] as unknown as Tensor), { name: 'ArgumentError', op: 'exp' })
  const i = tensor([1], [1], 'int32')
  const bo = tensor([true])
  t.throws(() => h.exp(i), { name: 'DTypeError', op: 'exp', arg: 'x' })
  t.throws(() => h.neg(bo), DTypeError, 'neg of bool')
  t.throws(() => h.add(bo, bo), DTypeError, 'add of bool')
  t.throws(() => cast(a, 'float8' as DType), DTypeError)
  h.dispose([a, b, d, i, bo])
  t.equal(memory().tensors, base, 'failed calls leak nothing')
})

t.test('cast', async t => {
  const x = tensor([-2.7, -0.5, 0, 0.5, 2.7, NaN], [6], 'float64')
  t.same(Array.from(cast(x, 'int32').dataSync()), [-2, 0, 0, 0, 2, 0], 'float → int truncates toward zero')
  t.same(Array.from(cast(x, 'bool').dataSync()), [1, 1, 0, 1, 1, 0], '→ bool is x != 0 (NaN → false)')
  t.same(Array.from(cast(x, 'float32').dataSync()), Array.from(new Float32Array([-2.7, -0.5, 0, 0.5, 2.7, NaN])))
  const same = cast(x, 'float64')
  t.equal(same.storage, x.storage, 'a same-dtype cast shares storage')
  const b = cast(tensor([true, false]), 'float32')
  t.same(Array.from(b.dataSync()), [1, 0])
  h.dispose([x, same, b])
})

t.test('scalar ops keep rank 0', async t => {
  const s = scalar(2, 'float64')
  const y = h.mul(h.exp(s), 3)
  t.same(y.shape, [])
  assertClose(t, y.dataSync(), [3 * Math.exp(2)], tol('float64'))
})
