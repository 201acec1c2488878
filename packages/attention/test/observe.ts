import t from 'tap'
import { add, dispose, memory, mul, scope, sum, tensor, type Tensor } from '@heed/tensor'
import { attentionProbs, colSetMass, mask, rowArgmax, scaledDotProductAttention, scoreMod, type SdpaOptions } from '@heed/attention'
import { referenceAttention, referenceProbs } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(23)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })
const refOpts = (o: SdpaOptions) => ({ ...o, mask: mask.and(...(o.causal ? [mask.causal] : []), ...(o.mask ? [o.mask] : [])) })
const f64 = { atol: 1e-12, rtol: 1e-12 }

const cases: { name: string; q: Shape4; k: Shape4; opts: SdpaOptions }[] = [
  { name: 'plain', q: [2, 2, 5, 4], k: [2, 2, 7, 4], opts: {} },
  { name: 'causal GQA', q: [1, 4, 6, 3], k: [1, 2, 6, 3], opts: { causal: true } },
  { name: 'decode offset + ALiBi', q: [1, 2, 2, 4], k: [1, 2, 9, 4], opts: { causal: true, scoreMod: scoreMod.alibi(2), keyOffset: 1 } },
  { name: 'streaming + softcap/relative bias', q: [1, 2, 8, 4], k: [1, 2, 8, 4], opts: { mask: mask.streaming(1, 3), scoreMod: scoreMod.compose(scoreMod.relativeBias(randomArray(rand, 10), { heads: 2, maxDistance: 2 }), scoreMod.softcap(0.7)) } },
  { name: 'custom mask/mod with empty rows', q: [2, 1, 5, 3], k: [2, 1, 5, 3], opts: { mask: mask.custom((b, _h, pq, pk) => pq !== 2 - b && pk <= pq), scoreMod: scoreMod.custom((s, _b, _h, pq, pk) => s * s - 0.1 * (pq - pk), s => 2 * s) } },
  { name: 'scores up to ±50', q: [1, 1, 6, 4], k: [1, 1, 6, 4], opts: { scale: 25 } },
]

/** Row-major gather of a sub-matrix of the dense [B, H, Tq, Tk] probabilities. */
const sub = (p: Float64Array, shape: Shape4, rows: number[], cols: number[]): number[] => {
  const [B, H, Tq, Tk] = shape
  const out: number[] = []
  for (let bh = 0; bh < B * H; bh++) for (const r of rows) for (const c of cols) out.push(p[(bh * Tq + r) * Tk + c]!)
  return out
}

t.test('lazy rows, columns and blocks equal the dense P at 1e-12 in float64', async t => {
  for (const c of cases) {
    const base = memory().tensors
    const [q, k, v] = [host(c.q), host(c.k), host([c.k[0], c.k[1], c.k[2], 2])]
    const dense = referenceProbs(q, k, refOpts(c.opts))
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    const { out, lse } = scaledDotProductAttention(tq!, tk!, tv!, c.opts)
    const [Tq, Tk] = [c.q[2], c.k[2]]
    const all = (n: number) => Array.from({ length: n }, (_, i) => i)
    const rows = [Tq - 1, 0, Math.floor(Tq / 2)]
    const cols = [1, Tk - 1, 0]
    const pShape: Shape4 = [c.q[0], c.q[1], Tq, Tk]
    for (const [sel, r, cl] of [
      [{}, all(Tq), all(Tk)],
      [{ rows }, rows, all(Tk)],
      [{ cols: Int32Array.from(cols) }, all(Tq), cols],
      [{ rows, cols }, rows, cols],
    ] as const) {
      const p = attentionProbs(tq!, tk!, lse, { ...c.opts, ...sel })
      t.same(p.shape, [c.q[0], c.q[1], r.length, cl.length], `${c.name} ${JSON.stringify(sel)} shape`)
      assertClose(t, await p.data(), sub(dense.p, pShape, [...r], [...cl]), { ...f64, msg: `${c.name} ${JSON.stringify(sel)}` })
      p.dispose()
    }
    const am = rowArgmax(tq!, tk!, { ...c.opts, chunkSize: 2 })
    t.equal(am.dtype, 'int32')
    t.same(Array.from(await am.data()), Array.from(dense.argmax), `${c.name}: argmax`)
    const sets = [[0], [1, Tk - 1], all(Tk)]
    const mass = colSetMass(tq!, tk!, lse, sets, { ...c.opts, chunkSize: 4 })
    const want: number[] = []
    for (let row = 0; row < c.q[0] * c.q[1] * Tq; row++) for (const set of sets) want.push(set.reduce((s, j) => s + dense.p[row * Tk + j]!, 0))
    assertClose(t, await mass.data(), want, { ...f64, msg: `${c.name}: column-set mass` })
    dispose([tq, tk, tv, out, lse, am, mass])
    t.equal(memory().tensors, base, `${c.name}: no leak`)
  }
})

