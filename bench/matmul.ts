/**
 * C = A·B, float32, square N: heed's CPU backend beside @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD; tfjs runs it
 * single-threaded in Node), measured in the same process. Method as in shared/research/tensor_anchors.md B3:
 * warm-up runs, then the median (and best) of several timed runs, each including the call and the readback into a
 * JS typed array. GFLOP = 2N³/1e9. Results are cross-checked (heed vs tfjs over the whole result, and both vs a
 * float64 reference on a few rows). Writes bench/out/matmul.json.
 *
 * Flags: --sizes=256,512,1024
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-backend-wasm'
import { matmul, memory, tensor } from '@heed/tensor'

interface Timing {
  readonly medianMs: number
  readonly bestMs: number
  readonly runs: number
}

interface Row {
  readonly n: number
  readonly heed: Timing
  readonly tfjsWasm: Timing
  /** max |heed − tfjs| over the whole result */
  readonly maxAbsDiff: number
  /** max |x − float64 reference| over the checked rows */
  readonly heedErr: number
  readonly tfjsErr: number
}

/** Fixed LCG so every run multiplies the same matrices. */
function lcgArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = s / 2 ** 31 - 1
  }
  return out
}

async function time(fn: () => Promise<void>, warmup: number, runs: number): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn()
  const ms: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await fn()
    ms.push(performance.now() - t0)
  }
  ms.sort((x, y) => x - y)
  return { medianMs: ms[Math.floor(ms.length / 2)]!, bestMs: ms[0]!, runs }
}

/** float64 reference for row `i` of A·B. */
function refRow(a: Float32Array, b: Float32Array, n: number, i: number): Float64Array {
  const row = new Float64Array(n)
  for (let p = 0; p < n; p++) {
    const x = a[i * n + p]!
    for (let j = 0; j < n; j++) row[j]! += x * b[p * n + j]!
  }
  return row
}

const gflops = (n: number, ms: number): number => (2 * n ** 3) / (ms * 1e6)

export async function run(flags: readonly string[]): Promise<void> {
  const sizesFlag = flags.find(f => f.startsWith('--sizes='))
  const sizes = sizesFlag ? sizesFlag.slice('--sizes='.length).split(',').map(Number) : [256, 512, 1024]

  // The wasm binaries are found next to the package's own module in Node, so no setWasmPaths is needed.
  await tf.setBackend('wasm')
  await tf.ready()
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT')
  const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')

  const rows: Row[] = []
  const started = performance.now()
  for (const n of sizes) {
    const av = lcgArray(n * n, 1)
    const bv = lcgArray(n * n, 2)
    // fewer repetitions where one heed run takes most of a second
    const warmup = n >= 1024 ? 1 : 2
    const runs = n >= 1024 ? 5 : n >= 512 ? 7 : 9

    const ha = tensor(av, [n, n])
    const hb = tensor(bv, [n, n])
    let heedOut: Float32Array = new Float32Array(0)
    const heed = await time(
      async () => {
        const c = matmul(ha, hb)
        heedOut = await c.data()
        c.dispose()
      },
      warmup,
      runs,
    )

    const ta = tf.tensor2d(av, [n, n])
    const tb = tf.tensor2d(bv, [n, n])
    let tfOut: Float32Array = new Float32Array(0)
    const tfjsWasm = await time(
      async () => {
        const c = tf.matMul(ta, tb)
        tfOut = (await c.data()) as Float32Array
        c.dispose()
      },
      Math.max(warmup, 2),
      Math.max(runs, 9),
    )
    ha.dispose()
    hb.dispose()
    ta.dispose()
    tb.dispose()

    let maxAbsDiff = 0
    for (let i = 0; i < n * n; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(heedOut[i]! - tfOut[i]!))
    let heedErr = 0
    let tfjsErr = 0
    for (const i of [0, n >> 1, n - 1]) {
      const ref = refRow(av, bv, n, i)
      for (let j = 0; j < n; j++) {
        heedErr = Math.max(heedErr, Math.abs(heedOut[i * n + j]! - ref[j]!))
        tfjsErr = Math.max(tfjsErr, Math.abs(tfOut[i * n + j]! - ref[j]!))
      }
    }
    rows.push({ n, heed, tfjsWasm, maxAbsDiff, heedErr, tfjsErr })
  }
  const totalS = (performance.now() - started) / 1000

  const f = (x: number): string => x.toFixed(2).padStart(7)
  const e = (x: number): string => x.toExponential(1).padStart(8)
  console.log(`\nmatmul float32, C = A·B (N×N), GFLOP/s = 2N³/time; time includes the call and readback`)
  console.log(`${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; tfjs-backend-wasm ${tf.version_core}: simd ${simd}, threads ${threads}`)
  console.log('')
  console.log('     N | heed cpu median   best | tfjs-wasm median   best | wasm/heed | max|heed-tfjs| | err vs f64 heed  tfjs')
  console.log('-------+-----------------------+-------------------------+-----------+----------------+---------------------')
  for (const r of rows) {
    const hm = gflops(r.n, r.heed.medianMs)
    const tm = gflops(r.n, r.tfjsWasm.medianMs)
    console.log(
      `${String(r.n).padStart(6)} | ${f(hm)}        ${f(gflops(r.n, r.heed.bestMs))} | ${f(tm)}          ${f(gflops(r.n, r.tfjsWasm.bestMs))} | ${(tm / hm).toFixed(1).padStart(8)}× | ${e(r.maxAbsDiff)}       | ${e(r.heedErr)} ${e(r.tfjsErr)}`,
    )
  }
  console.log(`\nruns: heed ${rows.map(r => r.heed.runs).join('/')}, tfjs ${rows.map(r => r.tfjsWasm.runs).join('/')} (after warm-up); total ${totalS.toFixed(1)} s; heed tensors live after: ${memory().tensors}`)

  const out = join(dirname(fileURLToPath(import.meta.url)), 'out', 'matmul.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model,
        cores: cpus().length,
        tfjs: { version: tf.version_core, simd, threads },
        rows: rows.map(r => ({
          ...r,
          heedGflops: { median: gflops(r.n, r.heed.medianMs), best: gflops(r.n, r.heed.bestMs) },
          tfjsWasmGflops: { median: gflops(r.n, r.tfjsWasm.medianMs), best: gflops(r.n, r.tfjsWasm.bestMs) },
        })),
      },
      null,
      2,
    ),
  )
  console.log(`wrote ${out}`)
}
