import t from 'tap'
import { memory, mul, scope, sum, tensor } from '@heed/tensor'
import { recycledAttention, recycledPlan, scaledDotProductAttention, type RecycledOptions } from '@heed/attention'
import { conformance, type ConformanceRun, type HostTensor, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { dot, row, runOn, seeded, softmaxMix, tolFor, type Host, type Shape4 } from './helpers/tier2a.js'

const { host } = seeded(44)

/** Recycled attention written out row by row in float64: the schedule, dense P at full steps, top-K, the sets. */
function denseRecycled(q: HostTensor, k: HostTensor, v: HostTensor, o: ReferenceOptions & { stride: number; keep: number; threshold?: number; aggregate?: 'sum' | 'max' }): { out: Float64Array; lse: Float64Array; full: boolean[][] } {
  const [B, H, Tq, D] = q.shape
  const [, Hkv, Tk] = k.shape
  const Dv = v.shape[3]
  const g = H / Hkv
  const s = o.scale ?? 1 / Math.sqrt(D)
  const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = o.keyOffset ?? 0
  const [Qh, Kh, Vh] = [q, k, v].map(x => ({ values: Array.from(x.values), shape: [...x.shape] as Shape4 }))
  const ok = (b: number, h: number, pq: number, pk: number) => pk <= pq && (!o.mask || o.mask.test(b, h, pq, pk))
  const out = new Float64Array(B * H * Tq * Dv)
  const lse = new Float64Array(B * H * Tq)
  const fullAll: boolean[][] = []
  for (let b = 0; b < B; b++) {
    const qrow = (i: number) => Array.from({ length: H }, (_, h) => row(Qh!, b, h, i)).flat()
    let last = -1
    let ref: number[] = []
    let small: Set<number>[] = []
    const full: boolean[] = []
    for (let i = 0; i < Tq; i++) {
      const pq = qOff + i
      let f = last < 0 || i - last >= o.stride
      if (!f && o.threshold !== undefined) {
        const c = qrow(i)
        f = dot(c, ref) / Math.sqrt(dot(c, c) * dot(ref, ref)) < o.threshold
      }
      const scores = (b: number, h: number) =>
        Array.from({ length: Tk }, (_, j) => (ok(b, h, pq, kOff + j) ? s * dot(row(Qh!, b, h, i), row(Kh!, b, Math.floor(h / g), j)) : -Infinity))
      if (f) {
        last = i
        ref = o.threshold !== undefined ? qrow(i) : []
        small = Array.from({ length: Hkv }, (_, kh) => {
          const vote = new Map<number, number>()
          for (let h = kh * g; h < (kh + 1) * g; h++) {
            const sc = scores(b, h)
            const { p } = softmaxMix(sc, sc.map(() => []), 0)
            p.forEach((x, j) => {
              if (!ok(b, h, pq, kOff + j)) return
              const prev = vote.get(j)
              vote.set(j, prev === undefined ? x : o.aggregate === 'max' ? Math.max(prev, x) : prev + x)
            })
          }
          const ranked = [...vote.entries()].sort((a, c) => c[1] - a[1] || a[0] - c[0])
          return new Set(ranked.slice(0, o.keep).map(([j]) => kOff + j))
        })
      }
      full.push(f)
      const lastPos = qOff + last
      for (let h = 0; h < H; h++) {
        const sc = scores(b, h).map((x, j) => (f || kOff + j > lastPos || small[Math.floor(h / g)]!.has(kOff + j) ? x : -Infinity))
        const vals = Array.from({ length: Tk }, (_, j) => row(Vh!, b, Math.floor(h / g), j))
        const r = softmaxMix(sc, vals, Dv)
        out.set(r.o, ((b * H + h) * Tq + i) * Dv)
        lse[(b * H + h) * Tq + i] = r.lse
      }
    }
    fullAll.push(full)
  }
  return { out, lse, full: fullAll }
}

const causalRef = (q: Host, k: Host, v: Host, o: { queryOffset?: number } = {}) => denseRecycled(q, k, v, { ...o, stride: 1, keep: 1 })

t.test('float64 parity with the row-by-row reference (strides, budgets, GQA, sum/max votes, query-similarity schedule)', async t => {
  const cases: { name: string; shape: [number, number, number, number, number]; o: Omit<RecycledOptions, 'causal'> }[] = [
    { name: 'S=3 K=2, MHA', shape: [2, 2, 2, 9, 4], o: { stride: 3, keep: 2 } },
    { name: 'S=4 K=3, GQA 4:2, max', shape: [1, 4, 2, 11, 3], o: { stride: 4, keep: 3, aggregate: 'max' } },
    { name: 'S=5 K=2, θ=0.3, GQA 4:1', shape: [2, 4, 1, 10, 4], o: { stride: 5, keep: 2, threshold: 0.3 } },
  ]
  for (const c of cases) {
    const [B, H, Hkv, T, D] = c.shape
    const [q, k, v] = [host([B, H, T, D]), host([B, Hkv, T + 3, D]), host([B, Hkv, T + 3, 2])]
    const want = denseRecycled(q, k, v, c.o)
    let full: boolean[][] = []
    const got = await runOn('cpu', 'float64', [q, k, v], (a, b, d) => {
      const r = recycledAttention(a!, b!, d!, c.o)
      full = r.full.map(x => [...x])
      return { out: r.out, lse: r.lse }
    })
    t.same(full, want.full, `${c.name}: same schedule`)
    assertClose(t, got.values.out, want.out, { atol: 1e-12, rtol: 1e-12, msg: `${c.name}: out` })
    assertClose(t, got.values.lse, want.lse, { atol: 1e-12, rtol: 1e-12, msg: `${c.name}: lse` })
    t.equal(got.leaked, 0, 'no leaks')
    t.ok(want.full.flat().some(f => !f), `${c.name}: some recycle steps`)
  }
})

t.test('S = 1, K ≥ T and θ = 1 are full causal attention; the small cache is a subset of the full one', async t => {
  const [q, k, v] = [host([1, 2, 8, 4]), host([1, 2, 8, 4]), host([1, 2, 8, 3])]
  const want = causalRef(q, k, v)
  for (const [name, o] of [
    ['S = 1', { stride: 1, keep: 1 }],
    ['K ≥ T', { stride: 4, keep: 8 }],
    ['θ = 1 (every query differs from the last full one)', { stride: 100, keep: 1, threshold: 1 }],
  ] as const) {
    const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => {
      const r = recycledAttention(a!, b!, c!, o)
      t.ok(name !== 'K ≥ T' || r.full[0]!.some(f => !f), 'K ≥ T still recycles')
      return { out: r.out }
    })
    assertClose(t, got.values.out, want.out, { atol: 1e-12, rtol: 1e-12, msg: name })
  }
  // Compacted-cache decode: each recycle row equals sdpa over the gathered small cache plus the new keys, with the
  // gathered keys at their original positions, i.e. identical (k, v, position) to the full cache's.
  const before = memory().tensors
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  const r = recycledAttention(tq!, tk!, tv!, { stride: 3, keep: 2 })
  const out = r.out.dataSync()
  for (let i = 0; i < 8; i++) {
    const small = r.small[0]!.map(perRow => perRow[i]!)
    const last = r.full[0]!.slice(0, i + 1).lastIndexOf(true)
    for (let kh = 0; kh < 2; kh++) {
      t.ok(small[kh]!.every(p => p <= last && p >= 0), `row ${i} head ${kh}: small cache ⊂ keys seen at the last full step`)
      t.ok(small[kh]!.length === Math.min(2, last + 1), 'K tokens (or every visible one)')
      const keep = r.full[0]![i] ? Array.from({ length: i + 1 }, (_, j) => j) : [...small[kh]!, ...Array.from({ length: i - last }, (_, d) => last + 1 + d)]
      const kk = tensor(keep.flatMap(j => row(k, 0, kh, j)), [1, 1, keep.length, 4], 'float64')
      const vv = tensor(keep.flatMap(j => row(v, 0, kh, j)), [1, 1, keep.length, 3], 'float64')
      const qq = tensor(row(q, 0, kh, i), [1, 1, 1, 4], 'float64')
      const o = scaledDotProductAttention(qq, kk, vv, { queryOffset: 0, keyOffset: 0 })
      assertClose(t, o.out.dataSync(), out.slice(((0 * 2 + kh) * 8 + i) * 3, ((0 * 2 + kh) * 8 + i + 1) * 3), { atol: 1e-12, rtol: 1e-12, msg: `row ${i} head ${kh}: compacted cache` })
      for (const x of [kk, vv, qq, o.out, o.lse]) x.dispose()
    }
  }
  for (const x of [tq, tk, tv, r.out, r.lse]) x!.dispose()
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('validation', async t => {
  const [q, k, v] = [host([1, 2, 3, 2]), host([1, 2, 3, 2]), host([1, 2, 3, 2])].map(x => tensor(x.values, x.shape))
  t.throws(() => recycledAttention(q!, k!, v!, { stride: 0, keep: 1 }), { name: 'ValueError', message: /stride/ })
  t.throws(() => recycledAttention(q!, k!, v!, { stride: 1, keep: 1.5 }), /keep/)
  t.throws(() => recycledAttention(q!, k!, v!, { stride: 1, keep: 1, causal: false as never }), /causal/)
  t.throws(() => recycledAttention(q!, k!, v!, { stride: 1, keep: 1, threshold: NaN }), /threshold/)
  t.throws(() => recycledAttention(q!, k!, v!, { stride: 1, keep: 1, aggregate: 'mean' as never }), /aggregate/)
  for (const x of [q, k, v]) x!.dispose()
})

t.test('differentiable in q, k, v for the chosen sets', async t => {
  const [q, k, v] = [host([1, 2, 6, 3]), host([1, 1, 6, 3]), host([1, 1, 6, 2])]
  const w = host([1, 2, 6, 2]).values
  await checkGrad(t, (a, b, c) => scope(() => sum(mul(recycledAttention(a!, b!, c!, { stride: 3, keep: 2 }).out, tensor(w, [1, 2, 6, 2], 'float64')))), [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'recycled' })
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'recycledAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 4, 10, 4]), host([1, 2, 12, 4]), host([1, 2, 12, 4])]
    const want = denseRecycled(q, k, v, { stride: 3, keep: 3 })
    const o = { stride: 3, keep: 3 }
    // Off the host, the discrete plan is read back asynchronously first.
    const before = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const plan = await recycledPlan(tq!, tk!, tv!, o)
    for (const x of [tq, tk, tv]) x!.dispose()
    t.equal(memory().tensors, before, 'plan: no leaks')
    t.same(plan.full, want.full, 'plan: same schedule')
    const got = await runOn(backend, 'float32', [q, k, v], (a, b, c) => ({ out: recycledAttention(a!, b!, c!, { ...o, plan }).out }))
    assertClose(t, got.values.out, want.out, { ...tolFor('float32'), msg: `${backend} out` })
    t.equal(got.leaked, 0, 'no leaks')
  })
})

