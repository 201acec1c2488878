import t from 'tap'
import { mul, scope, sum, tensor, ValueError, type Tensor } from '@heed/tensor'
import { longHeadsAttention, rope, scaledDotProductAttention } from '@heed/attention'
import { conformance, type ConformanceRun } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { runOn, seeded, tolFor } from './helpers/tier2a.js'

const { host } = seeded(58)

t.test('T ≤ L is the base model (causal attention with RoPE at original positions)', async t => {
  const [q, k, v] = [host([1, 2, 8, 4]), host([1, 2, 8, 4]), host([1, 2, 8, 4])]
  const pos = Int32Array.from({ length: 8 }, (_, i) => i)
  const base = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => ({ ...scaledDotProductAttention(rope(q!, pos), rope(k!, pos), v!, { causal: true }) }))
  const r = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => {
    const { out, lse } = longHeadsAttention(q!, k!, v!, { chunkSize: 2, attnLength: 8 })
    return { out, lse }
  })
  assertClose(t, r.values.out, base.values.out, { atol: 1e-12, rtol: 1e-12, msg: 'out' })
  assertClose(t, r.values.lse, base.values.lse, { atol: 1e-12, rtol: 1e-12, msg: 'lse' })
  t.equal(r.leaked, 0, 'no leak')
})

t.test('beyond L: chunk 0 and the local chunks are always selected, ≤ L keys, positions in [0, L)', async t => {
  const [w, L, T] = [3, 9, 25]
  const [q, k, v] = [host([1, 2, T, 4]), host([1, 2, T, 4]), host([1, 2, T, 4])]
  let chunks: readonly (readonly (readonly (readonly number[])[])[])[] = []
  for (const dtype of ['float64', 'float32'] as const) {
    const r = await runOn('cpu', dtype, [q, k, v], (q, k, v) => {
      const res = longHeadsAttention(q!, k!, v!, { chunkSize: w, attnLength: L })
      chunks = res.chunks
      return { out: res.out, lse: res.lse }
    })
    t.equal(r.leaked, 0, `${dtype}: no leak`)
    t.ok(r.values.out.every(Number.isFinite), `${dtype}: finite`)
    // Independent float64 check of every row from the recorded selection: gather, RoPE at remapped positions.
    if (dtype === 'float64') {
      const ref: number[] = []
      for (let h = 0; h < 2; h++)
        for (let i = 0; i < T; i++) {
          const at = (x: typeof q, j: number) => x.values.slice((h * T + j) * 4, (h * T + j + 1) * 4)
          const rot = (x: number[], p: number) => {
            const o = x.slice()
            for (let f = 0; f < 2; f++) {
              const a = p * 10000 ** (-(2 * f) / 4)
              o[f] = x[f]! * Math.cos(a) - x[f + 2]! * Math.sin(a)
              o[f + 2] = x[f + 2]! * Math.cos(a) + x[f]! * Math.sin(a)
            }
            return o
          }
          let keys: number[]
          let kp: number[]
          let qp: number
          if (i < L) {
            keys = Array.from({ length: i + 1 }, (_, j) => j)
            kp = keys
            qp = i
          } else {
            const sel = chunks[0]![h]![i - L]!
            keys = sel.flatMap(g => Array.from({ length: g === Math.floor(i / w) ? (i % w) + 1 : w }, (_, x) => g * w + x))
            kp = keys.map(j => sel.indexOf(Math.floor(j / w)) * w + (j % w))
            qp = (sel.length - 1) * w + (i % w)
            t.ok(kp.every(p => p >= 0 && p < L) && qp < L, `h${h} q${i}: positions in [0, L)`)
            t.ok(keys.length <= L, `h${h} q${i}: ≤ L keys`)
            const own = Math.floor(i / w)
            t.ok(sel.includes(0) && sel.includes(own) && sel.includes(own - 1), `h${h} q${i}: chunk 0 and local chunks selected`)
          }
          const qi = rot(at(q, i), qp)
          const s = keys.map((j, x) => rot(at(k, j), kp[x]!).reduce((a, y, d) => a + y * qi[d]!, 0) / 2)
          const m = Math.max(...s)
          const e = s.map(x => Math.exp(x - m))
          const z = e.reduce((a, b) => a + b, 0)
          for (let d = 0; d < 4; d++) ref.push(keys.reduce((a, j, x) => a + (e[x]! / z) * at(v, j)[d]!, 0))
        }
      assertClose(t, r.values.out, ref, { ...tolFor('float64'), msg: 'float64 = gathered, re-positioned reference' })
    }
  }
})

t.test('gradients', async t => {
  const [q, k, v, c] = [host([1, 1, 8, 2]), host([1, 1, 8, 2]), host([1, 1, 8, 2]), host([1, 1, 8, 2])]
  const f = (q: Tensor, k: Tensor, v: Tensor) => scope(() => sum(mul(longHeadsAttention(q, k, v, { chunkSize: 2, attnLength: 4 }).out, tensor(c.values, c.shape, 'float64'))))
  await checkGrad(t, f, [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'longheads' })
})

t.test('validation', async t => {
  const x = tensor(host([1, 1, 6, 2]).values, [1, 1, 6, 2])
  t.throws(() => longHeadsAttention(x, x, x, { chunkSize: 2, attnLength: 3 }), ValueError, 'L not a multiple of w')
  t.throws(() => longHeadsAttention(x, x, x, { chunkSize: 0 }), ValueError)
  x.dispose()
})

t.test('conformance', async t => {
  // Without RoPE and with T ≤ L LongHeads is the base causal attention: parity, prefix/decode consistency, degeneracy.
  const run: ConformanceRun = (q, k, v, o) => longHeadsAttention(q, k, v, { chunkSize: 4, attnLength: 64, rope: false, ...(o.scale !== undefined ? { scale: o.scale } : {}) })
  await conformance(t, { name: 'longheads T ≤ L', run, patterns: ['CS'], incremental: false, supports: { mask: false, offsets: false }, degenerate: [{ name: 'T ≤ L', run }], contracts: ['C1', 'C2', 'C4', 'C6'] })
})
