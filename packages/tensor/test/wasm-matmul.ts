import { setFlagsFromString } from 'node:v8'
import t, { type Test } from 'tap'
import { matmul, memory, tensor, type DType } from '@heed/tensor'
import { wasmApi } from '../src/backends/cpu/wasm/api.js'
import { wasmFeatures } from '../src/backends/cpu/wasm/features.js'
import { kernelModule } from '../src/backends/cpu/wasm/matmulModule.js'
import { ModuleBuilder } from '../src/backends/cpu/wasm/encoder.js'
import { nodeWorkerHost, WorkerPool, type WorkerHost } from '../src/backends/cpu/wasm/pool.js'
import { configureCpuWasm, cpuWasmReady, shutdownCpuWasm } from '../src/backends/cpu/wasm/runtime.js'
import { linalgKernels } from '../src/backends/cpu/kernels/linalg.js'
import { wasmGemm } from '../src/backends/cpu/wasm/matmul.js'
import { prng, randomArray, sizeOf } from './helpers/numeric.js'

// Node 20 ships relaxed SIMD behind a flag (later versions by default): turning it on before the first probe lets
// this file exercise the FMA variant where the engine has one, and the mul+add one by configuration.
try {
  setFlagsFromString('--experimental-wasm-relaxed-simd')
} catch {
  // unknown flag on a newer V8: relaxed SIMD is then on by default
}

interface Operand {
  readonly v: Float32Array
  readonly shape: readonly number[]
}

/** The TypeScript kernel (float64 accumulation), and the WebAssembly one, called directly on the same operands. */
const kernel = (a: Operand, b: Operand, tA: boolean, tB: boolean) =>
  linalgKernels['MatMul']!(
    [
      { values: a.v, shape: a.shape, dtype: 'float32' },
      { values: b.v, shape: b.shape, dtype: 'float32' },
    ],
    { transposeA: tA, transposeB: tB },
  ) as { values: Float32Array; shape: readonly number[] }

/** numpy matmul in float64 (or with `round` after every operation: the naive float32 loop). */
function reference(a: Operand, b: Operand, tA: boolean, tB: boolean, round: (x: number) => number = x => x): { v: number[]; shape: number[] } {
  const ra = a.shape.length
  const rb = b.shape.length
  const m = a.shape[ra - (tA ? 1 : 2)]!
  const k = a.shape[ra - (tA ? 2 : 1)]!
  const n = b.shape[rb - (tB ? 2 : 1)]!
  const ab = a.shape.slice(0, -2)
  const bb = b.shape.slice(0, -2)
  const r = Math.max(ab.length, bb.length)
  const pa = [...new Array<number>(r - ab.length).fill(1), ...ab]
  const pb = [...new Array<number>(r - bb.length).fill(1), ...bb]
  const batch = pa.map((d, i) => (d === 1 ? pb[i]! : d))
  const out: number[] = []
  for (let z = 0; z < sizeOf(batch); z++) {
    let rem = z
    let za = 0
    let zb = 0
    let sa = 1
    let sb = 1
    for (let d = r - 1; d >= 0; d--) {
      const idx = rem % batch[d]!
      rem = Math.floor(rem / batch[d]!)
      if (pa[d] !== 1) za += idx * sa
      if (pb[d] !== 1) zb += idx * sb
      sa *= pa[d]!
      sb *= pb[d]!
    }
    const A = (i: number, p: number): number => a.v[za * m * k + (tA ? p * m + i : i * k + p)]!
    const B = (p: number, j: number): number => b.v[zb * k * n + (tB ? j * k + p : p * n + j)]!
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0
        for (let p = 0; p < k; p++) acc = round(acc + round(A(i, p) * B(p, j)))
        out.push(acc)
      }
  }
  return { v: out, shape: [...batch, m, n] }
}

const maxAbsErr = (x: ArrayLike<number>, y: ArrayLike<number>): number => {
  let e = 0
  for (let i = 0; i < x.length; i++) e = Math.max(e, Math.abs(x[i]! - y[i]!))
  return x.length === y.length ? e : Infinity
}

