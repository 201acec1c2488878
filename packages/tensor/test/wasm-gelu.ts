import t, { type Test } from 'tap'
import { float32Gelu, float32GeluBackward } from '../src/backends/cpu/float32Gelu.js'
import { unaryFns } from '../src/backends/cpu/kernels/elementwise.js'
import { configureCpuWasm, cpuWasmReady, shutdownCpuWasm } from '../src/backends/cpu/wasm/runtime.js'
import { wasmFeatures } from '../src/backends/cpu/wasm/features.js'
import type { CpuTensor } from '../src/backends/cpu/types.js'
import { prng } from './helpers/numeric.js'

// The WebAssembly GELU kernels (wasm/geluModule.ts) against the TypeScript loops of float32Gelu.ts, bit for bit, and
// against the float64 reference at the bounds documented there.

t.teardown(shutdownCpuWasm)

const GRID = 1 << 17
const adversarial = [0, -0, Infinity, -Infinity, NaN, 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, -1e-45, 1e-39, -1e-39, 1e-20, -1e-20, -0.7518, -17.7, -17.72, -17.75, -17.78, -17.8, -37, 40, -40]
// odd length: the kernels' last element goes through the single-lane path
const xs = Float32Array.from([...Array.from({ length: GRID }, (_, i) => -18 + (36 * i) / GRID), ...adversarial])
const rand = prng(41)
const dys = Float32Array.from(xs, () => (rand() - 0.5) * 4)
// powers of two: dy·g is exact in float64, so the backward inherits gelu′'s bound scaled by |dy|
const dyPow2 = Float32Array.from(xs, (_, i) => (i % 2 ? -1 : 1) * 2 ** ((i % 7) - 3))

const cpu = (v: Float32Array): CpuTensor => ({ values: v, shape: [v.length], dtype: 'float32' })
const UNARY = ['gelu', 'geluGrad', 'geluTanh', 'geluTanhGrad'] as const
const BACKWARD = ['geluBackward', 'geluTanhBackward'] as const

function runAll(): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {}
  for (const fn of UNARY) out[fn] = Float32Array.from(float32Gelu(fn, cpu(xs))!.values)
  for (const fn of BACKWARD) {
    out[fn] = Float32Array.from(float32GeluBackward(fn, cpu(dys), cpu(xs))!.values)
    out[`${fn} pow2`] = Float32Array.from(float32GeluBackward(fn, cpu(dyPow2), cpu(xs))!.values)
  }
  return out
}

/** Indices where the two differ in their bits (any NaN equals any NaN). */
function bitDiffs(a: Float32Array, b: Float32Array): number[] {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length)
  const bad: number[] = []
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) bad.push(i)
  return bad
}

/** float32 spacing at |y| (denormal spacing at the bottom). */
const ulp = (y: number): number => (y === 0 ? 2 ** -149 : Math.max(2 ** -149, 2 ** (Math.floor(Math.log2(Math.abs(Math.fround(y)) || 2 ** -149)) - 23)))

const phi = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI)
const cdf = (x: number): number => unaryFns.geluGrad!(x) - x * phi(x)

/** Worst error of got[i] against ref(i) in ulps of scale(i), over finite references; NaN and ±Infinity must match. */
function worstUlps(t: Test, got: Float32Array, ref: (i: number) => number, scale: (i: number) => number, msg: string): number {
  let worst = 0
  let special = 0
  for (let i = 0; i < xs.length; i++) {
    const r = ref(i)
    const y = got[i]!
    if (!Number.isFinite(r) || !Number.isFinite(y)) {
      if (!Object.is(r, y) && !(Number.isNaN(r) && Number.isNaN(y))) special++
      continue
    }
    worst = Math.max(worst, Math.abs(y - r) / ulp(scale(i)))
  }
  t.equal(special, 0, `${msg}: NaN and ±Infinity where the reference has them`)
  return worst
}

t.test('WebAssembly GELU kernels equal the TypeScript loops bit for bit, one thread and the pool', { skip: !wasmFeatures().simd && 'no WebAssembly SIMD' }, async t => {
  await configureCpuWasm({ mode: 'off' })
  const loops = runAll()
  for (const threads of [1, 2]) {
    await configureCpuWasm({ mode: 'force', threads })
    const ready = await cpuWasmReady()
    if (threads > 1 && ready?.shared) t.equal(ready.threads, threads, 'the pool is up')
    const wasm = runAll()
    for (const [fn, want] of Object.entries(loops)) {
      const bad = bitDiffs(wasm[fn]!, want)
      t.same(bad.slice(0, 5).map(i => [xs[i], wasm[fn]![i], want[i]]), [], `${fn}, ${threads} thread(s): ${bad.length} of ${want.length} differ`)
    }
    if (threads === 1) {
      // the documented bounds, on the WebAssembly results (the loops' are the same bits)
      const x = (i: number): number => xs[i]!
      const larger = (i: number): number => Math.max(cdf(x(i)), Math.abs(x(i) * phi(x(i))))
      const g = worstUlps(t, wasm.gelu!, i => unaryFns.gelu!(x(i)), i => unaryFns.gelu!(x(i)), 'gelu')
      t.ok(g <= 0.55, `gelu within 0.55 ulp of float64 (${g.toFixed(3)})`)
      const d = worstUlps(t, wasm.geluGrad!, i => unaryFns.geluGrad!(x(i)), larger, 'gelu′')
      t.ok(d <= 1.01, `gelu′ within 1.01 ulp of its larger term (${d.toFixed(3)})`)
      const b = worstUlps(t, wasm['geluBackward pow2']!, i => dyPow2[i]! * unaryFns.geluGrad!(x(i)), i => Math.abs(dyPow2[i]!) * larger(i), 'dy·gelu′')
      t.ok(b <= 1.01, `dy·gelu′ within 1.01 ulp of |dy|·gelu′'s larger term (${b.toFixed(3)})`)
      // the tanh forms are the reference's own float64 formula, rounded once
      for (const fn of ['geluTanh', 'geluTanhGrad'] as const) {
        const want = Float32Array.from(xs, x => unaryFns[fn]!(x))
        t.same(bitDiffs(wasm[fn]!, want).length, 0, `${fn} is the float64 reference rounded to float32`)
      }
    }
  }
  // the default mode takes the WebAssembly path only above a size; both sides of it give the same bits
  await configureCpuWasm({ mode: 'auto', threads: 1 })
  for (const n of [1023, 1024, 1025]) {
    const x = xs.subarray(GRID / 2 - 600, GRID / 2 - 600 + n)
    const y = float32Gelu('gelu', cpu(Float32Array.from(x)))!.values as Float32Array
    t.same(bitDiffs(y, loops.gelu!.subarray(GRID / 2 - 600, GRID / 2 - 600 + n)).length, 0, `auto mode, ${n} elements`)
  }
})
