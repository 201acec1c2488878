import t, { type Test } from 'tap'
import { configureCpuWasm, cpuWasmReady, grad, mul, shutdownCpuWasm, sum, add, tensor, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention } from '@heed/attention'
import { registerWasmModulePart } from '@heed/tensor/cpu'
import { ATTENTION_THREAD_MIN_MACS, wasmAttentionForward } from '../src/kernels/wasm/attentionForward.js'
import { wasmAttentionBackward, type AttentionBackwardProblem } from '../src/kernels/wasm/attentionBackward.js'
import { attentionWasmPart } from '../src/kernels/wasm/attentionWasm.js'
import { prng, randomArray } from '../../tensor/test/helpers/numeric.js'

/** The float32 WebAssembly attention backward (attentionBackward.ts) against a dense float64 backward. */

t.teardown(shutdownCpuWasm)
registerWasmModulePart(attentionWasmPart)

interface Case {
  readonly B: number
  readonly H: number
  readonly Hkv: number
  readonly Tq: number
  readonly Tk: number
  readonly D: number
  readonly Dv: number
  readonly causal: boolean
  readonly delta: number
  readonly keyLimit?: number
  readonly queryBlock?: number
  readonly keyBlock?: number
  /** query magnitude: scores grow with it */
  readonly qScale?: number
}

type Raw = Omit<AttentionBackwardProblem, 'out' | 'lse'>

function inputs(rand: () => number, c: Case): Raw {
  const q = Float32Array.from(randomArray(rand, c.B * c.H * c.Tq * c.D, -1, 1).map(x => x * (c.qScale ?? 1)))
  const k = Float32Array.from(randomArray(rand, c.B * c.Hkv * c.Tk * c.D))
  const v = Float32Array.from(randomArray(rand, c.B * c.Hkv * c.Tk * c.Dv))
  const dOut = Float32Array.from(randomArray(rand, c.B * c.H * c.Tq * c.Dv))
  const dLse = Float32Array.from(randomArray(rand, c.B * c.H * c.Tq))
  return { ...c, q, k, v, dOut, dLse, scale: 1 / Math.sqrt(c.D) }
}

const visible = (c: Case, i: number, j: number): boolean => j < (c.keyLimit ?? c.Tk) && (!c.causal || j <= i + c.delta)

/**
 * Dense attention forward and backward, one row at a time. `f32` rounds every operation to float32 (§6.1's "Ref"),
 * otherwise float64 throughout (the golden result). The forward's out and lse are what the backward is given.
 */
function reference(p: Raw, f32: boolean) {
  const r = f32 ? Math.fround : (x: number) => x
  const { B, H, Hkv, Tq, Tk, D, Dv, scale } = p
  const g = H / Hkv
  const out = new Float64Array(B * H * Tq * Dv)
  const lse = new Float64Array(B * H * Tq)
  const dq = new Float64Array(B * H * Tq * D)
  const dk = new Float64Array(B * Hkv * Tk * D)
  const dv = new Float64Array(B * Hkv * Tk * Dv)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const z = b * Hkv + Math.floor(h / g)
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i
        const js: number[] = []
        const s: number[] = []
        for (let j = 0; j < Tk; j++) {
          if (!visible(p, i, j)) continue
          let x = 0
          for (let d = 0; d < D; d++) x = r(x + r(p.q[row * D + d]! * p.k[(z * Tk + j) * D + d]!))
          js.push(j)
          s.push(r(x * scale))
        }
        if (s.length === 0) {
          lse[row] = -Infinity
          continue
        }
        const m = Math.max(...s)
        const e = s.map(x => r(Math.exp(r(x - m))))
        const l = e.reduce((a, x) => r(a + x), 0)
        const L = r(m + Math.log(l))
        lse[row] = L
        const P = s.map(x => r(Math.exp(r(x - L))))
        for (let d = 0; d < Dv; d++) {
          let o = 0
          for (let n = 0; n < js.length; n++) o = r(o + r(P[n]! * p.v[(z * Tk + js[n]!) * Dv + d]!))
          out[row * Dv + d] = o
        }
        let delta = 0
        for (let d = 0; d < Dv; d++) delta = r(delta + r(p.dOut[row * Dv + d]! * out[row * Dv + d]!))
        delta = r(delta - p.dLse[row]!)
        for (let n = 0; n < js.length; n++) {
          const j = js[n]!
          let dp = 0
          for (let d = 0; d < Dv; d++) dp = r(dp + r(p.dOut[row * Dv + d]! * p.v[(z * Tk + j) * Dv + d]!))
          const ds = r(r(P[n]! * r(dp - delta)) * scale)
          for (let d = 0; d < Dv; d++) dv[(z * Tk + j) * Dv + d] = r(dv[(z * Tk + j) * Dv + d]! + r(P[n]! * p.dOut[row * Dv + d]!))
          for (let d = 0; d < D; d++) {
            dq[row * D + d] = r(dq[row * D + d]! + r(ds * p.k[(z * Tk + j) * D + d]!))
            dk[(z * Tk + j) * D + d] = r(dk[(z * Tk + j) * D + d]! + r(ds * p.q[row * D + d]!))
          }
        }
      }
    }
  return { out, lse, dq, dk, dv }
}

