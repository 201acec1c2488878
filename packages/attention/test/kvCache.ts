import t from 'tap'
import { DisposedError, DTypeError, memory, ShapeError, tensor, ValueError, type Tensor } from '@heed/tensor'
import { CacheOverflowError, cachedAttention, headPolicy, kvCache, mask, scoreMod, type HeadPolicy, type Mask, type ScoreMod } from '@heed/attention'
import { referenceAttention, type HostTensor } from '@heed/attention/testing'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(11)
type Shape4 = [number, number, number, number]

const host = (shape: Shape4): HostTensor => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1)), shape })

/** Rows [t0, t1) of axis 2. */
function rows(x: HostTensor, t0: number, t1: number): HostTensor {
  const [B, H, T, D] = x.shape
  const out: number[] = []
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = t0; i < t1; i++) for (let d = 0; d < D; d++) out.push(x.values[((b * H + h) * T + i) * D + d]!)
  return { values: out, shape: [B, H, t1 - t0, D] }
}

const dev = (x: HostTensor, dtype: 'float64' | 'float32' = 'float64'): Tensor => tensor(Array.from(x.values), x.shape, dtype)

interface Case {
  name: string
  B: number
  H: number
  policies: HeadPolicy[]
  D: number
  N: number
  chunkSizes: () => number
  /** The mask over the whole sequence that the policies stand for (query head index). */
  full: Mask
  chunk?: number
  scoreMod?: ScoreMod
}

const sizes = (max: number) => () => 1 + Math.floor(rand() * max)

const cases: Case[] = [
  { name: 'full heads, GQA 4:2, random chunks', B: 2, H: 4, D: 4, N: 40, policies: [headPolicy.full(), headPolicy.full()], chunkSizes: sizes(7), full: mask.causal },
  { name: 'streaming(3, 5) decode, ring wraps many laps', B: 1, H: 2, D: 4, N: 60, policies: [headPolicy.streaming(3, 5)], chunkSizes: () => 1, full: mask.streaming(3, 5), chunk: 1 },
  { name: 'streaming(2, 4) random chunks ≤ 4', B: 2, H: 2, D: 3, N: 50, policies: [headPolicy.streaming(2, 4), headPolicy.streaming(2, 4)], chunkSizes: sizes(4), full: mask.streaming(2, 4), chunk: 4 },
  { name: 'streaming(0, 3): no sinks', B: 1, H: 1, D: 4, N: 30, policies: [headPolicy.streaming(0, 3)], chunkSizes: sizes(2), full: mask.streaming(0, 3), chunk: 2 },
  {
    name: 'mixed: full and streaming kv heads, ALiBi sees the layer head index',
    B: 1,
    H: 4,
    D: 4,
    N: 45,
    policies: [headPolicy.full(), headPolicy.streaming(2, 6)],
    chunkSizes: sizes(3),
    full: mask.perHead(4, h => (h < 2 ? mask.causal : mask.streaming(2, 6))),
    chunk: 3,
    scoreMod: scoreMod.alibi(4),
  },
]

