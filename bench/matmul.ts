/**
 * C = A·B, float32, square N, in one process: heed's CPU backend (WebAssembly SIMD kernel on all threads, on one
 * thread, and the TypeScript kernel), heed's WebGPU backend (both matmul kernels), and peers:
 * @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD; single-threaded in Node), onnxruntime-web's wasm EP (1 and 2
 * threads), onnxruntime-node's CPU EP (MLAS; 1 thread and its default), and on the same WebGPU adapter
 * @tensorflow/tfjs-backend-webgpu, @jax-js/jax (webgpu device) and onnxruntime-node's WebGPU execution provider
 * (its own bundled Dawn). Method: warm-up runs, then the median (and
 * best) of several timed runs, each including the call and the readback into a JS typed array. GFLOP = 2N³/1e9.
 * Every result is cross-checked against heed's CPU result over the whole matrix and against a float64 reference
 * on a few rows. A peer that fails to load or run is reported as `n/a (reason)`. Writes bench/out/matmul.json and
 * bench/out/matmul.md (machine info, median with min–max spread, and heed's ratios to the CPU peers).
 *
 * Flags: --sizes=256,512,1024; --quick (peers other than heed skip N > 512); --cpu (CPU implementations only);
 * --runs=N (timed runs per size, default 5/7/9 for N ≥ 1024 / ≥ 512 / smaller).
 */
/// <reference types="@webgpu/types" />
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { simdPeak } from './simdPeak.js'
import { createRequire } from 'node:module'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-backend-wasm'
import { getBackend, matmul, memory, setBackend, tensor } from '@heed/tensor'
import { configureCpuWasm, cpuWasmReady, type CpuWasmOptions } from '../packages/tensor/src/backends/cpu/wasm/runtime.js'
import { machineInfo, machineLine } from './machine.js'
import { onnxModel, type OrtModule } from './onnx.js'

interface Timing {
  /** median process CPU time (all threads) per run: robust to other load on a shared machine */
  readonly cpuMs: number
  readonly medianMs: number
  readonly bestMs: number
  readonly worstMs: number
  readonly runs: number
}

/** One matmul of prepared operands, returning the result in host memory. */
interface Prepared {
  readonly run: () => Promise<Float32Array>
  readonly dispose: () => void | Promise<void>
}

interface Impl {
  readonly name: string
  /** Loaded once; a thrown error turns the whole row into `n/a (reason)`. */
  readonly load: () => Promise<void>
  readonly prepare: (n: number, a: Float32Array, b: Float32Array) => Promise<Prepared>
  readonly heed?: boolean
  readonly cpu?: boolean
  /** Filled in by load(): versions, adapter, flags. */
  info?: string
}

interface Cell {
  readonly n: number
  readonly timing?: Timing
  /** best and worst bound the spread of the timed runs */
  readonly gflops?: { readonly median: number; readonly best: number; readonly worst: number; readonly perCpuSecond: number }
  /** max |x − heed cpu| over the whole result */
  readonly maxAbsDiff?: number
  /** max |x − float64 reference| over the checked rows */
  readonly errF64?: number
  readonly skipped?: string
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

async function time(fn: () => Promise<Float32Array>, warmup: number, runs: number): Promise<{ timing: Timing; out: Float32Array }> {
  let out: Float32Array = new Float32Array(0)
  for (let i = 0; i < warmup; i++) out = await fn()
  const ms: number[] = []
  const cpu: number[] = []
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    out = await fn()
    ms.push(performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpu.push((c.user + c.system) / 1000)
  }
  ms.sort((x, y) => x - y)
  cpu.sort((x, y) => x - y)
  const mid = Math.floor(runs / 2)
  return { timing: { cpuMs: cpu[mid]!, medianMs: ms[mid]!, bestMs: ms[0]!, worstMs: ms[ms.length - 1]!, runs }, out }
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

/** Version of an installed package, read from its package.json next to its entry point. */
function pkgVersion(name: string): string {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve(name))
    for (let i = 0; i < 4; i++, dir = dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
        if (pkg.name === name) return pkg.version ?? '?'
      } catch {
        // not this level
      }
    }
  } catch {
    // unresolvable: reported as '?'
  }
  return '?'
}

const gflops = (n: number, ms: number): number => (2 * n ** 3) / (ms * 1e6)
const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 100)