const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

const rmse = (a: ArrayLike<number>, golden: ArrayLike<number>): number => {
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - golden[i]!) ** 2
    den += golden[i]! ** 2
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den)
}

/**
 * The backward as a training step runs it: given the float32 forward's out and lse. Its scores are the backward's
 * bit for bit (the same micro-kernel sums over d in the same order), so P = exp(S − lse) is as consistent as the
 * float32 reference's: with a float64 lse, near-one-hot rows would carry the whole float32 score rounding into P.
 */
function fwdOf(raw: Raw) {
  const { queryBlock, ...rest } = raw
  void queryBlock
  const fwd = wasmAttentionForward(rest)
  if (!fwd) throw new Error('the WebAssembly attention forward did not run')
  return fwd
}

function run(raw: Raw, threads?: 1) {
  const fwd = fwdOf(raw)
  const p: AttentionBackwardProblem = { ...raw, out: fwd.out, lse: fwd.lse, ...(threads ? { threads } : {}) }
  const r = wasmAttentionBackward(p)
  if (!r) throw new Error('the WebAssembly attention backward did not run')
  return r
}

/** §6.1: max error ≤ 2× the float32 reference's + a floor, relative RMSE < 1e-3. */
function check(t: Test, c: Case, raw: Raw, floor = 1e-6): void {
  const golden = reference(raw, false)
  const f32 = reference(raw, true)
  const got = run(raw)
  const msg = JSON.stringify({ ...c })
  for (const name of ['dq', 'dk', 'dv'] as const) {
    const e = maxErr(got[name], golden[name])
    const eRef = maxErr(f32[name], golden[name])
    t.ok(e <= 2 * eRef + floor, `${name} ${msg}: max |err| ${e.toExponential(2)} ≤ 2·${eRef.toExponential(2)} + ${floor}`)
    t.ok(rmse(got[name], golden[name]) < 1e-3, `${name}: relative RMSE ${rmse(got[name], golden[name]).toExponential(2)} < 1e-3`)
    t.notOk(Array.from(got[name]).some(x => !Number.isFinite(x)), `${name}: finite`)
  }
}

