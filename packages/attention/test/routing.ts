import t from 'tap'
import { mul, reshape, scope, ShapeError, sum, tensor, ValueError, type Tensor } from '@heed/tensor'
import { kmeansObjective, kmeansUpdate, routingAttention, type RoutingOptions } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostArray } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { dot, dtypesFor, runOn, seeded, softmaxMix, tolFor, type Host } from './helpers/tier2a.js'

const { rand, host } = seeded(43)
type H4 = Host | HostArray
const rowOf = (x: H4, b: number, h: number, t: number): number[] => {
  const [, Hx, T, D] = x.shape
  return Array.from(x.values).slice(((b * Hx + h) * T + t) * D, ((b * Hx + h) * T + t + 1) * D)
}
const unit = (x: number[]) => {
  const n = Math.max(Math.sqrt(dot(x, x)), 1e-12)
  return x.map(y => y / n)
}
const centroidsOf = (H: number, C: number, D: number): number[] => Array.from({ length: H * C }, () => unit(Array.from({ length: D }, () => rand() * 2 - 1))).flat()

/** float64 routing attention from the note: balanced top-w (or argmax) membership, attention inside clusters, mean over clusters. */
function reference(q: H4, k: H4, v: H4, mu: number[], C: number, o: { w?: number; causal?: boolean; assignment?: 'balanced' | 'argmax'; scale?: number; excludeSelf?: boolean }): number[] {
  const [B, H, T, D] = q.shape
  const Dv = v.shape[3]
  const s = o.scale ?? 1 / Math.sqrt(D)
  const w = o.w ?? Math.ceil(T / C)
  const out: number[] = []
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const cent = (c: number) => mu.slice((h * C + c) * D, (h * C + c + 1) * D)
      const route = (x: H4, i: number) => Array.from({ length: C }, (_, c) => dot(cent(c), unit(rowOf(x, b, h, i))))
      const argmaxOf = (r: number[]) => r.indexOf(Math.max(...r))
      const clustersQ: number[][] = []
      const clustersK: number[][] = []
      for (let c = 0; c < C; c++) {
        const pick = (x: H4) =>
          o.assignment === 'argmax'
            ? Array.from({ length: T }, (_, i) => i).filter(i => argmaxOf(route(x, i)) === c)
            : Array.from({ length: T }, (_, i) => i).sort((a, z) => route(x, z)[c]! - route(x, a)[c]!).slice(0, w).sort((a, z) => a - z)
        clustersQ.push(pick(q))
        clustersK.push(pick(k))
      }
      for (let i = 0; i < T; i++) {
        const acc = new Array<number>(Dv).fill(0)
        let n = 0
        for (let c = 0; c < C; c++) {
          if (!clustersQ[c]!.includes(i)) continue
          n++
          const keys = clustersK[c]!.filter(j => !o.causal || j <= i)
          const r = softmaxMix(keys.map(j => (o.excludeSelf && j === i ? -5e4 : s * dot(rowOf(q, b, h, i), rowOf(k, b, h, j)))), keys.map(j => rowOf(v, b, h, j)), Dv)
          r.o.forEach((x, d) => (acc[d]! += x))
        }
        out.push(...acc.map(x => (n ? x / n : 0)))
      }
    }
  return out
}

const cases: { name: string; shape: [number, number, number, number]; C: number; opts: Omit<RoutingOptions, 'centroids'> & { window?: number } }[] = [
  { name: 'balanced non-causal', shape: [2, 2, 12, 4], C: 3, opts: {} },
  { name: 'balanced causal w=5 (overlaps and gaps)', shape: [1, 2, 12, 4], C: 2, opts: { causal: true, window: 5 } },
  { name: 'balanced shared-QK self exclusion', shape: [1, 1, 10, 3], C: 2, opts: { causal: true, excludeSelf: true } },
  { name: 'argmax causal', shape: [1, 2, 11, 4], C: 3, opts: { causal: true, assignment: 'argmax' } },
]

