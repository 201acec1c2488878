import t from 'tap'
import { mul, scope, sum, tensor } from '@heed/tensor'
import { pineAttention, pinePlan, rope, scaledDotProductAttention, type PineOptions } from '@heed/attention'
import { conformance, type ConformanceRun, type HostTensor } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'
import { dot, row, runOn, seeded, softmaxMix, tolFor, type Host, type Shape4 } from './helpers/tier2a.js'

const { host } = seeded(41)

/** Textbook RoPE of the first `dims` features ('half' pairing), independent of the library. */
function ropeVec(x: readonly number[], p: number, dims: number): number[] {
  const out = x.slice()
  const h = dims / 2
  for (let i = 0; i < h; i++) {
    const a = p * 10000 ** (-(2 * i) / dims)
    out[i] = x[i]! * Math.cos(a) - x[i + h]! * Math.sin(a)
    out[i + h] = x[i + h]! * Math.cos(a) + x[i]! * Math.sin(a)
  }
  return out
}

/** PINE row by row: importance without positions, the per-row layout, then per-pair rotated scores. */
function densePine(q: HostTensor, k: HostTensor, v: HostTensor, docs: readonly (readonly [number, number])[], o: { scale?: number; dims?: number | false } = {}): { out: number[]; lse: number[] } {
  const [Q, K, V] = [q, k, v].map(x => ({ values: Array.from(x.values), shape: [...x.shape] as Shape4 })) as [Host, Host, Host]
  const [B, H, T, D] = Q.shape
  const g = H / K.shape[1]
  const Dv = V.shape[3]
  const s = o.scale ?? 1 / Math.sqrt(D)
  const dims = o.dims === undefined ? D : o.dims
  const docOf = (j: number) => docs.findIndex(([a, b]) => j >= a && j < b)
  const allowed = (i: number, j: number) => j <= i || (docOf(i) >= 0 && docOf(j) >= 0 && docOf(i) !== docOf(j))
  const len = docs.map(([a, b]) => b - a)
  const start = docs[0]?.[0] ?? 0
  const total = len.reduce((a, b) => a + b, 0)
  const out: number[] = []
  const lse: number[] = []
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        const qi = row(Q, b, h, i)
        const kj = (j: number) => row(K, b, Math.floor(h / g), j)
        const plain = Array.from({ length: T }, (_, j) => (allowed(i, j) ? s * dot(qi, kj(j)) : -Infinity))
        const { p } = softmaxMix(plain, plain.map(() => []), 0)
        const own = docOf(i)
        const others = docs.map((_, m) => m).filter(m => m !== own)
        const imp = (m: number) => p.slice(docs[m]![0], docs[m]![1]).reduce((a, c) => a + c, 0) / len[m]!
        others.sort((x, y) => imp(x) - imp(y) || x - y)
        const layoutOrder = i < start ? [] : own >= 0 ? [...others, own] : others
        const docStart = new Map<number, number>()
        let at = start
        for (const m of layoutOrder) {
          docStart.set(m, at)
          at += len[m]!
        }
        const pq = own >= 0 ? start + total - len[own]! + (i - docs[own]![0]) : i
        const pk = (j: number) => (docOf(j) >= 0 && docStart.has(docOf(j)) ? docStart.get(docOf(j))! + (j - docs[docOf(j)]![0]) : j)
        const sc = Array.from({ length: T }, (_, j) => (allowed(i, j) ? s * (dims === false ? dot(qi, kj(j)) : dot(ropeVec(qi, pq, dims), ropeVec(kj(j), pk(j), dims))) : -Infinity))
        const r = softmaxMix(sc, Array.from({ length: T }, (_, j) => row(V, b, Math.floor(h / g), j)), Dv)
        out.push(...r.o)
        lse.push(r.lse)
      }
  return { out, lse }
}

/** [prefix 2][docs of `lens`][suffix 3] rows of D features: the input, document ranges, and a permuted version. */
function arranged(lens: number[], perm: number[], D: number, heads: number): { x: Host; docs: [number, number][]; xp: Host; docsP: [number, number][]; rowOf: number[] } {
  const T = 2 + lens.reduce((a, b) => a + b, 0) + 3
  const x = host([1, heads, T, D])
  const docs: [number, number][] = []
  let at = 2
  for (const L of lens) docs.push([at, (at += L)])
  // Row map: new row r takes old row rowOf[r].
  const rowOf = [0, 1, ...perm.flatMap(m => Array.from({ length: lens[m]! }, (_, j) => docs[m]![0] + j)), ...[T - 3, T - 2, T - 1]]
  const docsP: [number, number][] = []
  at = 2
  for (const m of perm) docsP.push([at, (at += lens[m]!)])
  const xp: Host = { values: [], shape: x.shape }
  for (let h = 0; h < heads; h++) for (const r of rowOf) xp.values.push(...row(x, 0, h, r))
  return { x, docs, xp, docsP, rowOf }
}

