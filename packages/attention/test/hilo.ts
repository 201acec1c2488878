import t from 'tap'
import { scope, ShapeError, sum, mul, tensor, ValueError, type Tensor } from '@heed/tensor'
import { hiloAttention, hiloSplit, scaledDotProductAttention } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { build, dot, dtypesFor, row, runOn, seeded, softmaxMix, tolFor, type Host, type Shape4 } from './helpers/tier2a.js'

const { rand, host } = seeded(10)

/**
 * float64 HiLo from the LITv2 definition: heads [0, H−⌊Hα⌋) attend inside their s×s window (rows and columns
 * compared separately); the other heads attend to the means of the s×s windows of k and v.
 */
function reference(q: Host, k: Host, v: Host, grid: [number, number], s: [number, number], alpha: number, scale: number): { out: number[]; lse: number[] } {
  const [B, H, N] = q.shape
  const Dv = v.shape[3]
  const loFi = s[0] === 1 && s[1] === 1 ? H : Math.floor(H * alpha)
  const hiFi = H - loFi
  const [R, C] = grid
  const out: number[] = []
  const lse: number[] = []
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < N; i++) {
        const qi = row(q, b, h, i)
        const scores: number[] = []
        const vals: number[][] = []
        if (h < hiFi) {
          for (let j = 0; j < N; j++) {
            const same = Math.floor(Math.floor(i / C) / s[0]) === Math.floor(Math.floor(j / C) / s[0]) && Math.floor((i % C) / s[1]) === Math.floor((j % C) / s[1])
            if (!same) continue
            scores.push(scale * dot(qi, row(k, b, h, j)))
            vals.push(row(v, b, h, j))
          }
        } else {
          for (let wr = 0; wr < R / s[0]; wr++)
            for (let wc = 0; wc < C / s[1]; wc++) {
              const kp = new Array<number>(q.shape[3]).fill(0)
              const vp = new Array<number>(Dv).fill(0)
              for (let a = 0; a < s[0]; a++)
                for (let c = 0; c < s[1]; c++) {
                  const j = (wr * s[0] + a) * C + wc * s[1] + c
                  row(k, b, h, j).forEach((x, d) => (kp[d]! += x / (s[0] * s[1])))
                  row(v, b, h, j).forEach((x, d) => (vp[d]! += x / (s[0] * s[1])))
                }
              scores.push(scale * dot(qi, kp))
              vals.push(vp)
            }
        }
        const r = softmaxMix(scores, vals, Dv)
        out.push(...r.o)
        lse.push(r.lse)
      }
  return { out, lse }
}

const cases: { name: string; shape: Shape4; Dv: number; grid: [number, number]; window: number | [number, number]; alpha: number }[] = [
  { name: 'α 0.5, s 2', shape: [2, 4, 24, 4], Dv: 3, grid: [4, 6], window: 2, alpha: 0.5 },
  { name: 'LITv2 α 0.9, s 2', shape: [1, 4, 16, 4], Dv: 4, grid: [4, 4], window: 2, alpha: 0.9 },
  { name: 'non-square window [2, 3]', shape: [1, 2, 24, 3], Dv: 2, grid: [4, 6], window: [2, 3], alpha: 0.5 },
  { name: 'α 0: all Hi-Fi', shape: [1, 2, 16, 4], Dv: 4, grid: [4, 4], window: 2, alpha: 0 },
  { name: 'α 1: all Lo-Fi', shape: [1, 2, 16, 4], Dv: 4, grid: [4, 4], window: 4, alpha: 1 },
]

t.test('hiloAttention matches the float64 reference on every backend', async t => {
  const data = cases.map(c => ({ c, q: host(c.shape), k: host(c.shape), v: host([c.shape[0], c.shape[1], c.shape[2], c.Dv]) }))
  await eachBackend(t, 'hilo parity', async (t, backend) => {
    for (const { c, q, k, v } of data) {
      const pair: [number, number] = typeof c.window === 'number' ? [c.window, c.window] : c.window
      const ref = reference(q, k, v, c.grid, pair, c.alpha, 1 / Math.sqrt(c.shape[3]))
      for (const dtype of dtypesFor(backend)) {
        const r = await runOn(backend, dtype, [q, k, v], (q, k, v) => {
          const { out, lse } = hiloAttention(q!, k!, v!, { grid: c.grid, window: c.window, alpha: c.alpha })
          return { out, lse }
        })
        assertClose(t, r.values.out, ref.out, { ...tolFor(dtype), msg: `${c.name} ${dtype}: out` })
        assertClose(t, r.values.lse, ref.lse, { ...tolFor(dtype), msg: `${c.name} ${dtype}: lse` })
        t.equal(r.leaked, 0, `${c.name} ${dtype}: memory back to baseline`)
      }
    }
  })
})