t.test('routingAttention matches the float64 reference on every backend', async t => {
  const data = cases.map(c => {
    const q = host(c.shape)
    const k = c.opts.excludeSelf ? q : host(c.shape)
    return { c, q, k, v: host(c.shape), mu: centroidsOf(c.shape[1], c.C, c.shape[3]) }
  })
  await eachBackend(t, 'routing parity', async (t, backend) => {
    for (const { c, q, k, v, mu } of data) {
      const ref = reference(q, k, v, mu, c.C, { ...c.opts, ...(c.opts.window !== undefined ? { w: c.opts.window } : {}) })
      const muHost: Host = { values: mu, shape: [1, c.shape[1], c.C, c.shape[3]] }
      for (const dtype of dtypesFor(backend)) {
        const r = await runOn(backend, dtype, [q, k, v, muHost], (q, k, v, m) => routingAttention(q!, k!, v!, { ...c.opts, centroids: reshape(m!, [c.shape[1], c.C, c.shape[3]]) }) as { out: Tensor })
        assertClose(t, r.values.out, ref, { ...tolFor(dtype), msg: `${c.name} ${dtype}` })
        t.equal(r.leaked, 0, `${c.name} ${dtype}: memory back to baseline`)
      }
    }
  })
})

t.test('one cluster holding every token is full attention', async t => {
  const [q, k, v] = [host([1, 2, 9, 4]), host([1, 2, 9, 4]), host([1, 2, 9, 3])]
  const mu: Host = { values: centroidsOf(2, 1, 4), shape: [1, 2, 1, 4] }
  for (const causal of [false, true]) {
    const ref = referenceAttention(q, k, v, causal ? { mask: { test: (_b: number, _h: number, i: number, j: number) => j <= i } as never } : {})
    for (const assignment of ['balanced', 'argmax'] as const) {
      const r = await runOn('cpu', 'float64', [q, k, v, mu], (q, k, v, m) => routingAttention(q!, k!, v!, { centroids: reshape(m!, [2, 1, 4]), window: 9, causal, assignment }) as { out: Tensor })
      assertClose(t, r.values.out, ref.out, { atol: 1e-12, rtol: 1e-12, msg: `k = 1, w = T, ${assignment}, causal=${causal} ⇒ full attention` })
    }
  }
})

t.test('within-cluster order invariance: permuting tokens permutes the output (non-causal)', async t => {
  const [q, k, v] = [host([1, 1, 10, 4]), host([1, 1, 10, 4]), host([1, 1, 10, 2])]
  const mu: Host = { values: centroidsOf(1, 3, 4), shape: [1, 1, 3, 4] }
  const perm = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
  const permute = (x: Host): Host => ({ values: perm.flatMap(p => rowOf(x, 0, 0, p)), shape: x.shape })
  const run = (xs: Host[]) => runOn('cpu', 'float64', [...xs, mu], (q, k, v, m) => routingAttention(q!, k!, v!, { centroids: reshape(m!, [1, 3, 4]), window: 4 }) as { out: Tensor })
  const base = await run([q, k, v])
  const moved = await run([q, k, v].map(permute))
  assertClose(t, moved.values.out, permute({ values: base.values.out, shape: [1, 1, 10, 2] }).values, { atol: 1e-12, rtol: 1e-12, msg: 'equivariant' })
})

t.test('k-means: λ = 0 is the hard spherical mean, and the objective never increases', async t => {
  const x = host([2, 2, 30, 3])
  let mu: Host = { values: centroidsOf(2, 4, 3), shape: [1, 2, 4, 3] }
  let last = Infinity
  for (let it = 0; it < 5; it++) {
    const r = await runOn('cpu', 'float64', [x, mu], (x, m) => {
      const c = reshape(m!, [2, 4, 3])
      return { obj: kmeansObjective(x!, c), next: kmeansUpdate(x!, c, { decay: 0 }) }
    })
    t.equal(r.leaked, 0, 'no leak')
    const obj = r.values.obj.reduce((a, b) => a + b, 0)
    t.ok(obj <= last + 1e-12, `iteration ${it}: objective ${obj.toFixed(6)} ≤ ${last.toFixed(6)}`)
    last = obj
    if (it === 0) {
      // Hard mean, recomputed here: x̂ to nearest centroid, mean, renormalise; empty clusters keep their centroid.
      const want: number[] = []
      for (let h = 0; h < 2; h++)
        for (let c = 0; c < 4; c++) {
          const cent = mu.values.slice((h * 4 + c) * 3, (h * 4 + c + 1) * 3)
          const acc = [0, 0, 0]
          let n = 0
          for (let b = 0; b < 2; b++)
            for (let i = 0; i < 30; i++) {
              const xi = unit(rowOf(x, b, h, i))
              const sc = Array.from({ length: 4 }, (_, cc) => dot(mu.values.slice((h * 4 + cc) * 3, (h * 4 + cc + 1) * 3), xi))
              if (sc.indexOf(Math.max(...sc)) !== c) continue
              n++
              xi.forEach((y, d) => (acc[d]! += y))
            }
          want.push(...(n ? unit(acc) : cent))
        }
      assertClose(t, r.values.next, want, { atol: 1e-12, rtol: 1e-12, msg: 'λ = 0 ⇒ hard mean' })
    }
    mu = { values: r.values.next, shape: mu.shape }
  }
  // EMA moves part of the way and stays on the sphere.
  const e = await runOn('cpu', 'float64', [x, mu], (x, m) => ({ next: kmeansUpdate(x!, reshape(m!, [2, 4, 3]), { decay: 0.999 }) }))
  for (let c = 0; c < 8; c++) t.ok(Math.abs(Math.hypot(...e.values.next.slice(3 * c, 3 * c + 3)) - 1) < 1e-12, `EMA centroid ${c} is unit`)
})

