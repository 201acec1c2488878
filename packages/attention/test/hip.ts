import t from 'tap'
import { mul, scope, sum, tensor, ValueError, type Tensor } from '@heed/tensor'
import { hipAttention, hipDecoder, hipMask, hipSelect, mask, type HipOptions, type HipSelection } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostArray } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { dtypesFor, runOn, seeded, tolFor, type Host } from './helpers/tier2a.js'

const { rand, host } = seeded(45)
const select = (q: Host | HostArray, k: Host | HostArray, o: HipOptions): HipSelection => {
  const [tq, tk] = [q, k].map(x => tensor(Array.from(x.values), x.shape, 'float64'))
  try {
    return hipSelect(tq!, tk!, o)
  } finally {
    tq!.dispose()
    tk!.dispose()
  }
}
/** Keys that drift slowly (a random walk): the locality HiP's representatives rely on. */
const smooth = (shape: [number, number, number, number]): Host => {
  const [B, H, T, D] = shape
  const values: number[] = []
  for (let bh = 0; bh < B * H; bh++) {
    const x = Array.from({ length: D }, () => rand() * 2 - 1)
    for (let i = 0; i < T; i++) {
      x.forEach((_, d) => (x[d] = x[d]! * 0.9 + (rand() - 0.5) * 0.6))
      values.push(...x)
    }
  }
  return { values, shape }
}

t.test('attention over the selection = reference attention under the block mask, every backend', async t => {
  const opts = { maskK: 8, blockSizeK: 2, blockSizeQ: 4, queryStride: 2, causal: true }
  const [q, k, v] = [host([1, 2, 24, 4]), smooth([1, 2, 24, 4]), host([1, 2, 24, 3])]
  const sel = select(q, k, opts)
  const blockOf = (b: number, h: number, pq: number) => sel.blocks[b]![h]![Math.floor(pq / 4)]!
  const ref = referenceAttention(q, k, v, { mask: mask.custom((b, h, pq, pk) => pk <= pq && blockOf(b, h, pq).includes(Math.floor(pk / 2))) })
  t.ok(sel.blocks.flat(2).every(bs => bs.length <= 4), 'at most ⌈maskK/b_k⌉ blocks per query block')
  t.ok(sel.blocks[0]!.every(hh => hh.every((bs, qb) => bs.every(x => x * 2 <= qb * 4 + 3))), 'causal: no selected block starts after the query block')
  await eachBackend(t, 'hip parity', async (t, backend) => {
    for (const dtype of dtypesFor(backend)) {
      const r = await runOn(backend, dtype, [q, k, v], (q, k, v) => {
        const { out, lse } = hipAttention(q!, k!, v!, { ...opts, selection: sel })
        return { out, lse }
      })
      assertClose(t, r.values.out, ref.out, { ...tolFor(dtype), msg: `${dtype}: out` })
      assertClose(t, r.values.lse, ref.lse, { ...tolFor(dtype), msg: `${dtype}: lse` })
      t.equal(r.leaked, 0, 'memory back to baseline')
    }
  })
})

t.test('k·b_k ≥ T ⇒ every block, full attention', async t => {
  const [q, k, v] = [host([1, 2, 10, 4]), host([1, 2, 10, 4]), host([1, 2, 10, 4])]
  for (const causal of [false, true]) {
    const ref = referenceAttention(q, k, v, causal ? { mask: mask.causal } : {})
    const r = await runOn('cpu', 'float64', [q, k, v], (q, k, v) => {
      const { out, lse } = hipAttention(q!, k!, v!, { maskK: 10, blockSizeK: 2, blockSizeQ: 3, causal })
      return { out, lse }
    })
    assertClose(t, r.values.out, ref.out, { atol: 1e-12, rtol: 1e-12, msg: `causal=${causal}: out` })
    assertClose(t, r.values.lse, ref.lse, { atol: 1e-12, rtol: 1e-12, msg: `causal=${causal}: lse` })
  }
})

t.test('planted locality: the search recovers the exact top-k blocks', async t => {
  // D = 1, q ≡ 1, and key similarity piecewise constant per key block: block j scores −(block distance to the
  // nearest planted peak block). Locality then holds exactly and the best blocks are the planted ones.
  for (const peaks of [[4, 22], [1, 30], [10, 18], [0, 31], [6, 25]]) {
    const T = 64
    const q: Host = { values: new Array<number>(T).fill(1), shape: [1, 1, T, 1] }
    const k: Host = { values: Array.from({ length: T }, (_, j) => -Math.min(...peaks.map(p => Math.abs(Math.floor(j / 2) - p)))), shape: [1, 1, T, 1] }
    const sel = select(q, k, { maskK: 4, blockSizeK: 2, blockSizeQ: T, queryStride: 1 })
    t.same(sel.blocks[0]![0]![0], peaks, `peak blocks ${peaks.join(', ')}`)
  }
})