/** The float32 policy of matmul.ts: at most twice the naive float32 loop's error against float64, plus slack. */
function checkF32(t: Test, got: ArrayLike<number>, a: Operand, b: Operand, tA: boolean, tB: boolean, msg: string): void {
  const ref64 = reference(a, b, tA, tB)
  const ref32 = reference(a, b, tA, tB, Math.fround)
  const scale = Math.max(1, ...ref64.v.map(Math.abs))
  const bound = 2 * maxAbsErr(ref32.v, ref64.v) + 1e-7 * scale
  const err = maxAbsErr(got, ref64.v)
  t.ok(err <= bound, `${msg}: error ${err.toExponential(2)} within ${bound.toExponential(2)}`)
}

const operand = (rand: () => number, shape: readonly number[], lo = -1, hi = 1): Operand => ({ v: Float32Array.from(randomArray(rand, sizeOf(shape), lo, hi)), shape })

// [a stored shape, b stored shape, transposeA, transposeB]: sizes off every panel multiple (4 rows, 8 columns),
// k across the 256-deep block, batched and broadcast operands, and some large enough for the worker pool.
const CASES: readonly (readonly [number[], number[], boolean, boolean])[] = [
  [[1, 1], [1, 1], false, false],
  [[3, 5], [5, 7], false, false],
  [[13, 17], [17, 9], true, false],
  [[13, 17], [9, 17], false, true],
  [[17, 13], [9, 17], true, true],
  [[67, 300], [300, 33], false, false],
  [[2, 1, 5, 6], [3, 6, 4], false, false],
  [[3, 31, 40], [23, 40], false, true],
  [[41, 29], [2, 41, 15], true, false],
  [[130, 513], [513, 70], false, false],
  [[2, 67, 300], [300, 129], false, false],
  [[300, 67], [2, 129, 300], true, true],
  // a linear layer on [B, T, d] (one W for every batch: one product over all B·T rows), ragged T
  [[5, 37, 20], [20, 19], false, false],
  [[4, 6, 33, 24], [40, 24], false, true],
  // at most 4 rows of A (a decode step): the matrix–vector kernels, which read B unpacked; n off 32, 4 and 1,
  // k = 1, n = 1, k off 4 for the transposed dot products, batches folded into one row
  [[1, 128], [128, 515], false, false],
  [[4, 70], [70, 37], false, false],
  [[3, 1], [1, 37], false, false],
  [[4, 77], [77, 1], false, false],
  [[2, 129], [67, 129], false, true],
  [[4, 3], [5, 3], false, true],
  [[1, 1], [6, 1], false, true],
  [[1, 1, 130], [130, 45], false, false],
  [[2, 1, 64], [1, 64], false, true],
  [[1, 2000], [2000, 33], false, false],
  [[40, 3], [40, 11], true, false],
]

async function suite(t: Test, label: string): Promise<void> {
  const rand = prng(3)
  for (const [sa, sb, tA, tB] of CASES) {
    const a = operand(rand, sa)
    const b = operand(rand, sb)
    const msg = `${label} [${sa}]${tA ? 'ᵀ' : ''}·[${sb}]${tB ? 'ᵀ' : ''}`
    const got = kernel(a, b, tA, tB)
    t.same(got.shape, reference(a, b, tA, tB).shape, `${msg} shape`)
    checkF32(t, got.values, a, b, tA, tB, msg)
  }
}

t.teardown(shutdownCpuWasm)

t.test('generated modules validate', async t => {
  const wa = wasmApi()!
  const f = wasmFeatures()
  t.ok(f.simd, 'this Node has WebAssembly SIMD')
  t.ok(wa.validate(kernelModule({ relaxed: false, shared: false, maximumPages: 16 })), 'mul+add, private memory')
  t.ok(wa.validate(kernelModule({ relaxed: false, shared: true, maximumPages: 16 })), 'mul+add, shared memory')
  t.equal(wa.validate(kernelModule({ relaxed: true, shared: false, maximumPages: 16 })), f.relaxedSimd, 'relaxed variant validates exactly where detection says so')
})

