import t from 'tap'
import { broadcastTo, concat, memory, mul, reshape, scope, slice, sum, tensor, zeros, type Tensor } from '@heed/tensor'
import { attentionProbs, positional, positionalAttention, positionalMaps, scaledDotProductAttention } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostArray } from '@heed/attention/testing'
import { assertClose, checkGrad, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { seeded, tolFor } from './helpers/tier2a.js'

const { rand } = seeded(62)
const [T, dPos, dModel, H, d, dv] = [6, 3, 4, 2, 3, 2]
const hostW = () => ({ P: randomArray(rand, T * dPos), Wq: randomArray(rand, dPos * H * d), Wk: randomArray(rand, dPos * H * d), Wv: randomArray(rand, dModel * H * dv), Wo: randomArray(rand, H * dv * dModel) })
const mm = (x: readonly number[], w: readonly number[], R: number, n: number, m: number): number[] => {
  const out = new Array<number>(R * m).fill(0)
  for (let r = 0; r < R; r++) for (let j = 0; j < m; j++) for (let i = 0; i < n; i++) out[r * m + j]! += x[r * n + i]! * w[i * m + j]!
  return out
}

/** The layer in float64 JS: A_h = softmax((P W_Q^h)(P W_K^h)ᵀ/√d), out = Σ_h A_h X W_V^h W_O^h. */
function reference(W: ReturnType<typeof hostW>, x: readonly number[], B: number, causal: boolean): { out: number[]; A: number[] } {
  const pq = mm(W.P, W.Wq, T, dPos, H * d)
  const pk = mm(W.P, W.Wk, T, dPos, H * d)
  const A: number[] = []
  for (let h = 0; h < H; h++)
    for (let i = 0; i < T; i++) {
      const s = Array.from({ length: T }, (_, j) => (causal && j > i ? -Infinity : Array.from({ length: d }, (_, c) => pq[i * H * d + h * d + c]! * pk[j * H * d + h * d + c]!).reduce((a, b) => a + b, 0) / Math.sqrt(d)))
      const m = Math.max(...s)
      const e = s.map(z => Math.exp(z - m))
      const l = e.reduce((a, b) => a + b, 0)
      A.push(...e.map(z => z / l))
    }
  const out: number[] = []
  for (let b = 0; b < B; b++) {
    const xv = mm(x.slice(b * T * dModel, (b + 1) * T * dModel), W.Wv, T, dModel, H * dv)
    const merged = new Array<number>(T * H * dv).fill(0)
    for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) for (let c = 0; c < dv; c++) merged[i * H * dv + h * dv + c]! += A[(h * T + i) * T + j]! * xv[j * H * dv + h * dv + c]!
    out.push(...mm(merged, W.Wo, T, H * dv, dModel))
  }
  return { out, A }
}

const tensors = (W: ReturnType<typeof hostW>, dtype: 'float32' | 'float64' = 'float64', backend = 'cpu') => ({
  P: tensor(W.P, [T, dPos], dtype, { backend }),
  params: { Wq: tensor(W.Wq, [dPos, H * d], dtype, { backend }), Wk: tensor(W.Wk, [dPos, H * d], dtype, { backend }), Wv: tensor(W.Wv, [dModel, H * dv], dtype, { backend }), Wo: tensor(W.Wo, [H * dv, dModel], dtype, { backend }) },
})