t.test('float32 observation within f32 tolerance; fully masked rows are exactly 0 and argmax −1', async t => {
  const c = cases.find(x => x.name === 'custom mask/mod with empty rows')!
  const [q, k, v] = [host(c.q), host(c.k), host(c.k)]
  const dense = referenceProbs(q, k, refOpts(c.opts))
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32'))
  const { out, lse } = scaledDotProductAttention(tq!, tk!, tv!, c.opts)
  const p = attentionProbs(tq!, tk!, lse, c.opts)
  const pd = await p.data()
  assertClose(t, pd, dense.p, { atol: 2e-6, rtol: 2e-5, msg: 'f32 P' })
  t.notOk(Array.from(pd).some(Number.isNaN), 'no NaN')
  t.same(Array.from(pd.slice(2 * 5, 3 * 5)), [0, 0, 0, 0, 0], 'batch 0 row 2 is empty')
  const am = await rowArgmax(tq!, tk!, c.opts).data()
  t.equal(am[2], -1)
  t.equal(am[5 + 1], -1)
  dispose([tq, tk, tv, out, lse, p])
})

t.test('ties go to the smaller key index', async t => {
  // Keys 1 and 3 identical and best: bitwise-equal scores.
  const kv = [0, 0, 1, 1, 0, 0, 1, 1, -1, 0]
  const q = tensor([1, 1, 0.5, 0.5], [1, 1, 2, 2], 'float64')
  const k = tensor(kv, [1, 1, 5, 2], 'float64')
  t.same(Array.from(await rowArgmax(q, k).data()), [1, 1])
  t.same(Array.from(await rowArgmax(q, k, { mask: mask.custom((_b, _h, _pq, pk) => pk !== 1) }).data()), [3, 3])
  dispose([q, k])
})

t.test('observation is differentiable in q, k and lse (attention-map losses)', async t => {
  const c = cases.find(x => x.name === 'decode offset + ALiBi')!
  for (const opts of [c.opts, cases.find(x => x.name === 'custom mask/mod with empty rows')!.opts]) {
    const [q, k] = [host([1, 2, 3, 4]), host([1, 2, 5, 4])]
    const lse = referenceAttention(q, k, k, { ...refOpts(opts), queryOffset: 2 }).lse
    const w = randomArray(rand, 2 * 2 * 5)
    const wm = randomArray(rand, 2 * 3 * 2)
    await checkGrad(
      t,
      (a: Tensor, b: Tensor, l: Tensor) =>
        scope(() => {
          const o = { ...opts, queryOffset: 2 }
          const p = attentionProbs(a, b, l, { ...o, rows: [2, 0] })
          const m = colSetMass(a, b, l, [[0, 4], [2]], o)
          return add(sum(mul(p, tensor(w, p.shape, 'float64'))), sum(mul(m, tensor(wm, m.shape, 'float64'))))
        }),
      [
        { v: Array.from(q.values), shape: q.shape },
        { v: Array.from(k.values), shape: k.shape },
        { v: Array.from(lse), shape: [1, 2, 3] },
      ],
      { msg: 'probs + mass' },
    )
  }
})

t.test('validation names op, argument, expected and actual', async t => {
  const q = tensor(new Float64Array(2 * 2 * 3 * 4), [2, 2, 3, 4], 'float64')
  const lse = tensor(new Float64Array(2 * 2 * 3), [2, 2, 3], 'float64')
  t.throws(() => attentionProbs(q, q, lse, { rows: [3] }), /attentionProbs.*rows.*\[0, 3\)/s)
  t.throws(() => attentionProbs(q, q, lse, { cols: [0.5] }), /cols/)
  t.throws(() => attentionProbs(q, q, q), /lse.*\[2, 2, 3\]/s)
  t.throws(() => colSetMass(q, q, lse, []), /sets/)
  t.throws(() => rowArgmax(q, q, { chunkSize: 0 }), /chunkSize/)
  dispose([q, lse])
})
