import t from 'tap'
import { add, memory, mul, scope, sum, tensor, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import { flowAttention, flowStats, type FlowAttentionOptions, type FlowState } from '@heed/attention'
import { conformance, type HostArray, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(49)
type Shape4 = [number, number, number, number]
interface Host {
  values: ArrayLike<number>
  shape: readonly [number, number, number, number]
}
const host = (shape: Shape4, amp = 1): Host => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), -amp, amp), shape })
const sig = (x: number): number => 1 / (1 + Math.exp(-x))

/**
 * float64 golden path, materialised: the attention matrix A_ij = φ(q_i)·φ(k_j) / I_i is built explicitly and
 * R = a ⊙ (A (c ⊙ V)), with every flow written from the note's formulas (§3 T1.3), one (b, h) at a time.
 */
function reference(q: Host, k: Host, v: Host, o: { causal?: boolean; eps?: number; clamp?: [number, number] | false } = {}) {
  const [B, H, n, D] = q.shape
  const [, Hkv, m, Dv] = v.shape
  const e = o.eps ?? 1e-6
  const [lo, hi] = o.clamp === false ? [-Infinity, Infinity] : (o.clamp ?? [-1, 1])
  const out = new Float64Array(B * H * n * Dv)
  const stats = { I: [] as number[], O: [] as number[], a: [] as number[], c: [] as number[] }
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv))
      const Q = Array.from({ length: n }, (_, i) => Array.from({ length: D }, (_, d) => sig(q.values[((b * H + h) * n + i) * D + d]!)))
      const K = Array.from({ length: m }, (_, j) => Array.from({ length: D }, (_, d) => sig(k.values[((b * Hkv + hk) * m + j) * D + d]!)))
      const V = Array.from({ length: m }, (_, j) => Array.from({ length: Dv }, (_, d) => v.values[((b * Hkv + hk) * m + j) * Dv + d]!))
      const dotE = (x: number[], y: number[]) => x.reduce((s, xi, d) => s + (xi + e) * (y[d]! + e), 0)
      const dot = (x: number[], y: number[]) => x.reduce((s, xi, d) => s + xi * y[d]!, 0)
      const sumRows = (rows: number[][], upto: number, w: (r: number) => number = () => 1) =>
        Array.from({ length: D }, (_, d) => rows.slice(0, upto).reduce((s, r, i) => s + w(i) * r[d]!, 0))
      const clampv = (x: number) => Math.min(Math.max(x, lo), hi)
      let I: number[], O: number[], a: number[], c: number[], visible: (i: number, j: number) => boolean
      if (!o.causal) {
        I = Q.map(qi => dotE(qi, sumRows(K, m)))
        O = K.map(kj => dotE(kj, sumRows(Q, n)))
        const Ihat = Q.map(qi => dotE(qi, sumRows(K, m, j => 1 / O[j]!)))
        const Ohat = K.map(kj => clampv(dotE(kj, sumRows(Q, n, i => 1 / I[i]!))))
        a = Ihat.map(x => sig((x * n) / m))
        const z = Ohat.reduce((s, x) => s + Math.exp(x), 0)
        c = Ohat.map(x => (Math.exp(x) / z) * m)
        visible = () => true
      } else {
        const nu = (t: number) => t + 1
        I = Q.map((qi, i) => dotE(qi, sumRows(K, i + 1)))
        O = K.map((kj, j) => dotE(kj, sumRows(Q, j + 1)))
        const Ihat = Q.map((qi, i) => dotE(qi, sumRows(K, i + 1, j => nu(j) / O[j]!)) / nu(i))
        const Ohat = K.map((kj, j) => clampv(dotE(kj, sumRows(Q, j + 1, i => nu(i) / I[i]!)) / nu(j)))
        a = Ihat.map(sig)
        c = Ohat.map((x, j) => (Math.exp(x) / Ohat.slice(0, j + 1).reduce((s, y) => s + Math.exp(y), 0)) * nu(j))
        visible = (i, j) => j <= i
      }
      for (let i = 0; i < n; i++)
        for (let j = 0; j < m; j++) {
          if (!visible(i, j)) continue
          const A = dot(Q[i]!, K[j]!) / I[i]!
          for (let d = 0; d < Dv; d++) out[((b * H + h) * n + i) * Dv + d]! += a[i]! * A * c[j]! * V[j]![d]!
        }
      stats.I.push(...I)
      stats.O.push(...O)
      stats.a.push(...a)
      stats.c.push(...c)
    }
  return { out, stats }
}

