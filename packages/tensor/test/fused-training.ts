import t from 'tap'
import * as h from '@heed/tensor'
import { crossEntropy, DTypeError, grad, memory, mul, rmsNorm, ShapeError, sum, tensor, ValueError, type Tensor } from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray } from './helpers/numeric.js'
import { eachBackend } from './helpers/backends.js'
import { runParity } from './helpers/parity.js'

// ---- float64 references -----------------------------------------------------------------------------------

function rmsRef(x: readonly number[], g: readonly number[], d: number, eps: number): number[] {
  const out: number[] = []
  for (let o = 0; o < x.length; o += d) {
    let ss = 0
    for (let j = 0; j < d; j++) ss += x[o + j]! ** 2
    const r = 1 / Math.sqrt(ss / d + eps)
    for (let j = 0; j < d; j++) out.push(x[o + j]! * r * g[j]!)
  }
  return out
}

function ceRef(x: readonly number[], tg: readonly number[], v: number, reduction: string, ignore?: number): number[] {
  const per: number[] = []
  let total = 0
  let count = 0
  tg.forEach((tt, row) => {
    if (tt === ignore) {
      per.push(0)
      return
    }
    const r = x.slice(row * v, row * v + v)
    const m = Math.max(...r)
    const lse = m + Math.log(r.reduce((s, e) => s + Math.exp(e - m), 0))
    per.push(lse - r[tt]!)
    total += lse - r[tt]!
    count++
  })
  return reduction === 'none' ? per : reduction === 'sum' ? [total] : [total / count]
}

const weights = (n: number, dtype: h.DType = 'float64'): Tensor => tensor(randomArray(prng(99), n, 0.5, 1.5), [n], dtype)
const weighted = (f: (...a: Tensor[]) => Tensor) => (...a: Tensor[]) =>
  h.scope(() => {
    const y = f(...a)
    return sum(mul(h.reshape(y, [y.size]), weights(y.size, y.dtype)))
  })

// ---- RMSNorm ----------------------------------------------------------------------------------------------

t.test('rmsNorm: float32 and float64 against the float64 reference, adversarial row scales', async t => {
  const before = memory().tensors
  const rand = prng(1)
  const d = 24
  const scales = [1, 1e-18, 1e18, 3e-3, 50, 1]
  const xv = scales.flatMap(s => randomArray(rand, d, -2, 2).map(v => v * s))
  const gv = randomArray(rand, d, -1.5, 1.5)
  for (const eps of [1e-6, 0]) {
    const ref = rmsRef(xv.map(Math.fround), gv.map(Math.fround), d, eps)
    const ref64 = rmsRef(xv, gv, d, eps)
    for (const dtype of ['float32', 'float64'] as const) {
      const x = tensor(xv, [2, 3, d], dtype)
      const g = tensor(gv, [d], dtype)
      const y = rmsNorm(x, g, { eps })
      t.same(y.shape, [2, 3, d])
      if (dtype === 'float32') assertClose(t, y.dataSync(), ref, { atol: 1e-30, rtol: 2.4e-7, msg: `float32 eps=${eps}` })
      else assertClose(t, y.dataSync(), ref64, { atol: 0, rtol: 1e-14, msg: `float64 eps=${eps}` })
      h.dispose([x, g, y])
    }
  }
  t.equal(memory().tensors, before, 'no tensors left behind')
})

t.test('rmsNorm: matches the composed x·rsqrt(mean(x²)+eps)·gain, forward and gradients, in float32', async t => {
  const before = memory().tensors
  const rand = prng(2)
  const x = tensor(randomArray(rand, 16 * 128, -3, 3), [16, 128], 'float32')
  const g = tensor(randomArray(rand, 128, 0.5, 1.5), [128], 'float32')
  const w = weights(16 * 128, 'float32')
  const composed = (a: Tensor, b: Tensor) => mul(mul(a, h.rsqrt(h.add(h.mean(mul(a, a), { axis: -1, keepDims: true }), 1e-6))), b)
  const loss = (f: (a: Tensor, b: Tensor) => Tensor) => (a: Tensor, b: Tensor) => sum(mul(h.reshape(f(a, b), [a.size]), w))
  const [lf, [dxf, dgf]] = h.valueAndGrad(loss((a, b) => rmsNorm(a, b)), { argnums: [0, 1] })(x, g)
  const [lc, [dxc, dgc]] = h.valueAndGrad(loss(composed), { argnums: [0, 1] })(x, g)
  assertClose(t, lf.dataSync(), lc.dataSync(), { rtol: 1e-5, msg: 'loss' })
  assertClose(t, dxf.dataSync(), dxc.dataSync(), { atol: 1e-5, rtol: 1e-4, msg: 'dx' })
  assertClose(t, dgf.dataSync(), dgc.dataSync(), { atol: 1e-4, rtol: 1e-4, msg: 'dgain' })
  h.dispose([x, g, w, lf, dxf, dgf, lc, dxc, dgc])
  t.equal(memory().tensors, before, 'no tensors left behind')
})