// ---- WebGPU in Node for the peers -------------------------------------------------------------------------------

let gpuReady: Promise<void> | undefined
/**
 * tfjs-webgpu and jax-js look for `navigator.gpu` and the GPU* globals, which Node lacks: install Dawn's (from the
 * `webgpu` package) in this process only. heed's backend then finds the same navigator.gpu.
 */
function nodeWebGpu(): Promise<void> {
  gpuReady ??= (async () => {
    const spec = 'webgpu'
    const { create, globals } = (await import(spec)) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> }
    Object.assign(globalThis, globals)
    const g = globalThis as { navigator?: { gpu?: GPU } }
    if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]), userAgent: 'node' }, configurable: true })
  })()
  return gpuReady
}

async function adapterName(): Promise<string> {
  const a = await (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu.requestAdapter()
  const i = a?.info
  return i ? `${i.vendor} ${i.architecture} (${i.description || i.device})` : 'no adapter'
}

// ---- implementations ------------------------------------------------------------------------------------------

function heedImpl(name: string, backend: 'cpu' | 'webgpu', variant?: 'register' | 'tiled'): Impl {
  return {
    name,
    heed: true,
    load: async () => {
      if (backend === 'webgpu') {
        await nodeWebGpu()
        await setBackend('webgpu')
        await setBackend('cpu')
      }
    },
    prepare: async (n, av, bv) => {
      await setBackend(backend)
      if (variant) process.env['HEED_WEBGPU_MATMUL'] = variant
      else delete process.env['HEED_WEBGPU_MATMUL']
      const a = tensor(av, [n, n])
      const b = tensor(bv, [n, n])
      return {
        run: async () => {
          const c = matmul(a, b)
          const out = await c.data()
          c.dispose()
          return out as Float32Array
        },
        dispose: async () => {
          a.dispose()
          b.dispose()
          delete process.env['HEED_WEBGPU_MATMUL']
          if (getBackend() !== 'cpu') await setBackend('cpu')
        },
      }
    },
  }
}

/** heed's CPU backend under given WebAssembly settings (restored to the defaults after each size). */
function heedCpuImpl(name: string, opts: CpuWasmOptions): Impl {
  const base = heedImpl(name, 'cpu')
  const impl: Impl = {
    ...base,
    cpu: true,
    load: async () => {
      await configureCpuWasm(opts)
      const ready = await cpuWasmReady()
      impl.info = ready ? `WebAssembly SIMD, ${ready.threads} thread(s), relaxed-SIMD FMA ${ready.relaxed ? 'on' : 'off'}` : 'TypeScript kernel (float64 accumulation)'
      await configureCpuWasm({ mode: 'auto', threads: 0 })
    },
    prepare: async (n, av, bv) => {
      await configureCpuWasm(opts)
      await cpuWasmReady()
      const p = await base.prepare(n, av, bv)
      return {
        run: p.run,
        dispose: async () => {
          await p.dispose()
          await configureCpuWasm({ mode: 'auto', threads: 0 })
        },
      }
    },
  }
  return impl
}

function tfjsImpl(name: string, backend: 'wasm' | 'webgpu'): Impl {
  const impl: Impl = {
    name,
    cpu: backend === 'wasm',
    load: async () => {
      if (backend === 'webgpu') {
        await nodeWebGpu()
        const spec = '@tensorflow/tfjs-backend-webgpu'
        await import(spec)
      }
      if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') returned false`)
      await tf.ready()
      impl.info =
        backend === 'wasm'
          ? `tfjs ${tf.version_core}: simd ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}`
          : `@tensorflow/tfjs-backend-webgpu ${pkgVersion('@tensorflow/tfjs-backend-webgpu')}`
    },
    prepare: async (n, av, bv) => {
      await tf.setBackend(backend)
      const a = tf.tensor2d(av, [n, n])
      const b = tf.tensor2d(bv, [n, n])
      return {
        run: async () => {
          const c = tf.matMul(a, b)
          const out = (await c.data()) as Float32Array
          c.dispose()
          return out
        },
        dispose: () => {
          a.dispose()
          b.dispose()
        },
      }
    },
  }
  return impl
}

interface JaxArray {
  readonly ref: JaxArray
  data(): Promise<ArrayLike<number>>
  dispose(): void
}
interface JaxModule {
  init(...devices: string[]): Promise<string[]>
  numpy: { array(v: Float32Array, o: { shape: number[]; device?: string }): JaxArray; matmul(a: JaxArray, b: JaxArray): JaxArray }
}

function jaxImpl(): Impl {
  let jax: JaxModule | undefined
  const impl: Impl = {
    name: 'jax-js webgpu',
    load: async () => {
      await nodeWebGpu()
      const spec = '@jax-js/jax'
      jax = (await import(spec)) as JaxModule
      const devices = await jax.init('webgpu')
      if (!devices.includes('webgpu')) throw new Error(`init gave ${devices.join(', ') || 'no devices'}`)
      impl.info = `@jax-js/jax ${pkgVersion('@jax-js/jax')}`
    },
    prepare: async (n, av, bv) => {
      const np = jax!.numpy
      const a = np.array(av, { shape: [n, n], device: 'webgpu' })
      const b = np.array(bv, { shape: [n, n], device: 'webgpu' })
      return {
        // jax-js functions take ownership of their arguments: `.ref` keeps the operands alive across runs
        run: async () => Float32Array.from(await np.matmul(a.ref, b.ref).data()),
        dispose: () => {
          a.dispose()
          b.dispose()
        },
      }
    },
  }
  return impl
}

// A one-node ONNX graph C = MatMul(A, B) with symbolic dims, so the bench needs no ONNX tooling.
const onnxMatMulModel = (): Uint8Array =>
  onnxModel({ name: 'mm', nodes: [{ inputs: ['A', 'B'], output: 'C', op: 'MatMul' }], inputs: { A: ['M', 'K'], B: ['K', 'N'] }, outputs: { C: ['M', 'N'] } })

/** onnxruntime-node with the WebGPU EP, or its CPU EP (MLAS) with `threads` intra-op threads (0: its default). */
/** One ORT session's C = A·B as a timed run: both packages share the Tensor/InferenceSession API. */
function ortPrepared(ort: OrtModule, session: Awaited<ReturnType<OrtModule['InferenceSession']['create']>>, n: number, av: Float32Array, bv: Float32Array) {
  const feeds = { A: new ort.Tensor('float32', av, [n, n]), B: new ort.Tensor('float32', bv, [n, n]) }
  return {
    run: async () => {
      const out = (await session.run(feeds))['C']!
      const data = Float32Array.from(out.data)
      out.dispose?.()
      return data
    },
    dispose: () => undefined,
  }
}

function ortImpl(ep: 'webgpu' | 'cpu', threads = 0): Impl {
  let ort: OrtModule | undefined
  let session: Awaited<ReturnType<OrtModule['InferenceSession']['create']>> | undefined
  const impl: Impl = {
    name: ep === 'webgpu' ? 'onnxruntime-node webgpu' : `onnxruntime-node cpu ${threads ? `${threads}t` : 'default'}`,
    cpu: ep === 'cpu',
    load: async () => {
      const spec = 'onnxruntime-node'
      ort = (await import(spec)) as OrtModule
      session = await ort.InferenceSession.create(onnxMatMulModel(), { executionProviders: [ep], ...(threads ? { intraOpNumThreads: threads } : {}) })
      impl.info = `onnxruntime-node ${pkgVersion('onnxruntime-node')} (${ep === 'webgpu' ? 'WebGPU EP, its own bundled Dawn' : `CPU EP, intraOpNumThreads ${threads || 'default'}`})`
    },
    prepare: async (n, av, bv) => ortPrepared(ort!, session!, n, av, bv),
  }
  return impl
}

interface OrtWebModule extends OrtModule {
  env: { wasm: { numThreads?: number; simd?: boolean } }
}

let ortWeb: OrtWebModule | undefined
/** onnxruntime-web's wasm EP; numThreads is process-global in ORT-web, so each size sets it before its session. */
function ortWebImpl(threads: number): Impl {
  let session: Awaited<ReturnType<OrtModule['InferenceSession']['create']>> | undefined
  const impl: Impl = {
    name: `onnxruntime-web wasm ${threads}t`,
    cpu: true,
    load: async () => {
      const spec = 'onnxruntime-web'
      ortWeb ??= (await import(spec)) as OrtWebModule
      ortWeb.env.wasm.numThreads = threads
      session = await ortWeb.InferenceSession.create(onnxMatMulModel(), { executionProviders: ['wasm'] })
      impl.info = `onnxruntime-web ${pkgVersion('onnxruntime-web')} (wasm EP, numThreads ${threads})`
    },
    prepare: async (n, av, bv) => ortPrepared(ortWeb!, session!, n, av, bv),
  }
  return impl
}

// ---- driver ---------------------------------------------------------------------------------------------------

export async function run(flags: readonly string[]): Promise<void> {
  const sizesFlag = flags.find(f => f.startsWith('--sizes='))
  const sizes = sizesFlag ? sizesFlag.slice('--sizes='.length).split(',').map(Number) : [256, 512, 1024]
  const quick = flags.includes('--quick')
  const cpuOnly = flags.includes('--cpu')
  const runsFlag = Number(flags.find(f => f.startsWith('--runs='))?.slice('--runs='.length))
  const runsFor = (n: number): number => (runsFlag > 0 ? runsFlag : n >= 1024 ? 5 : n >= 512 ? 7 : 9)
  const loadBefore = loadavg()

  const all: Impl[] = [
    heedCpuImpl('heed cpu wasm (all threads)', { mode: 'auto', threads: 0 }),
    heedCpuImpl('heed cpu wasm 1 thread', { mode: 'auto', threads: 1 }),
    heedCpuImpl('heed cpu ts', { mode: 'off' }),
    heedImpl('heed webgpu register', 'webgpu', 'register'),
    heedImpl('heed webgpu tiled', 'webgpu', 'tiled'),
    tfjsImpl('tfjs-backend-wasm', 'wasm'),
    ortWebImpl(2),
    ortImpl('cpu', 1),
    ortImpl('cpu'),
    tfjsImpl('tfjs-backend-webgpu', 'webgpu'),
    jaxImpl(),
    ortImpl('webgpu'),
  ]
  const impls = cpuOnly ? all.filter(i => i.cpu) : all
  const failed = new Map<string, string>()
  for (const impl of impls) {
    try {
      await impl.load()
    } catch (err) {
      failed.set(impl.name, reason(err))
    }
  }
  let adapter = 'n/a'
  if (!cpuOnly) {
    try {
      await nodeWebGpu()
      adapter = await adapterName()
    } catch (err) {
      adapter = `n/a (${reason(err)})`
    }
  }

  const started = performance.now()
  const cells = new Map<string, Cell[]>(impls.map(i => [i.name, []]))
  for (const n of sizes) {
    const av = lcgArray(n * n, 1)
    const bv = lcgArray(n * n, 2)
    const refs = [0, n >> 1, n - 1].map(i => ({ i, row: refRow(av, bv, n, i) }))
    let base: Float32Array | undefined
    // fewer repetitions where one run takes most of a second
    const warmup = n >= 1024 ? 1 : 2
    const runs = runsFor(n)
    for (const impl of impls) {
      const list = cells.get(impl.name)!
      if (failed.has(impl.name)) continue
      if (quick && !impl.heed && n > 512) {
        list.push({ n, skipped: 'skipped (--quick)' })
        continue
      }
      try {
        const prep = await impl.prepare(n, av, bv)
        let res: { timing: Timing; out: Float32Array }
        try {
          // the TypeScript kernel takes about a second at N = 1024: three runs are enough to place it
          res = await time(prep.run, warmup, impl.name === 'heed cpu ts' && n >= 1024 ? Math.min(runs, 3) : runs)
        } finally {
          await prep.dispose()
        }
        base ??= res.out
        let maxAbsDiff = 0
        for (let i = 0; i < n * n; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(res.out[i]! - base[i]!))
        if (res.out.length !== n * n) maxAbsDiff = NaN
        let errF64 = 0
        for (const { i, row } of refs) for (let j = 0; j < n; j++) errF64 = Math.max(errF64, Math.abs(res.out[i * n + j]! - row[j]!))
        const timing = res.timing
        list.push({ n, timing, gflops: { median: gflops(n, timing.medianMs), best: gflops(n, timing.bestMs), worst: gflops(n, timing.worstMs), perCpuSecond: gflops(n, timing.cpuMs) }, maxAbsDiff, errF64 })
      } catch (err) {
        list.push({ n, skipped: `n/a (${reason(err)})` })
      }
    }
  }
  const totalS = (performance.now() - started) / 1000
  const loadAfter = loadavg()

  const machine = { ...machineInfo(loadBefore), adapter }
  const f = (x: number): string => x.toFixed(2).padStart(6)
  const e = (x: number): string => (Number.isNaN(x) ? 'NaN' : x.toExponential(1)).padStart(7)
  const w = 28
  console.log(`\nmatmul float32, C = A·B (N×N), GFLOP/s = 2N³/time; time includes the call and readback; median / best`)
  console.log(`${machine.cores}× ${machine.cpu}, Node ${machine.node}; load average ${loadBefore.map(x => x.toFixed(1)).join(' ')} before, ${loadAfter.map(x => x.toFixed(1)).join(' ')} after; WebGPU adapter: ${adapter}`)
  if (!cpuOnly) console.log(`heed webgpu picks ${/software|llvmpipe/i.test(adapter) ? 'register' : 'tiled'} on this adapter (HEED_WEBGPU_MATMUL overrides)`)
  for (const impl of impls) if (impl.info) console.log(`  ${impl.name}: ${impl.info}`)
  console.log('')
  console.log(`${'implementation'.padEnd(w)} | ${sizes.map(n => `N=${n}`.padEnd(15)).join(' | ')} | max|Δ| vs heed cpu | err vs f64`)
  console.log(`${'-'.repeat(w)}-+-${sizes.map(() => '-'.repeat(15)).join('-+-')}-+--------------------+-----------`)
  for (const impl of impls) {
    const why = failed.get(impl.name)
    if (why) {
      console.log(`${impl.name.padEnd(w)} | n/a (${why})`)
      continue
    }
    const list = cells.get(impl.name)!
    const cols = sizes.map(n => {
      const c = list.find(x => x.n === n)
      return c?.gflops ? `${f(c.gflops.median)} / ${f(c.gflops.best)}` : (c?.skipped ?? '').padEnd(15)
    })
    const diffs = list.filter(c => c.maxAbsDiff !== undefined)
    const maxDiff = diffs.reduce((m, c) => Math.max(m, c.maxAbsDiff!), 0)
    const maxErr = diffs.reduce((m, c) => Math.max(m, c.errF64!), 0)
    console.log(`${impl.name.padEnd(w)} | ${cols.join(' | ')} | ${diffs.length ? e(maxDiff).padEnd(18) : 'n/a'.padEnd(18)} | ${diffs.length ? e(maxErr) : 'n/a'}`)
    for (const c of list) if (c.skipped?.startsWith('n/a')) console.log(`${''.padEnd(w)}   N=${c.n}: ${c.skipped}`)
  }

  // heed's CPU rows against the CPU peers, per size, on medians of this run
  const median = (name: string, n: number): number | undefined => cells.get(name)?.find(c => c.n === n)?.gflops?.median
  const heedRows = impls.filter(i => i.cpu && i.heed && i.name !== 'heed cpu ts').map(i => i.name)
  const peerRows = impls.filter(i => i.cpu && !i.heed).map(i => i.name)
  const ratios: { heed: string; peer: string; n: number; ratio: number }[] = []
  for (const h of heedRows)
    for (const p of peerRows)
      for (const n of sizes) {
        const x = median(h, n)
        const y = median(p, n)
        if (x !== undefined && y !== undefined) ratios.push({ heed: h, peer: p, n, ratio: x / y })
      }
  if (ratios.length > 0) {
    console.log(`\nratios of medians (heed / peer):`)
    for (const h of heedRows)
      for (const p of peerRows) {
        const rs = sizes.map(n => ratios.find(r => r.heed === h && r.peer === p && r.n === n))
        console.log(`  ${h} / ${p}: ${rs.map((r, i) => `N=${sizes[i]} ${r ? `${r.ratio.toFixed(2)}×` : 'n/a'}`).join(', ')}`)
      }
  }
  // What 128-bit lanes allow here, measured in the same run: a ratio against a native library on wider vectors
  // reads against this, not against 1.
  const peak = await simdPeak()
  const peakLine = `WebAssembly SIMD128 f32 ceiling (independent mul+add on registers, no memory): ${peak.oneThread.toFixed(1)} GFLOP/s on 1 thread, ${peak.allThreads.toFixed(1)} on ${peak.threads}`
  console.log(`\n${peakLine}`)
  const runsLine = `runs per size after warm-up: ${sizes.map(runsFor).join('/')} (heed cpu ts at N ≥ 1024: at most 3)`
  console.log(`\n${runsLine}; total ${totalS.toFixed(1)} s; heed tensors live after: ${memory().tensors}`)

  const outDir = join(dirname(fileURLToPath(import.meta.url)), 'out')
  mkdirSync(outDir, { recursive: true })
  const json = join(outDir, 'matmul.json')
  writeFileSync(
    json,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        quick,
        cpuOnly,
        impls: impls.map(i => ({ name: i.name, info: i.info, failed: failed.get(i.name), cells: cells.get(i.name) })),
        ratios,
        simd128Peak: peak,
      },
      null,
      2,
    ),
  )
  const md: string[] = [
    `# matmul float32, C = A·B (N×N)`,
    '',
    `${new Date().toISOString()} — ${machineLine(machine)}${cpuOnly ? '' : `, WebGPU adapter ${adapter}`}.`,
    '',
    `GFLOP/s = 2N³/time, time including the call and the readback into a JS typed array: median, with the min–max of the timed runs in brackets. ${runsLine}.`,
    '',
    `The machine is shared: wall-clock numbers move with other load. The second table divides by the process CPU time instead (all threads summed), which other load hardly moves: for a single-threaded implementation it approximates its uncontended speed, for a multi-threaded one its speed per core.`,
    '',
    `| implementation | ${sizes.map(n => `N=${n}`).join(' | ')} | max abs diff vs first row | max err vs f64 |`,
    `|---|${sizes.map(() => '---|').join('')}---|---|`,
  ]
  for (const impl of impls) {
    const why = failed.get(impl.name)
    if (why) {
      md.push(`| ${impl.name} | ${sizes.map(() => `n/a`).join(' | ')} | ${why.replaceAll('|', '/')} | |`)
      continue
    }
    const list = cells.get(impl.name)!
    const cols = sizes.map(n => {
      const c = list.find(x => x.n === n)
      return c?.gflops ? `${c.gflops.median.toFixed(1)} [${c.gflops.worst.toFixed(1)}–${c.gflops.best.toFixed(1)}]` : (c?.skipped ?? '')
    })
    const diffs = list.filter(c => c.maxAbsDiff !== undefined)
    const maxDiff = diffs.reduce((m, c) => Math.max(m, c.maxAbsDiff!), 0)
    const maxErr = diffs.reduce((m, c) => Math.max(m, c.errF64!), 0)
    md.push(`| ${impl.name} | ${cols.join(' | ')} | ${diffs.length ? maxDiff.toExponential(1) : 'n/a'} | ${diffs.length ? maxErr.toExponential(1) : 'n/a'} |`)
  }
  md.push('', `GFLOP per CPU-second (median run):`, '', `| implementation | ${sizes.map(n => `N=${n}`).join(' | ')} |`, `|---|${sizes.map(() => '---|').join('')}`)
  for (const impl of impls) {
    if (failed.has(impl.name)) continue
    const list = cells.get(impl.name)!
    md.push(`| ${impl.name} | ${sizes.map(n => list.find(x => x.n === n)?.gflops?.perCpuSecond.toFixed(1) ?? '').join(' | ')} |`)
  }
  md.push('', `${peakLine}.`)
  md.push('', 'Implementations:', '', ...impls.filter(i => i.info).map(i => `- ${i.name}: ${i.info}`))
  if (ratios.length > 0) {
    md.push('', '## Ratios of medians (heed / peer)', '', `| heed | peer | ${sizes.map(n => `N=${n}`).join(' | ')} |`, `|---|---|${sizes.map(() => '---|').join('')}`)
    for (const h of heedRows)
      for (const p of peerRows) {
        const rs = sizes.map(n => ratios.find(r => r.heed === h && r.peer === p && r.n === n))
        md.push(`| ${h} | ${p} | ${rs.map(r => (r ? `${r.ratio.toFixed(2)}×` : 'n/a')).join(' | ')} |`)
      }
  }
  const mdPath = join(outDir, 'matmul.md')
  writeFileSync(mdPath, md.join('\n') + '\n')
  console.log(`wrote ${json} and ${mdPath}`)
}