t.test('recall of the exact top-k blocks beats random selection', async t => {
  const [B, H, T, D] = [1, 4, 128, 8]
  const q = smooth([B, H, T, D])
  const k = smooth([B, H, T, D])
  const o = { maskK: 16, blockSizeK: 4, blockSizeQ: 16, queryStride: 2 }
  const sel = select(q, k, o)
  const kb = 4
  const n = T / 4
  let recall = 0
  let count = 0
  for (let h = 0; h < H; h++)
    for (let qb = 0; qb < T / 16; qb++) {
      const blockScore = Array.from({ length: n }, (_, j) => {
        let best = -Infinity
        for (let i = qb * 16; i < qb * 16 + 16; i++)
          for (let x = j * 4; x < j * 4 + 4; x++) {
            let s = 0
            for (let d = 0; d < D; d++) s += q.values[(h * T + i) * D + d]! * k.values[(h * T + x) * D + d]!
            best = Math.max(best, s)
          }
        return best
      })
      const exact = new Set(Array.from({ length: n }, (_, j) => j).sort((a, z) => blockScore[z]! - blockScore[a]!).slice(0, kb))
      recall += sel.blocks[0]![h]![qb]!.filter(x => exact.has(x)).length / kb
      count++
    }
  recall /= count
  t.ok(recall > kb / n + 0.2, `recall ${recall.toFixed(3)} > random ${(kb / n).toFixed(3)} + 0.2`)
})

t.test('decode refresh: interval 1 is a fresh mask every step; a longer one reuses it', async t => {
  const [q, k, v] = [host([1, 2, 20, 4]), smooth([1, 2, 20, 4]), host([1, 2, 20, 4])]
  const o = { maskK: 4, blockSizeK: 2, blockSizeQ: 1, queryStride: 1 }
  for (const refresh of [1, 3]) {
    const dec = hipDecoder({ ...o, refresh })
    for (let s = 10; s < 20; s++) {
      const qs: Host = { values: [0, 1].flatMap(h => q.values.slice((h * 20 + s) * 4, (h * 20 + s + 1) * 4)), shape: [1, 2, 1, 4] }
      const ks: Host = { values: [0, 1].flatMap(h => k.values.slice(h * 80, h * 80 + (s + 1) * 4)), shape: [1, 2, s + 1, 4] }
      const vs: Host = { values: [0, 1].flatMap(h => v.values.slice(h * 80, h * 80 + (s + 1) * 4)), shape: [1, 2, s + 1, 4] }
      let fresh = false
      let used: HipSelection | undefined
      const r = await runOn('cpu', 'float64', [qs, ks, vs], (q, k, v) => {
        const res = dec.step(q!, k!, v!)
        fresh = res.fresh
        used = res.selection
        return { out: res.out, lse: res.lse }
      })
      const want = select(qs, ks, { ...o, causal: true })
      if (refresh === 1) {
        t.ok(fresh, `refresh 1, step ${s}: fresh`)
        t.same(used!.blocks, want.blocks, `refresh 1, step ${s}: mask = fresh estimate`)
        const ref = referenceAttention(qs, ks, vs, { mask: hipMask(want, true) })
        assertClose(t, r.values.out, ref.out, { atol: 1e-12, rtol: 1e-12, msg: `refresh 1, step ${s}: out` })
      } else t.equal(fresh, (s - 10) % 3 === 0, `refresh 3, step ${s}: fresh only every third step`)
      t.equal(r.leaked, 0, 'no leak')
    }
  }
})

t.test('gradients through the attention on a fixed mask', async t => {
  const [q, k, v, w] = [host([1, 1, 8, 2]), host([1, 1, 8, 2]), host([1, 1, 8, 2]), host([1, 1, 8, 2])]
  const sel = select(q, k, { maskK: 4, blockSizeK: 2, blockSizeQ: 4, causal: true })
  const f = (q: Tensor, k: Tensor, v: Tensor) => scope(() => sum(mul(hipAttention(q, k, v, { causal: true, selection: sel }).out, tensor(w.values, w.shape, 'float64'))))
  await checkGrad(t, f, [q, k, v].map(x => ({ v: x.values, shape: x.shape })), { msg: 'hip' })
})

t.test('validation', async t => {
  const x = tensor(host([1, 1, 4, 2]).values, [1, 1, 4, 2])
  t.throws(() => hipSelect(x, x, { maskK: 0 }), ValueError)
  t.throws(() => hipSelect(x, x, { blockSizeK: 1.5 }), ValueError)
  t.throws(() => hipDecoder({ refresh: 0 }), ValueError)
  x.dispose()
})

t.test('conformance', async t => {
  const o = { maskK: 3, blockSizeK: 1, blockSizeQ: 2, queryStride: 1 }
  const isCausal = (m?: { key: string }) => m?.key === 'causal'
  const sc = (x: { scale?: number }) => (x.scale !== undefined ? { scale: x.scale } : {})
  await conformance(t, {
    name: 'hip',
    run: (q, k, v, c) => hipAttention(q, k, v, { ...o, causal: !!c.causal, ...sc(c) }),
    patterns: ['NS', 'CS'],
    incremental: false,
    supports: { mask: false, offsets: false },
    reference: (q, k, v, c) => referenceAttention(q, k, v, { ...sc(c), mask: hipMask(select(q, k, { ...o, causal: isCausal(c.mask) }), isCausal(c.mask)) }),
    contracts: ['C1'],
  })
  const full: ConformanceRun = (q, k, v, c) => hipAttention(q, k, v, { maskK: 64, blockSizeK: 2, blockSizeQ: 3, causal: !!c.causal, ...sc(c) })
  await conformance(t, {
    name: 'hip k·b_k ≥ T',
    run: full,
    patterns: ['NS', 'CS', 'NC', 'CC'],
    incremental: true,
    supports: { mask: false, offsets: false },
    degenerate: [{ name: 'k·b_k ≥ T', run: full }],
  })
})