t.test('rmsNorm: gradients by finite differences (first and second order), ranks 1 and 3', async t => {
  const rand = prng(3)
  const f = (x: Tensor, g: Tensor) => rmsNorm(x, g, { eps: 1e-3 })
  await checkGrad(t, weighted(f), [{ v: randomArray(rand, 2 * 3 * 5), shape: [2, 3, 5] }, { v: randomArray(rand, 5, 0.5, 1.5), shape: [5] }], { msg: 'rank 3' })
  await checkGrad(t, weighted(f), [{ v: randomArray(rand, 7), shape: [7] }, { v: randomArray(rand, 7, 0.5, 1.5), shape: [7] }], { msg: 'rank 1' })
  // grad of grad: the rule records the composed backward when a tape is open
  const inner = (x: Tensor, g: Tensor) => h.scope(() => sum(mul(h.reshape(grad(weighted(f), { argnums: [0, 1] })(x, g)[0] as Tensor, [12]), weights(12))))
  await checkGrad(t, inner, [{ v: randomArray(rand, 12), shape: [3, 4] }, { v: randomArray(rand, 4, 0.5, 1.5), shape: [4] }], { msg: 'second order', atol: 1e-5, rtol: 1e-4 })
})

t.test('rmsNorm: typed errors', async t => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], 'float32')
  const g3 = tensor([1, 1, 1], [3], 'float32')
  const g2 = tensor([1, 1], [2], 'float32')
  const g64 = tensor([1, 1, 1], [3], 'float64')
  const xi = tensor([1, 2, 3], [3], 'int32')
  t.throws(() => rmsNorm(x, g2), ShapeError)
  t.throws(() => rmsNorm(x, g64), DTypeError)
  t.throws(() => rmsNorm(xi, g3), DTypeError)
  t.throws(() => rmsNorm(x, g3, { eps: -1 }), ValueError)
  t.throws(() => (rmsNorm as (...a: unknown[]) => Tensor)(x, 3), h.ArgumentError)
  h.dispose([x, g3, g2, g64, xi])
})

// ---- cross-entropy ----------------------------------------------------------------------------------------

t.test('crossEntropy: every reduction and ignoreIndex against the float64 reference, logits up to ±1e4', async t => {
  const before = memory().tensors
  const rand = prng(4)
  const v = 65
  const rows = 9
  const xv = randomArray(rand, rows * v, -4, 4)
  // adversarial rows: huge logits (a naive exp overflows), a near tie at ±1e4, a very peaked row
  for (let j = 0; j < v; j++) {
    xv[v + j] = 1e4 + xv[v + j]!
    xv[2 * v + j] = -1e4 + xv[2 * v + j]! * 1e-3
    xv[3 * v + j] = j === 5 ? 80 : -80
  }
  const tv = Array.from({ length: rows }, (_, i) => (i * 7) % v)
  tv[3] = 5
  for (const dtype of ['float32', 'float64'] as const) {
    const x32 = dtype === 'float32' ? xv.map(Math.fround) : xv
    for (const reduction of ['mean', 'sum', 'none'] as const)
      for (const ignoreIndex of [undefined, 14]) {
        const x = tensor(xv, [3, 3, v], dtype)
        const tg = tensor(tv, [3, 3], 'int32')
        const y = crossEntropy(x, tg, { reduction, ...(ignoreIndex !== undefined ? { ignoreIndex } : {}) })
        t.same(y.shape, reduction === 'none' ? [3, 3] : [])
        const ref = ceRef(x32, tv, v, reduction, ignoreIndex)
        assertClose(t, y.dataSync(), ref, dtype === 'float32' ? { atol: 1e-6, rtol: 2.4e-7, msg: `${dtype} ${reduction} ignore=${ignoreIndex}` } : { atol: 1e-12, rtol: 1e-13, msg: `${dtype} ${reduction}` })
        h.dispose([x, tg, y])
      }
  }
  t.equal(memory().tensors, before, 'no tensors left behind')
})

