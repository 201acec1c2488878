import t from 'tap'
import * as h from '@heed/tensor'
import { eachBackend } from './helpers/backends.js'
import { runParity, type ParityCase } from './helpers/parity.js'
import { prng } from './helpers/numeric.js'
import type { WebGpuContext } from '../src/backends/webgpu/types.js'

const mm =
  (opts: h.MatMulOptions = {}) =>
  (a: h.Tensor, b: h.Tensor): h.Tensor =>
    h.matmul(a, b, opts)

// Sizes cover both kernels' edges: not divisible by 4 (scalar loads, guarded stores), divisible (vec4 loads and
// stores), more than one 64-wide tile, and k with a remainder after the 4-deep steps.
const matmulCases: ParityCase[] = [
  { name: 'matmul 17×33 · 33×5', inputs: [{ shape: [17, 33] }, { shape: [33, 5] }], f: mm(), grad: true },
  { name: 'matmul 64×64 · 64×64', inputs: [{ shape: [64, 64] }, { shape: [64, 64] }], f: mm(), grad: true },
  { name: 'matmul 70×12 · 12×68 (two tiles)', inputs: [{ shape: [70, 12] }, { shape: [12, 68] }], f: mm() },
  { name: 'matmul 16×8 · 8×12 (all vec4)', inputs: [{ shape: [16, 8] }, { shape: [8, 12] }], f: mm(), grad: true },
  { name: 'matmul 1-D · 2-D', inputs: [{ shape: [7] }, { shape: [7, 9] }], f: mm(), grad: true },
  { name: 'matmul 2-D · 1-D', inputs: [{ shape: [3, 7] }, { shape: [7] }], f: mm(), grad: true },
  { name: 'matmul 1-D · 1-D', inputs: [{ shape: [9] }, { shape: [9] }], f: mm(), grad: true },
  { name: 'matmul broadcast batch [2,1,5,6]·[3,6,4]', inputs: [{ shape: [2, 1, 5, 6] }, { shape: [3, 6, 4] }], f: mm(), grad: true },
  { name: 'matmul batch · 2-D', inputs: [{ shape: [3, 5, 8] }, { shape: [8, 4] }], f: mm(), grad: true },
  { name: 'matmul transposeA', inputs: [{ shape: [33, 17] }, { shape: [33, 5] }], f: mm({ transposeA: true }), grad: true },
  { name: 'matmul transposeA (vec4)', inputs: [{ shape: [12, 16] }, { shape: [12, 8] }], f: mm({ transposeA: true }), grad: true },
  { name: 'matmul transposeB', inputs: [{ shape: [17, 33] }, { shape: [5, 33] }], f: mm({ transposeB: true }), grad: true },
  { name: 'matmul transposeB (vec4)', inputs: [{ shape: [6, 32] }, { shape: [9, 32] }], f: mm({ transposeB: true }), grad: true },
  { name: 'matmul transposeA and transposeB, batched', inputs: [{ shape: [2, 6, 5] }, { shape: [1, 7, 6] }], f: mm({ transposeA: true, transposeB: true }), grad: true },
  { name: 'matmul empty inner dim', inputs: [{ shape: [3, 0] }, { shape: [0, 4] }], f: mm() },
  { name: 'matmul int32 (exact)', inputs: [{ shape: [9, 13], kind: 'int32' }, { shape: [13, 6], kind: 'int32' }], f: mm() },
  { name: 'matmul int32 transposed, vec4', inputs: [{ shape: [8, 4], kind: 'int32' }, { shape: [12, 8], kind: 'int32' }], f: mm({ transposeA: true, transposeB: true }) },
]

const convCases: ParityCase[] = [
  { name: 'conv1d full, stride 2, pad 1, dilation 2', inputs: [{ shape: [2, 3, 11] }, { shape: [4, 3, 3] }], f: (x, w) => h.conv1d(x!, w!, { stride: 2, padding: 1, dilation: 2 }), grad: true },
  { name: 'conv1d depthwise, same', inputs: [{ shape: [2, 4, 9] }, { shape: [4, 1, 3] }], f: (x, w) => h.conv1d(x!, w!, { padding: 'same' }), grad: true },
  { name: 'conv1d depthwise, stride 3', inputs: [{ shape: [1, 3, 10] }, { shape: [3, 1, 4] }], f: (x, w) => h.conv1d(x!, w!, { stride: 3 }), grad: true },
  {
    name: 'conv2d full, stride [2,1], pad [1,0], dilation [1,2]',
    inputs: [{ shape: [2, 3, 7, 6] }, { shape: [4, 3, 3, 2] }],
    f: (x, w) => h.conv2d(x!, w!, { stride: [2, 1], padding: [1, 0], dilation: [1, 2] }),
    grad: true,
  },
  { name: 'conv2d depthwise, stride 2, same', inputs: [{ shape: [1, 4, 6, 6] }, { shape: [4, 1, 3, 3] }], f: (x, w) => h.conv2d(x!, w!, { stride: 2, padding: 'same' }), grad: true },
  { name: 'conv2d grouped (2 groups)', inputs: [{ shape: [1, 4, 5, 5] }, { shape: [6, 2, 2, 2] }], f: (x, w) => h.conv2d(x!, w!, { padding: 1 }), grad: true },
  { name: 'avgPool1d k3 s2 pad 1', inputs: [{ shape: [2, 3, 10] }], f: x => h.avgPool1d(x!, 3, { stride: 2, padding: 1 }), grad: true },
  { name: 'avgPool1d default stride', inputs: [{ shape: [1, 2, 9] }], f: x => h.avgPool1d(x!, 2), grad: true },
  { name: 'avgPool2d [3,2] s [2,1] pad [1,1]', inputs: [{ shape: [2, 2, 7, 6] }], f: x => h.avgPool2d(x!, [3, 2], { stride: [2, 1], padding: [1, 1] }), grad: true },
  { name: 'avgPool2d 2, same', inputs: [{ shape: [1, 3, 5, 5] }], f: x => h.avgPool2d(x!, 2, { padding: 'same' }), grad: true },
]