t.test('matches the float64 backward within §6.1', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(61)
  const cases: Case[] = [
    { B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 1, D: 4, Dv: 4, causal: true, delta: 0 },
    { B: 1, H: 1, Hkv: 1, Tq: 9, Tk: 9, D: 8, Dv: 8, causal: false, delta: 0 },
    // D and Dv not multiples of 4 or 8, T not a multiple of either block, GQA
    { B: 1, H: 4, Hkv: 2, Tq: 13, Tk: 13, D: 5, Dv: 3, causal: true, delta: 0, queryBlock: 8, keyBlock: 8 },
    { B: 2, H: 3, Hkv: 3, Tq: 70, Tk: 70, D: 16, Dv: 12, causal: false, delta: 0, queryBlock: 16, keyBlock: 24 },
    { B: 2, H: 2, Hkv: 1, Tq: 131, Tk: 131, D: 32, Dv: 32, causal: true, delta: 0 },
    // Tq ≠ Tk, causal offsets that are not multiples of 4, 8 or a block, a last panel of 1–7 keys
    { B: 1, H: 2, Hkv: 2, Tq: 7, Tk: 30, D: 8, Dv: 8, causal: true, delta: 20 },
    { B: 1, H: 2, Hkv: 1, Tq: 13, Tk: 14, D: 8, Dv: 8, causal: true, delta: 1, queryBlock: 8, keyBlock: 8 },
    { B: 1, H: 1, Hkv: 1, Tq: 21, Tk: 27, D: 12, Dv: 4, causal: true, delta: 6, queryBlock: 16, keyBlock: 16 },
    { B: 1, H: 2, Hkv: 2, Tq: 50, Tk: 77, D: 20, Dv: 24, causal: true, delta: 27, queryBlock: 24, keyBlock: 40 },
    // negative offset: the first rows see no key (their dq is 0)
    { B: 1, H: 1, Hkv: 1, Tq: 21, Tk: 21, D: 8, Dv: 8, causal: true, delta: -6, queryBlock: 8, keyBlock: 8 },
    // a decode step: one query row over a long cache
    { B: 1, H: 2, Hkv: 1, Tq: 1, Tk: 300, D: 16, Dv: 16, causal: true, delta: 299 },
    // key prefixes (sinks(n), a KV cache filled up to n): keys past the limit get no gradient
    { B: 2, H: 2, Hkv: 1, Tq: 40, Tk: 100, D: 12, Dv: 8, causal: true, delta: 60, keyLimit: 83 },
    { B: 1, H: 2, Hkv: 2, Tq: 33, Tk: 90, D: 16, Dv: 16, causal: false, delta: 0, keyLimit: 45, keyBlock: 16 },
  ]
  for (const c of cases) check(t, c, inputs(rand, c))
})

t.test('adversarial magnitudes: large logits, near-one-hot rows', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(62)
  for (const qScale of [30, 300]) {
    const c: Case = { B: 1, H: 2, Hkv: 1, Tq: 150, Tk: 150, D: 32, Dv: 32, causal: true, delta: 3, qScale }
    check(t, c, inputs(rand, c))
  }
})

t.test('one thread and the pool give identical results', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  t.equal((await cpuWasmReady())?.threads, 2)
  const rand = prng(63)
  for (const c of [
    { B: 2, H: 4, Hkv: 4, Tq: 128, Tk: 128, D: 32, Dv: 32, causal: true, delta: 0 },
    { B: 1, H: 4, Hkv: 2, Tq: 200, Tk: 250, D: 24, Dv: 20, causal: true, delta: 50, queryBlock: 32, keyBlock: 48 },
  ] satisfies Case[]) {
    const raw = inputs(rand, c)
    t.ok(c.B * c.H * c.Tq * c.Tk * 80 / 2 >= ATTENTION_THREAD_MIN_MACS, 'large enough for the pool')
    const one = run(raw, 1)
    const pool = run(raw)
    for (const name of ['dq', 'dk', 'dv'] as const) t.same(Array.from(pool[name]), Array.from(one[name]), `${name} ${JSON.stringify(c)}`)
    // dispatches over one kv head at a time (what a problem beyond the dQ-term budget runs as)
    const sliced = wasmAttentionBackward({ ...raw, out: fwdOf(raw).out, lse: fwdOf(raw).lse, partBytes: 1 })!
    for (const name of ['dq', 'dk', 'dv'] as const) t.same(Array.from(sliced[name]), Array.from(one[name]), `${name}, one kv head per dispatch`)
  }
})

t.test('declines where the caller must keep its own kernel', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(64)
  const c: Case = { B: 1, H: 1, Hkv: 1, Tq: 8, Tk: 8, D: 8, Dv: 8, causal: true, delta: 0 }
  const raw = inputs(rand, c)
  const golden = reference(raw, false)
  const base = { ...raw, out: Float32Array.from(golden.out), lse: Float32Array.from(golden.lse) }
  t.ok(wasmAttentionBackward(base), 'force mode: every size')
  const withNaN = { ...base, dOut: base.dOut.slice() }
  withNaN.dOut[3] = NaN
  t.equal(wasmAttentionBackward(withNaN), undefined, 'NaN in dOut')
  const withInf = { ...base, k: base.k.slice() }
  withInf.k[0] = Infinity
  t.equal(wasmAttentionBackward(withInf), undefined, '∞ in k')
  t.equal(wasmAttentionBackward({ ...base, keyLimit: 0 }), undefined, 'no key at all')
  await configureCpuWasm({ mode: 'off' })
  t.equal(wasmAttentionBackward(base), undefined, 'HEED_CPU_WASM=0')
  await configureCpuWasm({ mode: 'auto' })
})