t.test('WebAssembly vs TypeScript vs float64, one thread', async t => {
  await configureCpuWasm({ mode: 'force', threads: 1, relaxed: false })
  const info = await cpuWasmReady()
  t.same(info && { threads: info.threads, relaxed: info.relaxed }, { threads: 1, relaxed: false })
  await suite(t, 'wasm 1t')
  await configureCpuWasm({ mode: 'off' })
  t.equal(await cpuWasmReady(), null, 'off: no runtime')
  await suite(t, 'ts')
})

t.test('worker pool', async t => {
  // a host that counts the workers it starts: how a Web Worker host would plug in
  const node = (await nodeWorkerHost())!
  let spawned = 0
  const host: WorkerHost = {
    spawn: (src, data) => {
      spawned++
      return node.spawn(src, data)
    },
  }
  await configureCpuWasm({ mode: 'force', threads: 3, relaxed: false, host })
  const info = await cpuWasmReady()
  t.equal(info?.threads, 3)
  t.equal(spawned, 2, 'threads − 1 workers: the caller is the third')
  await suite(t, 'wasm 3t')
  // many small batches: jobs spread over batches rather than rows
  const rand = prng(9)
  const a = operand(rand, [40, 33, 20])
  const b = operand(rand, [40, 20, 37])
  checkF32(t, kernel(a, b, false, false).values, a, b, false, false, 'batched 40× 33×20·20×37')
})

t.test('pool runs every job once, and reports a job that traps', async t => {
  const wa = wasmApi()!
  // job(j, at, trapAt): mem[at + 4j] += j + 1, then 1 / (j − trapAt), which traps at j = trapAt
  const mod = new ModuleBuilder({ module: 'env', name: 'memory', initialPages: 1, maximumPages: 1, shared: true })
  const f = mod.function(['i32', 'i32', 'i32'], [], 'job').fn
  const [j, at, trapAt] = [f.param(0), f.param(1), f.param(2)]
  const addr = f.local('i32')
  f.get(j).i32Const(2).i32Shl().get(at).i32Add().set(addr)
  f.get(addr).get(addr).i32Load().get(j).i32Const(1).i32Add().i32Add().i32Store()
  f.i32Const(1).get(j).get(trapAt).i32Sub().i32DivS().drop()
  const module = new wa.Module(mod.encode())
  const memory = new wa.Memory({ initial: 1, maximum: 1, shared: true })
  const inst = new wa.Instance(module, { env: { memory } })
  const pool = new WorkerPool((await nodeWorkerHost())!, module, memory, inst.exports, ['job'], 3)
  try {
    const mem = new Int32Array(memory.buffer)
    for (let round = 0; round < 20; round++) pool.run('job', 1000, [64, -1])
    t.ok(Array.from({ length: 1000 }, (_, i) => mem[16 + i] === 20 * (i + 1)).every(Boolean), '20 dispatches × 1000 jobs: each ran exactly once per dispatch')
    t.throws(() => pool.run('job', 50, [8192, 7]), /job failed/, 'a trapping job fails the dispatch')
    pool.run('job', 10, [16384, -1])
    t.equal(mem[4096 + 9], 10, 'the pool still works afterwards')
  } finally {
    await pool.close()
  }
})

t.test('a result larger than the scratch bound is computed in slices', async t => {
  for (const threads of [1, 2]) {
    await configureCpuWasm({ mode: 'force', threads, relaxed: false })
    await cpuWasmReady()
    const rand = prng(17)
    // [3, 37, 9]ᵀ·[9, 45] with B broadcast: slices of whole batches, then of row panels within one batch
    const a = operand(rand, [3, 9, 37])
    const b = operand(rand, [9, 45])
    const ref = kernel(a, b, true, false)
    for (const scratchBytes of [2 * 40 * 48 * 4, 3 * 4 * 48 * 4, 1]) {
      const got = wasmGemm({ a: a.v, b: b.v, m: 37, k: 9, n: 45, transA: true, transB: false, batches: 3, ib: new Int32Array(3), scratchBytes })!
      checkF32(t, got, a, b, true, false, `${threads}t, scratch ${scratchBytes} bytes`)
      t.same(got, ref.values, 'same values as in one piece')
    }
  }
})

