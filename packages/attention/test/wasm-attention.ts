import t from 'tap'
import { configureCpuWasm, cpuWasmReady, shutdownCpuWasm } from '@heed/tensor'
import { registerWasmModulePart } from '@heed/tensor/cpu'
import { ATTENTION_THREAD_MIN_MACS, ATTENTION_WASM_MIN_MACS, wasmAttentionForward, type AttentionForwardProblem } from '../src/kernels/wasm/attentionForward.js'
import { attentionWasmPart } from '../src/kernels/wasm/attentionWasm.js'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

t.teardown(shutdownCpuWasm)
// as the kernel registration does, so the pool started below already runs attention's jobs
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
  readonly queryBlock?: number
  /** query magnitude: scores grow with it */
  readonly qScale?: number
}

type Problem = AttentionForwardProblem

function problem(rand: () => number, c: Case): Problem {
  const q = Float32Array.from(randomArray(rand, c.B * c.H * c.Tq * c.D, -1, 1).map(x => x * (c.qScale ?? 1)))
  const k = Float32Array.from(randomArray(rand, c.B * c.Hkv * c.Tk * c.D))
  const v = Float32Array.from(randomArray(rand, c.B * c.Hkv * c.Tk * c.Dv))
  return { ...c, q, k, v, scale: 1 / Math.sqrt(c.D) }
}

/**
 * Dense attention, one row at a time. `f32` rounds every operation to float32 (§6.1's "Ref": the error a float32
 * computation cannot avoid); otherwise float64 throughout (the golden result).
 */
function reference(p: Problem, f32: boolean): { out: Float64Array; lse: Float64Array } {
  const r = f32 ? Math.fround : (x: number) => x
  const { B, H, Hkv, Tq, Tk, D, Dv } = p
  const out = new Float64Array(B * H * Tq * Dv)
  const lse = new Float64Array(B * H * Tq)
  const g = H / Hkv
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const z = b * Hkv + Math.floor(h / g)
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i
        const s: number[] = []
        for (let j = 0; j < Tk; j++) {
          // the causal keys are a prefix, so e[j] below is key j
          if (p.causal && j > i + p.delta) continue
          let x = 0
          for (let d = 0; d < D; d++) x = r(x + r(p.q[row * D + d]! * p.k[(z * Tk + j) * D + d]!))
          s.push(r(x * p.scale))
        }
        if (s.length === 0) {
          lse[row] = -Infinity
          continue
        }
        const m = Math.max(...s)
        const e = s.map(x => r(Math.exp(r(x - m))))
        const l = e.reduce((a, x) => r(a + x), 0)
        for (let d = 0; d < Dv; d++) {
          let o = 0
          for (let j = 0; j < e.length; j++) o = r(o + r(e[j]! * p.v[(z * Tk + j) * Dv + d]!))
          out[row * Dv + d] = r(o / l)
        }
        lse[row] = m + Math.log(l)
      }
    }
  return { out, lse }
}

const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue
    m = Math.max(m, Math.abs(a[i]! - b[i]!))
  }
  return m
}

const run = (p: Problem, threads?: 1) => {
  const r = wasmAttentionForward(threads ? { ...p, threads } : p)
  if (!r) throw new Error('the WebAssembly attention forward did not run')
  return r
}

