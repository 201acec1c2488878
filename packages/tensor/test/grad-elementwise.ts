import t from 'tap'
import * as h from '@heed/tensor'
import { DTypeError, ValueError, cast, clamp, grad, memory, sum, tensor, valueAndGrad, where, type Tensor } from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray } from './helpers/numeric.js'

type Fn1 = (x: Tensor) => Tensor
const op1 = (name: string): Fn1 => (h as unknown as Record<string, Fn1>)[name]!
type Fn2 = (a: Tensor, b: Tensor) => Tensor
const op2 = (name: string): Fn2 => (h as unknown as Record<string, Fn2>)[name]!

// Domains keep clear of kinks (abs and relu at 0) so central differences are valid.
const unaryDomains: Record<string, [number, number]> = {
  neg: [-3, 3],
  abs: [0.2, 3],
  square: [-3, 3],
  reciprocal: [0.3, 3],
  exp: [-3, 3],
  log: [0.2, 5],
  log1p: [-0.5, 3],
  expm1: [-3, 3],
  sqrt: [0.2, 5],
  rsqrt: [0.2, 5],
  sin: [-3, 3],
  cos: [-3, 3],
  tanh: [-3, 3],
  erf: [-2.5, 2.5],
  sigmoid: [-6, 6],
  relu: [0.1, 3],
  silu: [-6, 6],
  softplus: [-6, 6],
  logSigmoid: [-6, 6],
  gelu: [-4, 4],
}

const weights = (n: number): Tensor => tensor(randomArray(prng(99), n, 0.5, 1.5), [n], 'float64')
/** sum(w · f(x)) with fixed random weights, so every element's gradient is distinct. */
const weighted = (f: (x: Tensor) => Tensor) => (x: Tensor) => h.scope(() => {
  const y = f(x)
  return sum(h.mul(h.reshape(y, [y.size]), weights(y.size)))
})
/** Scoped so that the many evaluations checkGrad makes leave no intermediates behind. */
const sc = <A extends Tensor[]>(f: (...a: A) => Tensor) => (...a: A): Tensor => h.scope(() => f(...a))

t.test('checkGrad of every differentiable unary op', async t => {
  const rand = prng(3)
  for (const [name, [lo, hi]] of Object.entries(unaryDomains)) {
    const v = randomArray(rand, 6, lo, hi)
    await checkGrad(t, weighted(op1(name)), [{ v, shape: [2, 3] }], { msg: name })
  }
  const v = randomArray(rand, 6, -4, 4)
  await checkGrad(t, weighted(x => h.gelu(x, { approximate: 'tanh' })), [{ v, shape: [6] }], { msg: 'gelu tanh' })
  // relu and abs on the negative side: the other branch.
  await checkGrad(t, weighted(h.relu), [{ v: [-2, -0.5, 1], shape: [3] }], { msg: 'relu negative side' })
  await checkGrad(t, weighted(h.abs), [{ v: [-2, -0.5, 1], shape: [3] }], { msg: 'abs negative side' })
})

t.test('second derivatives of every differentiable unary op (grad of grad)', async t => {
  const rand = prng(4)
  for (const [name, [lo, hi]] of Object.entries(unaryDomains)) {
    const v = randomArray(rand, 4, lo, hi)
    const d1 = grad((x: Tensor) => weighted(op1(name))(x))
    await checkGrad(t, x => weighted(d1)(x), [{ v, shape: [4] }], { msg: `${name}''`, atol: 1e-5, rtol: 1e-4 })
  }
  const d1 = grad((x: Tensor) => sum(h.gelu(x, { approximate: 'tanh' })))
  await checkGrad(t, x => weighted(d1)(x), [{ v: randomArray(rand, 4, -4, 4), shape: [4] }], { msg: "gelu tanh''", atol: 1e-5, rtol: 1e-4 })
})

const binaryDomains: Record<string, { a: [number, number]; b: [number, number] }> = {
  add: { a: [-2, 2], b: [-2, 2] },
  sub: { a: [-2, 2], b: [-2, 2] },
  mul: { a: [-2, 2], b: [-2, 2] },
  div: { a: [-2, 2], b: [0.5, 2] },
  pow: { a: [0.3, 2], b: [-2, 2] },
  atan2: { a: [-2, 2], b: [-2, 2] },
  maximum: { a: [-2, 2], b: [-2, 2] },
  minimum: { a: [-2, 2], b: [-2, 2] },
  mod: { a: [0.1, 0.9], b: [1.5, 2] }, // away from the jumps of floor(a/b)
}

