import t from 'tap'
import { dispose, noGrad, scope, slice, tensor, ValueError, type Tensor } from '@heed/tensor'
import { combinerAttention, combinerStep, operators, transformerLM, type CombinerState } from '@heed/attention'
import { assertClose } from '../../tensor/test/helpers/numeric.js'
import { seeded } from './helpers/tier2a.js'

const { host } = seeded(3)
const f64 = (shape: [number, number, number, number]): Tensor => tensor(host(shape).values, shape, 'float64')

/** Stream q/k/v through `combinerStep` in chunks of the given sizes; the outputs, lse and final state. */
function stream(q: Tensor, k: Tensor, v: Tensor, sizes: readonly number[], L: number, pool: 'max' | 'mean'): { out: number[]; lse: number[]; state: CombinerState } {
  let state: CombinerState | undefined
  const out: number[][] = []
  const lse: number[][] = []
  const [B, H, Dv] = [q.shape[0]!, q.shape[1]!, v.shape[3]!]
  let at = 0
  const rows: { o: Float64Array | Float32Array; l: Float64Array | Float32Array; n: number }[] = []
  for (const n of sizes) {
    const cut = (x: Tensor) => slice(x, [null, null, [at, at + n]])
    const [qc, kc, vc] = [cut(q), cut(k), cut(v)]
    const r = combinerStep(qc, kc, vc, state, { segmentLength: L, pool, queryOffset: at })
    rows.push({ o: r.out.dataSync() as Float64Array, l: r.lse.dataSync() as Float64Array, n })
    dispose([qc, kc, vc, r.out, r.lse])
    if (state) {
      const now = new Set(Object.values(r.state))
      for (const x of Object.values(state)) if (typeof x === 'object' && !now.has(x)) (x as Tensor).dispose()
    }
    state = r.state
    at += n
  }
  // Reassemble [B, H, T, ·] from the chunks' [B, H, n, ·].
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const o: number[] = []
      const l: number[] = []
      for (const r of rows) {
        const base = (b * H + h) * r.n
        o.push(...Array.from(r.o.subarray(base * Dv, (base + r.n) * Dv)))
        l.push(...Array.from(r.l.subarray(base, base + r.n)))
      }
      out.push(o)
      lse.push(l)
    }
  return { out: out.flat(), lse: lse.flat(), state: state! }
}

t.test('combinerStep streams equal causal combinerAttention, whatever the chunking', async t => {
  const T = 11
  const L = 3
  const [q, k, v] = [f64([1, 4, T, 3]), f64([1, 2, T, 3]), f64([1, 2, T, 2])]
  for (const pool of ['max', 'mean'] as const) {
    const full = combinerAttention(q, k, v, { segmentLength: L, causal: true, pool })
    const want = { out: Array.from(full.out.dataSync()), lse: Array.from(full.lse.dataSync()) }
    dispose(full)
    for (const sizes of [[T], Array.from({ length: T }, () => 1), [4, 2, 5], [2, 3, 1, 5]]) {
      const got = stream(q, k, v, sizes, L, pool)
      assertClose(t, got.out, want.out, { atol: 1e-12, rtol: 1e-10, msg: `${pool}, chunks ${sizes.join('+')}: out` })
      assertClose(t, got.lse, want.lse, { atol: 1e-12, rtol: 1e-10, msg: `${pool}, chunks ${sizes.join('+')}: lse` })
      dispose(got.state)
    }
  }
  dispose([q, k, v])
})

t.test('the state holds the open segment and one summary per closed segment', async t => {
  const T = 40
  const L = 6
  const [q, k, v] = [f64([1, 2, T, 2]), f64([1, 2, T, 2]), f64([1, 2, T, 2])]
  const { state } = stream(q, k, v, Array.from({ length: T }, () => 1), L, 'max')
  t.equal(state.position, T)
  t.same(state.k?.shape, [1, 2, T % L, 2], 'only the open segment keeps its rows')
  t.same(state.kBar?.shape, [1, 2, Math.floor(T / L), 2], 'one summary key per completed segment')
  t.same(state.vBar?.shape, [1, 2, Math.floor(T / L), 2], 'one span value per completed segment')
  dispose([state, q, k, v])
})

t.test('combinerStep validation', async t => {
  const x = f64([1, 1, 2, 2])
  t.throws(() => combinerStep(x, x, x, undefined, { segmentLength: 0 }), ValueError)
  t.throws(() => combinerStep(x, x, x, undefined, { segmentLength: 2, queryOffset: 3 }), ValueError, 'a chunk must start where the state ends')
  x.dispose()
})

t.test('operators.combiner in transformerLM (GQA, batch 2): cached decode = full recomputation across segments', async t => {
  const V = 7
  const B = 2
  const L = 3
  const lm = transformerLM({ vocab: V, layers: 2, heads: 4, kvHeads: 2, dModel: 16, context: 32, attention: () => operators.combiner({ segmentLength: L }) })
  const params = lm.init({ seed: 5 })
  const ids = Int32Array.from({ length: B * 20 }, (_, i) => (i * 3 + (i >> 2)) % V)
  const upTo = (from: number, to: number) => Int32Array.from({ length: B * (to - from) }, (_, i) => ids[Math.floor(i / (to - from)) * 20 + from + (i % (to - from))]!)
  const logits = (x: Int32Array, n: number, o = {}) => noGrad(() => scope(() => lm.forward(params, tensor(x, [B, n], 'int32'), o).dataSync()))
  const caches = lm.cache({ batch: B, capacity: 20, chunk: 2 })
  try {
    let worst = 0
    const prompt = 5
    for (let n = prompt; n <= 14; n++) {
      const got = n === prompt ? logits(upTo(0, n), n, { caches }) : logits(upTo(n - 1, n), 1, { caches })
      const want = logits(upTo(0, n), n)
      const step = got.length / B
      for (let b = 0; b < B; b++) for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(got[(b + 1) * step - V + j]! - want[(b + 1) * n * V - V + j]!))
    }
    t.ok(worst < 1e-4, `decoded logits = full recomputation (max |Δ| ${worst.toExponential(1)})`)
    // 14 tokens: 2 open-segment rows of q (4 heads), k, v (2 kv heads) and 4 summaries (key + value, 4 heads), head dim 4.
    const want = 2 * B * (2 * (4 + 2 * 2) * 4 + 4 * 2 * 4 * 4) * 4
    t.equal(caches.reduce((n, c) => n + c.bytes(), 0), want, 'the caches hold the open segment and the summaries, no past keys')
  } finally {
    for (const c of caches) c.dispose()
  }
  // Without a fixed segment length the segment boundaries move with the stream: no exact decode, so it refuses.
  const lm2 = transformerLM({ vocab: V, layers: 1, heads: 2, dModel: 8, context: 8, attention: () => operators.combiner() })
  const p2 = lm2.init({ seed: 1 })
  const c2 = lm2.cache({ batch: 1, capacity: 8 })
  t.throws(() => noGrad(() => scope(() => lm2.forward(p2, tensor([1, 2], [1, 2], 'int32'), { caches: c2 }))), /segmentLength/)
  for (const c of c2) c.dispose()
  dispose([params, p2])
})