t.test('matches the float64 reference within the float32 op tolerance', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(31)
  const cases: Case[] = [
    { B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 1, D: 4, Dv: 4, causal: true, delta: 0 },
    { B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 9, D: 8, Dv: 8, causal: false, delta: 0 },
    // D and Dv not multiples of 4, T not a multiple of the block, GQA
    { B: 1, H: 4, Hkv: 2, Tq: 13, Tk: 13, D: 5, Dv: 3, causal: true, delta: 0, queryBlock: 8 },
    { B: 2, H: 3, Hkv: 3, Tq: 70, Tk: 70, D: 16, Dv: 12, causal: false, delta: 0, queryBlock: 16 },
    { B: 2, H: 2, Hkv: 1, Tq: 131, Tk: 131, D: 64, Dv: 64, causal: true, delta: 0 },
    // more keys than one P·V chunk (256) and a row sum across chunks
    { B: 1, H: 2, Hkv: 2, Tq: 40, Tk: 600, D: 32, Dv: 40, causal: false, delta: 0, queryBlock: 24 },
    // causal across several key chunks (the running max and sum are rescaled between them)
    { B: 1, H: 1, Hkv: 1, Tq: 530, Tk: 530, D: 8, Dv: 8, causal: true, delta: 0 },
    // a decode step over a long cache: a block of one row
    { B: 1, H: 2, Hkv: 1, Tq: 1, Tk: 700, D: 16, Dv: 16, causal: true, delta: 699 },
    // a chunk of queries with an offset (decode-style) and keys past the causal limit
    { B: 1, H: 2, Hkv: 2, Tq: 7, Tk: 30, D: 8, Dv: 8, causal: true, delta: 20 },
    // an offset that is not a multiple of 4 with a last block of 5 rows: the padding lanes of a 4-query panel
    // reach keys past the block's last row, which only they may see
    { B: 1, H: 2, Hkv: 1, Tq: 13, Tk: 14, D: 8, Dv: 8, causal: true, delta: 1, queryBlock: 8 },
    { B: 1, H: 1, Hkv: 1, Tq: 21, Tk: 27, D: 12, Dv: 4, causal: true, delta: 6, queryBlock: 16 },
    // negative offset: the first rows see no key at all (out 0, lse −∞)
    { B: 1, H: 1, Hkv: 1, Tq: 21, Tk: 21, D: 8, Dv: 8, causal: true, delta: -6, queryBlock: 8 },
  ]
  for (const c of cases) {
    const p = problem(rand, c)
    const got = run(p)
    const ref = reference(p, false)
    const msg = JSON.stringify(c)
    // the op suite's float32 tolerance for attention (packages/attention/test/sdpa.ts)
    assertClose(t, got.out, ref.out, { atol: 2e-6, rtol: 2e-5, msg: `out ${msg}` })
    assertClose(t, got.lse, ref.lse, { atol: 2e-6, rtol: 2e-5, msg: `lse ${msg}` })
    if (c.delta < 0) {
      t.equal(got.lse[0], -Infinity, 'a row with no key has lse −∞')
      t.same(Array.from(got.out.subarray(0, c.Dv)), new Array(c.Dv).fill(0), 'and out 0')
    }
  }
})

t.test('adversarial magnitudes: error within 2× the float32 reference (§6.1)', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(32)
  // |q| up to 2500 with D = 64: scores up to ~±1e4, softmax rows nearly one-hot
  for (const qScale of [300, 2500]) {
    // two key chunks, so rows also see their running max replaced
    const c: Case = { B: 1, H: 2, Hkv: 2, Tq: 300, Tk: 300, D: 64, Dv: 64, causal: true, delta: 0, qScale }
    const p = problem(rand, c)
    const golden = reference(p, false)
    const f32 = reference(p, true)
    const got = run(p)
    const floor = 1e-6
    const e = maxErr(got.out, golden.out)
    const eRef = maxErr(f32.out, golden.out)
    t.ok(e <= 2 * eRef + floor, `qScale ${qScale}: max |out − golden| ${e.toExponential(2)} ≤ 2·${eRef.toExponential(2)} + ${floor}`)
    const eL = maxErr(got.lse, golden.lse)
    const eLRef = maxErr(f32.lse, golden.lse)
    t.ok(eL <= 2 * eLRef + floor, `qScale ${qScale}: max |lse − golden| ${eL.toExponential(2)} ≤ 2·${eLRef.toExponential(2)} + ${floor}`)
    let num = 0
    let den = 0
    for (let i = 0; i < golden.out.length; i++) {
      num += (got.out[i]! - golden.out[i]!) ** 2
      den += golden.out[i]! ** 2
    }
    t.ok(Math.sqrt(num / den) < 1e-3, `qScale ${qScale}: relative RMSE ${Math.sqrt(num / den).toExponential(2)} < 1e-3`)
    t.notOk(Array.from(got.out).some(Number.isNaN), 'no NaN')
  }
})

