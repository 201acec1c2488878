import t, { type Test } from 'tap'
import { add, dispose, memory, mul, scope, sum, tensor, type Tensor } from '@heed/tensor'
import { attnState, chunkedPrefill, mask, scaledDotProductAttention, splitKvAttention, scoreMod, type AttnState, type SdpaOptions } from '@heed/attention'
import { referenceAttention } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(11)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1)), shape })
const f64 = { atol: 1e-12, rtol: 1e-12 }

/** A random state whose lse has −∞ rows where `dead` says so (those rows' o is 0, as attention produces). */
const randomState = (shape: Shape4, dead: (row: number) => boolean = () => false): AttnState => {
  const rows = shape[0] * shape[1] * shape[2]
  const lse = Array.from({ length: rows }, (_, r) => (dead(r) ? -Infinity : 4 * rand() - 2))
  const o = randomArray(rand, rows * shape[3]).map((x, i) => (dead(Math.floor(i / shape[3])) ? 0 : x))
  return { o: tensor(o, shape, 'float64'), lse: tensor(lse, shape.slice(0, 3), 'float64') }
}
const data = async (s: AttnState) => ({ o: await s.o.data(), lse: await s.lse.data() })
const same = async (t: Test, a: AttnState, b: AttnState, msg: string, tol = f64) => {
  const [x, y] = [await data(a), await data(b)]
  assertClose(t, x.o, y.o, { ...tol, msg: `${msg}: o` })
  assertClose(t, x.lse, y.lse, { ...tol, msg: `${msg}: lse` })
}

t.test('merge is associative and commutative with identity (0, −∞), −∞ rows included', async t => {
  const base = memory().tensors
  const shape: Shape4 = [2, 2, 5, 3]
  const a = randomState(shape, r => r % 5 === 1)
  const b = randomState(shape, r => r % 5 === 1 || r % 7 === 2)
  const c = randomState(shape, r => r % 3 === 0)
  const id = attnState.identity(a)
  const results = scope(() => ({
    ab: attnState.merge(a, b),
    ba: attnState.merge(b, a),
    abC: attnState.merge(attnState.merge(a, b), c),
    aBC: attnState.merge(a, attnState.merge(b, c)),
    all: attnState.mergeAll([a, b, c]),
    aId: attnState.merge(a, id),
    idA: attnState.merge(id, a),
    idId: attnState.merge(id, id),
    allId: attnState.mergeAll([id, id, id]),
  }))
  await same(t, results.ab, results.ba, 'commutative')
  await same(t, results.abC, results.aBC, 'associative')
  await same(t, results.abC, results.all, 'mergeAll = chained merge')
  // The identity is exact, not approximate: w = e^{−∞} = 0 and the other weight is e^0 = 1.
  t.same(await data(results.aId), await data(a), 'a ∘ identity = a exactly')
  t.same(await data(results.idA), await data(a), 'identity ∘ a = a exactly')
  for (const s of [results.idId, results.allId]) {
    const d = await data(s)
    t.ok(d.o.every(x => x === 0), 'identity ∘ identity has o = 0 (no NaN)')
    t.ok(d.lse.every(x => x === -Infinity), 'and lse = −∞')
  }
  // Rows dead in both a and b stay the identity.
  const ab = await data(results.ab)
  t.equal(ab.lse[1], -Infinity)
  t.same(Array.from(ab.o.slice(3, 6)), [0, 0, 0])
  dispose([a, b, c, id, results])
  t.equal(memory().tensors, base, 'no leak')
})

t.test('identity from a shape and validation', async t => {
  const id = attnState.identity([1, 2, 3, 4], 'float64')
  t.same(id.o.shape, [1, 2, 3, 4])
  t.same(id.lse.shape, [1, 2, 3])
  t.equal(id.o.dtype, 'float64')
  t.ok((await id.lse.data()).every(x => x === -Infinity))
  const other = attnState.identity([1, 2, 3, 5], 'float64')
  t.throws(() => attnState.merge(id, other), /attnState\.merge.*state 1\.o.*\[1, 2, 3, 4\]/s)
  t.throws(() => attnState.merge(id, { o: id.o, lse: other.o }), /b\.lse/)
  t.throws(() => attnState.mergeAll([]), /non-empty/)
  t.throws(() => attnState.identity([2, 3]), /\[B, H, Tq, Dv\]/)
  dispose([id, other])
})