t.test('float64 parity with the per-pair reference (RoPE full and partial, GQA, scale)', async t => {
  for (const [name, shape, docs, o] of [
    ['MHA, 3 documents', [2, 2, 2, 10, 4], [[2, 4], [4, 7], [7, 8]], {}],
    ['GQA 4:2, partial rotary 4 of 6, scale 0.7', [1, 4, 2, 9, 6], [[1, 3], [3, 6]], { dims: 4, scale: 0.7 }],
    ['no suffix, no prefix', [1, 2, 1, 6, 4], [[0, 2], [2, 4], [4, 6]], {}],
  ] as const) {
    const [B, H, Hkv, T, D] = shape
    const [q, k, v] = [host([B, H, T, D], 2), host([B, Hkv, T, D], 2), host([B, Hkv, T, 3])]
    const want = densePine(q, k, v, docs, o)
    const opts: PineOptions = { documents: docs, ...('dims' in o ? { rope: { dims: o.dims } } : {}), ...('scale' in o ? { scale: o.scale } : {}) }
    const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => {
      const r = pineAttention(a!, b!, c!, opts)
      return { out: r.out, lse: r.lse }
    })
    assertClose(t, got.values.out, want.out, { atol: 1e-12, rtol: 1e-11, msg: `${name}: out` })
    assertClose(t, got.values.lse, want.lse, { atol: 1e-12, rtol: 1e-11, msg: `${name}: lse` })
    t.equal(got.leaked, 0, 'no leaks')
  }
})

t.test('document permutation: suffix rows invariant, document rows permuted with their documents', async t => {
  const lens = [2, 3, 1, 2]
  for (const perm of [[3, 1, 0, 2], [1, 0, 3, 2], [2, 3, 1, 0]]) {
    const a = arranged(lens, perm, 4, 2)
    // q = k = x; v from x, permuted the same way.
    const v = { values: a.x.values.map(x => x * 0.5 + 0.1), shape: a.x.shape }
    const vp = { values: [] as number[], shape: a.x.shape }
    for (let h = 0; h < 2; h++) for (const r of a.rowOf) vp.values.push(...row(v, 0, h, r))
    const one = await runOn('cpu', 'float64', [a.x, a.x, v], (q, k, vv) => ({ out: pineAttention(q!, k!, vv!, { documents: a.docs }).out }))
    const two = await runOn('cpu', 'float64', [a.xp, a.xp, vp], (q, k, vv) => ({ out: pineAttention(q!, k!, vv!, { documents: a.docsP }).out }))
    const T = a.rowOf.length
    const permuted: number[] = []
    for (let h = 0; h < 2; h++) for (const r of a.rowOf) permuted.push(...one.values.out.slice((h * T + r) * 4, (h * T + r + 1) * 4))
    assertClose(t, two.values.out, permuted, { atol: 1e-12, rtol: 1e-11, msg: `perm ${perm.join(',')}: every row equals its original (suffix unchanged, documents permuted)` })
    // Plain causal attention with RoPE is not invariant: the test has teeth.
    const plain = await runOn('cpu', 'float64', [a.xp, a.xp, vp], (q, k, vv) => ({ out: scaledDotProductAttention(rope(q!, Int32Array.from({ length: T }, (_, i) => i)), rope(k!, Int32Array.from({ length: T }, (_, i) => i)), vv!, { causal: true }).out }))
    const last = (x: number[]) => x.slice((T - 1) * 4, T * 4)
    t.ok(last(plain.values.out).some((x, i) => Math.abs(x - last(permuted)[i]!) > 1e-6), 'causal RoPE attention changes the last row')
  }
})

t.test('degenerate layouts: no documents (causal, RoPE at original positions), one document (the same)', async t => {
  const [q, k, v] = [host([1, 2, 7, 4]), host([1, 2, 7, 4]), host([1, 2, 7, 3])]
  const pos = Int32Array.from({ length: 7 }, (_, i) => i)
  const want = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => ({ out: scaledDotProductAttention(rope(a!, pos), rope(b!, pos), c!, { causal: true }).out }))
  for (const docs of [[], [[2, 5]]] as (readonly [number, number])[][]) {
    const got = await runOn('cpu', 'float64', [q, k, v], (a, b, c) => ({ out: pineAttention(a!, b!, c!, { documents: docs }).out }))
    assertClose(t, got.values.out, want.values.out, { atol: 1e-12, rtol: 1e-11, msg: `${docs.length} documents` })
  }
})