t.test('gradients', async t => {
  const [q, k, v, w] = [host([1, 1, 6, 2]), host([1, 1, 6, 2]), host([1, 1, 6, 2]), host([1, 1, 6, 2])]
  const mu = centroidsOf(1, 2, 2)
  for (const assignment of ['balanced', 'argmax'] as const) {
    const f = (q: Tensor, k: Tensor, v: Tensor) =>
      scope(() => sum(mul(routingAttention(q, k, v, { centroids: tensor(mu, [1, 2, 2], 'float64'), window: 4, causal: true, assignment }).out, tensor(w.values, w.shape, 'float64'))))
    await checkGrad(t, f, [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: `routing ${assignment}` })
  }
})

t.test('validation', async t => {
  const x = tensor(host([1, 1, 6, 2]).values, [1, 1, 6, 2])
  const bad = tensor(centroidsOf(1, 2, 3), [2, 3])
  const mu = tensor(centroidsOf(1, 2, 2), [2, 2])
  t.throws(() => routingAttention(x, x, x, { centroids: bad }), ShapeError, 'centroid dim')
  t.throws(() => routingAttention(x, x, x, { centroids: mu, window: 7 }), ValueError, 'window > T')
  t.throws(() => kmeansUpdate(x, mu, { decay: 2 }), ValueError, 'decay')
  for (const z of [x, bad, mu]) z.dispose()
})

t.test('conformance', async t => {
  const H = 4
  const D = 5
  const mu2 = centroidsOf(H, 2, D)
  const mu1 = centroidsOf(H, 1, D)
  const runWith = (mu: number[], C: number, extra: Omit<RoutingOptions, 'centroids'>): ConformanceRun => (q, k, v, o) =>
    routingAttention(q, k, v, { centroids: tensor(mu, [H, C, D], q.dtype, { backend: q.backend }), causal: !!o.causal, ...(o.scale !== undefined ? { scale: o.scale } : {}), ...extra })
  const isCausal = (o: { mask?: { key: string } }) => o.mask?.key === 'causal'
  // Balanced routing: parity, and C7 (keys permuted ⇒ same clusters, same output). Not prefix-consistent (C2), by design.
  await conformance(t, {
    name: 'routing balanced',
    run: runWith(mu2, 2, { window: 4 }),
    patterns: ['NS', 'CS'],
    incremental: false,
    supports: { mask: false, offsets: false, gqa: false },
    reference: (q, k, v, o) => ({ out: Float64Array.from(reference(q, k, v, mu2, 2, { w: 4, causal: isCausal(o), ...(o.scale !== undefined ? { scale: o.scale } : {}) })) }),
    contracts: ['C1', 'C7'],
  })
  // Argmax routing: prefix-consistent with a decode form (C2).
  await conformance(t, {
    name: 'routing argmax',
    run: runWith(mu2, 2, { assignment: 'argmax' }),
    patterns: ['NS', 'CS'],
    incremental: true,
    supports: { mask: false, offsets: false, gqa: false },
    reference: (q, k, v, o) => ({ out: Float64Array.from(reference(q, k, v, mu2, 2, { assignment: 'argmax', causal: isCausal(o), ...(o.scale !== undefined ? { scale: o.scale } : {}) })) }),
    contracts: ['C1', 'C2', 'C7'],
  })
  const full = runWith(mu1, 1, { window: 7 })
  await conformance(t, {
    name: 'routing k = 1, w = T',
    run: full,
    patterns: ['NS', 'CS'],
    incremental: false,
    supports: { mask: false, offsets: false, gqa: false },
    degenerate: [{ name: 'k = 1, w = T', run: full }],
    contracts: ['C1', 'C4', 'C7'],
  })
})