/** L = Σ out ∘ dOut + Σ lse ∘ dLse through the float64 golden forward: its gradient is what the backward computes. */
function loss(p: Raw): number {
  const { out, lse } = reference(p, false)
  let l = 0
  for (let i = 0; i < out.length; i++) l += out[i]! * p.dOut[i]!
  for (let i = 0; i < lse.length; i++) if (lse[i] !== -Infinity) l += lse[i]! * p.dLse[i]!
  return l
}

t.test('gradients match central differences of the float64 forward', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(65)
  for (const c of [
    { B: 1, H: 2, Hkv: 1, Tq: 11, Tk: 13, D: 6, Dv: 5, causal: true, delta: 3, queryBlock: 8, keyBlock: 8 },
    { B: 1, H: 1, Hkv: 1, Tq: 9, Tk: 20, D: 8, Dv: 8, causal: false, delta: 0, keyLimit: 14, keyBlock: 8 },
  ] satisfies Case[]) {
    const raw = inputs(rand, c)
    const got = run(raw)
    for (const [name, arr, g] of [['q', raw.q, got.dq], ['k', raw.k, got.dk], ['v', raw.v, got.dv]] as const) {
      // float64 copies so the perturbation is exact; the kernel's inputs stay float32
      const base = Float64Array.from(arr)
      let worst = 0
      for (let idx = 0; idx < base.length; idx += 3) {
        const h = 1e-4
        const at = (x: number): number => {
          const moved = Float64Array.from(base)
          moved[idx] = x
          return loss({ ...raw, [name]: moved as unknown as Float32Array })
        }
        const fd = (at(base[idx]! + h) - at(base[idx]! - h)) / (2 * h)
        worst = Math.max(worst, Math.abs(fd - g[idx]!) / (1e-3 + Math.abs(fd)))
      }
      t.ok(worst < 1e-4, `d${name} ${JSON.stringify(c)}: worst relative error against central differences ${worst.toExponential(2)} < 1e-4`)
    }
  }
})

t.test("scaledDotProductAttention's float32 CPU gradient takes this backward where the forward takes its fast path", async t => {
  await configureCpuWasm({ mode: 'auto' })
  const rand = prng(66)
  const [B, H, Hkv, T, D] = [2, 4, 2, 100, 32]
  const c: Case = { B, H, Hkv, Tq: T, Tk: T, D, Dv: D, causal: true, delta: 0 }
  const raw = inputs(rand, c)
  const [q, k, v] = [tensor(raw.q, [B, H, T, D]), tensor(raw.k, [B, Hkv, T, D]), tensor(raw.v, [B, Hkv, T, D])]
  const [dOut, dLse] = [tensor(raw.dOut, [B, H, T, D]), tensor(raw.dLse, [B, H, T])]
  const f = (a: Tensor, b: Tensor, d: Tensor): Tensor => {
    const r = scaledDotProductAttention(a, b, d, { causal: true, mask: mask.all })
    return add(sum(mul(r.out, dOut)), sum(mul(r.lse, dLse)))
  }
  const [gq, gk, gv] = grad(f, { argnums: [0, 1, 2] })(q, k, v) as Tensor[]
  const direct = run(raw)
  t.same(Array.from((await gq!.data()) as Float32Array), Array.from(direct.dq), 'dq is the WebAssembly backward\'s, bit for bit')
  t.same(Array.from((await gk!.data()) as Float32Array), Array.from(direct.dk), 'dk')
  t.same(Array.from((await gv!.data()) as Float32Array), Array.from(direct.dv), 'dv')
  for (const x of [q, k, v, dOut, dLse, gq, gk, gv]) x!.dispose()
})