t.test('validation', async t => {
  const [q, k, v] = [host([1, 2, 6, 4]), host([1, 2, 6, 4]), host([1, 2, 6, 4])].map(x => tensor(x.values, x.shape))
  t.throws(() => pineAttention(q!, k!, v!, { documents: [[1, 3], [4, 5]] }), { name: 'ValueError', message: /documents\[1\]/ })
  t.throws(() => pineAttention(q!, k!, v!, { documents: [[1, 9]] }), /documents\[0\]/)
  t.throws(() => pineAttention(q!, k!, v!, { documents: [[1, 3]], rope: { dims: 3 } }), /rope\.dims/)
  t.throws(() => pineAttention(q!, k!, v!, { documents: [[1, 3]], rope: { base: 1 } }), /rope\.base/)
  t.throws(() => pineAttention(q!, k!, v!, { documents: [[1, 3]], plan: { order: [] } }), /plan/)
  const k2 = tensor(host([1, 2, 5, 4]).values, [1, 2, 5, 4])
  const v2 = tensor(host([1, 2, 5, 4]).values, [1, 2, 5, 4])
  t.throws(() => pineAttention(q!, k2, v2, { documents: [] }), { name: 'ShapeError' })
  for (const x of [q, k, v, k2, v2]) x!.dispose()
})

t.test('differentiable in q, k, v for a fixed order', async t => {
  const [q, k, v] = [host([1, 2, 6, 4]), host([1, 1, 6, 4]), host([1, 1, 6, 2])]
  const w = host([1, 2, 6, 2]).values
  await checkGrad(t, (a, b, c) => scope(() => sum(mul(pineAttention(a!, b!, c!, { documents: [[1, 3], [3, 5]] }).out, tensor(w, [1, 2, 6, 2], 'float64')))), [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'pine' })
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'pineAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 2, 9, 4]), host([1, 2, 9, 4]), host([1, 2, 9, 4])]
    const docs = [[1, 3], [3, 6], [6, 7]] as const
    const want = densePine(q, k, v, docs)
    // Counts only the tensors made here: a difference of memory().tensors also moved when the GC safety net
    // collected a tensor an earlier test had forgotten.
    const plan = await noLeaks(t, 'plan: no leaks', async () => {
      const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
      const plan = await pinePlan(tq!, tk!, tv!, { documents: docs })
      for (const x of [tq, tk, tv]) x!.dispose()
      return plan
    })
    const got = await runOn(backend, 'float32', [q, k, v], (a, b, c) => ({ out: pineAttention(a!, b!, c!, { documents: docs, plan }).out }))
    assertClose(t, got.values.out, want.out, { ...tolFor('float32'), msg: `${backend} out` })
    t.equal(got.leaked, 0, 'no leaks')
  })
})

t.test('conformance', async t => {
  // The harness's self problems have T = 7, D = 5: prefix [0, 1), documents [1, 3) and [3, 5), suffix [5, 7), RoPE on 4 features.
  const docs = [[1, 3], [3, 5]] as const
  const run: ConformanceRun = (q, k, v, o) => {
    const r = pineAttention(q, k, v, { documents: docs, rope: { dims: 4 }, ...(o.scale !== undefined ? { scale: o.scale } : {}) })
    return { out: r.out, lse: r.lse }
  }
  const report = await conformance(t, {
    name: 'pineAttention',
    run,
    reference: (q, k, v, o) => {
      const r = densePine(q, k, v, docs, { dims: 4, ...(o.scale !== undefined ? { scale: o.scale } : {}) })
      return { out: Float64Array.from(r.out), lse: Float64Array.from(r.lse) }
    },
    patterns: ['CS'],
    incremental: false,
    supports: { mask: false, offsets: false },
    // PINE brings its own mask and positions (no offsets); documents see later documents, so no prefix consistency.
    contracts: ['C1'],
  })
  t.same(report.ran, ['C1'])
  const deg = await conformance(t, {
    name: 'pineAttention (no documents, no positions)',
    run,
    patterns: ['CS'],
    incremental: false,
    contracts: ['C4'],
    degenerate: [{ name: 'no documents, rope: false', run: (q, k, v) => pineAttention(q, k, v, { documents: [], rope: false }) }],
  })
  t.same(deg.ran, ['C4'])
})
