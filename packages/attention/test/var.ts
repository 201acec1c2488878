import t from 'tap'
import { mul, scope, sum, tensor } from '@heed/tensor'
import { mask, varAttention, visualSinks, VAR_DEFAULTS } from '@heed/attention'
import { conformance, referenceProbs, type ConformanceRun, type HostTensor, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { runOn, seeded, tolFor } from './helpers/tier2a.js'

const { host } = seeded(27)

/** The dense rule of the paper on P: sinks × (1 − p), the moved mass spread over the other image columns ∝ P. */
function denseVar(q: HostTensor, k: HostTensor, v: HostTensor, o: ReferenceOptions & { visual: number[]; sinks: number[]; p: number; heads: number[]; rows?: number[] }): { out: number[]; P2: number[]; P: Float64Array } {
  const [B, H, Tq] = q.shape
  const [, Hkv, Tk] = k.shape
  const Dv = v.shape[3]
  const g = H / Hkv
  const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = o.keyOffset ?? 0
  const { p: P } = referenceProbs(q, k, o)
  const out: number[] = []
  const P2: number[] = []
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Tq; i++) {
        const pr = Array.from({ length: Tk }, (_, j) => P[((b * H + h) * Tq + i) * Tk + j]!)
        const isRow = o.rows ? o.rows.includes(qOff + i) : !o.visual.includes(qOff + i)
        const isSink = (j: number) => o.sinks.includes(kOff + j)
        const isNon = (j: number) => o.visual.includes(kOff + j) && !isSink(j)
        const omega = o.p * pr.reduce((a, x, j) => a + (isSink(j) ? x : 0), 0)
        const non = pr.reduce((a, x, j) => a + (isNon(j) ? x : 0), 0)
        const on = o.heads.includes(h) && isRow && non > 0
        const pc = pr.map((x, j) => (!on ? x : isSink(j) ? (1 - o.p) * x : isNon(j) ? x + (omega * x) / non : x))
        P2.push(...pc)
        for (let d = 0; d < Dv; d++) out.push(pc.reduce((a, x, j) => a + x * v.values[((b * Hkv + Math.floor(h / g)) * Tk + j) * Dv + d]!, 0))
      }
  return { out, P2, P }
}

const causal = mask.causal
const visual = [1, 2, 3, 4, 5]
const sinks = [2, 4]

t.test('merge form = dense form; rows sum to 1; text columns unchanged; p = 0 is the identity', async t => {
  for (const [H, Hkv] of [[2, 2], [4, 2]] as const) {
    const [q, k, v] = [host([2, H, 9, 4], 1.5), host([2, Hkv, 9, 4], 1.5), host([2, Hkv, 9, 3])]
    for (const p of [0.6, 0, 1]) {
      const heads = [0, H - 1]
      const want = denseVar(q, k, v, { mask: causal, visual, sinks, p, heads })
      const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => ({ out: varAttention(a!, b!, c!, { causal: true, visual, sinks, p, heads }).out }))
      assertClose(t, got.values.out, want.out, { atol: 1e-12, rtol: 1e-11, msg: `H=${H}/${Hkv} p=${p}: merge = dense` })
      t.equal(got.leaked, 0, 'no leaks')
      const rowsOk = Array.from({ length: want.P2.length / 9 }, (_, r) => want.P2.slice(r * 9, r * 9 + 9).reduce((a, x) => a + x, 0)).every(s => s === 0 || Math.abs(s - 1) < 1e-12)
      t.ok(rowsOk, 'rows of P′ sum to 1')
      t.ok(want.P2.every((x, i) => visual.includes(i % 9) || x === want.P[i]), 'text columns unchanged')
      if (p === 0) t.same(want.P2, Array.from(want.P), 'p = 0: P′ = P')
    }
  }
})