t.test('relaxed-SIMD FMA where detected', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2, relaxed: true })
  const info = await cpuWasmReady()
  t.equal(info?.relaxed, wasmFeatures().relaxedSimd, 'FMA used exactly when the runtime has it')
  await suite(t, info?.relaxed ? 'wasm fma' : 'wasm (no relaxed SIMD here)')
})

t.test('through the op layer: float32, float16, adversarial magnitudes, memory', async t => {
  await configureCpuWasm({ mode: 'force', threads: 2, relaxed: true })
  await cpuWasmReady()
  const base = memory().tensors
  const rand = prng(5)
  // six decades of exponents with mixed signs, and a long dot product
  const a = operand(rand, [8, 2000], -1e3, 1e3)
  const spread = { v: a.v.map((x, i) => Math.fround(x * 10 ** ((i % 7) - 3))), shape: a.shape }
  const b = operand(rand, [2000, 9])
  const ta = tensor(spread.v, [8, 2000])
  const tb = tensor(b.v, [2000, 9])
  const y = matmul(ta, tb)
  checkF32(t, await y.data(), spread, b, false, false, 'float32 [8,2000]·[2000,9], magnitudes 1e-3…1e3')
  // the same magnitudes through the matrix–vector kernels (≤ 4 rows), B as stored and transposed
  for (const rows of [1, 3]) {
    const a1 = { v: spread.v.slice(0, rows * 2000), shape: [rows, 2000] }
    const bt = { v: new Float32Array(9 * 2000), shape: [9, 2000] }
    for (let p = 0; p < 2000; p++) for (let j = 0; j < 9; j++) bt.v[j * 2000 + p] = b.v[p * 9 + j]!
    const t1 = tensor(a1.v, [rows, 2000])
    const tbt = tensor(bt.v, [9, 2000])
    const y1 = matmul(t1, tb)
    const y2 = matmul(t1, tbt, { transposeB: true })
    checkF32(t, await y1.data(), a1, b, false, false, `float32 [${rows},2000]·[2000,9], magnitudes 1e-3…1e3 (gemv)`)
    checkF32(t, await y2.data(), a1, bt, false, true, `float32 [${rows},2000]·[9,2000]ᵀ, magnitudes 1e-3…1e3 (gemv)`)
    for (const v of [t1, tbt, y1, y2]) v.dispose()
  }
  for (const dtype of ['float16'] as DType[]) {
    const x = operand(rand, [33, 70])
    const w = operand(rand, [70, 21])
    const tx = tensor(x.v, [33, 70], dtype)
    const tw = tensor(w.v, [70, 21], dtype)
    const z = matmul(tx, tw)
    const xs = { v: Float32Array.from(await tx.data()), shape: x.shape }
    const ws = { v: Float32Array.from(await tw.data()), shape: w.shape }
    const ref = reference(xs, ws, false, false).v
    const got = await z.data()
    t.ok(maxAbsErr(got, ref) <= 1e-3 * Math.sqrt(70) + 2 ** -10 * Math.max(...ref.map(Math.abs)), `${dtype} within half-precision tolerance`)
    for (const v of [tx, tw, z]) v.dispose()
  }
  for (const v of [ta, tb, y]) v.dispose()
  t.equal(memory().tensors, base, 'memory back to baseline')
})

t.test('HEED_CPU_WASM=0 keeps float64-accumulated results bit for bit', async t => {
  // the TypeScript path accumulates in float64 and rounds once: its float32 result is the rounded exact-ish sum
  await configureCpuWasm({ mode: 'off' })
  const rand = prng(13)
  const a = operand(rand, [9, 40])
  const b = operand(rand, [40, 7])
  const got = kernel(a, b, false, false).values
  t.same(Array.from(got), reference(a, b, false, false).v.map(Math.fround))
  await configureCpuWasm({ mode: 'auto' })
})
