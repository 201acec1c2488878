import t from 'tap'
import { add, greater, memory, mul, scope, sum, tensor, where, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, scoreMod, type SdpaOptions } from '@heed/attention'
import { referenceAttention } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(7)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })

const cases: { name: string; q: Shape4; k: Shape4; v: Shape4; opts: SdpaOptions }[] = [
  { name: 'plain', q: [2, 2, 5, 4], k: [2, 2, 5, 4], v: [2, 2, 5, 3], opts: {} },
  { name: 'causal', q: [1, 2, 7, 4], k: [1, 2, 7, 4], v: [1, 2, 7, 4], opts: { causal: true } },
  { name: 'GQA 4:2 causal odd dims', q: [1, 4, 9, 5], k: [1, 2, 9, 5], v: [1, 2, 9, 3], opts: { causal: true, blockSize: 4 } },
  { name: 'Tq ≠ Tk decode step', q: [1, 2, 1, 4], k: [1, 2, 13, 4], v: [1, 2, 13, 4], opts: { causal: true } },
  { name: 'Tq ≠ Tk chunk with offset', q: [1, 1, 3, 4], k: [1, 1, 10, 4], v: [1, 1, 10, 2], opts: { causal: true, queryOffset: 5 } },
  { name: 'window + sinks', q: [1, 2, 12, 4], k: [1, 2, 12, 4], v: [1, 2, 12, 4], opts: { mask: mask.streaming(2, 3), blockSize: 3 } },
  { name: 'segments (packed)', q: [1, 1, 8, 3], k: [1, 1, 8, 3], v: [1, 1, 8, 3], opts: { causal: true, mask: mask.segments([0, 0, 0, 1, 1, 2, 2, 2]) } },
  { name: 'perHead + chunk', q: [1, 2, 8, 3], k: [1, 2, 8, 3], v: [1, 2, 8, 3], opts: { mask: mask.perHead(2, h => (h === 0 ? mask.causal : mask.chunk(3))) } },
  { name: 'ALiBi', q: [1, 4, 6, 4], k: [1, 4, 6, 4], v: [1, 4, 6, 4], opts: { causal: true, scoreMod: scoreMod.alibi(4) } },
  { name: 'softcap + relative bias', q: [1, 2, 6, 4], k: [1, 2, 6, 4], v: [1, 2, 6, 4], opts: { scoreMod: scoreMod.compose(scoreMod.relativeBias(randomArray(rand, 2 * 7), { heads: 2, maxDistance: 3 }), scoreMod.softcap(0.5)) } },
  { name: 'custom mask and mod', q: [1, 1, 6, 4], k: [1, 1, 6, 4], v: [1, 1, 6, 4], opts: { mask: mask.custom((_b, _h, pq, pk) => (pq + pk) % 3 !== 0), scoreMod: scoreMod.custom(s => s * s) } },
  { name: 'fully masked rows', q: [1, 1, 4, 4], k: [1, 1, 4, 4], v: [1, 1, 4, 4], opts: { mask: mask.custom((_b, _h, pq, pk) => pq !== 1 && pk <= pq) } },
]

/** The reference knows only masks: fold `causal` into one. */
const refOpts = (o: SdpaOptions) => ({ ...o, mask: mask.and(...(o.causal ? [mask.causal] : []), ...(o.mask ? [o.mask] : [])) })

t.test('forward matches the float64 reference (out and lse)', async t => {
  for (const c of cases) {
    const [q, k, v] = [host(c.q), host(c.k), host(c.v)]
    const ref = referenceAttention(q, k, v, refOpts(c.opts))
    for (const dtype of ['float64', 'float32'] as const) {
      const base = memory().tensors
      const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, dtype))
      const { out, lse } = scaledDotProductAttention(tq!, tk!, tv!, c.opts)
      const tol = dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 2e-6, rtol: 2e-5 }
      assertClose(t, await out.data(), ref.out, { ...tol, msg: `${c.name} ${dtype} out` })
      assertClose(t, await lse.data(), ref.lse, { ...tol, msg: `${c.name} ${dtype} lse` })
      for (const x of [tq, tk, tv, out, lse]) x!.dispose()
      t.equal(memory().tensors, base, `${c.name}: no leak`)
    }
  }
})

