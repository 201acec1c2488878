import t from 'tap'
import { tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, type SdpaOptions } from '@heed/attention'
import { referenceAttention } from '@heed/attention/testing'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { decodeAttention, DECODE_MAX_ROWS } from '../src/kernels/decodeAttention.js'

/**
 * The CPU forward's decode kernel (src/kernels/decodeAttention.ts): at most DECODE_MAX_ROWS query rows, unmasked,
 * causal and/or over a key prefix (a KV cache filled up to there), read in place with float64 arithmetic.
 */

type Shape4 = [number, number, number, number]
const rand = prng(1515)
const host = (shape: Shape4, scale = 1) => ({ values: Float64Array.from(randomArray(rand, shape.reduce((a, b) => a * b, 1)), x => x * scale), shape })

async function sdpa(q: ReturnType<typeof host>, k: typeof q, v: typeof q, opts: SdpaOptions, dtype: 'float32' | 'float64') {
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, dtype))
  const { out, lse } = scaledDotProductAttention(tq!, tk!, tv!, opts)
  const r = { out: await out.data(), lse: await lse.data() }
  for (const x of [tq, tk, tv, out, lse]) x!.dispose()
  return r
}

t.test('decode rows over a key prefix match the float64 reference, and are the decode kernel’s result', async t => {
  const cases: { name: string; q: Shape4; k: Shape4; v: Shape4; opts: SdpaOptions; mag?: number }[] = [
    // a cache of capacity 40 holding 29 keys: and(causal, sinks(29)), the query at position 28
    { name: 'one row, cache prefix', q: [1, 2, 1, 8], k: [1, 2, 40, 8], v: [1, 2, 40, 8], opts: { causal: true, queryOffset: 28, keyOffset: 0, mask: mask.sinks(29) } },
    { name: 'GQA 4:2, odd dims, 3 rows', q: [2, 4, 3, 5], k: [2, 2, 17, 5], v: [2, 2, 17, 3], opts: { causal: true, queryOffset: 10, mask: mask.sinks(13) } },
    { name: 'unmasked, max rows', q: [1, 1, DECODE_MAX_ROWS, 6], k: [1, 1, 11, 6], v: [1, 1, 11, 7], opts: {} },
    // scores near ±300: exp(s − max) must be taken from the row's max, never from 0
    { name: 'large scores', q: [1, 2, 1, 16], k: [1, 2, 33, 16], v: [1, 2, 33, 16], opts: { causal: true }, mag: 30 },
    // the first row sees no key: out 0, lse −∞
    { name: 'rows before every key', q: [1, 1, 3, 4], k: [1, 1, 6, 4], v: [1, 1, 6, 4], opts: { causal: true, queryOffset: 0, keyOffset: 1 } },
  ]
  for (const c of cases) {
    const [q, k, v] = [host(c.q, c.mag ?? 1), host(c.k, c.mag ?? 1), host(c.v)]
    const m = mask.and(...(c.opts.causal ? [mask.causal] : []), ...(c.opts.mask ? [c.opts.mask] : []))
    const ref = referenceAttention(q, k, v, { ...c.opts, mask: m })
    for (const dtype of ['float64', 'float32'] as const) {
      const got = await sdpa(q, k, v, c.opts, dtype)
      // one rounding on store: float32 results are within half an ulp-ish of the float64 truth
      const tol = dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 1e-6, rtol: 2e-6 }
      assertClose(t, got.out, ref.out, { ...tol, msg: `${c.name} ${dtype} out` })
      assertClose(t, got.lse, ref.lse, { ...tol, msg: `${c.name} ${dtype} lse` })
      const [B, H, Tq, D] = c.q
      const [, Hkv, Tk] = c.k
      const qOffset = c.opts.queryOffset ?? Math.max(0, Tk - Tq)
      const kOffset = c.opts.keyOffset ?? 0
      const limit = c.opts.mask ? (c.opts.mask.node as { count: number }).count - kOffset : Tk
      const cast = (x: Float64Array) => (dtype === 'float32' ? Float32Array.from(x) : x)
      const direct = decodeAttention({ B, H, Hkv, Tq, Tk, D, Dv: c.v[3], q: cast(q.values), k: cast(k.values), v: cast(v.values), scale: 1 / Math.sqrt(D), causal: !!c.opts.causal, delta: qOffset - kOffset, keyLimit: limit, float64: dtype === 'float64' })
      t.same(Array.from(got.out), Array.from(direct!.out), `${c.name} ${dtype}: sdpa took the decode kernel`)
    }
  }
})