t.test('merge gradients match finite differences, through o and lse, with −∞ rows', async t => {
  const shape: Shape4 = [1, 2, 3, 2]
  const a = randomState(shape)
  const b = randomState(shape)
  const [ao, al, bo, bl] = await Promise.all([a.o.data(), a.lse.data(), b.o.data(), b.lse.data()])
  dispose([a, b])
  const wO = randomArray(rand, 12)
  const wL = randomArray(rand, 6)
  // Make one row of b the identity: its gradient must be 0 for o and finite for lse, never NaN.
  const blDead = Array.from(bl)
  const boDead = Array.from(bo)
  blDead[2] = -Infinity
  boDead[4] = boDead[5] = 0
  const loss = (o1: Tensor, l1: Tensor, o2: Tensor, l2: Tensor) =>
    scope(() => {
      const m = attnState.merge({ o: o1, lse: l1 }, { o: o2, lse: l2 })
      return add(sum(mul(m.o, tensor(wO, m.o.shape, 'float64'))), sum(mul(m.lse, tensor(wL, m.lse.shape, 'float64'))))
    })
  await checkGrad(t, loss, [
    { v: Array.from(ao), shape },
    { v: Array.from(al), shape: [1, 2, 3] },
    { v: Array.from(bo), shape },
    { v: Array.from(bl), shape: [1, 2, 3] },
  ], { msg: 'merge' })
  // finite differences cannot step from −∞: check the dead-row gradient for NaN directly and the rest by FD
  // on the live inputs only.
  await checkGrad(
    t,
    (o1: Tensor, l1: Tensor, o2: Tensor) => scope(() => loss(o1, l1, o2, tensor(blDead, [1, 2, 3], 'float64'))),
    [{ v: Array.from(ao), shape }, { v: Array.from(al), shape: [1, 2, 3] }, { v: boDead, shape }],
    { msg: 'merge with an identity row' },
  )
  const mergeAllLoss = (o1: Tensor, l1: Tensor, o2: Tensor, l2: Tensor) =>
    scope(() => {
      const m = attnState.mergeAll([{ o: o1, lse: l1 }, { o: o2, lse: l2 }, { o: o1, lse: l2 }])
      return add(sum(mul(m.o, tensor(wO, m.o.shape, 'float64'))), sum(mul(m.lse, tensor(wL, m.lse.shape, 'float64'))))
    })
  await checkGrad(t, mergeAllLoss, [
    { v: Array.from(ao), shape },
    { v: Array.from(al), shape: [1, 2, 3] },
    { v: Array.from(bo), shape },
    { v: Array.from(bl), shape: [1, 2, 3] },
  ], { msg: 'mergeAll' })
})

const refMask = (o: SdpaOptions) => mask.and(...(o.causal ? [mask.causal] : []), ...(o.mask ? [o.mask] : []))

