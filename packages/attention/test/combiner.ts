import t from 'tap'
import { mul, scope, ShapeError, sum, tensor, ValueError, type Tensor } from '@heed/tensor'
import { combinerAttention, combinerWeights, type CombinerOptions } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostArray } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { dot, dtypesFor, runOn, seeded, softmaxMix, tolFor, type Host } from './helpers/tier2a.js'

const { host } = seeded(1)
type H4 = Host | HostArray
const rowOf = (x: H4, b: number, h: number, t: number): number[] => {
  const [, Hx, T, D] = x.shape
  return Array.from(x.values).slice(((b * Hx + h) * T + t) * D, ((b * Hx + h) * T + t + 1) * D)
}

/**
 * float64 Combiner-Fixed written from the note's formulas: joint softmax over own-segment keys and one pooled key
 * per other allowed segment; a summary's value is the pooled query's softmax over its own span. Also returns the
 * expanded p(j|i).
 */
function reference(q: H4, k: H4, v: H4, L: number, causal: boolean, pool: 'max' | 'mean', scale?: number): { out: number[]; lse: number[]; P: number[] } {
  const [B, H, T, D] = q.shape
  const [, Hkv, , Dv] = v.shape
  const s = scale ?? 1 / Math.sqrt(D)
  const n = Math.ceil(T / L)
  const seg = (j: number) => Math.floor(j / L)
  const out: number[] = []
  const lse: number[] = []
  const P: number[] = []
  const pooled = (rows: number[][]) => Array.from({ length: rows[0]!.length }, (_, d) => (pool === 'max' ? Math.max(...rows.map(r => r[d]!)) : rows.reduce((a, r) => a + r[d]!, 0) / rows.length))
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv))
      const members = (r: number) => Array.from({ length: T }, (_, j) => j).filter(j => seg(j) === r)
      const kBar = Array.from({ length: n }, (_, r) => pooled(members(r).map(j => rowOf(k, b, hk, j))))
      const qBar = Array.from({ length: n }, (_, r) => pooled(members(r).map(j => rowOf(q, b, h, j))))
      const span = Array.from({ length: n }, (_, r) => softmaxMix(members(r).map(j => s * dot(qBar[r]!, rowOf(k, b, hk, j))), members(r).map(j => rowOf(v, b, hk, j)), Dv))
      for (let i = 0; i < T; i++) {
        const qi = rowOf(q, b, h, i)
        const scores: number[] = []
        const vals: number[][] = []
        const what: (['key', number] | ['seg', number])[] = []
        for (let j = 0; j < T; j++)
          if (seg(j) === seg(i) && (!causal || j <= i)) {
            scores.push(s * dot(qi, rowOf(k, b, hk, j)))
            vals.push(rowOf(v, b, hk, j))
            what.push(['key', j])
          }
        for (let r = 0; r < n; r++)
          if (causal ? r < seg(i) : r !== seg(i)) {
            scores.push(s * dot(qi, kBar[r]!))
            vals.push(span[r]!.o)
            what.push(['seg', r])
          }
        const res = softmaxMix(scores, vals, Dv)
        out.push(...res.o)
        lse.push(res.lse)
        const prow = new Array<number>(T).fill(0)
        what.forEach(([kind, x], a) => {
          if (kind === 'key') prow[x] = prow[x]! + res.p[a]!
          else members(x).forEach((j, m) => (prow[j] = prow[j]! + res.p[a]! * span[x]!.p[m]!))
        })
        P.push(...prow)
      }
    }
  return { out, lse, P }
}

const cases: { name: string; q: [number, number, number, number]; Hkv: number; Dv: number; opts: CombinerOptions & { segmentLength: number } }[] = [
  { name: 'non-causal max L=4', q: [2, 2, 16, 4], Hkv: 2, Dv: 3, opts: { segmentLength: 4 } },
  { name: 'causal max L=3 (short last segment)', q: [1, 2, 11, 4], Hkv: 2, Dv: 4, opts: { segmentLength: 3, causal: true } },
  { name: 'causal mean GQA 4:2', q: [1, 4, 12, 3], Hkv: 2, Dv: 2, opts: { segmentLength: 4, causal: true, pool: 'mean' } },
]

t.test('combinerAttention matches the float64 reference on every backend', async t => {
  const data = cases.map(c => ({ c, q: host(c.q), k: host([c.q[0], c.Hkv, c.q[2], c.q[3]]), v: host([c.q[0], c.Hkv, c.q[2], c.Dv]) }))
  await eachBackend(t, 'combiner parity', async (t, backend) => {
    for (const { c, q, k, v } of data) {
      const ref = reference(q, k, v, c.opts.segmentLength, c.opts.causal ?? false, c.opts.pool ?? 'max')
      for (const dtype of dtypesFor(backend)) {
        const r = await runOn(backend, dtype, [q, k, v], (q, k, v) => ({ ...combinerAttention(q!, k!, v!, c.opts) }))
        assertClose(t, r.values.out, ref.out, { ...tolFor(dtype), msg: `${c.name} ${dtype}: out` })
        assertClose(t, r.values.lse, ref.lse, { ...tolFor(dtype), msg: `${c.name} ${dtype}: lse` })
        t.equal(r.leaked, 0, `${c.name} ${dtype}: memory back to baseline`)
      }
    }
  })
})