t.test('invariants', async t => {
  t.same(hiloSplit(4, { alpha: 0.9 }), { hiFi: 1, loFi: 3 }, 'Lo-Fi heads = ⌊H·α⌋')
  t.same(hiloSplit(4, { alpha: 0.5, window: 1 }), { hiFi: 0, loFi: 4 }, 's = 1 ⇒ every head Lo-Fi')
  const [q, k, v] = [host([1, 3, 12, 4]), host([1, 3, 12, 4]), host([1, 3, 12, 2])]
  // s = 1 ⇒ MSA, whatever α.
  const mha = referenceAttention(q, k, v)
  for (const alpha of [0, 0.5, 1]) {
    const r = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => { const r = hiloAttention(q!, k!, v!, { grid: [3, 4], window: 1, alpha }); return { out: r.out, lse: r.lse } })
    assertClose(t, r.values.out, mha.out, { atol: 1e-12, rtol: 1e-12, msg: `s = 1, α ${alpha} ⇒ MSA (out)` })
    assertClose(t, r.values.lse, mha.lse, { atol: 1e-12, rtol: 1e-12, msg: `s = 1, α ${alpha} ⇒ MSA (lse)` })
  }
  // α = 0 with one window covering the grid ⇒ global attention.
  const g = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => ({ out: hiloAttention(q!, k!, v!, { grid: [3, 4], window: [3, 4], alpha: 0 }).out }))
  assertClose(t, g.values.out, mha.out, { atol: 1e-12, rtol: 1e-12, msg: 'α = 0, s = grid ⇒ global attention' })
  // Hi-Fi = attention under the 2D window block mask; Lo-Fi = cross-attention to the pooled tokens (built by hand).
  const [q2, k2, v2] = [host([1, 2, 16, 4]), host([1, 2, 16, 4]), host([1, 2, 16, 3])]
  const r = await runOn('cpu', 'float64', [q2, k2, v2], (q, k, v) => ({ out: hiloAttention(q!, k!, v!, { grid: [4, 4], window: 2, alpha: 0.5 }).out }))
  const win = (p: number) => Math.floor(p / 8) * 2 + Math.floor((p % 4) / 2)
  const one = (x: Host, h: number): Host => ({ values: x.values.slice(h * 16 * x.shape[3], (h + 1) * 16 * x.shape[3]), shape: [1, 1, 16, x.shape[3]] })
  const hi = referenceAttention(one(q2, 0), one(k2, 0), one(v2, 0), { mask: { test: (_b: number, _h: number, pq: number, pk: number) => win(pq) === win(pk) } as never })
  const pool = (x: Host): Host => {
    const D = x.shape[3]
    const vals: number[] = []
    for (let w = 0; w < 4; w++) {
      const members = Array.from({ length: 16 }, (_, p) => p).filter(p => win(p) === w)
      for (let d = 0; d < D; d++) vals.push(members.reduce((s, p) => s + row(x, 0, 0, p)[d]!, 0) / 4)
    }
    return { values: vals, shape: [1, 1, 4, D] }
  }
  const lo = referenceAttention(one(q2, 1), pool(one(k2, 1)), pool(one(v2, 1)), { queryOffset: 0 })
  assertClose(t, r.values.out.slice(0, 48), hi.out, { atol: 1e-12, rtol: 1e-12, msg: 'Hi-Fi head = 2D-window-masked attention' })
  assertClose(t, r.values.out.slice(48), lo.out, { atol: 1e-12, rtol: 1e-12, msg: 'Lo-Fi head = cross-attention to pooled k, v' })
})

t.test('gradients', async t => {
  const [q, k, v] = [host([1, 2, 8, 2]), host([1, 2, 8, 2]), host([1, 2, 8, 2])]
  const w = host([1, 2, 8, 2])
  const f = (q: Tensor, k: Tensor, v: Tensor) => scope(() => sum(mul(hiloAttention(q, k, v, { grid: [2, 4], window: 2 }).out, tensor(w.values, w.shape, 'float64'))))
  await checkGrad(t, f, [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'hilo' })
})

t.test('validation', async t => {
  const x = tensor(host([1, 2, 12, 2]).values, [1, 2, 12, 2])
  t.throws(() => hiloAttention(x, x, x, { grid: [3, 4], window: 2 }), ShapeError, 'grid not a multiple of the window')
  t.throws(() => hiloAttention(x, x, x, { grid: [4, 4] }), ShapeError, 'grid does not match T')
  t.throws(() => hiloAttention(x, x, x, { grid: [2, 6], alpha: 2 }), ValueError, 'α outside [0, 1]')
  t.throws(() => hiloAttention(x, x, x, { grid: [2, 6], window: 0 }), ValueError, 'window 0')
  x.dispose()
})

t.test('conformance', async t => {
  // The harness's sequences (T = 7) only tile as a 7×1 grid: s = 1 there is MSA, and α = 0 with one 7×1 window is
  // global attention; the window and pooling arithmetic is covered by the parity test above.
  const run: ConformanceRun = (q, k, v, o) => hiloAttention(q, k, v, { grid: [q.shape[2]!, 1], window: 1, ...(o.scale !== undefined ? { scale: o.scale } : {}) })
  const report = await conformance(t, {
    name: 'hilo',
    run,
    patterns: ['NS'],
    incremental: false,
    supports: { mask: false, offsets: false, gqa: false },
    degenerate: [{ name: 'α = 0, window = grid', run: (q, k, v, o) => hiloAttention(q, k, v, { grid: [q.shape[2]!, 1], window: [q.shape[2]!, 1], alpha: 0, ...(o.scale !== undefined ? { scale: o.scale } : {}) }) }],
  })
  t.ok(report.ran.includes('C1') && report.ran.includes('C4'), 'parity and degeneracy ran')
})
void scaledDotProductAttention
void rand
