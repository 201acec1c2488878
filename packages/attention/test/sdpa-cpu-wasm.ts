import t from 'tap'
import { configureCpuWasm, shutdownCpuWasm, tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, scoreMod, type SdpaOptions } from '@heed/attention'
import { referenceAttention } from '@heed/attention/testing'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { wasmAttentionForward } from '../src/kernels/wasm/attentionForward.js'

/**
 * The float32 CPU forward's WebAssembly path (src/kernels/wasm/attentionForward.ts) as scaledDotProductAttention
 * uses it: taken for unmasked and causal float32 attention without a score mod, and nowhere else.
 */

t.teardown(shutdownCpuWasm)

type Shape4 = [number, number, number, number]
const host = (rand: () => number, shape: Shape4, scale = 1) => ({ values: Float32Array.from(randomArray(rand, shape.reduce((a, b) => a * b, 1)).map(x => x * scale)), shape })

const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

async function sdpa(q: { values: Float32Array; shape: Shape4 }, k: typeof q, v: typeof q, opts: SdpaOptions) {
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape))
  const { out, lse } = scaledDotProductAttention(tq!, tk!, tv!, opts)
  const r = { out: (await out.data()) as Float32Array, lse: (await lse.data()) as Float32Array }
  for (const x of [tq, tk, tv, out, lse]) x!.dispose()
  return r
}

t.test('causal and unmasked float32 attention run the WebAssembly forward', async t => {
  await configureCpuWasm({ mode: 'auto' })
  const rand = prng(41)
  for (const [name, shapes, opts] of [
    ['causal', [[1, 2, 150, 32], [1, 2, 150, 32], [1, 2, 150, 32]], { causal: true }],
    ['unmasked GQA', [[2, 4, 90, 20], [2, 2, 90, 20], [2, 2, 90, 12]], {}],
    ['causal chunk after a prefix', [[1, 2, 70, 64], [1, 2, 200, 64], [1, 2, 200, 64]], { causal: true }],
  ] as const) {
    const [q, k, v] = shapes.map(s => host(rand, [...s] as Shape4))
    const got = await sdpa(q!, k!, v!, opts)
    const ref = referenceAttention(q!, k!, v!, { mask: opts.causal ? mask.causal : mask.all })
    assertClose(t, got.out, ref.out, { atol: 2e-6, rtol: 2e-5, msg: `${name} out` })
    assertClose(t, got.lse, ref.lse, { atol: 2e-6, rtol: 2e-5, msg: `${name} lse` })
    // bit for bit the WebAssembly forward's result: this call did take that path
    const [B, H, Tq, D] = q!.shape
    const [, Hkv, Tk] = k!.shape
    const direct = wasmAttentionForward({
      q: q!.values, k: k!.values, v: v!.values, B, H, Hkv, Tq, Tk, D, Dv: v!.shape[3],
      scale: 1 / Math.sqrt(D), causal: !!opts.causal, delta: opts.causal ? Tk - Tq : 0,
    })
    t.ok(direct, `${name}: large enough for the WebAssembly path`)
    t.same(Array.from(got.out), Array.from(direct!.out), `${name}: out is the WebAssembly forward's`)
    t.same(Array.from(got.lse), Array.from(direct!.lse), `${name}: lse is the WebAssembly forward's`)
  }
})

