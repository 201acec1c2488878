import t from 'tap'
import { memory, mul, scope, sum, tensor } from '@heed/tensor'
import { actAttention, mask, ACT_DEFAULTS } from '@heed/attention'
import { conformance, referenceProbs, type ConformanceRun, type HostTensor, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(31)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })

interface DenseAct {
  out: Float64Array
  rowSums: number[]
  sinks: number[][][]
  P: Float64Array
  Pc: Float64Array
}

/**
 * The dense form, written from the reference code: P' = β·P on sink columns, P·(1 − β m)/(1 − m) elsewhere, rows
 * with 1 − m < ε untouched; S either given or {j : Σ_i P_ij / (#rows seeing j) > τ} minus its first element.
 */
function denseAct(q: HostTensor, k: HostTensor, v: HostTensor, o: ReferenceOptions & { beta: number; tau?: number; sinks?: number[]; heads?: number[]; eps?: number }): DenseAct {
  const [B, H, Tq] = q.shape
  const [, Hkv, Tk] = k.shape
  const Dv = v.shape[3]
  const g = H / Hkv
  const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
  const { p: P } = referenceProbs(q, k, o)
  const Pc = new Float64Array(P.length)
  const out = new Float64Array(B * H * Tq * Dv)
  const rowSums: number[] = []
  const sinks: number[][][] = []
  for (let b = 0; b < B; b++) {
    sinks.push([])
    for (let h = 0; h < H; h++) {
      const at = (i: number, j: number) => ((b * H + h) * Tq + i) * Tk + j
      let S: number[] = []
      if (!o.heads || o.heads.includes(h)) {
        if (o.sinks) S = o.sinks
        else {
          for (let j = 0; j < Tk; j++) {
            let col = 0
            let rows = 0
            for (let i = 0; i < Tq; i++) {
              col += P[at(i, j)]!
              if (o.mask!.test(b, h, qOff + i, j)) rows++
            }
            if (rows > 0 && col / rows > o.tau!) S.push(j)
          }
          S = S.slice(1)
        }
      }
      sinks[b]!.push(S)
      for (let i = 0; i < Tq; i++) {
        let m = 0
        for (const j of S) if (j < Tk) m += P[at(i, j)]!
        const skip = 1 - m < (o.eps ?? 1e-6)
        let rs = 0
        for (let j = 0; j < Tk; j++) {
          const p = P[at(i, j)]!
          const pc = skip ? p : S.includes(j) ? o.beta * p : p * ((1 - o.beta * m) / (1 - m))
          Pc[at(i, j)] = pc
          rs += pc
          for (let d = 0; d < Dv; d++) out[((b * H + h) * Tq + i) * Dv + d]! += pc * v.values[((b * Hkv + Math.floor(h / g)) * Tk + j) * Dv + d]!
        }
        rowSums.push(rs)
      }
    }
  }
  return { out, rowSums, sinks, P, Pc }
}

const causal = mask.custom((_b, _h, pq, pk) => pk <= pq)

t.test('merge form = dense form, with automatic per-head sink sets (adversarial sinks planted)', async t => {
  for (const [H, Hkv] of [[4, 4], [4, 2]] as const) {
    const T = 12
    const [q, k, v] = [host([2, H, T, 4]), host([2, Hkv, T, 3 + 1]), host([2, Hkv, T, 3])]
    // Plant sinks: keys 0 and 3 aligned with every query of heads 0–1 (large scores ⇒ heavy columns).
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < Hkv; h++)
        for (const j of [0, 3]) for (let d = 0; d < 4; d++) k.values[((b * Hkv + h) * T + j) * 4 + d] = 2
    for (let i = 0; i < q.values.length; i += 4) q.values[i] = Math.abs(q.values[i]!) + 1
    const dense = denseAct(q, k, v, { beta: 0.4, tau: 0.1, mask: causal })
    const before = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    const r = actAttention(tq!, tk!, tv!, { causal: true })
    t.same(r.sinks, dense.sinks, `H=${H} Hkv=${Hkv}: same sink sets per (b, h)`)
    t.ok(dense.sinks.flat().some(s => s.length > 0), 'some head has sinks')
    assertClose(t, await r.out.data(), dense.out, { atol: 1e-12, rtol: 1e-12, msg: `H=${H} Hkv=${Hkv}: out` })
    t.ok(dense.rowSums.every(s => Math.abs(s - 1) < 1e-12), 'calibrated rows sum to 1')
    t.ok(dense.P.every((p, i) => p !== 0 || dense.Pc[i] === 0), 'zeros stay zeros (causality)')
    for (const x of [tq, tk, tv, r.out, r.sinkMass]) x!.dispose()
    t.equal(memory().tensors, before, 'no leaks')
  }
  t.equal(ACT_DEFAULTS.beta, 0.4)
  t.equal(ACT_DEFAULTS.tau, 0.1)
})