const ENV = 'HEED_WEBGPU_MATMUL'

t.test('matmul, conv and avgPool match the float64 oracle on every backend', async t => {
  await eachBackend(t, 'linalg parity', async (t, backend) => {
    if (backend === 'cpu') {
      // the CPU is the oracle itself; its own semantics are tested in matmul.ts and conv.ts
      t.pass('cpu is the oracle')
      return
    }
    const before = process.env[ENV]
    try {
      // both matmul kernels run here whatever the adapter would choose
      for (const variant of ['register', 'tiled']) {
        process.env[ENV] = variant
        await t.test(`matmul, ${variant} kernel`, t => runParity(t, backend, matmulCases))
      }
    } finally {
      if (before === undefined) delete process.env[ENV]
      else process.env[ENV] = before
    }
    await t.test('conv and avgPool', t => runParity(t, backend, convCases))
  })
})

t.test('float16 matmul on webgpu agrees with the CPU within f16 rounding', async t => {
  await eachBackend(
    t,
    'float16 matmul',
    async (t, backend) => {
      const rand = prng(7)
      const av = Array.from({ length: 9 * 16 }, () => rand() * 4 - 2)
      const bv = Array.from({ length: 16 * 12 }, () => rand() * 4 - 2)
      const shapes: [number[], number[], h.MatMulOptions][] = [
        [[9, 16], [16, 12], {}],
        [[16, 9], [16, 12], { transposeA: true }],
        [[9, 16], [12, 16], { transposeB: true }],
      ]
      const before = process.env[ENV]
      try {
        for (const variant of ['register', 'tiled']) {
          process.env[ENV] = variant
          for (const [sa, sb, opts] of shapes) {
            await h.setBackend('cpu')
            const r = h.scope(() => h.matmul(h.tensor(av, sa, 'float16'), h.tensor(bv, sb, 'float16'), opts))
            const ref = await r.data()
            r.dispose()
            await h.setBackend(backend)
            const a = h.tensor(av, sa, 'float16')
            const b = h.tensor(bv, sb, 'float16')
            const y = h.matmul(a, b, opts)
            t.equal(y.dtype, 'float16')
            const got = await y.data()
            a.dispose()
            b.dispose()
            y.dispose()
            // one f16 rounding of the result on each side: at most an ulp apart, 2⁻¹⁰ relative
            let bad = 0
            for (let i = 0; i < ref.length; i++) if (Math.abs(got[i]! - ref[i]!) > Math.abs(ref[i]!) * 2 ** -10 + 1e-3) bad++
            t.equal(bad, 0, `${variant} ${JSON.stringify(opts)}: ${ref.length} values within an f16 ulp`)
          }
        }
      } finally {
        if (before === undefined) delete process.env[ENV]
        else process.env[ENV] = before
      }
    },
    ['webgpu'],
  )
})

t.test('the matmul variant follows the adapter unless overridden', async t => {
  const { matMulVariant, setMatMulVariant } = await import('../src/backends/webgpu/kernels/linalg.js')
  const ctx = (fallback: boolean, architecture: string): WebGpuContext => ({ info: { fallback, architecture } }) as unknown as WebGpuContext
  const before = process.env[ENV]
  delete process.env[ENV]
  try {
    t.equal(matMulVariant(ctx(true, 'software')), 'register', 'lavapipe: register-blocked, no workgroup memory')
    t.equal(matMulVariant(ctx(false, 'software')), 'register')
    t.equal(matMulVariant(ctx(false, 'ampere')), 'tiled', 'a hardware adapter: workgroup-memory tiles')
    process.env[ENV] = 'tiled'
    t.equal(matMulVariant(ctx(true, 'software')), 'tiled', 'the environment overrides the adapter')
    setMatMulVariant('register')
    t.equal(matMulVariant(ctx(false, 'ampere')), 'register', 'setMatMulVariant overrides the environment')
  } finally {
    setMatMulVariant(undefined)
    if (before === undefined) delete process.env[ENV]
    else process.env[ENV] = before
  }
})
