import t from 'tap'
import { memory, mul, scope, slice, sum, tensor, type Tensor } from '@heed/tensor'
import { isLandmark, landmarkAttention, mask, type Mask } from '@heed/attention'
import { conformance, type ConformanceRun, type HostTensor } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(40)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })

/**
 * The paper's equations (1–4), densely, in float64: group ids G_ij (own landmark −1), softmax within each group,
 * W_ij = 0 on landmarks, S_ij in the current group, S_ij·S_{i,p_j} elsewhere. `topK` keeps only the k best visible
 * landmarks (ties: lower index) in the current group and drops the other blocks.
 */
function groupedReference(q: HostTensor, k: HostTensor, v: HostTensor, o: { blockSize: number; topK?: number; scale?: number; queryOffset?: number; mask?: Mask }): { out: Float64Array; W: Float64Array } {
  const [B, H, Tq, D] = q.shape
  const [, Hkv, Tk] = k.shape
  const Dv = v.shape[3]
  const g = H / Hkv
  const P = o.blockSize + 1
  const scale = o.scale ?? 1 / Math.sqrt(D)
  const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
  const landmarkOf = (p: number) => Math.floor(p / P) * P + o.blockSize // p_j
  const out = new Float64Array(B * H * Tq * Dv)
  const W = new Float64Array(B * H * Tq * Tk)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Tq; i++) {
        const pi = qOff + i
        const s: number[] = []
        const G: number[] = []
        for (let j = 0; j < Tk; j++) {
          let dot = 0
          for (let d = 0; d < D; d++) dot += q.values[((b * H + h) * Tq + i) * D + d]! * k.values[((b * Hkv + Math.floor(h / g)) * Tk + j) * D + d]!
          s.push(dot * scale)
          const pj = landmarkOf(j)
          G.push(pj !== j ? pj : landmarkOf(pi) === j ? -1 : landmarkOf(pi))
        }
        const allowed = (j: number) => j <= pi && G[j] !== -1 && (!o.mask || o.mask.test(b, h, pi, j))
        // Landmarks in i's group that the row may keep (top-k at inference).
        let kept = Array.from({ length: Tk }, (_, j) => j).filter(j => allowed(j) && isLandmark(j, o.blockSize) && G[j] === landmarkOf(pi))
        if (o.topK !== undefined) kept = [...kept].sort((x, y) => s[y]! - s[x]! || x - y).slice(0, o.topK)
        const inPlay = (j: number) => allowed(j) && (!isLandmark(j, o.blockSize) ? G[j] === landmarkOf(pi) || kept.includes(landmarkOf(j)) : kept.includes(j))
        const S = new Float64Array(Tk)
        for (const grp of new Set(G)) {
          const members = Array.from({ length: Tk }, (_, j) => j).filter(j => G[j] === grp && inPlay(j))
          if (members.length === 0) continue
          const m = Math.max(...members.map(j => s[j]!))
          const z = members.reduce((a, j) => a + Math.exp(s[j]! - m), 0)
          for (const j of members) S[j] = Math.exp(s[j]! - m) / z
        }
        for (let j = 0; j < Tk; j++) {
          if (!inPlay(j) || isLandmark(j, o.blockSize)) continue
          const w = G[j] === landmarkOf(pi) ? S[j]! : S[j]! * S[landmarkOf(j)]!
          W[((b * H + h) * Tq + i) * Tk + j] = w
          for (let d = 0; d < Dv; d++) out[((b * H + h) * Tq + i) * Dv + d]! += w * v.values[((b * Hkv + Math.floor(h / g)) * Tk + j) * Dv + d]!
        }
      }
  return { out, W }
}

t.test('grouped softmax = the paper’s equations; rows sum to 1 (V = I); landmark weight 0', async t => {
  for (const [H, Hkv, T, l] of [[2, 2, 14, 3], [4, 2, 17, 2], [2, 1, 9, 1]] as const) {
    const [q, k, v] = [host([2, H, T, 4]), host([2, Hkv, T, 4]), host([2, Hkv, T, 3])]
    const ref = groupedReference(q, k, v, { blockSize: l })
    const before = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    const r = landmarkAttention(tq!, tk!, tv!, { blockSize: l })
    assertClose(t, await r.out.data(), ref.out, { atol: 1e-12, rtol: 1e-12, msg: `H=${H} Hkv=${Hkv} T=${T} ℓ=${l}` })
    // V = I: each output row is that row of W, so it sums to 1 and is 0 on landmark columns.
    const eye = { values: Array.from({ length: 2 * Hkv * T * T }, (_, n) => (Math.floor(n / T) % T === n % T ? 1 : 0)), shape: [2, Hkv, T, T] as Shape4 }
    const te = tensor(eye.values, eye.shape, 'float64')
    const w = landmarkAttention(tq!, tk!, te, { blockSize: l })
    const wv = await w.out.data()
    let worst = 0
    let onLandmarks = 0
    for (let row = 0; row < 2 * H * T; row++) {
      let s = 0
      for (let j = 0; j < T; j++) {
        s += wv[row * T + j]!
        if (isLandmark(j, l)) onLandmarks = Math.max(onLandmarks, Math.abs(wv[row * T + j]!))
      }
      worst = Math.max(worst, Math.abs(s - 1))
    }
    t.ok(worst < 1e-12, 'rows sum to 1', { worst })
    t.equal(onLandmarks, 0, 'landmark columns get weight 0')
    assertClose(t, wv, ref.W, { atol: 1e-12, rtol: 1e-12, msg: 'W = the reference weights' })
    for (const x of [tq, tk, tv, te, r.out, r.localMass, w.out, w.localMass]) x!.dispose()
    t.equal(memory().tensors, before, 'no leaks')
  }
})