t.test('attending through the cache equals attention over the whole sequence under the policy mask, at every step', async t => {
  for (const c of cases) {
    const base = memory().tensors
    const Hkv = c.policies.length
    const [q, k, v] = [host([c.B, c.H, c.N, c.D]), host([c.B, Hkv, c.N, c.D]), host([c.B, Hkv, c.N, c.D])]
    const cache = kvCache({ batch: c.B, kvHeads: Hkv, headDim: c.D, capacity: c.N, dtype: 'float64', policies: c.policies, ...(c.chunk ? { chunk: c.chunk } : {}) })
    const bytes = cache.bytes()
    let worst = 0
    for (let s = 0; s < c.N; ) {
      const e = Math.min(c.N, s + c.chunkSizes())
      const [kc, vc, qc] = [dev(rows(k, s, e)), dev(rows(v, s, e)), dev(rows(q, s, e))]
      cache.append(kc!, vc!, s)
      const { out, lse } = cachedAttention(qc!, cache, c.scoreMod ? { scoreMod: c.scoreMod } : {})
      const ref = referenceAttention(rows(q, s, e), rows(k, 0, e), rows(v, 0, e), { queryOffset: s, mask: c.full, ...(c.scoreMod ? { scoreMod: c.scoreMod } : {}) })
      const got = out.dataSync()
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref.out[i]!))
      assertClose(t, got, ref.out, { atol: 1e-12, rtol: 1e-12, msg: `${c.name}: out at [${s}, ${e})` })
      assertClose(t, lse.dataSync(), ref.lse, { atol: 1e-12, rtol: 1e-12, msg: `${c.name}: lse at [${s}, ${e})` })
      for (const x of [kc, vc, qc, out, lse]) x!.dispose()
      cache.compact()
      c.policies.forEach((p, h) => {
        if (p.kind === 'streaming' && cache.retained(h) > p.sink + p.recent - 1) t.fail(`${c.name}: kv head ${h} retains ${cache.retained(h)} > sink + recent − 1`)
      })
      s = e
    }
    t.equal(cache.length, c.N, `${c.name}: length counts every appended token`)
    t.equal(cache.bytes(), bytes, `${c.name}: storage is constant`)
    t.ok(worst < 1e-12, `${c.name}: worst error ${worst}`)
    cache.dispose()
    t.equal(memory().tensors, base, `${c.name}: dispose frees every buffer`)
  }
})