t.test('other masks, score mods, float64 and switched-off WebAssembly keep the float64-arithmetic kernel', async t => {
  // Scores near ±1e4 (|q| up to 2500): float32 score rounding alone moves out by ~1e-4 there, which the float32
  // path cannot avoid (§6.1's float32 reference errs as much). The float64-arithmetic kernel rounds once, on
  // store, so out stays within ~1 float32 ulp of the float64 reference: the bound below tells the paths apart.
  const rand = prng(42)
  const shape: Shape4 = [1, 2, 150, 64]
  const [q, k, v] = [host(rand, shape, 2500), host(rand, shape), host(rand, shape)]
  const golden = referenceAttention(q, k, v, { mask: mask.causal })
  const accurate = 3e-7
  await configureCpuWasm({ mode: 'auto' })
  const fast = await sdpa(q, k, v, { causal: true })
  t.ok(maxErr(fast.out, golden.out) > accurate, `the float32 path errs by more than ${accurate} here (${maxErr(fast.out, golden.out).toExponential(2)}), so the checks below can fail`)
  const causalByHand = mask.custom((_b, _h, pq, pk) => pk <= pq)
  const identityMod = scoreMod.custom(s => s)
  for (const [name, opts] of [
    ['custom mask', { mask: causalByHand }],
    ['score mod', { causal: true, scoreMod: identityMod }],
    ['window mask', { causal: true, mask: mask.window(1000) }],
  ] as const) {
    const r = await sdpa(q, k, v, opts)
    t.ok(maxErr(r.out, golden.out) <= accurate, `${name}: max |out − golden| ${maxErr(r.out, golden.out).toExponential(2)} ≤ ${accurate}`)
  }
  await configureCpuWasm({ mode: 'off' })
  const off = await sdpa(q, k, v, { causal: true })
  t.ok(maxErr(off.out, golden.out) <= accurate, `HEED_CPU_WASM=0: max |out − golden| ${maxErr(off.out, golden.out).toExponential(2)} ≤ ${accurate}`)
  await configureCpuWasm({ mode: 'auto' })
  const [q64, k64, v64] = [q, k, v].map(x => tensor(Array.from(x.values), x.shape, 'float64'))
  const r64 = scaledDotProductAttention(q64!, k64!, v64!, { causal: true })
  assertClose(t, await r64.out.data(), golden.out, { atol: 1e-12, rtol: 1e-12, msg: 'float64 out' })
  for (const x of [q64, k64, v64, r64.out, r64.lse]) x!.dispose()
})

t.test('a KV cache streamed in chunks gives the one-shot causal result bit for bit', async t => {
  await configureCpuWasm({ mode: 'auto' })
  const rand = prng(43)
  const [B, H, T, D] = [1, 2, 600, 32]
  const [q, k, v] = [host(rand, [B, H, T, D]), host(rand, [B, H, T, D]), host(rand, [B, H, T, D])]
  const dense = await sdpa(q, k, v, { causal: true })
  // what kvCache does for a full cache: every query chunk against the whole storage, keys past the filled ones
  // masked by sinks(filled), so the WebAssembly path must take `and(causal, sinks(n))` as a key prefix
  for (const chunk of [128, 200]) {
    const out = new Float32Array(dense.out.length)
    const lse = new Float32Array(dense.lse.length)
    for (let c0 = 0; c0 < T; c0 += chunk) {
      const c1 = Math.min(T, c0 + chunk)
      const qc = { values: new Float32Array(B * H * (c1 - c0) * D), shape: [B, H, c1 - c0, D] as Shape4 }
      for (let h = 0; h < H; h++) qc.values.set(q.values.subarray((h * T + c0) * D, (h * T + c1) * D), h * (c1 - c0) * D)
      const r = await sdpa(qc, k, v, { causal: true, queryOffset: c0, keyOffset: 0, mask: mask.sinks(c1) })
      for (let h = 0; h < H; h++) {
        out.set(r.out.subarray(h * (c1 - c0) * D, (h + 1) * (c1 - c0) * D), (h * T + c0) * D)
        lse.set(r.lse.subarray(h * (c1 - c0), (h + 1) * (c1 - c0)), h * T + c0)
      }
    }
    t.same(Array.from(out), Array.from(dense.out), `chunks of ${chunk}: out`)
    t.same(Array.from(lse), Array.from(dense.lse), `chunks of ${chunk}: lse`)
  }
  // the key prefix is a shorter key sequence: the same as slicing K and V
  const n = 333
  const cut = (x: typeof q) => {
    const values = new Float32Array(B * H * n * D)
    for (let h = 0; h < H; h++) values.set(x.values.subarray(h * T * D, (h * T + n) * D), h * n * D)
    return { values, shape: [B, H, n, D] as Shape4 }
  }
  const limited = await sdpa(q, k, v, { mask: mask.sinks(n) })
  const sliced = await sdpa(q, cut(k), cut(v), { queryOffset: 0 })
  t.same(Array.from(limited.out), Array.from(sliced.out), 'sinks(n) over all keys = the first n keys')
  const ref = referenceAttention(q, cut(k), cut(v), { queryOffset: 0 })
  assertClose(t, limited.out, ref.out, { atol: 2e-6, rtol: 2e-5, msg: 'sinks(n) out against float64' })
})