t.test('expanded attention: row-stochastic, full support, factorised = expanded', async t => {
  for (const causal of [false, true]) {
    const [q, k, v] = [host([1, 2, 13, 4]), host([1, 2, 13, 4]), host([1, 2, 13, 3])]
    const opts = { segmentLength: 4, causal }
    const r = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => ({ P: combinerWeights(q!, k!, opts), out: combinerAttention(q!, k!, v!, opts).out }))
    const ref = reference(q, k, v, 4, causal, 'max')
    assertClose(t, r.values.P, ref.P, { atol: 1e-12, rtol: 1e-12, msg: `causal=${causal}: expanded weights = reference` })
    const T = 13
    let worstSum = 0
    let support = true
    for (let row = 0; row < 2 * T; row++) {
      const i = row % T
      const p = r.values.P.slice(row * T, (row + 1) * T)
      worstSum = Math.max(worstSum, Math.abs(p.reduce((a, b) => a + b, 0) - 1))
      p.forEach((x, j) => {
        if ((!causal || j <= i) !== x > 0) support = false
      })
    }
    t.ok(worstSum < 1e-12, `causal=${causal}: rows sum to 1`, { worstSum })
    t.ok(support, `causal=${causal}: support = exactly the allowed keys`)
    // P V = the factorised output.
    const PV: number[] = []
    for (let h = 0; h < 2; h++)
      for (let i = 0; i < T; i++)
        for (let d = 0; d < 3; d++) {
          let acc = 0
          for (let j = 0; j < T; j++) acc += r.values.P[(h * T + i) * T + j]! * v.values[(h * T + j) * 3 + d]!
          PV.push(acc)
        }
    assertClose(t, r.values.out, PV, { atol: 1e-12, rtol: 1e-12, msg: `causal=${causal}: factorised = expanded` })
  }
})

t.test('one segment is exact softmax attention', async t => {
  const [q, k, v] = [host([1, 2, 9, 4]), host([1, 2, 9, 4]), host([1, 2, 9, 3])]
  for (const causal of [false, true]) {
    const ref = referenceAttention(q, k, v, causal ? { mask: { test: (_b: number, _h: number, i: number, j: number) => j <= i } as never } : {})
    const r = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => ({ ...combinerAttention(q!, k!, v!, { segmentLength: 9, causal }) }))
    assertClose(t, r.values.out, ref.out, { atol: 1e-12, rtol: 1e-12, msg: `causal=${causal}: n_seg = 1 ⇒ softmax (out)` })
    assertClose(t, r.values.lse, ref.lse, { atol: 1e-12, rtol: 1e-12, msg: `causal=${causal}: n_seg = 1 ⇒ softmax (lse)` })
  }
})

t.test('gradients', async t => {
  const [q, k, v, w] = [host([1, 1, 7, 2]), host([1, 1, 7, 2]), host([1, 1, 7, 2]), host([1, 1, 7, 2])]
  for (const pool of ['max', 'mean'] as const) {
    const f = (q: Tensor, k: Tensor, v: Tensor) => scope(() => sum(mul(combinerAttention(q, k, v, { segmentLength: 3, causal: true, pool }).out, tensor(w.values, w.shape, 'float64'))))
    await checkGrad(t, f, [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: `combiner ${pool}` })
  }
})

t.test('validation', async t => {
  const x = tensor(host([1, 1, 6, 2]).values, [1, 1, 6, 2])
  const y = tensor(host([1, 1, 5, 2]).values, [1, 1, 5, 2])
  t.throws(() => combinerAttention(x, y, y), ShapeError, 'self-attention only')
  t.throws(() => combinerAttention(x, x, x, { segmentLength: 0 }), ValueError)
  t.throws(() => combinerAttention(x, x, x, { pool: 'sum' as 'max' }), ValueError)
  x.dispose()
  y.dispose()
})

t.test('conformance', async t => {
  const sc = (o: { scale?: number }) => (o.scale !== undefined ? { scale: o.scale } : {})
  // Segments of 3 over the harness's T = 7: two full segments and a short one. Causal prefix consistency (C2)
  // holds because summaries only use completed earlier segments. C6/C7 assume dense softmax probabilities.
  await conformance(t, {
    name: 'combiner',
    run: (q, k, v, o) => combinerAttention(q, k, v, { segmentLength: 3, causal: !!o.causal, ...sc(o) }),
    patterns: ['NS', 'CS'],
    incremental: false,
    supports: { mask: false, offsets: false },
    reference: (q, k, v, o) => {
      const r = reference(q, k, v, 3, o.mask?.key === 'causal', 'max', o.scale)
      return { out: Float64Array.from(r.out), lse: Float64Array.from(r.lse) }
    },
    contracts: ['C1', 'C2'],
  })
  const one: ConformanceRun = (q, k, v, o) => combinerAttention(q, k, v, { segmentLength: 64, causal: !!o.causal, ...sc(o) })
  await conformance(t, {
    name: 'combiner n_seg = 1',
    run: one,
    patterns: ['NS', 'CS'],
    incremental: false,
    supports: { mask: false, offsets: false },
    degenerate: [{ name: 'n_seg = 1', run: one }],
  })
})
