import t from 'tap'
import { memory, mul, scope, sum, tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, taskKvAttention, taskKvHeads, taskKvPlan, TASKKV_DEFAULTS } from '@heed/attention'
import { conformance, referenceAttention, referenceProbs, type ConformanceRun, type HostTensor, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { row, runOn, seeded, tolFor } from './helpers/tier2a.js'

const { host } = seeded(57)

/** Task-KV in float64: middle picks from the dense P of the last `window` rows, then attention over each head's set. */
function denseTaskKv(q: HostTensor, k: HostTensor, v: HostTensor, o: ReferenceOptions & { het: boolean[]; sink: number; recent: number; middle: number; window: number }): { out: Float64Array; lse: Float64Array; middle: number[][][] } {
  const [B, H, Tq] = q.shape
  const [, Hkv, Tk] = k.shape
  const g = H / Hkv
  const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
  const last = qOff + Tq - 1
  const causal = mask.and(mask.causal, ...(o.mask ? [o.mask] : []))
  const { p } = referenceProbs(q, k, { ...o, mask: causal })
  const middle = Array.from({ length: B }, (_, b) =>
    Array.from({ length: Hkv }, (_, kh) => {
      if (o.het[kh]) return []
      const score: [number, number][] = []
      for (let j = 0; j < Tk; j++) {
        if (!(j >= o.sink && last - j >= o.recent && j <= last)) continue
        let s = 0
        for (let h = kh * g; h < (kh + 1) * g; h++) for (let i = Math.max(0, Tq - o.window); i < Tq; i++) s += p[((b * H + h) * Tq + i) * Tk + j]!
        score.push([j, s])
      }
      return score.sort((a, c) => c[1] - a[1] || a[0] - c[0]).slice(0, o.middle).map(([j]) => j).sort((a, c) => a - c)
    }),
  )
  const keepMask = mask.custom((b, h, pq, pk) => pk <= pq && (!o.mask || o.mask.test(b, h, pq, pk)) && (o.het[Math.floor(h / g)]! || pk < o.sink || pq - pk < o.recent || middle[b]![Math.floor(h / g)]!.includes(pk)))
  const r = referenceAttention(q, k, v, { ...o, mask: keepMask })
  return { ...r, middle }
}

const base = { sink: 1, recent: 3, middle: 2, window: 2 }

t.test('float64 parity with the dense reference (GQA, mixed heads, offsets)', async t => {
  for (const [H, Hkv, het] of [[2, 2, [false, true]], [4, 2, [false, false]]] as const) {
    const [q, k, v] = [host([2, H, 6, 4], 1.5), host([2, Hkv, 12, 4], 1.5), host([2, Hkv, 12, 3])]
    const want = denseTaskKv(q, k, v, { ...base, het: [...het] })
    let middle: number[][][] = []
    const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => {
      const r = taskKvAttention(a!, b!, c!, { ...base, heterogeneous: het })
      middle = r.middle.map(x => x.map(y => [...y]))
      return { out: r.out, lse: r.lse }
    })
    t.same(middle, want.middle, `H=${H}/${Hkv}: same middle activations`)
    t.ok(want.middle.flat(2).length > 0, 'some middle activations')
    assertClose(t, got.values.out, want.out, { atol: 1e-12, rtol: 1e-11, msg: `H=${H}/${Hkv}: out` })
    assertClose(t, got.values.lse, want.lse, { atol: 1e-12, rtol: 1e-11, msg: `H=${H}/${Hkv}: lse` })
    t.equal(got.leaked, 0, 'no leaks')
  }
})