t.test('conformance', async t => {
  const o = { stride: 3, keep: 2 }
  const run: ConformanceRun = (q, k, v, ro) => {
    const { causal: _c, ...rest } = ro
    const r = recycledAttention(q, k, v, { ...rest, ...o })
    return { out: r.out, lse: r.lse }
  }
  const report = await conformance(t, {
    name: 'recycledAttention',
    run,
    reference: (q, k, v, ro) => denseRecycled(q, k, v, { ...ro, ...o }),
    patterns: ['CS', 'CC'],
    incremental: false,
    // The schedule restarts with every call (C3's query chunks, decode steps), and selection reads absolute
    // positions that C7/C8 renumber; C5/C6 need the dense softmax the operator deliberately departs from.
    contracts: ['C1', 'C2'],
  })
  t.same(report.ran, ['C1', 'C2'])
  const deg = await conformance(t, {
    name: 'recycledAttention (unbounded settings)',
    run,
    patterns: ['CS', 'CC'],
    incremental: false,
    contracts: ['C4'],
    degenerate: [
      { name: 'S = 1', run: (q, k, v, ro) => recycledAttention(q, k, v, { ...(ro.mask ? { mask: ro.mask } : {}), stride: 1, keep: 1 }) },
      { name: 'K ≥ T', run: (q, k, v, ro) => recycledAttention(q, k, v, { ...(ro.mask ? { mask: ro.mask } : {}), stride: 3, keep: 1 << 20 }) },
    ],
  })
  t.same(deg.ran, ['C4'])
})

