/**
 * The ceiling any WebAssembly SIMD128 f32 kernel can reach on this machine, measured rather than assumed: a loop of
 * independent `a = a·m + c` updates on f32x4 registers (no memory traffic, enough chains to hide the mul and add
 * latencies), on one thread and on every core at once. `bench/matmul.ts` prints it beside the kernels, so a ratio
 * against a native library that uses wider vectors (AVX2, AVX-512) can be read against what 128-bit lanes allow.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { wasmApi } from '../packages/tensor/src/backends/cpu/wasm/api.js'
import { ModuleBuilder } from '../packages/tensor/src/backends/cpu/wasm/encoder.js'

/** Independent dependency chains: mul + add latency (≈ 6 cycles) × 2 ports, within x86's 16 vector registers. */
const CHAINS = 12

function peakModule(): Uint8Array<ArrayBuffer> {
  const mod = new ModuleBuilder({ module: 'env', name: 'memory', initialPages: 1, maximumPages: 1, shared: false })
  const { fn } = mod.function(['i32'], ['f32'], 'peak')
  const iters = fn.param(0)
  const acc = Array.from({ length: CHAINS }, () => fn.local('v128'))
  const m = fn.local('v128')
  const c = fn.local('v128')
  fn.f32Const(0.999999).f32x4Splat().set(m).f32Const(1e-6).f32x4Splat().set(c)
  acc.forEach((a, k) => fn.f32Const(1 + k / 64).f32x4Splat().set(a))
  const i = fn.local('i32')
  fn.forRange(i, () => fn.i32Const(0), () => fn.get(iters), 1, () => {
    for (const a of acc) fn.get(a).get(m).f32x4Mul().get(c).f32x4Add().set(a)
  })
  // Fold the chains so none of them is dead code.
  fn.get(acc[0]!)
  for (const a of acc.slice(1)) fn.get(a).f32x4Add()
  fn.f32x4ExtractLane(0)
  return mod.encode()
}

/** FLOPs per loop iteration: every chain does one f32x4 mul and one f32x4 add. */
const FLOPS_PER_ITER = CHAINS * 4 * 2

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads')
const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 })
const { peak } = new WebAssembly.Instance(new WebAssembly.Module(workerData.bytes), { env: { memory } }).exports
peak(workerData.iters / 10)
parentPort.postMessage('ready')
parentPort.once('message', () => {
  const t0 = performance.now()
  const r = peak(workerData.iters)
  parentPort.postMessage({ ms: performance.now() - t0, r })
})
`

export interface SimdPeak {
  /** GFLOP/s of one thread. */
  readonly oneThread: number
  /** GFLOP/s of `threads` threads running at once (the sum). */
  readonly allThreads: number
  readonly threads: number
}

/** Best of `runs` timings of `iters` iterations, on one thread and on `threads` workers started together. */
export async function simdPeak(opts: { readonly threads?: number; readonly iters?: number; readonly runs?: number } = {}): Promise<SimdPeak> {
  const threads = opts.threads ?? availableParallelism()
  const iters = opts.iters ?? 100_000_000
  const runs = opts.runs ?? 3
  const bytes = peakModule()
  const wasm = wasmApi()
  if (wasm === undefined) throw new Error('simdPeak: this runtime has no WebAssembly')
  const memory = new wasm.Memory({ initial: 1, maximum: 1 })
  const { peak } = new wasm.Instance(new wasm.Module(bytes), { env: { memory } }).exports as { peak: (n: number) => number }
  peak(iters / 10)
  let one = 0
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now()
    peak(iters)
    one = Math.max(one, (FLOPS_PER_ITER * iters) / ((performance.now() - t0) * 1e6))
  }
  let all = 0
  for (let r = 0; r < runs; r++) {
    const workers = Array.from({ length: threads }, () => new Worker(workerSource, { eval: true, workerData: { bytes, iters } }))
    try {
      await Promise.all(workers.map(w => new Promise(res => w.once('message', res))))
      const done = workers.map(w => new Promise<{ ms: number }>(res => w.once('message', res)))
      for (const w of workers) w.postMessage('go')
      const times = await Promise.all(done)
      all = Math.max(all, times.reduce((s, t) => s + (FLOPS_PER_ITER * iters) / (t.ms * 1e6), 0))
    } finally {
      await Promise.all(workers.map(w => w.terminate()))
    }
  }
  return { oneThread: one, allThreads: all, threads }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const p = await simdPeak()
  console.log(`WebAssembly SIMD128 f32 mul+add peak: ${p.oneThread.toFixed(1)} GFLOP/s on 1 thread, ${p.allThreads.toFixed(1)} on ${p.threads}`)
}