t.test('budget ≥ context or all heads heterogeneous ⇒ the base model; the compacted cache gives the last row', async t => {
  const [q, k, v] = [host([1, 2, 8, 4]), host([1, 2, 8, 4]), host([1, 2, 8, 3])]
  const full = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => ({ out: scaledDotProductAttention(a!, b!, c!, { causal: true }).out }))
  for (const [name, o] of [
    ['sink + recent ≥ T', { heterogeneous: [false, false], sink: 4, recent: 4 }],
    ['every head heterogeneous', { heterogeneous: [true, true], sink: 0, recent: 1 }],
    ['middle covers the middle', { heterogeneous: [false, false], sink: 1, recent: 2, middle: 8 }],
  ] as const) {
    const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => ({ out: taskKvAttention(a!, b!, c!, o).out }))
    const lastRows = (x: number[]) => [0, 1].flatMap(h => x.slice((h * 8 + 7) * 3, (h * 8 + 8) * 3))
    if (name === 'middle covers the middle') assertClose(t, lastRows(got.values.out), lastRows(full.values.out), { atol: 1e-12, rtol: 1e-11, msg: `${name}: last row` })
    else assertClose(t, got.values.out, full.values.out, { atol: 1e-12, rtol: 1e-11, msg: name })
  }
  const before = memory().tensors
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  const r = taskKvAttention(tq!, tk!, tv!, { ...base, heterogeneous: [false, true] })
  const out = r.out.dataSync()
  t.equal(r.kept[0]![1]!.length, 8, 'heterogeneous head keeps everything')
  t.equal(r.kept[0]![0]!.length, base.sink + base.recent + base.middle, 'compact head keeps sink + recent + middle')
  for (let kh = 0; kh < 2; kh++) {
    const keep = r.kept[0]![kh]!
    const kk = tensor(keep.flatMap(j => row(k, 0, kh, j)), [1, 1, keep.length, 4], 'float64')
    const vv = tensor(keep.flatMap(j => row(v, 0, kh, j)), [1, 1, keep.length, 3], 'float64')
    const qq = tensor(row(q, 0, kh, 7), [1, 1, 1, 4], 'float64')
    const o = scaledDotProductAttention(qq, kk, vv)
    assertClose(t, o.out.dataSync(), out.slice((kh * 8 + 7) * 3, (kh * 8 + 8) * 3), { atol: 1e-12, rtol: 1e-12, msg: `kv head ${kh}: compacted-cache decode` })
    for (const x of [kk, vv, qq, o.out, o.lse]) x.dispose()
  }
  for (const x of [tq, tk, tv, r.out, r.lse]) x!.dispose()
  t.equal(memory().tensors, before, 'no leaks')
  t.equal(TASKKV_DEFAULTS.sink, 4)
})

t.test('taskKvHeads: the semantic center, distances and separators', async t => {
  // Five heads near one direction, one orthogonal outlier.
  const vecs = [[1, 0.1, 0], [1, 0, 0.1], [0.9, 0.1, 0.1], [1, 0.05, 0], [1.1, 0, 0.05], [0, 0, 1]]
  const r = taskKvHeads(vecs, [6, 3])
  t.same(r.heterogeneous, [false, false, false, false, false, true], 'largest gap isolates the outlier')
  t.ok(r.distances[5]! > 0.5 && r.distances.slice(0, 5).every(d => d < 0.2), 'cosine distances')
  assertClose(t, r.center, [5 / 6, 0.25 / 6, 1.25 / 6].map(x => x), { atol: 1e-12, rtol: 1e-12, msg: 'center = mean head vector' })
  t.same(taskKvHeads(vecs, [6, 3], { separator: { fraction: 2 / 6 } }).heterogeneous.filter(x => x).length, 2)
  t.same(taskKvHeads(vecs, [6, 3], { separator: { threshold: 10 }, distance: 'euclidean' }).heterogeneous, [false, false, false, false, false, false])
  t.same(taskKvHeads(vecs, [6, 3], { separator: d => d.map((_, h) => h === 0) }).heterogeneous[0], true)
  // [B, H, T, Dv] outputs average over batch and rows first.
  const out4 = Array.from({ length: 2 * 6 * 2 }, (_, i) => vecs[Math.floor(i / 2) % 6]!).flat()
  t.same(taskKvHeads(out4, [2, 6, 2, 3]).heterogeneous, r.heterogeneous, 'from layer outputs')
  t.throws(() => taskKvHeads(vecs, [6, 3], { separator: { fraction: 2 } }), /separator/)
  t.throws(() => taskKvHeads(vecs, [6, 4]), { name: 'ShapeError' })
})