t.test('views hand out the storage itself: one pass for full heads, ≤ 3 for a streaming ring', async t => {
  const cache = kvCache({ batch: 1, kvHeads: 1, headDim: 2, capacity: 16, dtype: 'float64' })
  const k = tensor(new Float64Array(10), [1, 1, 5, 2])
  cache.append(k, k)
  cache.append(k, k)
  const view = cache.view()
  t.equal(view.passes.length, 1)
  t.same(view.keys.shape, [1, 1, 16, 2], 'the whole buffer, no copy')
  t.same(Array.from(view.positions), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  cache.dispose()

  const ring = kvCache({ batch: 1, kvHeads: 1, headDim: 2, capacity: 1, dtype: 'float64', policies: [headPolicy.streaming(2, 3)], chunk: 1 })
  t.equal(ring.bytes(), 2 * (2 + 3 - 1 + 1) * 2 * 8, 'sink + recent − 1 + chunk slots, whatever the capacity')
  const one = tensor(new Float64Array(2), [1, 1, 1, 2])
  let most = 0
  for (let p = 0; p < 20; p++) {
    ring.append(one, one, p)
    most = Math.max(most, ring.view().passes.length)
    t.same(Array.from(ring.view().positions), [...new Set([0, 1, ...[p - 2, p - 1, p].filter(x => x >= 0)])].filter(x => x <= p).sort((a, b) => a - b), `retained at ${p}`)
    ring.compact()
  }
  t.ok(most <= 3 && most >= 2, `passes per view ≤ 3 (saw ${most})`)
  one.dispose()
  k.dispose()
  ring.dispose()
})

t.test('gaps in positions: runs become separate passes and attention skips the missing positions', async t => {
  const [q, k, v] = [host([1, 2, 3, 4]), host([1, 2, 8, 4]), host([1, 2, 8, 4])]
  const positions = [0, 1, 2, 3, 4, 10, 11, 12]
  const cache = kvCache({ batch: 1, kvHeads: 2, headDim: 4, capacity: 8, dtype: 'float64' })
  const [k1, v1, k2, v2, qd] = [dev(rows(k, 0, 5)), dev(rows(v, 0, 5)), dev(rows(k, 5, 8)), dev(rows(v, 5, 8)), dev(q)]
  cache.append(k1!, v1!, positions.slice(0, 5))
  cache.append(k2!, v2!, positions.slice(5))
  t.equal(cache.view().passes.length, 2)
  const { out } = cachedAttention(qd!, cache)
  // reference: keys laid out at positions 0..12, the missing ones masked out
  const present = new Set(positions)
  const spread = (x: HostTensor): HostTensor => {
    const vals = new Array(2 * 13 * 4).fill(0)
    positions.forEach((p, j) => {
      for (let h = 0; h < 2; h++) for (let d = 0; d < 4; d++) vals[(h * 13 + p) * 4 + d] = x.values[(h * 8 + j) * 4 + d]!
    })
    return { values: vals, shape: [1, 2, 13, 4] }
  }
  const ref = referenceAttention(q, spread(k), spread(v), { queryOffset: 10, mask: mask.and(mask.causal, mask.custom((_b, _h, _pq, pk) => present.has(pk))) })
  assertClose(t, out.dataSync(), ref.out, { atol: 1e-12, rtol: 1e-12 })
  for (const x of [k1, v1, k2, v2, qd, out]) x!.dispose()
  cache.dispose()
})

t.test('errors: overflow names the numbers and leaves the cache untouched; shapes, dtypes, positions, disposal', async t => {
  const base = memory().tensors
  const cache = kvCache({ batch: 1, kvHeads: 2, headDim: 4, capacity: 8 })
  const six = tensor(new Float32Array(2 * 6 * 4), [1, 2, 6, 4])
  const three = tensor(new Float32Array(2 * 3 * 4), [1, 2, 3, 4])
  cache.append(six, six)
  const err = t.throws(() => cache.append(three, three), CacheOverflowError) as unknown as CacheOverflowError
  t.match(err, { capacity: 8, used: 6, requested: 3, op: 'kvCache.append' })
  t.match(err.message, /at most 2 new tokens \(kv head 0: capacity 8, 6 used\)/)
  t.ok(err instanceof ValueError, 'a ValueError too')
  t.equal(cache.length, 6, 'nothing was written')
  const wrong = tensor(new Float32Array(3 * 2 * 4), [1, 3, 2, 4])
  t.throws(() => cache.append(wrong, wrong), ShapeError)
  const f64 = tensor(new Float64Array(2 * 1 * 4), [1, 2, 1, 4])
  t.throws(() => cache.append(f64, f64), DTypeError)
  const oneTok = tensor(new Float32Array(8), [1, 2, 1, 4])
  t.throws(() => cache.append(oneTok, oneTok, 3), /positions after the last appended one \(5\)/)
  t.throws(() => kvCache({ batch: 1, kvHeads: 2, headDim: 4, capacity: 8, policies: [headPolicy.full()] }), /one policy per kv head \(2\)/)
  t.throws(() => headPolicy.streaming(1, 0), ValueError)
  const stream = kvCache({ batch: 1, kvHeads: 2, headDim: 4, capacity: 8, policies: [headPolicy.streaming(1, 2), headPolicy.streaming(1, 2)], chunk: 2 })
  t.throws(() => stream.append(six, six), /chunks of at most 3 tokens/)
  t.throws(() => cache.view(5), ValueError)
  cache.dispose()
  stream.dispose()
  t.throws(() => cache.append(oneTok, oneTok), DisposedError)
  for (const x of [six, three, wrong, f64, oneTok]) x.dispose()
  t.equal(memory().tensors, base, 'no tensors left behind')
})

t.test('a capacity too large to allocate is a ValueError naming kvCache and capacity, before any allocation', async t => {
  t.throws(() => kvCache({ batch: 1, kvHeads: 2, headDim: 64, capacity: 1e12 }), { name: 'ValueError', op: 'kvCache', arg: 'capacity' })
  t.throws(() => kvCache({ batch: 1, kvHeads: 2, headDim: 64, capacity: 1e12 }), /4 GiB per tensor/)
})