t.test('crossEntropy: the fused gradient is (softmax − onehot)·g; finite differences, first and second order', async t => {
  const rand = prng(5)
  const targets = tensor([2, 0, 4, 1, 2, 3], [2, 3], 'int32')
  for (const reduction of ['mean', 'sum', 'none'] as const)
    for (const ignoreIndex of [undefined, 2]) {
      const f = (x: Tensor) => crossEntropy(x, targets, { reduction, ...(ignoreIndex !== undefined ? { ignoreIndex } : {}) })
      await checkGrad(t, weighted(f), [{ v: randomArray(rand, 30, -3, 3), shape: [2, 3, 5] }], { msg: `${reduction} ignore=${ignoreIndex}` })
    }
  const inner = (x: Tensor) => h.scope(() => sum(mul(h.reshape(grad(weighted((a: Tensor) => crossEntropy(a, targets, { ignoreIndex: 2 })))(x), [30]), weights(30))))
  await checkGrad(t, inner, [{ v: randomArray(rand, 30, -3, 3), shape: [2, 3, 5] }], { msg: 'second order', atol: 1e-5, rtol: 1e-4 })
  // float32 gradient against the float64 one at a language-model shape
  const xv = randomArray(rand, 256 * 65, -6, 6)
  const tv = Array.from({ length: 256 }, (_, i) => (i * 31) % 65)
  const before = memory().tensors
  const run = (dtype: 'float32' | 'float64') => {
    const x = tensor(xv, [256, 65], dtype)
    const tg = tensor(tv, [256], 'int32')
    const d = grad((a: Tensor) => crossEntropy(a, tg))(x)
    const out = Array.from(d.dataSync())
    h.dispose([x, tg, d])
    return out
  }
  assertClose(t, run('float32'), run('float64'), { atol: 1e-9, rtol: 1e-6, msg: 'float32 gradient at [256, 65]' })
  t.equal(memory().tensors, before, 'no tensors left behind')
  targets.dispose()
})

t.test('crossEntropy: typed errors for targets out of range, wrong dtype, shape mismatch, bad options', async t => {
  const x = tensor(randomArray(prng(6), 12), [3, 4], 'float32')
  const good = tensor([0, 3, 1], [3], 'int32')
  const high = tensor([0, 4, 1], [3], 'int32')
  const neg = tensor([0, -1, 1], [3], 'int32')
  const floatT = tensor([0, 1, 1], [3], 'float32')
  const wrongShape = tensor([0, 1], [2], 'int32')
  t.throws(() => crossEntropy(x, high), ValueError)
  t.throws(() => crossEntropy(x, neg), ValueError)
  t.doesNotThrow(() => crossEntropy(x, neg, { ignoreIndex: -1 }).dispose(), 'an ignored negative target is fine')
  t.throws(() => crossEntropy(x, floatT), DTypeError)
  t.throws(() => crossEntropy(x, wrongShape), ShapeError)
  t.throws(() => crossEntropy(x, good, { reduction: 'avg' as 'mean' }), ValueError)
  t.throws(() => crossEntropy(x, good, { ignoreIndex: 0.5 }), ValueError)
  t.throws(() => crossEntropy(good, good), DTypeError)
  const all = crossEntropy(x, tensor([1, 1, 1], [3], 'int32'), { ignoreIndex: 1 })
  t.ok(Number.isNaN(all.dataSync()[0]!), 'every row ignored: mean is NaN, as PyTorch')
  h.dispose([x, good, high, neg, floatT, wrongShape, all])
})

// ---- every backend ----------------------------------------------------------------------------------------

t.test('rmsNorm and crossEntropy on every backend', async t => {
  await eachBackend(t, 'fused parity', async (tt, backend) => {
    await runParity(tt, backend, [
      { name: 'rmsNorm [3,4,16]', inputs: [{ shape: [3, 4, 16] }, { shape: [16], lo: 0.5, hi: 1.5 }], f: (x, g) => rmsNorm(x!, g!), grad: true },
      { name: 'rmsNorm [5]', inputs: [{ shape: [5] }, { shape: [5] }], f: (x, g) => rmsNorm(x!, g!, { eps: 1e-3 }), grad: true },
      { name: 'crossEntropy mean', inputs: [{ shape: [6, 9], lo: -5, hi: 5 }, { shape: [6], kind: 'int32', lo: 0, hi: 9 }], f: (x, tg) => crossEntropy(x!, tg!), grad: true },
      { name: 'crossEntropy sum, ignoreIndex', inputs: [{ shape: [2, 3, 7], lo: -5, hi: 5 }, { shape: [2, 3], kind: 'int32', values: [0, 3, 6, 3, 1, 2] }], f: (x, tg) => crossEntropy(x!, tg!, { reduction: 'sum', ignoreIndex: 3 }), grad: true },
      { name: 'crossEntropy none', inputs: [{ shape: [4, 65], lo: -8, hi: 8 }, { shape: [4], kind: 'int32', lo: 0, hi: 65 }], f: (x, tg) => crossEntropy(x!, tg!, { reduction: 'none' }), grad: true },
    ])
  })
})