t.test('fully masked rows give out 0 and lse −∞, never NaN', async t => {
  const c = cases.find(x => x.name === 'fully masked rows')!
  const [q, k, v] = [host(c.q), host(c.k), host(c.v)].map(x => tensor(x.values, x.shape))
  const { out, lse } = scaledDotProductAttention(q!, k!, v!, c.opts)
  const o = await out.data()
  t.same(Array.from(o.slice(4, 8)), [0, 0, 0, 0])
  t.equal((await lse.data())[1], -Infinity)
  t.notOk(Array.from(o).some(Number.isNaN))
  for (const x of [q, k, v, out, lse]) x!.dispose()
})

t.test('gradients (through out and lse) match finite differences', async t => {
  for (const c of cases.filter(x => x.name !== 'custom mask and mod')) {
    const [q, k, v] = [host(c.q), host(c.k), host(c.v)]
    const wOut = randomArray(rand, c.q[0] * c.q[1] * c.q[2] * c.v[3])
    // fully masked rows have lse = −∞ (and no gradient): give them weight 0
    const ref = referenceAttention(q, k, v, refOpts(c.opts))
    const wLse = Array.from(ref.lse, l => (Number.isFinite(l) ? rand() - 0.5 : 0))
    await checkGrad(
      t,
      (tq: Tensor, tk: Tensor, tv: Tensor) =>
        scope(() => {
          const { out, lse } = scaledDotProductAttention(tq, tk, tv, c.opts)
          const finiteLse = where(isFiniteMask(lse), lse, 0)
          return add(sum(mul(out, tensor(wOut, out.shape, 'float64'))), sum(mul(finiteLse, tensor(wLse, lse.shape, 'float64'))))
        }),
      [q, k, v].map(x => ({ v: Array.from(x.values), shape: x.shape })),
      { msg: c.name, atol: 1e-6, rtol: 1e-5 },
    )
  }
})

const isFiniteMask = (x: Tensor): Tensor => greater(x, -Infinity)

t.test('validation names the op, the argument and the shapes', async t => {
  const q = tensor(new Float32Array(2 * 3 * 4 * 8), [2, 3, 4, 8])
  const k = tensor(new Float32Array(2 * 2 * 4 * 8), [2, 2, 4, 8])
  t.throws(() => scaledDotProductAttention(q, k, k), /query heads H=3 must be a multiple of key\/value heads Hkv=2/)
  const k2 = tensor(new Float32Array(2 * 3 * 4 * 6), [2, 3, 4, 6])
  t.throws(() => scaledDotProductAttention(q, k2, k2), /head dims differ, q is \[2,3,4,8\], k is \[2,3,4,6\]/)
  t.throws(() => scaledDotProductAttention(q, q, q, { scale: NaN }), /scale/)
  t.throws(() => scaledDotProductAttention(q, q, q, { mask: (() => true) as never }), /mask: expected a Mask/)
  const r3 = tensor(new Float32Array(12), [3, 4])
  t.throws(() => scaledDotProductAttention(r3, r3, r3), /q: expected rank 4/)
  for (const x of [q, k, k2, r3]) x.dispose()
})

t.test('shiftHeads sees a slice of heads structurally (stays compilable)', async t => {
  const m = mask.perHead(4, h => (h < 2 ? mask.causal : mask.window(2)))
  const s = m.shiftHeads(2)
  t.ok(s.compilable, 'a shifted library mask is still data')
  for (let h = 0; h < 2; h++)
    for (let pq = 0; pq < 6; pq++) for (let pk = 0; pk < 6; pk++) t.equal(s.test(0, h, pq, pk), m.test(0, h + 2, pq, pk))
  const a = scoreMod.compose(scoreMod.alibi(4), scoreMod.relativeBias([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], { heads: 4, maxDistance: 1 }))
  const b = a.shiftHeads(1)
  t.ok(b.compilable)
  for (let h = 0; h < 3; h++) t.equal(b.apply(0.5, 0, h, 5, 4), a.apply(0.5, 0, h + 1, 5, 4))
  const c = mask.custom((_b, h, pq, pk) => h === 3 && pk <= pq).shiftHeads(3)
  t.equal(c.test(0, 0, 2, 1), true)
  t.equal(c.test(0, 1, 2, 1), false)
})