t.test('given sink sets, head selection, offsets; β = 1 and S = ∅ are the identity', async t => {
  const [q, k, v] = [host([1, 3, 5, 4]), host([1, 3, 9, 4]), host([1, 3, 9, 2])]
  const opts = { mask: causal, queryOffset: 4 }
  const before = memory().tensors
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  for (const [name, o, want] of [
    ['sinks {0, 2}, heads {0, 2}', { sinks: [0, 2], heads: [0, 2], beta: 0.25 }, denseAct(q, k, v, { ...opts, beta: 0.25, sinks: [0, 2], heads: [0, 2] })],
    ['β = 1', { sinks: [0, 2], beta: 1 }, denseAct(q, k, v, { ...opts, beta: 1, sinks: [] })],
    ['S = ∅', { sinks: [], beta: 0.4 }, denseAct(q, k, v, { ...opts, beta: 1, sinks: [] })],
    ['τ above every column', { tau: 2, beta: 0.4 }, denseAct(q, k, v, { ...opts, beta: 1, sinks: [] })],
  ] as const) {
    const r = actAttention(tq!, tk!, tv!, { causal: true, queryOffset: 4, ...o })
    assertClose(t, await r.out.data(), want.out, { atol: 1e-12, rtol: 1e-12, msg: name })
    r.out.dispose()
    r.sinkMass.dispose()
  }
  for (const x of [tq, tk, tv]) x!.dispose()
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('rows with all their mass on sinks are left alone (the reference divides 0/0)', async t => {
  // Row 0 sees only key 0; with S = {0} its m = 1.
  const [q, k, v] = [host([1, 1, 4, 2]), host([1, 1, 4, 2]), host([1, 1, 4, 2])]
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  const r = actAttention(tq!, tk!, tv!, { causal: true, sinks: [0], beta: 0.4 })
  const out = await r.out.data()
  t.notOk(Array.from(out).some(Number.isNaN), 'no NaN')
  t.same(Array.from(out.slice(0, 2)), v.values.slice(0, 2), 'row 0 = v_0 (unchanged)')
  t.equal((await r.sinkMass.data())[0], 1)
  assertClose(t, out, denseAct(q, k, v, { mask: causal, beta: 0.4, sinks: [0] }).out, { atol: 1e-12, rtol: 1e-12, msg: 'other rows calibrated' })
  // A fully masked row stays (0) without NaN.
  const e = actAttention(tq!, tk!, tv!, { causal: true, sinks: [0], mask: mask.custom((_b, _h, pq) => pq !== 2) })
  const eo = await e.out.data()
  t.same(Array.from(eo.slice(4, 6)), [0, 0], 'fully masked row: 0')
  t.notOk(Array.from(eo).some(Number.isNaN), 'no NaN')
  for (const x of [tq, tk, tv, r.out, r.sinkMass, e.out, e.sinkMass]) x!.dispose()
})

t.test('validation', async t => {
  const [q, k, v] = [host([1, 2, 3, 2]), host([1, 2, 3, 2]), host([1, 2, 3, 2])].map(x => tensor(x.values, x.shape))
  t.throws(() => actAttention(q!, k!, v!, { beta: 1.5 }), /beta/)
  t.throws(() => actAttention(q!, k!, v!, { sinks: [-1] }), /sinks/)
  t.throws(() => actAttention(q!, k!, v!, { heads: [2] }), /heads/)
  t.throws(() => actAttention(q!, k!, v!, { exclude: 'last' as never }), /exclude/)
  t.throws(() => actAttention(q!, k!, v!, { tau: NaN }), { name: 'ValueError' })
  for (const x of [q, k, v]) x!.dispose()
})

t.test('differentiable in q, k, v for a fixed sink set', async t => {
  const [q, k, v] = [host([1, 2, 5, 3]), host([1, 2, 5, 3]), host([1, 2, 5, 2])]
  const w = randomArray(rand, 2 * 5 * 2)
  await checkGrad(t, (a, b, c) => scope(() => sum(mul(actAttention(a!, b!, c!, { causal: true, sinks: [1], beta: 0.3 }).out, tensor(w, [1, 2, 5, 2], 'float64')))), [q, k, v].map(x => ({ v: [...x.values], shape: x.shape })), { msg: 'act' })
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'actAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 2, 9, 4]), host([1, 2, 9, 4]), host([1, 2, 9, 4])]
    const want = denseAct(q, k, v, { mask: causal, beta: 0.4, sinks: [0, 4] })
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const r = actAttention(tq!, tk!, tv!, { causal: true, sinks: [0, 4] })
    assertClose(t, await r.out.data(), want.out, { atol: 2e-6, rtol: 2e-5, msg: `${backend} out` })
    for (const x of [tq, tk, tv, r.out, r.sinkMass]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  })
})

t.test('conformance', async t => {
  const S = [1, 3]
  const run: ConformanceRun = (q, k, v, o) => {
    const r = actAttention(q, k, v, { ...o, sinks: S, beta: 0.4 })
    r.sinkMass.dispose()
    return { out: r.out }
  }
  const report = await conformance(t, {
    name: 'actAttention',
    run,
    reference: (q, k, v, o) => ({ out: denseAct(q, k, v, { ...o, beta: 0.4, sinks: S }).out }),
    patterns: ['CS', 'CC', 'NS', 'NC'],
    incremental: true,
    // No lse (the calibrated row is not a softmax state); S holds absolute positions, which C7/C8 renumber.
    contracts: ['C1', 'C2', 'C3'],
  })
  t.same(report.ran, ['C1', 'C2', 'C3'])
  const plain = (o: Parameters<typeof actAttention>[3]): ConformanceRun => (q, k, v, ro) => {
    const r = actAttention(q, k, v, { ...ro, ...o })
    r.sinkMass.dispose()
    return { out: r.out }
  }
  const deg = await conformance(t, {
    name: 'actAttention (identity settings)',
    run,
    patterns: ['CS', 'NS'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [
      { name: 'β = 1', run: plain({ sinks: S, beta: 1 }) },
      { name: 'S = ∅', run: plain({ sinks: [] }) },
      { name: 'auto, τ = ∞', run: plain({ tau: 1e300 }) },
    ],
  })
  t.same(deg.ran, ['C4'])
})

