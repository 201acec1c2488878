import t from 'tap'
import { gelu, grad, memory, mul, sum, tensor, type Tensor } from '@heed/tensor'
import { assertClose, prng, randomArray } from './helpers/numeric.js'
import { eachBackend } from './helpers/backends.js'
import { runParity } from './helpers/parity.js'

// float32 GELU runs a fast erfc fit (src/backends/cpu/float32Gelu.ts); float64 keeps the reference series.
const adversarial = [-1e4, -40, -17.5, -13, -10, -6, -3, -1, -0.7518, -1e-3, -1e-30, 0, 1e-30, 1e-3, 0.7, 1, 3, 8, 13, 40, 1e4, Infinity, -Infinity, NaN]
const xs = [...adversarial, ...randomArray(prng(15), 4000, -18, 18), ...randomArray(prng(16), 1000, -3, 3)].map(Math.fround)

const weightsFor = (n: number): number[] => Array.from({ length: n }, (_, i) => Math.fround(0.5 + ((i * 37) % 11) / 10))

for (const approximate of ['none', 'tanh'] as const) {
  t.test(`float32 gelu (${approximate}) and its fused backward against the float64 reference`, async t => {
    const before = memory().tensors
    const w = weightsFor(xs.length)
    const run = (dtype: 'float32' | 'float64') => {
      const x = tensor(xs, [xs.length], dtype)
      const wt = tensor(w, [xs.length], dtype)
      const y = gelu(x, { approximate })
      const dx = grad((v: Tensor) => sum(mul(gelu(v, { approximate }), wt)))(x)
      const out = { y: Array.from(y.dataSync()), dx: Array.from(dx.dataSync()) }
      for (const a of [x, wt, y, dx]) a.dispose()
      return out
    }
    const f32 = run('float32')
    const f64 = run('float64')
    // within ~1 float32 ulp of the reference; tails relative, not merely small
    assertClose(t, f32.y, f64.y, { atol: 1e-44, rtol: 1.2e-7, msg: 'gelu' })
    // dy·gelu′ crosses zero near x = −0.75: an absolute floor at the scale of its terms (≤ 1.13·|dy|)
    assertClose(t, f32.dx, f64.dx, { atol: 3e-7, rtol: 2.4e-7, msg: 'dy·gelu′' })
    t.equal(memory().tensors, before, 'no tensors left behind')
  })
}

t.test('fused gelu backward is one kernel and equals dy·gelu′ on large arrays (pooled arrays reused)', async t => {
  const before = memory().tensors
  const n = 16 * 1024
  const v = randomArray(prng(17), n, -6, 6)
  const d = randomArray(prng(18), n, -2, 2)
  const x = tensor(v, [16, 1024], 'float32')
  const dy = tensor(d, [16, 1024], 'float32')
  for (let rep = 0; rep < 3; rep++) {
    const [, vjp] = [0, grad((a: Tensor) => sum(mul(gelu(a), dy)))]
    const g = vjp(x)
    const ref = v.map((xv, i) => {
      const x32 = Math.fround(xv)
      const phi = Math.exp(-0.5 * x32 * x32) / Math.sqrt(2 * Math.PI)
      return Math.fround(d[i]!) * (normalCdf(x32) + x32 * phi)
    })
    assertClose(t, g.dataSync(), ref, { atol: 3e-7, rtol: 2.4e-7, msg: `rep ${rep}` })
    g.dispose()
  }
  x.dispose()
  dy.dispose()
  t.equal(memory().tensors, before, 'no tensors left behind')
})

// Φ by the erfc continued fraction / series, independent of the library's code (float64).
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2
  let erfc: number
  if (z < 2) {
    let term = z
    let s = z
    for (let n = 1; n < 80; n++) {
      term *= (-z * z) / n
      s += term / (2 * n + 1)
    }
    erfc = 1 - (2 / Math.sqrt(Math.PI)) * s
  } else {
    let f = z
    for (let k = 200; k >= 1; k--) f = z + k / 2 / f
    erfc = Math.exp(-z * z) / Math.sqrt(Math.PI) / f
  }
  return x < 0 ? erfc / 2 : 1 - erfc / 2
}

t.test('gelu and its gradient on every backend', async t => {
  await eachBackend(t, 'gelu parity', async (tt, backend) => {
    await runParity(tt, backend, [
      { name: 'gelu exact, grad', inputs: [{ shape: [4, 6], lo: -6, hi: 6 }], f: x => gelu(x), grad: true },
      { name: 'gelu tanh, grad', inputs: [{ shape: [4, 6], lo: -6, hi: 6 }], f: x => gelu(x, { approximate: 'tanh' }), grad: true },
      { name: 'gelu exact, odd size', inputs: [{ shape: [7], lo: -12, hi: 12 }], f: x => gelu(x), grad: true },
    ])
  })
})