t.test('slots a row cannot see are never read; non-finite scores leave the row to the blocked kernel', async t => {
  const [q, k, v] = [host([1, 1, 1, 4]), host([1, 1, 10, 4]), host([1, 1, 10, 4])]
  // a cache holding 6 keys: slots 6… hold garbage (NaN, ∞) that must not reach the output
  for (let j = 6; j < 10; j++) for (let d = 0; d < 4; d++) {
    k.values[j * 4 + d] = j % 2 ? NaN : Infinity
    v.values[j * 4 + d] = NaN
  }
  const opts = { causal: true, queryOffset: 5, mask: mask.sinks(6) }
  const cut = (x: typeof q) => ({ values: x.values.slice(0, 24), shape: [1, 1, 6, 4] as Shape4 })
  const ref = referenceAttention(q, cut(k), cut(v), { queryOffset: 5, mask: mask.causal })
  for (const dtype of ['float64', 'float32'] as const) {
    const got = await sdpa(q, k, v, opts, dtype)
    assertClose(t, got.out, ref.out, { atol: 1e-6, rtol: 2e-6, msg: `${dtype}: garbage past the filled slots is invisible` })
  }
  // a NaN in a visible key: decodeAttention declines, and the blocked kernel gives the NaN row its rules
  k.values[2] = NaN
  t.equal(decodeAttention({ B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 10, D: 4, Dv: 4, q: q.values, k: k.values, v: v.values, scale: 0.5, causal: true, delta: 5, keyLimit: 6, float64: true }), undefined, 'NaN score: declined')
  const got = await sdpa(q, k, v, opts, 'float32')
  t.ok(Number.isNaN(got.lse[0]!), 'a NaN visible key gives a NaN lse')
})

t.test('float32 with WebAssembly (its products in f64x2 lanes) and with it off: both within the float32 tolerance of the float64 truth', async t => {
  const { configureCpuWasm, cpuWasmReady } = await import('@heed/tensor')
  // a cache of 700 slots holding 643 keys (643 = 4·160 + 3: the 4-key blocks and the tail), GQA 4:2, D 32, Dv 10
  // (8-column blocks and a 2-column tail), 2 rows; and a 1-key cache
  const cases: { q: Shape4; k: Shape4; v: Shape4; opts: SdpaOptions; mag: number }[] = [
    { q: [1, 4, 2, 32], k: [1, 2, 700, 32], v: [1, 2, 700, 10], opts: { causal: true, queryOffset: 641, mask: mask.sinks(643) }, mag: 3 },
    { q: [2, 2, 1, 2], k: [2, 2, 5, 2], v: [2, 2, 5, 2], opts: { causal: true, queryOffset: 0, mask: mask.sinks(1) }, mag: 1 },
  ]
  for (const c of cases) {
    const [q, k, v] = [host(c.q, c.mag), host(c.k, c.mag), host(c.v)]
    const ref = referenceAttention(q, k, v, { ...c.opts, mask: mask.and(mask.causal, c.opts.mask!) })
    for (const mode of ['auto', 'off'] as const) {
      await configureCpuWasm({ mode })
      t.equal((await cpuWasmReady()) === null, mode === 'off', `WebAssembly ${mode}`)
      const got = await sdpa(q, k, v, c.opts, 'float32')
      assertClose(t, got.out, ref.out, { atol: 1e-6, rtol: 2e-6, msg: `${c.q} wasm ${mode} out` })
      assertClose(t, got.lse, ref.lse, { atol: 1e-6, rtol: 2e-6, msg: `${c.q} wasm ${mode} lse` })
    }
  }
  await configureCpuWasm({ mode: 'auto' })
})
