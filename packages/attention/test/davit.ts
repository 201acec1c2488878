import t from 'tap'
import { mul, scope, ShapeError, sum, tensor, ValueError, type Tensor } from '@heed/tensor'
import { channelAttention, channelAttentionWeights, mask, windowAttention, windowIds } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostArray } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { dtypesFor, row, runOn, seeded, tolFor, type Host } from './helpers/tier2a.js'

const { host } = seeded(51)

/** float64 channel attention from DaViT's code: A = softmax_row(s·KᵀV) [Dk, Dv], Y = Q Aᵀ. */
function channelRef(q: { values: ArrayLike<number>; shape: readonly number[] }, k: Host | HostArray, v: Host | HostArray, scale?: number): { out: number[]; A: number[] } {
  const [B, G, Tq] = q.shape as [number, number, number]
  const [, , P, Dk] = k.shape
  const Dv = v.shape[3]
  const s = scale ?? 1 / Math.sqrt(Dk)
  const at = (x: { values: ArrayLike<number>; shape: readonly number[] }, b: number, g: number, t: number, d: number) => x.values[((b * G + g) * x.shape[2]! + t) * x.shape[3]! + d]!
  const out: number[] = []
  const A: number[] = []
  for (let b = 0; b < B; b++)
    for (let g = 0; g < G; g++) {
      const a: number[][] = []
      for (let i = 0; i < Dk; i++) {
        const sc = Array.from({ length: Dv }, (_, j) => {
          let acc = 0
          for (let p = 0; p < P; p++) acc += s * at(k, b, g, p, i) * at(v, b, g, p, j)
          return acc
        })
        const m = Math.max(...sc)
        const e = sc.map(x => Math.exp(x - m))
        const l = e.reduce((x, y) => x + y, 0)
        a.push(e.map(x => x / l))
      }
      A.push(...a.flat())
      for (let p = 0; p < Tq; p++) for (let i = 0; i < Dk; i++) out.push(a[i]!.reduce((acc, w, j) => acc + w * at(q, b, g, p, j), 0))
    }
  return { out, A }
}

const winMask = (grid: [number, number], w: [number, number]) => {
  const ids = windowIds(grid, w)
  return mask.custom((_b, _h, pq, pk) => ids[pq] === ids[pk])
}

t.test('windowIds: row-major windows, short edge windows', async t => {
  t.same(Array.from(windowIds([3, 5], [2, 2])), [0, 0, 1, 1, 2, 0, 0, 1, 1, 2, 3, 3, 4, 4, 5])
  t.throws(() => windowIds([3, 5], 0), ValueError)
})

t.test('channel and window attention match float64 references on every backend', async t => {
  const [q, k, v] = [host([2, 3, 10, 4]), host([2, 3, 12, 5]), host([2, 3, 12, 4])]
  const ch = channelRef(q, k, v)
  const [wq, wk, wv] = [host([1, 2, 30, 4]), host([1, 2, 30, 4]), host([1, 2, 30, 3])]
  const win = referenceAttention(wq, wk, wv, { mask: winMask([5, 6], [2, 4]) })
  await eachBackend(t, 'davit parity', async (t, backend) => {
    for (const dtype of dtypesFor(backend)) {
      const r = await runOn(backend, dtype, [q, k, v], (q, k, v) => ({ out: channelAttention(q!, k!, v!).out, A: channelAttentionWeights(k!, v!) }))
      assertClose(t, r.values.out, ch.out, { ...tolFor(dtype), msg: `channel ${dtype}: out` })
      assertClose(t, r.values.A, ch.A, { ...tolFor(dtype), msg: `channel ${dtype}: A` })
      t.equal(r.leaked, 0, 'channel: memory back to baseline')
      const w = await runOn(backend, dtype, [wq, wk, wv], (q, k, v) => ({ ...windowAttention(q!, k!, v!, { grid: [5, 6], window: [2, 4] }) }))
      assertClose(t, w.values.out, win.out, { ...tolFor(dtype), msg: `window ${dtype}: = block-masked global attention (out)` })
      assertClose(t, w.values.lse, win.lse, { ...tolFor(dtype), msg: `window ${dtype}: lse` })
      t.equal(w.leaked, 0, 'window: memory back to baseline')
    }
  })
})