t.test('validation', async t => {
  const [q, k, v] = [host([1, 2, 4, 2]), host([1, 2, 4, 2]), host([1, 2, 4, 2])].map(x => tensor(x.values, x.shape))
  t.throws(() => taskKvAttention(q!, k!, v!, { heterogeneous: [true] }), { name: 'ValueError', message: /heterogeneous/ })
  t.throws(() => taskKvAttention(q!, k!, v!, { heterogeneous: [true, true], recent: 0 }), /recent/)
  t.throws(() => taskKvAttention(q!, k!, v!, { heterogeneous: [true, true], causal: false }), /causal/)
  t.throws(() => taskKvAttention(q!, k!, v!, { heterogeneous: [false, true], plan: { middle: [] } }), /plan/)
  for (const x of [q, k, v]) x!.dispose()
})

t.test('differentiable in q, k, v for fixed picks', async t => {
  const [q, k, v] = [host([1, 2, 6, 3]), host([1, 1, 6, 3]), host([1, 1, 6, 2])]
  const w = host([1, 2, 6, 2]).values
  await checkGrad(t, (a, b, c) => scope(() => sum(mul(taskKvAttention(a!, b!, c!, { heterogeneous: [false], sink: 1, recent: 2, middle: 1, window: 2 }).out, tensor(w, [1, 2, 6, 2], 'float64')))), [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'taskKv' })
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'taskKvAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 4, 6, 4]), host([1, 2, 12, 4]), host([1, 2, 12, 4])]
    const want = denseTaskKv(q, k, v, { ...base, het: [false, true] })
    const o = { ...base, heterogeneous: [false, true] }
    const before = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const plan = await taskKvPlan(tq!, tk!, tv!, o)
    for (const x of [tq, tk, tv]) x!.dispose()
    t.equal(memory().tensors, before, 'plan: no leaks')
    t.same(plan.middle, want.middle, 'plan: same picks')
    const got = await runOn(backend, 'float32', [q, k, v], (a, b, c) => ({ out: taskKvAttention(a!, b!, c!, { ...o, plan }).out }))
    assertClose(t, got.values.out, want.out, { ...tolFor('float32'), msg: `${backend} out` })
    t.equal(got.leaked, 0, 'no leaks')
  })
})

t.test('conformance', async t => {
  const o = { sink: 1, recent: 2, middle: 1, window: 2 }
  const het = (k: { shape: readonly number[] }) => Array.from({ length: k.shape[1]! }, (_, h) => h % 2 === 1)
  const run: ConformanceRun = (q, k, v, ro) => {
    const r = taskKvAttention(q, k, v, { ...ro, ...o, heterogeneous: het(k) })
    return { out: r.out, lse: r.lse }
  }
  const report = await conformance(t, {
    name: 'taskKvAttention',
    run,
    reference: (q, k, v, ro) => denseTaskKv(q, k, v, { ...ro, ...o, het: het(k) }),
    patterns: ['CS', 'CC'],
    incremental: false,
    // Picks follow the last `window` rows, so prefixes and query chunks pick differently (C2, C3); positions are absolute (C7, C8).
    contracts: ['C1'],
  })
  t.same(report.ran, ['C1'])
  const deg = await conformance(t, {
    name: 'taskKvAttention (unbounded budgets)',
    run,
    patterns: ['CS', 'CC'],
    incremental: false,
    contracts: ['C4'],
    degenerate: [
      { name: 'sink + recent ≥ T', run: (q, k, v, ro) => taskKvAttention(q, k, v, { ...ro, heterogeneous: het(k).map(() => false), sink: 4, recent: 1 << 20 }) },
      { name: 'every head heterogeneous', run: (q, k, v, ro) => taskKvAttention(q, k, v, { ...ro, heterogeneous: het(k).map(() => true), sink: 0, recent: 1 }) },
    ],
  })
  t.same(deg.ran, ['C4'])
})
