import t, { type Test } from 'tap'
import { from, lastValueFrom, Subject, toArray } from 'rxjs'
import { ShapeError, ValueError, DTypeError, dispose, memory, sum, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { disposeHcam, hcamAttention, hcamMemory, hcamRead, hcamWrite, type HcamMemory } from '@heed/memory'
import { hcamStream } from '@heed/memory/stream'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const base = memory().tensors
const rand = prng(23)
const f64 = (v: readonly number[], shape: readonly number[]): Tensor => tensor([...v], shape, 'float64')
const host = (x: Tensor): number[] => Array.from(x.dataSync())
const leakTest = (name: string, body: (t: Test) => Promise<void>) =>
  t.test(name, async tt => {
    const before = memory().tensors
    await body(tt)
    tt.equal(memory().tensors, before, 'no tensors leaked')
  })

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0)
const softmaxJs = (x: number[]) => {
  const m = Math.max(...x)
  const e = x.map(v => Math.exp(v - m))
  const z = e.reduce((a, b) => a + b, 0)
  return e.map(v => v / z)
}

/** Float64 brute force: score every summary, sort (ties: lower index), attend inside the top k. */
function reference(Q: number[][], K: number[][], Cn: number[][][], k: number) {
  const D = Q[0]!.length
  return Q.map(q => {
    const logits = K.map(key => dot(q, key) / Math.sqrt(D))
    const order = logits.map((l, i) => [l, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k)
    const w = softmaxJs(order.map(o => o[0]))
    const out = new Array<number>(D).fill(0)
    order.forEach(([, m], j) => {
      const rows = Cn[m]!
      const p = softmaxJs(rows.map(r => dot(q, r) / Math.sqrt(D)))
      rows.forEach((r, c) => r.forEach((x, d) => (out[d] = out[d]! + w[j]! * p[c]! * x)))
    })
    return { indices: order.map(o => o[1]), weights: w, out }
  })
}

leakTest('writes cut exactly every C rows, key = chunk mean, any partition of the stream', async t => {
  const D = 3, C = 4
  const X = randomArray(rand, 11 * D)
  let mem = hcamMemory({ chunkSize: C })
  for (const [a, b] of [[0, 3], [3, 5], [5, 11]] as const) {
    const x = f64(X.slice(a * D, b * D), [b - a, D])
    const next = hcamWrite(mem, x)
    disposeHcam(mem)
    x.dispose()
    mem = next
  }
  t.same(mem.ends, [4, 8], 'two complete chunks, ending at 4 and 8')
  t.equal(mem.pending?.shape[0], 3, 'three rows pending, not attendable')
  const means = [0, 1].flatMap(m => Array.from({ length: D }, (_, d) => [0, 1, 2, 3].reduce((s, c) => s + X[(m * C + c) * D + d]!, 0) / C))
  assertClose(t, host(mem.keys!), means, { atol: 1e-14, msg: 'summaries are chunk means' })
  assertClose(t, host(mem.contents!), X.slice(0, 8 * D), { atol: 0, msg: 'contents are the raw rows' })
  const xAll = f64(X, [11, D])
  const e = hcamMemory({ chunkSize: C })
  const one = hcamWrite(e, xAll)
  assertClose(t, host(one.keys!), host(mem.keys!), { atol: 0, msg: 'one write = chained writes' })
  // A ring buffer keeps the newest chunks.
  const ring = hcamWrite(hcamMemory({ chunkSize: 2, maxChunks: 3 }), xAll)
  t.same(ring.ends, [6, 8, 10])
  dispose([xAll])
  for (const m of [mem, one, ring]) disposeHcam(m)
})

leakTest('top-k selection and the read equal float64 brute force', async t => {
  const M = 9, C = 5, D = 4, Q = 6
  const Kh = Array.from({ length: M }, () => randomArray(rand, D, -2, 2))
  Kh[4] = [...Kh[2]!] // an exact tie: the lower index must come first
  const Ch = Array.from({ length: M }, () => Array.from({ length: C }, () => randomArray(rand, D)))
  const Qh = Array.from({ length: Q }, () => randomArray(rand, D, -2, 2))
  const [q, k, c] = [f64(Qh.flat(), [Q, D]), f64(Kh.flat(), [M, D]), f64(Ch.flat(2), [M, C, D])]
  for (const topK of [1, 3, 9, 20]) {
    const r = hcamAttention(q, k, c, { topK })
    const ref = reference(Qh, Kh, Ch, Math.min(topK, M))
    t.same(host(r.indices), ref.flatMap(x => x.indices), `k=${topK}: indices`)
    assertClose(t, host(r.weights), ref.flatMap(x => x.weights), { atol: 1e-12, msg: `k=${topK}: weights` })
    assertClose(t, host(r.out), ref.flatMap(x => x.out), { atol: 1e-12, msg: `k=${topK}: output` })
    const sums = Array.from({ length: Q }, (_, i) => host(r.weights).slice(i * r.weights.shape[1]!, (i + 1) * r.weights.shape[1]!).reduce((a, b) => a + b, 0))
    assertClose(t, sums, new Array<number>(Q).fill(1), { atol: 1e-12, msg: `k=${topK}: weights sum to 1` })
    dispose(r)
  }
  // k = M and C = 1: the relevance weights are a softmax over every summary.
  const c1 = f64(Kh.flat(), [M, 1, D])
  const r = hcamAttention(q, k, c1, { topK: M })
  const idx = host(r.indices), w = host(r.weights)
  Qh.forEach((qq, i) => {
    const full = softmaxJs(Kh.map(key => dot(qq, key) / Math.sqrt(D)))
    const got = new Array<number>(M).fill(0)
    for (let j = 0; j < M; j++) got[idx[i * M + j]!] = w[i * M + j]!
    assertClose(t, got, full, { atol: 1e-12, msg: `query ${i}: k=M, C=1 weights = softmax over all summaries` })
  })
  dispose([q, k, c, c1, r])
})

leakTest('a planted needle chunk is retrieved and dominates; masking it out changes the output', async t => {
  const M = 64, C = 16, D = 32
  const needle = randomArray(rand, D)
  const n = Math.hypot(...needle)
  const dir = needle.map(x => (4 * x) / n)
  const at = 37
  const Ch = Array.from({ length: M }, (_, m) => Array.from({ length: C }, () => randomArray(rand, D).map((x, d) => (m === at ? dir[d]! + 0.3 * x : x))))
  const X = f64(Ch.flat(2), [M * C, D])
  const mem = hcamWrite(hcamMemory({ chunkSize: C }), X)
  const q = f64(dir, [1, D])
  const r = hcamRead(mem, q, { topK: 4, heads: 2 })
  t.equal(host(r.indices)[0], at, 'the needle chunk ranks first')
  t.ok(host(r.weights)[0]! > 0.7 && host(r.weights)[1]! < 0.1, `its relevance weight ${host(r.weights)[0]!.toFixed(4)} dominates`)
  const out = host(r.out)
  const cos = dot(out, dir) / (Math.hypot(...out) * Math.hypot(...dir))
  t.ok(cos > 0.95, `output aligned with the needle (cos ${cos.toFixed(3)})`)
  const maskV = Array.from({ length: M }, (_, m) => m !== at)
  const mask = tensor(maskV, [1, M], 'bool')
  const r2 = hcamRead(mem, q, { topK: 4, mask })
  t.notOk(host(r2.indices).includes(at), 'masked out, it is never selected')
  const out2 = host(r2.out)
  const cos2 = dot(out2, dir) / (Math.hypot(...out2) * Math.hypot(...dir))
  const change = Math.hypot(...out.map((x, i) => x - out2[i]!)) / Math.hypot(...out)
  t.ok(cos2 < cos - 0.2 && change > 0.3, `and the output loses it (cos ${cos2.toFixed(3)}, relative change ${change.toFixed(2)})`)
  dispose([X, q, r, r2, mask])
  disposeHcam(mem)
})

leakTest('future chunks are never selected, even with the highest score', async t => {
  const C = 4, D = 4, M = 6
  const rows = Array.from({ length: M * C }, (_, i) => (Math.floor(i / C) === M - 1 ? [5, 5, 5, 5] : randomArray(rand, D)))
  const X = f64(rows.flat(), [M * C, D])
  const mem = hcamWrite(hcamMemory({ chunkSize: C }), X)
  const q = f64(new Array<number>(3 * D).fill(1), [3, D])
  // Query positions 3, 13, 23: eligible chunks are those ended by then (none, 3 and 5 chunks).
  const r = hcamRead(mem, q, { topK: 2, queryPositions: [3, 13, 23] })
  const idx = host(r.indices)
  t.same(idx.slice(0, 2), [-1, -1], 'no chunk has ended by position 3')
  t.same(host(r.weights).slice(0, 2), [0, 0])
  t.same(host(r.out).slice(0, D), [0, 0, 0, 0], 'nothing eligible: zero output')
  t.ok(idx.slice(2, 4).every(i => i >= 0 && i < 3), `position 13 sees chunks 0..2 only: ${idx.slice(2, 4)}`)
  t.ok(idx.slice(4).every(i => i >= 0 && i < 5), `position 23 sees chunks 0..4, never the high-scoring chunk 5: ${idx.slice(4)}`)
  const r2 = hcamRead(mem, q, { topK: 2, queryPositions: 24 })
  t.equal(host(r2.indices)[0], 5, 'once ended, chunk 5 wins')
  dispose([X, q, r, r2])
  disposeHcam(mem)
})

leakTest('one chunk equals plain attention over it (float64, 1 and 2 heads, with learned maps)', async t => {
  const C = 7, D = 4
  const rows = Array.from({ length: C }, () => randomArray(rand, D))
  const Qh = Array.from({ length: 3 }, () => randomArray(rand, D))
  const [k, c, q] = [f64(randomArray(rand, D), [1, D]), f64(rows.flat(), [1, C, D]), f64(Qh.flat(), [3, D])]
  for (const heads of [1, 2]) {
    const r = hcamAttention(q, k, c, { topK: 3, heads })
    const Dh = D / heads
    const ref = Qh.flatMap(qq => {
      const o = new Array<number>(D).fill(0)
      for (let h = 0; h < heads; h++) {
        const sl = (v: number[]) => v.slice(h * Dh, (h + 1) * Dh)
        const p = softmaxJs(rows.map(r => dot(sl(qq), sl(r)) / Math.sqrt(Dh)))
        rows.forEach((r, j) => sl(r).forEach((x, d) => (o[h * Dh + d] = o[h * Dh + d]! + p[j]! * x)))
      }
      return o
    })
    assertClose(t, host(r.out), ref, { atol: 1e-12, msg: `${heads} head(s)` })
    dispose(r)
  }
  dispose([k, c, q])
})

leakTest('cost per query is O(M·D + k·C·D)', async t => {
  const D = 8, C = 16
  const costs = [32, 64, 128].map(M => {
    const [q, k, c] = [f64(randomArray(rand, D), [1, D]), f64(randomArray(rand, M * D), [M, D]), f64(randomArray(rand, M * C * D), [M, C, D])]
    const r = hcamAttention(q, k, c, { topK: 4 })
    dispose([q, k, c, r])
    return r.cost
  })
  costs.forEach((c, i) => {
    const M = [32, 64, 128][i]!
    t.equal(c.selection, M * D, `M=${M}: selection M·D`)
    t.equal(c.chunks, 2 * 4 * C * D, `M=${M}: chunks 2·k·C·D, independent of M`)
    t.equal(c.fullAttention, 2 * M * C * D)
  })
  const ratio = (c: { selection: number; chunks: number; fullAttention: number }) => (c.selection + c.chunks) / c.fullAttention
  t.ok(ratio(costs[2]!) < ratio(costs[0]!) && Math.abs(ratio(costs[2]!) - (1 / (2 * C) + 4 / 128)) < 1e-12, `HCAM/full at M=128: ${ratio(costs[2]!).toFixed(3)}`)
})

leakTest('gradients: through queries and learned maps; none into stored memory', async t => {
  const M = 3, C = 2, D = 4
  const K = randomArray(rand, M * D), Cn = randomArray(rand, M * C * D)
  await checkGrad(
    t,
    (q, wq, wk, wv, wo) => {
      const [k, c] = [f64(K, [M, D]), f64(Cn, [M, C, D])]
      const r = hcamAttention(q!, k, c, { topK: 2, heads: 2, positionalEncoding: true, params: { wq: wq!, wk: wk!, wv: wv!, wo: wo! } })
      const s = sum(r.out)
      dispose([k, c, r])
      return s
    },
    [{ v: randomArray(rand, 2 * D), shape: [2, D] }, ...[0, 1, 2, 3].map(() => ({ v: randomArray(rand, D * D), shape: [D, D] }))],
    { msg: 'hcam read' },
  )
  const [q, k, c] = [f64(randomArray(rand, D), [1, D]), f64(K, [M, D]), f64(Cn, [M, C, D])]
  const [v, g] = valueAndGrad((kk: Tensor, cc: Tensor) => sum(hcamAttention(q, kk, cc, { topK: 2 }).out), { argnums: [0, 1] })(k, c)
  t.ok(host(g[0]).every(x => x === 0) && host(g[1]).every(x => x === 0), 'stored keys and contents get no gradient')
  dispose([q, k, c, v, g])
})

leakTest('the stream operator stores as it streams, recalls on demand, frees on unsubscribe', async t => {
  const D = 4, C = 3
  const X = randomArray(rand, 14 * D)
  const Qv = randomArray(rand, 2 * D)
  // the operator borrows its chunks and recalls (stream ownership rule): the test made them and frees them
  const made: unknown[] = []
  const mk = <T>(x: T): T => (made.push(x), x)
  const chunk = (a: number, b: number) => mk({ tokens: f64(X.slice(a * D, b * D), [b - a, D]), positions: a })
  const outs = await lastValueFrom(from([chunk(0, 4), chunk(4, 9), mk({ query: f64(Qv, [2, D]) }), chunk(9, 14), mk({ query: f64(Qv, [2, D]) })]).pipe(hcamStream({ chunkSize: C, topK: 2 }), toArray()))
  dispose(made.splice(0))
  t.equal(outs.length, 2)
  const check = (rowsN: number, got: Tensor, msg: string) => {
    const x = f64(X.slice(0, rowsN * D), [rowsN, D])
    const mem = hcamWrite(hcamMemory({ chunkSize: C }), x)
    const q = f64(Qv, [2, D])
    const r = hcamRead(mem, q, { topK: 2 })
    assertClose(t, host(got), host(r.out), { atol: 1e-14, msg })
    dispose([x, q, r])
    disposeHcam(mem)
  }
  check(9, outs[0]!, 'first recall sees the 3 chunks complete after 9 rows')
  check(14, outs[1]!, 'second recall sees 4 chunks')
  dispose(outs)
  const before = memory().tensors
  const subject = new Subject<{ tokens: Tensor; positions: number }>()
  const sub = subject.pipe(hcamStream({ chunkSize: C, topK: 1 })).subscribe()
  subject.next(chunk(0, 7))
  dispose(made.splice(0))
  t.ok(memory().tensors > before, 'the subscription holds its memory')
  sub.unsubscribe()
  t.equal(memory().tensors, before, 'freed on unsubscribe')
  t.throws(() => hcamStream({ chunkSize: 0, topK: 1 }), ValueError)
})

leakTest('validation', async t => {
  const [q, k, c] = [f64([1, 2, 3, 4], [1, 4]), f64([1, 2, 3, 4], [1, 4]), f64(randomArray(rand, 8), [1, 2, 4])]
  const bad = f64([1, 2, 3], [1, 3])
  const f32 = tensor([[1, 2, 3, 4]], [1, 4], 'float32')
  t.throws(() => hcamAttention(bad, k, c, { topK: 1 }), ShapeError)
  t.throws(() => hcamAttention(q, k, c, { topK: 0 }), ValueError)
  t.throws(() => hcamAttention(q, k, c, { topK: 1, heads: 3 }), ValueError)
  t.throws(() => hcamAttention(f32, k, c, { topK: 1 }), DTypeError)
  t.throws(() => hcamAttention(q, k, c, { topK: 1, queryPositions: 0 }), { name: 'ArgumentError' })
  let mem: HcamMemory = hcamMemory({ chunkSize: 2 })
  const v1 = f64([1], [1])
  t.throws(() => hcamWrite(mem, v1), ShapeError)
  v1.dispose()
  const empty = hcamRead(mem, q, { topK: 2 })
  t.same(host(empty.indices), [-1, -1], 'an empty memory selects nothing')
  mem = hcamWrite(mem, q)
  t.throws(() => hcamWrite(mem, bad), ShapeError)
  dispose([q, k, c, bad, f32, empty])
  disposeHcam(mem)
})

t.test('memory is back to its baseline', async t => {
  t.equal(memory().tensors, base)
})