t.test('channel attention invariants', async t => {
  const [q, k, v] = [host([1, 2, 9, 3]), host([1, 2, 9, 3]), host([1, 2, 9, 3])]
  const perm = [4, 0, 8, 2, 6, 1, 3, 7, 5]
  const permute = (x: Host): Host => ({ values: Array.from({ length: 2 }, (_, g) => perm.flatMap(p => row(x, 0, g, p))).flat(), shape: x.shape })
  const base = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => ({ out: channelAttention(q!, k!, v!).out, A: channelAttentionWeights(k!, v!) }))
  const moved = await runOn('cpu', 'float64', [q, k, v].map(permute), (q, k, v) => ({ out: channelAttention(q!, k!, v!).out, A: channelAttentionWeights(k!, v!) }))
  assertClose(t, moved.values.A, base.values.A, { atol: 1e-12, rtol: 1e-12, msg: 'A_g is invariant to token permutations' })
  assertClose(t, moved.values.out, permute({ values: base.values.out, shape: q.shape }).values, { atol: 1e-12, rtol: 1e-12, msg: 'permuting tokens permutes output rows' })
  let worst = 0
  for (let r = 0; r < base.values.A.length / 3; r++) worst = Math.max(worst, Math.abs(base.values.A.slice(3 * r, 3 * r + 3).reduce((a, b) => a + b, 0) - 1))
  t.ok(worst < 1e-12, 'every row of A_g sums to 1', { worst })
  // Large scores exercise the softmax max-shift.
  const big = await runOn('cpu', 'float64', [k, v], (k, v) => ({ A: channelAttentionWeights(k!, v!, { scale: 200 }) }))
  t.ok(big.values.A.every(Number.isFinite), 'scale 200: finite weights')
})

t.test('gradients', async t => {
  const [q, k, v, w] = [host([1, 2, 5, 3]), host([1, 2, 5, 2]), host([1, 2, 5, 3]), host([1, 2, 5, 2])]
  const cot = (x: Tensor) => sum(mul(x, tensor(w.values, x.shape, 'float64')))
  await checkGrad(t, (q, k, v) => scope(() => cot(channelAttention(q!, k!, v!).out)), [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'channel' })
  const [a, b, c, u] = [host([1, 1, 6, 2]), host([1, 1, 6, 2]), host([1, 1, 6, 2]), host([1, 1, 6, 2])]
  const cot2 = (x: Tensor) => sum(mul(x, tensor(u.values, x.shape, 'float64')))
  await checkGrad(t, (q, k, v) => scope(() => cot2(windowAttention(q!, k!, v!, { grid: [2, 3], window: 2 }).out)), [a, b, c].map(x => ({ v: x.values, shape: x.shape })), { msg: 'window' })
})

t.test('validation', async t => {
  const x = tensor(host([1, 2, 6, 2]).values, [1, 2, 6, 2])
  const y = tensor(host([1, 2, 6, 3]).values, [1, 2, 6, 3])
  t.throws(() => channelAttention(x, x, y), ShapeError, 'q must carry v-channels')
  t.throws(() => windowAttention(x, x, x, { grid: [2, 2] }), ShapeError, 'grid must match T')
  t.throws(() => windowAttention(x, x, x, { grid: [2, 3], window: [1, 0] }), ValueError, 'window 0')
  x.dispose()
  y.dispose()
})

t.test('conformance', async t => {
  // The harness hands q [.., D], k [.., D], v [.., Dv] and expects [.., Dv]: channel attention with k and v in
  // swapped roles (A = softmax(s·vᵀk), Y = qAᵀ) has exactly that signature.
  const run: ConformanceRun = (q, k, v, o) => channelAttention(q, v, k, o.scale !== undefined ? { scale: o.scale } : {})
  const ch = await conformance(t, {
    name: 'davit channel',
    run,
    patterns: ['NS', 'NC'],
    incremental: false,
    supports: { mask: false, offsets: false, gqa: false },
    reference: (q, k, v, o) => ({ out: Float64Array.from(channelRef(q, v, k, o.scale).out) }),
  })
  t.ok(ch.ran.includes('C7'), 'C7: key permutation invariance (A_g is permutation invariant)')
  const win: ConformanceRun = (q, k, v, o) => windowAttention(q, k, v, { grid: [q.shape[2]!, 1], window: [3, 1], ...(o.scale !== undefined ? { scale: o.scale } : {}) })
  await conformance(t, {
    name: 'davit window',
    run: win,
    patterns: ['NS'],
    incremental: false,
    supports: { mask: false, offsets: false, gqa: false },
    reference: (q, k, v, o) => referenceAttention(q, k, v, { ...o, mask: winMask([q.shape[2], 1], [3, 1]) }),
    // C6 and C7 assume unmasked dense probabilities and key-order freedom, which windows break by design.
    contracts: ['C1'],
  })
  // Degeneracy (C4) against dense attention: one window covering the grid.
  await conformance(t, {
    name: 'davit window ≥ grid',
    run: (q, k, v, o) => windowAttention(q, k, v, { grid: [q.shape[2]!, 1], window: [64, 1], ...(o.scale !== undefined ? { scale: o.scale } : {}) }),
    patterns: ['NS'],
    incremental: false,
    supports: { mask: false, offsets: false, gqa: false },
    contracts: ['C1', 'C6', 'C7'],
  })
})