t.test('splitKvAttention equals one-shot attention for any split', async t => {
  const base = memory().tensors
  const cases = [
    { q: [1, 4, 1, 4] as Shape4, k: [1, 2, 13, 4] as Shape4, v: [1, 2, 13, 3] as Shape4, opts: { causal: true }, splits: [{ splits: 3 }, { chunkSize: 1 }, { boundaries: [5, 6] }, { splits: 50 }] },
    { q: [2, 2, 6, 4] as Shape4, k: [2, 2, 9, 4] as Shape4, v: [2, 2, 9, 4] as Shape4, opts: { causal: true, scoreMod: scoreMod.alibi(2), keyOffset: 3, queryOffset: 6 }, splits: [{ splits: 2 }, { chunkSize: 4 }] },
    { q: [1, 2, 5, 4] as Shape4, k: [1, 2, 12, 4] as Shape4, v: [1, 2, 12, 2] as Shape4, opts: { mask: mask.streaming(2, 3) }, splits: [{ splits: 4 }, { boundaries: [2] }] },
  ]
  for (const c of cases) {
    const [q, k, v] = [host(c.q), host(c.k), host(c.v)]
    const ref = referenceAttention(q, k, v, { ...c.opts, mask: refMask(c.opts) })
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    for (const s of c.splits) {
      const r = splitKvAttention(tq!, tk!, tv!, { ...c.opts, ...s })
      assertClose(t, await r.out.data(), ref.out, { ...f64, msg: `${JSON.stringify(s)} out` })
      assertClose(t, await r.lse.data(), ref.lse, { ...f64, msg: `${JSON.stringify(s)} lse` })
      t.equal(r.out, r.o, 'out is o')
      dispose(r)
    }
    t.throws(() => splitKvAttention(tq!, tk!, tv!, { splits: 2, chunkSize: 3 }), /only one of/)
    t.throws(() => splitKvAttention(tq!, tk!, tv!, { boundaries: [3, 2] }), /strictly increasing/)
    dispose([tq, tk, tv])
  }
  t.equal(memory().tensors, base, 'no leak')
})

t.test('chunkedPrefill equals one-shot attention (causal self, causal with cache, non-causal)', async t => {
  const base = memory().tensors
  const cases = [
    { q: [1, 2, 11, 4] as Shape4, k: [1, 2, 11, 4] as Shape4, opts: { causal: true } },
    { q: [1, 4, 7, 4] as Shape4, k: [1, 2, 12, 4] as Shape4, opts: { causal: true, mask: mask.window(4) } },
    { q: [2, 2, 6, 3] as Shape4, k: [2, 2, 9, 3] as Shape4, opts: {} },
    { q: [1, 1, 5, 3] as Shape4, k: [1, 1, 5, 3] as Shape4, opts: { causal: true, keyOffset: 2, queryOffset: 0 } },
  ]
  for (const c of cases) {
    const [q, k, v] = [host(c.q), host(c.k), host(c.k)]
    const ref = referenceAttention(q, k, v, { ...c.opts, mask: refMask(c.opts) })
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    for (const s of [{ chunkSize: 1 }, { chunkSize: 3 }, { boundaries: [2, 3] }, {}]) {
      const r = chunkedPrefill(tq!, tk!, tv!, { ...c.opts, ...s })
      assertClose(t, await r.out.data(), ref.out, { ...f64, msg: `${JSON.stringify(c.opts)} ${JSON.stringify(s)} out` })
      assertClose(t, await r.lse.data(), ref.lse, { ...f64, msg: `${JSON.stringify(s)} lse` })
      dispose(r)
    }
    dispose([tq, tk, tv])
  }
  t.equal(memory().tensors, base, 'no leak')
})

t.test('split-KV and chunked prefill are differentiable like sdpa', async t => {
  const [q, k, v] = [host([1, 2, 4, 3]), host([1, 1, 6, 3]), host([1, 1, 6, 2])]
  const w = randomArray(rand, 16)
  const inputs = [q, k, v].map(x => ({ v: Array.from(x.values), shape: x.shape }))
  const weighted = (out: Tensor) => sum(mul(out, tensor(w, out.shape, 'float64')))
  const direct = async (f: (a: Tensor, b: Tensor, c: Tensor) => Tensor, msg: string) => checkGrad(t, (a, b, c) => scope(() => weighted(f(a!, b!, c!))), inputs, { msg })
  await direct((a, b, c) => splitKvAttention(a, b, c, { causal: true, splits: 3 }).out, 'splitKv')
  await direct((a, b, c) => chunkedPrefill(a, b, c, { causal: true, chunkSize: 2 }).out, 'chunkedPrefill')
  await direct((a, b, c) => scaledDotProductAttention(a, b, c, { causal: true }).out, 'sdpa (same loss)')
})