t.test('one thread and the pool give identical results', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  t.equal((await cpuWasmReady())?.threads, 2)
  const rand = prng(33)
  for (const c of [
    { B: 1, H: 4, Hkv: 4, Tq: 256, Tk: 256, D: 32, Dv: 32, causal: true, delta: 0 },
    { B: 2, H: 2, Hkv: 1, Tq: 200, Tk: 300, D: 24, Dv: 20, causal: false, delta: 0, queryBlock: 32 },
  ] satisfies Case[]) {
    const p = problem(rand, c)
    const macs = c.B * c.H * c.Tq * c.Tk * (c.D + c.Dv)
    t.ok(macs / 2 >= ATTENTION_THREAD_MIN_MACS, 'large enough for the pool')
    const one = run(p, 1)
    const pool = run(p)
    t.same(Array.from(pool.out), Array.from(one.out), `out ${JSON.stringify(c)}`)
    t.same(Array.from(pool.lse), Array.from(one.lse), `lse ${JSON.stringify(c)}`)
  }
})

t.test('a key limit is the same as the first keys alone', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const rand = prng(35)
  const c: Case = { B: 2, H: 2, Hkv: 1, Tq: 40, Tk: 300, D: 12, Dv: 8, causal: true, delta: 260 }
  const p = problem(rand, c)
  for (const limit of [1, 130, 257, 299]) {
    const cut = (x: Float32Array, w: number) => {
      const y = new Float32Array(c.B * c.Hkv * limit * w)
      for (let z = 0; z < c.B * c.Hkv; z++) y.set(x.subarray(z * c.Tk * w, (z * c.Tk + limit) * w), z * limit * w)
      return y
    }
    const limited = run({ ...p, keyLimit: limit })
    const sliced = run({ ...p, k: cut(p.k, c.D), v: cut(p.v, c.Dv), Tk: limit })
    t.same(Array.from(limited.out), Array.from(sliced.out), `keyLimit ${limit}: out`)
    t.same(Array.from(limited.lse), Array.from(sliced.lse), `keyLimit ${limit}: lse`)
  }
  t.equal(wasmAttentionForward({ ...p, keyLimit: 0 }), undefined, 'no key at all: left to the caller')
})

t.test('declines where the caller must keep its own kernel', async t => {
  const rand = prng(34)
  const small: Case = { B: 1, H: 1, Hkv: 1, Tq: 8, Tk: 8, D: 8, Dv: 8, causal: true, delta: 0 }
  t.ok(8 * 8 * 16 < ATTENTION_WASM_MIN_MACS)
  await configureCpuWasm({ mode: 'auto' })
  t.equal(wasmAttentionForward(problem(rand, small)), undefined, 'auto mode: too small to pay')
  const big = problem(rand, { B: 1, H: 2, Hkv: 2, Tq: 128, Tk: 128, D: 64, Dv: 64, causal: false, delta: 0 })
  t.ok(wasmAttentionForward(big), 'auto mode: a large problem runs')
  await configureCpuWasm({ mode: 'off' })
  t.equal(wasmAttentionForward(big), undefined, 'HEED_CPU_WASM=0')
  await configureCpuWasm({ mode: 'force' })
  t.ok(wasmAttentionForward(problem(rand, small)), 'force mode: every size')
  const withNaN = problem(rand, small)
  withNaN.q[3] = NaN
  t.equal(wasmAttentionForward(withNaN), undefined, 'NaN in q')
  const withInf = problem(rand, small)
  withInf.v[5] = Infinity
  t.equal(wasmAttentionForward(withInf), undefined, '∞ in v')
  const withInfK = problem(rand, small)
  withInfK.k[0] = -Infinity
  t.equal(wasmAttentionForward(withInfK), undefined, '−∞ in k')
  const huge = problem(rand, { ...small, qScale: 1e18 })
  huge.k[0] = 1e18
  t.equal(wasmAttentionForward(huge), undefined, 'scores that could overflow float32')
  await configureCpuWasm({ mode: 'auto' })
})