t.test('checkGrad of every differentiable binary op, with broadcasting', async t => {
  const rand = prng(5)
  const shapes: [number[], number[]][] = [
    [[2, 3], [2, 3]],
    [[2, 3], [3]],
    [[2, 1], [1, 3]],
    [[], [2, 2]],
    [[3, 1, 2], [1]],
  ]
  for (const [name, { a, b }] of Object.entries(binaryDomains))
    for (const [sa, sb] of shapes) {
      const av = randomArray(rand, sa.reduce((p, d) => p * d, 1), ...a)
      const bv = randomArray(rand, sb.reduce((p, d) => p * d, 1), ...b)
      await checkGrad(t, (x, y) => weighted(z => op2(name)(x, z))(y), [{ v: av, shape: sa }, { v: bv, shape: sb }], {
        msg: `${name} [${sa}] ⊕ [${sb}]`,
      })
    }
})

t.test('pow at a = 0: d/db is 0, not NaN; d/da as the power rule says', async t => {
  const a = tensor([0, 0, 0, 2], [4], 'float64')
  const b = tensor([2, 3, 1, 0.5], [4], 'float64')
  const [ga, gb] = grad((x: Tensor, y: Tensor) => sum(h.pow(x, y)), { argnums: [0, 1] })(a, b)
  t.same(Array.from(ga.dataSync()), [0, 0, 1, 0.5 / Math.SQRT2])
  assertClose(t, gb.dataSync(), [0, 0, 0, Math.SQRT2 * Math.log(2)], { atol: 1e-15, rtol: 1e-15 })
  // second order through the zero mask must stay finite too
  const g2 = grad((y: Tensor) => sum(grad((x: Tensor, yy: Tensor) => sum(h.pow(x, yy)), { argnums: 1 })(a, y)))(b)
  t.ok(Array.from(g2.dataSync()).every(Number.isFinite), 'd²/db² is finite at a = 0')
  await checkGrad(t, sc((x, y) => sum(h.pow(x, y))), [{ v: [0, 0], shape: [2] }, { v: [2, 3], shape: [2] }], { msg: 'pow at 0' })
  h.dispose([a, b, ga, gb, g2])
})

t.test('maximum/minimum split the gradient evenly on ties', async t => {
  const a = tensor([1, 2, 3], [3], 'float64')
  const b = tensor([2, 2, 1], [3], 'float64')
  for (const [name, wa, wb] of [
    ['maximum', [0, 0.5, 1], [1, 0.5, 0]],
    ['minimum', [1, 0.5, 0], [0, 0.5, 1]],
  ] as const) {
    const [ga, gb] = grad((x: Tensor, y: Tensor) => sum(op2(name)(x, y)), { argnums: [0, 1] })(a, b)
    t.same(Array.from(ga.dataSync()), wa, `${name} d/da`)
    t.same(Array.from(gb.dataSync()), wb, `${name} d/db`)
    h.dispose([ga, gb])
  }
  h.dispose([a, b])
})

t.test('where, clamp and cast gradients', async t => {
  const c = tensor([true, false, true, false])
  await checkGrad(t, (x, y) => weighted(z => where(c, x, z))(y), [{ v: [1, 2, 3, 4], shape: [4] }, { v: [5, 6, 7, 8], shape: [4] }], { msg: 'where' })
  await checkGrad(t, sc((x, y) => sum(where(c, x, y))), [{ v: [1], shape: [1] }, { v: [5, 6, 7, 8], shape: [4] }], { msg: 'where broadcast' })
  c.dispose()
  // clamp: x strictly inside, below, above (central differences need distance from the bounds)
  await checkGrad(t, weighted(x => clamp(x, -1, 1)), [{ v: [-2, -0.5, 0.3, 1.7], shape: [4] }], { msg: 'clamp numbers' })
  await checkGrad(t, (x, lo, hi) => weighted(z => clamp(x, lo, z))(hi), [
    { v: [-2, -0.5, 0.3, 1.7], shape: [4] },
    { v: [-1], shape: [1] },
    { v: [1, 1, 1, 1], shape: [4] },
  ], { msg: 'clamp tensors' })
  // at the boundary the gradient goes to x (min ≤ x ≤ max), none to the bounds
  const x = tensor([-1, 1], [2], 'float64')
  const lo = tensor(-1, [], 'float64')
  const hi = tensor(1, [], 'float64')
  const [gx, glo, ghi] = grad((a: Tensor, b: Tensor, d: Tensor) => sum(clamp(a, b, d)), { argnums: [0, 1, 2] })(x, lo, hi)
  t.same(Array.from(gx.dataSync()), [1, 1], 'x gets dy on the boundary')
  t.same([glo.dataSync()[0], ghi.dataSync()[0]], [0, 0])
  // min > max: everything is max, so max gets every dy
  const [gx2, , ghi2] = grad((a: Tensor, b: Tensor, d: Tensor) => sum(clamp(a, b, d)), { argnums: [0, 1, 2] })(x, hi, lo)
  t.same([...gx2.dataSync(), ghi2.dataSync()[0]], [0, 0, 2])
  h.dispose([x, lo, hi, gx, glo, ghi, gx2, ghi2])
  await checkGrad(t, weighted(x => cast(h.mul(cast(x, 'float32'), 3), 'float64')), [{ v: [0.5, -1.25], shape: [2] }], {
    msg: 'cast f64→f32→f64',
    eps: 2 ** -6, // x ± eps stays exact in float32, so only the product's f32 rounding is noise
    atol: 1e-4,
  })
  const gi = grad((a: Tensor) => sum(cast(cast(a, 'int32'), 'float64')))(tensor([1.5], [1], 'float64'))
  t.same(Array.from(gi.dataSync()), [0], 'a cast through int32 cuts the gradient')
  gi.dispose()
})