const tensors = (xs: Host[], dtype: 'float32' | 'float64' = 'float64'): Tensor[] => xs.map(x => tensor(Float64Array.from(x.values), x.shape, dtype))
const tol = (dtype: 'float32' | 'float64') => (dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 2e-6, rtol: 2e-5 })
/** Rows [s, e) along T. */
function rowsT(x: Host, s: number, e: number): Host {
  const [B, H, T, D] = x.shape
  const out: number[] = []
  for (let bh = 0; bh < B * H; bh++) for (let i = s * D; i < e * D; i++) out.push(x.values[bh * T * D + i]!)
  return { values: out, shape: [B, H, e - s, D] }
}

t.test('linear forms = materialised float64 reference (both forms, GQA, cross lengths, ε and clamp variants)', async t => {
  const base = memory().tensors
  const cases: { name: string; q: Shape4; k: Shape4; v: Shape4; o: FlowAttentionOptions & { clamp?: [number, number] | false } }[] = [
    { name: 'non-causal self', q: [2, 2, 7, 4], k: [2, 2, 7, 4], v: [2, 2, 7, 3], o: {} },
    { name: 'non-causal cross n<m GQA', q: [1, 4, 5, 4], k: [1, 2, 9, 4], v: [1, 2, 9, 2], o: {} },
    { name: 'non-causal cross n>m', q: [1, 2, 9, 3], k: [1, 2, 4, 3], v: [1, 2, 4, 3], o: { eps: 0.01 } },
    { name: 'non-causal no clamp', q: [1, 2, 6, 3], k: [1, 2, 6, 3], v: [1, 2, 6, 3], o: { clamp: false } },
    { name: 'causal', q: [2, 2, 11, 4], k: [2, 2, 11, 4], v: [2, 2, 11, 3], o: { causal: true, blockSize: 4 } },
    { name: 'causal GQA ε=0 tight clamp', q: [1, 4, 8, 3], k: [1, 2, 8, 3], v: [1, 2, 8, 2], o: { causal: true, eps: 0, clamp: [-0.3, 0.2], blockSize: 3 } },
  ]
  for (const c of cases) {
    // Inputs up to ±3 push sigmoid towards its tails, where the flows are most uneven.
    const [q, k, v] = [host(c.q, 3), host(c.k, 3), host(c.v)]
    const ref = reference(q, k, v, c.o)
    for (const dtype of ['float64', 'float32'] as const) {
      const [tq, tk, tv] = tensors([q, k, v], dtype)
      const r = flowAttention(tq!, tk!, tv!, c.o)
      assertClose(t, await r.out.data(), ref.out, { ...tol(dtype), msg: `${c.name} ${dtype}` })
      t.equal(r.state !== undefined, c.o.causal === true, `${c.name}: state only when causal`)
      const s = flowStats(tq!, tk!, tv!, c.o)
      if (c.q[1] === c.k[1]) {
        assertClose(t, await s.incoming.data(), ref.stats.I, { ...tol(dtype), msg: `${c.name} ${dtype}: incoming` })
        assertClose(t, await s.outgoing.data(), ref.stats.O, { ...tol(dtype), msg: `${c.name} ${dtype}: outgoing` })
      }
      assertClose(t, await s.allocation.data(), ref.stats.a, { ...tol(dtype), msg: `${c.name} ${dtype}: allocation` })
      for (const x of [tq, tk, tv, r.out, ...Object.values(s), ...(r.state ? Object.values(r.state).filter(x => typeof x !== 'number') : [])]) (x as Tensor).dispose()
    }
  }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('conservation: sink rows and source columns of the flow sum to 1 (ε = 0); Σc = m; a ∈ (0, 1)', async t => {
  const base = memory().tensors
  for (const causal of [false, true]) {
    const [B, H, T, D, Dv] = [1, 2, 9, 4, 3]
    const [q, k, v] = [host([B, H, T, D], 2), host([B, H, T, D], 2), host([B, H, T, Dv])]
    const [tq, tk, tv] = tensors([q, k, v])
    const s = flowStats(tq!, tk!, tv!, { causal, eps: 0 })
    const [I, O, a, c] = await Promise.all([s.incoming.data(), s.outgoing.data(), s.allocation.data(), s.competition.data()])
    const phi = (x: Host, bh: number, i: number) => Array.from({ length: D }, (_, d) => sig(x.values[(bh * T + i) * D + d]!))
    const dot = (x: number[], y: number[]) => x.reduce((s, xi, d) => s + xi * y[d]!, 0)
    let rowWorst = 0
    let colWorst = 0
    for (let bh = 0; bh < B * H; bh++)
      for (let i = 0; i < T; i++) {
        // Sink i receives from the sources it sees; source i sends to the sinks that see it.
        let row = 0
        let col = 0
        for (let j = 0; j < T; j++) {
          if (!causal || j <= i) row += dot(phi(q, bh, i), phi(k, bh, j)) / I[bh * T + i]!
          if (!causal || j <= i) col += dot(phi(q, bh, j), phi(k, bh, i)) / O[bh * T + i]!
        }
        rowWorst = Math.max(rowWorst, Math.abs(row - 1))
        colWorst = Math.max(colWorst, Math.abs(col - 1))
      }
    t.ok(rowWorst < 1e-12, `${causal ? 'causal' : 'non-causal'}: Σ_j φ(q_i)·φ(k_j)/I_i = 1`, { rowWorst })
    t.ok(colWorst < 1e-12, `${causal ? 'causal' : 'non-causal'}: Σ_i φ(q_i)·φ(k_j)/O_j = 1`, { colWorst })
    t.ok(Array.from(a).every(x => x > 0 && x < 1), 'allocation in (0, 1)')
    if (!causal)
      for (let bh = 0; bh < B * H; bh++) {
        const total = Array.from(c.slice(bh * T, (bh + 1) * T)).reduce((x, y) => x + y, 0)
        t.ok(Math.abs(total - T) < 1e-12, `Σ_j c_j = m (head ${bh})`, { total })
      }
    // Causal competition: each source's share of its own prefix, times ν, so the first source gets exactly 1.
    else t.ok(Array.from({ length: B * H }, (_, bh) => c[bh * T]!).every(x => Math.abs(x - 1) < 1e-15), 'causal c_0 = 1')
    for (const x of [tq, tk, tv, ...Object.values(s)]) (x as Tensor).dispose()
  }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('causal: prefix consistency, streaming splits and token-by-token decode equal the one-shot output', async t => {
  const base = memory().tensors
  const [B, H, T, D, Dv] = [1, 2, 13, 4, 3]
  const [q, k, v] = [host([B, H, T, D], 2), host([B, H, T, D], 2), host([B, H, T, Dv])]
  const ref = reference(q, k, v, { causal: true })
  const rowsOut = (x: ArrayLike<number>, len: number, s: number, e: number) => rowsT({ values: x, shape: [B, H, len, Dv] }, s, e).values as number[]
  // CAB prefix test: the output at i from the whole sequence equals the output at i from x[0..i].
  for (const i of [0, 4, T - 1]) {
    const [pq, pk, pv] = tensors([rowsT(q, 0, i + 1), rowsT(k, 0, i + 1), rowsT(v, 0, i + 1)])
    const r = flowAttention(pq!, pk!, pv!, { causal: true })
    let diff = 0
    const got = rowsOut(await r.out.data(), i + 1, i, i + 1)
    const want = rowsOut(ref.out, T, i, i + 1)
    got.forEach((x, j) => (diff += Math.abs(x - want[j]!)))
    t.ok(diff <= 1e-12, `prefix row ${i}: Σ|Δ| = ${diff.toExponential(2)}`)
    disposeAll([pq!, pk!, pv!], r)
  }
  for (const bounds of [[0, 5, 6, 13], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [0, 8, 13]]) {
    let state: FlowState | undefined
    const got = new Array<number>(B * H * T * Dv)
    for (let c = 0; c + 1 < bounds.length; c++) {
      const [s, e] = [bounds[c]!, bounds[c + 1]!]
      const [pq, pk, pv] = tensors([rowsT(q, s, e), rowsT(k, s, e), rowsT(v, s, e)])
      const r = flowAttention(pq!, pk!, pv!, { causal: true, blockSize: 3, ...(state ? { state } : {}) })
      const o = await r.out.data()
      for (let bh = 0; bh < B * H; bh++) for (let j = 0; j < (e - s) * Dv; j++) got[(bh * T + s) * Dv + j] = o[bh * (e - s) * Dv + j]!
      if (state) disposeAll([], { out: r.out, state })
      else r.out.dispose()
      state = r.state
      for (const x of [pq, pk, pv]) x!.dispose()
    }
    assertClose(t, got, ref.out, { atol: 1e-12, rtol: 1e-12, msg: `splits ${bounds.length === T + 1 ? 'every token (decode)' : bounds.join('|')}` })
    t.equal(state!.pos, T)
    disposeAll([], { out: undefined, state })
  }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

function disposeAll(xs: Tensor[], r: { out?: Tensor | undefined; state?: FlowState | undefined }): void {
  for (const x of xs) x.dispose()
  r.out?.dispose()
  if (r.state) for (const x of Object.values(r.state)) if (typeof x !== 'number') (x as Tensor).dispose()
}

t.test('gradients match finite differences (both forms, through a carried state)', async t => {
  const [q, k, v] = [host([1, 2, 5, 3], 2), host([1, 1, 5, 3], 2), host([1, 1, 5, 2])]
  const w = randomArray(rand, 2 * 5 * 2)
  for (const causal of [false, true])
    await checkGrad(
      t,
      (tq: Tensor, tk: Tensor, tv: Tensor) =>
        scope(() => {
          const out = flowAttention(tq, tk, tv, { causal, blockSize: 2 }).out
          return sum(mul(out, tensor(w, out.shape, 'float64')))
        }),
      [q, k, v].map(x => ({ v: Array.from(x.values), shape: x.shape })),
      { msg: causal ? 'causal' : 'non-causal', atol: 1e-7, rtol: 1e-6 },
    )
  // The second half of a stream, differentiated through the state the first half produced.
  const [q1, k1, v1] = [host([1, 1, 3, 2]), host([1, 1, 3, 2]), host([1, 1, 3, 2])]
  const [q2, k2, v2] = [host([1, 1, 2, 2]), host([1, 1, 2, 2]), host([1, 1, 2, 2])]
  const w2 = randomArray(rand, 4)
  await checkGrad(
    t,
    (a: Tensor, b: Tensor, c: Tensor) =>
      scope(() => {
        const first = flowAttention(a, b, c, { causal: true })
        const [x, y, z] = tensors([q2, k2, v2])
        const out = flowAttention(x!, y!, z!, { causal: true, state: first.state! }).out
        return add(sum(mul(out, tensor(w2, out.shape, 'float64'))), sum(first.out))
      }),
    [q1, k1, v1].map(x => ({ v: Array.from(x.values), shape: x.shape })),
    { msg: 'through the state', atol: 1e-7, rtol: 1e-6 },
  )
})

t.test('validation names the op, the argument and what came', async t => {
  const q = tensor(new Float64Array(24), [1, 2, 4, 3])
  const k5 = tensor(new Float64Array(30), [1, 2, 5, 3])
  t.throws(() => flowAttention(q, k5, k5, { causal: true }), ShapeError)
  t.throws(() => flowAttention(q, q, q, { eps: -1 }), /flowAttention: eps/)
  t.throws(() => flowAttention(q, q, q, { clamp: [1, -1] }), /clamp/)
  t.throws(() => flowAttention(q, q, q, { blockSize: 1.5, causal: true }), /blockSize/)
  t.throws(() => flowAttention(q, q, q, { state: {} as FlowState }), ValueError)
  t.throws(() => flowAttention(q, q, q, { causal: true, state: { sumK: q } as unknown as FlowState }), /state\.sumK/)
  for (const x of [q, k5]) x.dispose()
})

await eachBackend(t, 'backend parity (float32) with the float64 reference', async (t, backend) => {
  const base = memory().tensors
  for (const causal of [false, true]) {
    const [q, k, v] = [host([1, 4, 19, 8], 2), host([1, 4, 19, 8], 2), host([1, 4, 19, 4])]
    const ref = reference(q, k, v, { causal })
    const [tq, tk, tv] = [q, k, v].map(x => tensor(Float64Array.from(x.values), x.shape, 'float32', { backend }))
    const r = flowAttention(tq!, tk!, tv!, { causal, blockSize: 8 })
    assertClose(t, await r.out.data(), ref.out, { atol: 1e-5, rtol: 1e-4, msg: `${causal ? 'causal' : 'non-causal'} on ${backend}` })
    disposeAll([tq!, tk!, tv!], r)
  }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('flowAttention meets the conformance contracts that apply to it', async t => {
  const golden = (q: HostArray, k: HostArray, v: HostArray, o: ReferenceOptions) => ({ out: reference(q, k, v, { causal: o.mask !== undefined && !o.mask.test(0, 0, 0, 1) }).out })
  const report = await conformance(t, {
    name: 'flowAttention',
    run: (q, k, v, o) => flowAttention(q, k, v, { causal: o.causal === true }),
    reference: golden,
    patterns: ['NS', 'CS', 'NC'],
    // Decoding needs the earlier queries' running sums (FlowState), which the harness's (q_t, K_≤t) call lacks.
    incremental: false,
    supports: { mask: false, offsets: false, scale: false },
    degenerate: [1, 2, 5].map(blockSize => ({ name: `causal blockSize ${blockSize}`, patterns: ['CS'] as const, run: (q: Tensor, k: Tensor, v: Tensor) => flowAttention(q, k, v, { causal: true, blockSize }) })),
  })
  t.same(report.ran, ['C1', 'C2', 'C4', 'C6', 'C7'], 'contracts that ran')
  t.ok(report.skipped.some(s => s.startsWith('C3')), 'C3 skipped in the harness (covered above with FlowState)')
})