t.test('float64 parity; A independent of X; linear in X; permuting X permutes through the fixed A', async t => {
  const before = memory().tensors
  const W = hostW()
  const { P, params } = tensors(W)
  for (const causal of [false, true]) {
    const [xs, ys] = [randomArray(rand, 2 * T * dModel), randomArray(rand, 2 * T * dModel)]
    const run = (v: number[]) => scope(() => positionalAttention(P, tensor(v, [2, T, dModel], 'float64'), params, { heads: H, causal }).dataSync())
    const want = reference(W, xs, 2, causal)
    assertClose(t, run(xs), want.out, { atol: 1e-12, rtol: 1e-11, msg: `causal=${causal}: out` })
    // A from the maps alone (no X anywhere), observed exactly from its lse.
    const A = scope(() => {
      const maps = positionalMaps(P, params, { heads: H })
      const o = { causal, queryOffset: 0, keyOffset: 0 }
      const { lse } = scaledDotProductAttention(maps.q, maps.k, zeros([1, H, T, 1], { dtype: 'float64' }), o)
      return attentionProbs(maps.q, maps.k, lse, o).dataSync()
    })
    assertClose(t, A, want.A, { atol: 1e-12, rtol: 1e-11, msg: `causal=${causal}: A from positions only` })
    const [a, b] = [0.7, -1.3]
    const lin = run(xs.map((x, i) => a * x + b * ys[i]!))
    const sep = [run(xs), run(ys)]
    assertClose(t, lin, sep[0]!.map((x, i) => a * x + b * sep[1]![i]!), { atol: 1e-12, rtol: 1e-11, msg: `causal=${causal}: f(aX + bY) = a f(X) + b f(Y)` })
    // Permuting the rows of X (not P): the output is A applied to the permuted values, not a permuted output.
    const perm = [3, 0, 5, 1, 4, 2]
    const xp = Array.from({ length: 2 * T }, (_, r) => xs.slice((Math.floor(r / T) * T + perm[r % T]!) * dModel, (Math.floor(r / T) * T + perm[r % T]! + 1) * dModel)).flat()
    assertClose(t, run(xp), reference(W, xp, 2, causal).out, { atol: 1e-12, rtol: 1e-11, msg: `causal=${causal}: permuted X through the fixed A` })
  }
  for (const x of [P, ...Object.values(params)]) x.dispose()
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('differentiable in P, the weights and X', async t => {
  const W = hostW()
  const x = randomArray(rand, T * dModel)
  const w = randomArray(rand, T * dModel)
  await checkGrad(
    t,
    (P, Wq, Wk, Wv, Wo, X) => scope(() => sum(mul(positionalAttention(P!, X!, { Wq: Wq!, Wk: Wk!, Wv: Wv!, Wo: Wo! }, { heads: H, causal: true }), tensor(w, [T, dModel], 'float64')))),
    [
      { v: W.P, shape: [T, dPos] },
      { v: W.Wq, shape: [dPos, H * d] },
      { v: W.Wk, shape: [dPos, H * d] },
      { v: W.Wv, shape: [dModel, H * dv] },
      { v: W.Wo, shape: [H * dv, dModel] },
      { v: x, shape: [T, dModel] },
    ],
    { msg: 'positional' },
  )
})

t.test('validation', async t => {
  const { P, params } = tensors(hostW())
  const x = tensor(randomArray(rand, T * dModel), [T, dModel], 'float64')
  t.throws(() => positionalAttention(P, x, params, { heads: 0 }), { name: 'ValueError', message: /heads/ })
  t.throws(() => positionalAttention(P, x, { ...params, Wv: params.Wq }, { heads: H }), { name: 'ShapeError', message: /Wv/ })
  t.throws(() => positionalMaps(reshape(P, [1, T, dPos]), params, { heads: H }), /P/)
  t.throws(() => positional({ q: P, k: P }), /maps/)
  for (const z of [P, x, ...Object.values(params)]) z.dispose()
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'positionalAttention', async (t, backend) => {
    const W = hostW()
    const xs = randomArray(rand, 2 * T * dModel)
    const before = memory().tensors
    const { P, params } = tensors(W, 'float32', backend)
    const x = tensor(xs, [2, T, dModel], 'float32', { backend })
    const y = positionalAttention(P, x, params, { heads: H, causal: true })
    assertClose(t, await y.data(), reference(W, xs, 2, true).out, { ...tolFor('float32'), msg: `${backend} out` })
    for (const z of [P, x, y, ...Object.values(params)]) z.dispose()
    t.equal(memory().tensors, before, 'no leaks')
  })
})

t.test('conformance: the layer operator `positional(maps)` with maps from batch entry 0', async t => {
  // Maps hold the q and k rows of batch entry 0 at their absolute positions; every batch entry attends with them.
  const mapsOf = (q: Tensor, k: Tensor, qOff: number, kOff: number) => {
    const [, Hq, Tq, D] = q.shape as [number, number, number, number]
    const Tk = k.shape[2]!
    const L = Math.max(qOff + Tq, kOff + Tk)
    const place = (x: Tensor, off: number, n: number) => {
      const parts = [...(off > 0 ? [zeros([1, Hq, off, D], { dtype: x.dtype })] : []), x, ...(L - off - n > 0 ? [zeros([1, Hq, L - off - n, D], { dtype: x.dtype })] : [])]
      return parts.length === 1 ? x : concat(parts, 2)
    }
    const Hkv = k.shape[1]!
    const k0 = reshape(broadcastTo(reshape(slice(k, [[0, 1]]), [1, Hkv, 1, Tk, D]), [1, Hkv, Hq / Hkv, Tk, D]), [1, Hq, Tk, D])
    return { q: place(slice(q, [[0, 1]]), qOff, Tq), k: place(k0, kOff, Tk) }
  }
  const run: ConformanceRun = (q, k, v, o) => {
    const qOff = o.queryOffset ?? Math.max(0, k.shape[2]! - q.shape[2]!)
    const kOff = o.keyOffset ?? 0
    return positional(mapsOf(q, k, qOff, kOff))(q, k, v, o)
  }
  const first = (x: HostArray, B: number): HostArray => {
    const n = x.values.length / x.shape[0]
    return { values: Float64Array.from({ length: B * n }, (_, i) => x.values[i % n]!), shape: x.shape }
  }
  const report = await conformance(t, {
    name: 'positional',
    run,
    reference: (q, k, v, o) => referenceAttention(first(q, q.shape[0]), first(k, k.shape[0]), v, o),
    patterns: ['NS', 'CS', 'NC', 'CC'],
    incremental: true,
    // The maps are shared across the batch, which C6's dense P and C8's per-sequence batches do not model.
    contracts: ['C1', 'C2', 'C3', 'C5', 'C7'],
  })
  t.same(report.ran, ['C1', 'C2', 'C3', 'C5', 'C7'])
})