t.test('grad API', async t => {
  const base = memory().tensors
  const x = tensor([1, 2, 3], [3], 'float64')
  const y = tensor([4, 5, 6], [3], 'float64')
  const f = (a: Tensor, b: Tensor) => sum(h.mul(a, b))
  const g0 = grad(f)(x, y)
  t.same(Array.from(g0.dataSync()), [4, 5, 6], 'argnums defaults to 0')
  const g1 = grad(f, { argnums: 1 })(x, y)
  t.same(Array.from(g1.dataSync()), [1, 2, 3], 'argnums as a number')
  const [ga, gb] = grad(f, { argnums: [1, 0] })(x, y)
  t.same([Array.from(ga.dataSync()), Array.from(gb.dataSync())], [[1, 2, 3], [4, 5, 6]], 'argnums as a list, in its order')
  const [v, gv] = valueAndGrad(f)(x, y)
  t.equal(v.dataSync()[0], 32)

  // pytrees: same structure back, non-tensor leaves → null
  const params = { w: x, nested: [y, { s: tensor(2, [], 'float64') }], name: 'p' }
  type F64 = Tensor<'float64'>
  const gp = grad((p: typeof params) => sum(h.mul(h.mul(p.w, p.nested[0] as F64), (p.nested[1] as { s: F64 }).s)))(params)
  t.same(Object.keys(gp), ['w', 'nested', 'name'])
  t.equal(gp.name, null)
  t.same(Array.from(gp.w.dataSync()), [8, 10, 12])
  t.same(Array.from((gp.nested[0] as Tensor).dataSync()), [2, 4, 6])
  t.same(Array.from((gp.nested[1] as { s: Tensor }).s.dataSync()), [32])

  t.throws(() => grad((a: Tensor) => h.mul(a, 2))(x), ValueError, 'non-scalar f is a ValueError')
  const xi = tensor([1], [1], 'int32')
  t.throws(() => grad((a: Tensor) => sum(cast(a, 'float64')))(xi), DTypeError, 'int argument')
  xi.dispose()
  t.throws(() => grad(f, { argnums: 2 })(x, y), ValueError, 'argnums out of range')

  // f returning its own argument
  const s = tensor(3, [], 'float64')
  const [vs, gs] = valueAndGrad((a: Tensor) => a)(s)
  t.equal(vs.dataSync()[0], 3)
  t.not(vs, s, 'the value is a new handle the caller owns')
  t.same(Array.from(gs.dataSync()), [1])
  h.dispose([vs, gs])
  t.equal(s.isDisposed, false, 'the argument is not disposed')

  // unused argument → zeros
  const gz = grad((_a: Tensor, b: Tensor) => sum(b), { argnums: 0 })(x, y)
  t.same(Array.from(gz.dataSync()), [0, 0, 0])

  // nested: d²/dx² x³ = 6x, and the third derivative is 6
  const d1 = grad((a: Tensor) => sum(h.mul(h.mul(a, a), a)))
  const d2 = grad((a: Tensor) => sum(d1(a)))
  const d3 = grad((a: Tensor) => sum(d2(a)))
  const g2 = d2(x)
  const g3 = d3(x)
  t.same(Array.from(g2.dataSync()), [6, 12, 18], 'grad of grad of x³ is 6x')
  t.same(Array.from(g3.dataSync()), [6, 6, 6], 'third derivative')
  // mixed partials: d/dy (d/dx sum(x²y)) = 2x
  const mixed = grad((b: Tensor) => sum(grad((a: Tensor, bb: Tensor) => sum(h.mul(h.square(a), bb)))(x, b)))(y)
  t.same(Array.from(mixed.dataSync()), [2, 4, 6])

  h.dispose([x, y, g0, g1, ga, gb, v, gv, gp, params.nested, s, gz, g2, g3, mixed])
  t.equal(memory().tensors, base, 'nothing leaked by grad, including failing calls and nested tapes')
})

t.test('stopGradient and noGrad cut the tape', async t => {
  const x = tensor([1, 2], [2], 'float64')
  const g = grad((a: Tensor) => sum(h.mul(a, h.stopGradient(a))))(x)
  t.same(Array.from(g.dataSync()), [1, 2])
  const g2 = grad((a: Tensor) => sum(h.add(h.mul(a, 2), h.noGrad(() => h.mul(a, a)))))(x)
  t.same(Array.from(g2.dataSync()), [2, 2])
  h.dispose([x, g, g2])
})