t.test('top-k retrieval: = reference with k blocks; k ≥ #blocks = training op; single block = causal softmax', async t => {
  const [H, T, l] = [2, 20, 3]
  const [q, k, v] = [host([1, H, T, 4], -2, 2), host([1, H, T, 4], -2, 2), host([1, H, T, 3])]
  const before = memory().tensors
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  for (const topK of [0, 1, 2]) {
    const r = landmarkAttention(tq!, tk!, tv!, { blockSize: l, topK })
    assertClose(t, await r.out.data(), groupedReference(q, k, v, { blockSize: l, topK }).out, { atol: 1e-12, rtol: 1e-12, msg: `topK=${topK}` })
    r.out.dispose()
    r.localMass.dispose()
  }
  const all = landmarkAttention(tq!, tk!, tv!, { blockSize: l, topK: 99 })
  const train = landmarkAttention(tq!, tk!, tv!, { blockSize: l })
  assertClose(t, await all.out.data(), await train.out.data(), { atol: 0, rtol: 0, msg: 'topK ≥ #blocks = training-time op' })
  // Decode: the last query alone, topK 1, against the whole prefix.
  const dq = scope(() => landmarkAttention(slice(tq!, [null, null, [T - 1, T]]), tk!, tv!, { blockSize: l, topK: 1 }).out)
  const want = groupedReference(q, k, v, { blockSize: l, topK: 1 }).out
  const lastRows = Array.from({ length: H }, (_, h) => [...want.slice((h * T + T - 1) * 3, (h * T + T) * 3)]).flat()
  assertClose(t, await dq.data(), lastRows, { atol: 1e-12, rtol: 1e-12, msg: 'decode step with retrieval' })
  for (const x of [all.out, all.localMass, train.out, train.localMass, dq]) x.dispose()
  // One block: plain causal softmax.
  const one = landmarkAttention(tq!, tk!, tv!, { blockSize: T })
  const plain = groupedReference(q, k, v, { blockSize: T })
  assertClose(t, await one.out.data(), plain.out, { atol: 1e-12, rtol: 1e-12, msg: 'single block' })
  for (const x of [tq, tk, tv, one.out, one.localMass]) x!.dispose()
  t.equal(memory().tensors, before, 'no leaks')
})


t.test('fully masked groups give 0, not NaN (the reference zeroes denominators < 0.5)', async t => {
  const [q, k, v] = [host([1, 1, 8, 2]), host([1, 1, 8, 2]), host([1, 1, 8, 2])].map(x => tensor(x.values, x.shape, 'float64'))
  const r = landmarkAttention(q!, k!, v!, { blockSize: 2, mask: mask.custom((_b, _h, pq) => pq !== 4) })
  const o = await r.out.data()
  t.same(Array.from(o.slice(8, 10)), [0, 0], 'row 4 sees nothing: 0')
  t.notOk(Array.from(o).some(Number.isNaN), 'no NaN')
  t.throws(() => landmarkAttention(q!, k!, v!, { blockSize: 0 }), /blockSize/)
  t.throws(() => landmarkAttention(q!, k!, v!, { blockSize: 2, topK: -1 }), /topK/)
  for (const x of [q, k, v, r.out, r.localMass]) x!.dispose()
})

t.test('gradients match finite differences (training and top-k)', async t => {
  const [q, k, v] = [host([1, 2, 8, 3]), host([1, 1, 8, 3]), host([1, 1, 8, 2])]
  const w = randomArray(rand, 2 * 8 * 2)
  for (const topK of [undefined, 1])
    await checkGrad(
      t,
      (a, b, c) => scope(() => sum(mul(landmarkAttention(a!, b!, c!, { blockSize: 2, ...(topK !== undefined ? { topK } : {}) }).out, tensor(w, [1, 2, 8, 2], 'float64')))),
      [q, k, v].map(x => ({ v: [...x.values], shape: x.shape })),
      { msg: `landmark topK=${topK}` },
    )
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'landmarkAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 2, 11, 4]), host([1, 2, 11, 4]), host([1, 2, 11, 4])]
    const want = groupedReference(q, k, v, { blockSize: 2 })
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const r = landmarkAttention(tq!, tk!, tv!, { blockSize: 2 })
    assertClose(t, await r.out.data(), want.out, { atol: 2e-6, rtol: 2e-5, msg: `${backend} out` })
    for (const x of [tq, tk, tv, r.out, r.localMass]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  })
})

t.test('conformance', async t => {
  const keep = (r: { out: Tensor; localMass: Tensor }) => {
    r.localMass.dispose()
    return { out: r.out }
  }
  const run: ConformanceRun = (q, k, v, o) => keep(landmarkAttention(q, k, v, { ...o, blockSize: 2 }))
  const report = await conformance(t, {
    name: 'landmarkAttention',
    run,
    reference: (q, k, v, o) => ({ out: groupedReference(q, k, v, { blockSize: 2, ...o }).out }),
    patterns: ['CS', 'CC'],
    incremental: true,
    // No lse (a grouped softmax is not one softmax state); landmarks sit on absolute positions, which C7/C8 renumber.
    contracts: ['C1', 'C2', 'C3'],
  })
  t.same(report.ran, ['C1', 'C2', 'C3'])
  const deg = await conformance(t, {
    name: 'landmarkAttention (single block)',
    run,
    patterns: ['CS', 'CC'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [{ name: 'blockSize ≥ T', run: (q, k, v, o) => keep(landmarkAttention(q, k, v, { ...o, blockSize: 1 << 20 })) }],
  })
  t.same(deg.ran, ['C4'])
})