t.test('auto heads (image-centric), explicit rows, offsets; visualSinks', async t => {
  const [q, k, v] = [host([1, 4, 6, 4], 2), host([1, 4, 10, 4], 2), host([1, 4, 10, 2])]
  // Heads 0 and 1: image tokens 5..7 aligned with every query; head 1 puts it all on the sink 6.
  for (let j = 5; j < 8; j++) for (let d = 0; d < 4; d++) k.values[(0 * 10 + j) * 4 + d] = 1.5
  for (let d = 0; d < 4; d++) k.values[(1 * 10 + 6) * 4 + d] = 3
  for (let i = 0; i < 6; i++) for (let h = 0; h < 2; h++) for (let d = 0; d < 4; d++) q.values[(h * 6 + i) * 4 + d] = 1
  const o = { visual: [5, 6, 7], sinks: [6], rows: [5, 7, 8, 9], queryOffset: 4 }
  let heads: boolean[][] = []
  const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => {
    const r = varAttention(a!, b!, c!, { ...o, causal: true })
    heads = r.heads.map(x => [...x])
    return { out: r.out, masses: r.masses }
  })
  t.same(heads[0]!.slice(0, 2), [true, false], 'head 0 image-centric; head 1 looks at the sink only')
  const want = denseVar(q, k, v, { ...o, mask: causal, p: VAR_DEFAULTS.p, heads: heads[0]!.flatMap((x, h) => (x ? [h] : [])) })
  assertClose(t, got.values.out, want.out, { atol: 1e-12, rtol: 1e-11, msg: 'auto heads: dense form' })
  // visualSinks: massive activation in channel 1 of row 2 only (after RMSNorm it is ≈ √1024 = 32 > τ = 20).
  const hidden = Array.from({ length: 5 * 1024 }, (_, i) => ((i * 7919) % 13) / 13 - 0.5)
  hidden[2 * 1024 + 1] = 400
  t.same(visualSinks(hidden, 1024, { visual: [1, 2, 3], dims: [1, 5] }), [2])
  t.same(visualSinks(hidden, 1024, { visual: [1, 3], dims: [1] }), [])
  t.same(visualSinks(hidden, 1024, { visual: [2], dims: [1], tau: 40 }), [], 'τ above the normalised activation')
  t.throws(() => visualSinks(hidden, 1024, { visual: [9], dims: [1] }), /visual/)
})

t.test('validation', async t => {
  const [q, k, v] = [host([1, 2, 5, 2]), host([1, 2, 5, 2]), host([1, 2, 5, 2])].map(x => tensor(x.values, x.shape))
  t.throws(() => varAttention(q!, k!, v!, { visual: [1], sinks: [2] }), { name: 'ValueError', message: /sinks/ })
  t.throws(() => varAttention(q!, k!, v!, { visual: [1], sinks: [], p: 2 }), /p/)
  t.throws(() => varAttention(q!, k!, v!, { visual: [-1], sinks: [] }), /visual/)
  t.throws(() => varAttention(q!, k!, v!, { visual: [1], sinks: [], heads: [3] }), /heads/)
  t.throws(() => varAttention(q!, k!, v!, { visual: [1], sinks: [], rho: -1 }), /rho/)
  for (const x of [q, k, v]) x!.dispose()
})

t.test('differentiable in q, k, v for fixed heads', async t => {
  const [q, k, v] = [host([1, 2, 6, 3]), host([1, 2, 6, 3]), host([1, 2, 6, 2])]
  const w = host([1, 2, 6, 2]).values
  await checkGrad(t, (a, b, c) => scope(() => sum(mul(varAttention(a!, b!, c!, { causal: true, visual: [1, 2, 3], sinks: [2], heads: [0, 1] }).out, tensor(w, [1, 2, 6, 2], 'float64')))), [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'var' })
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'varAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 2, 9, 4]), host([1, 2, 9, 4]), host([1, 2, 9, 4])]
    const want = denseVar(q, k, v, { mask: causal, visual, sinks, p: 0.6, heads: [0, 1] })
    const got = await runOn(backend, 'float32', [q, k, v], (a, b, c) => ({ out: varAttention(a!, b!, c!, { causal: true, visual, sinks, heads: [0, 1] }).out }))
    assertClose(t, got.values.out, want.out, { ...tolFor('float32'), msg: `${backend} out` })
    t.equal(got.leaked, 0, 'no leaks')
  })
})

t.test('conformance', async t => {
  // Image tokens at key positions 1..4 (sinks 2 and 3), every head redistributing; positions are absolute, which C7/C8 renumber.
  const o = { visual: [1, 2, 3, 4], sinks: [2, 3], heads: [0, 1, 2, 3] }
  const run: ConformanceRun = (q, k, v, ro) => ({ out: varAttention(q, k, v, { ...ro, ...o }).out })
  const report = await conformance(t, {
    name: 'varAttention',
    run,
    reference: (q, k, v, ro) => ({ out: Float64Array.from(denseVar(q, k, v, { ...ro, ...o, p: 0.6 }).out) }),
    patterns: ['CS', 'CC', 'NS', 'NC'],
    incremental: true,
    contracts: ['C1', 'C2', 'C3'],
  })
  t.same(report.ran, ['C1', 'C2', 'C3'])
  const deg = await conformance(t, {
    name: 'varAttention (identity settings)',
    run,
    patterns: ['CS', 'NS'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [
      { name: 'p = 0', run: (q, k, v, ro) => ({ out: varAttention(q, k, v, { ...ro, ...o, p: 0 }).out }) },
      { name: 'no sinks', run: (q, k, v, ro) => ({ out: varAttention(q, k, v, { ...ro, ...o, sinks: [] }).out }) },
      { name: 'no heads', run: (q, k, v, ro) => ({ out: varAttention(q, k, v, { ...ro, ...o, heads: [] }).out }) },
    ],
  })
  t.same(deg.ran, ['C4'])
})
