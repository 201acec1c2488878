/**
 * C = A·B, float32, square N, in one process: heed's CPU backend, heed's WebGPU backend (both matmul kernels), and
 * peers: @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD; single-threaded in Node), and on the same WebGPU adapter
 * @tensorflow/tfjs-backend-webgpu, @jax-js/jax (webgpu device) and onnxruntime-node's WebGPU execution provider
 * (its own bundled Dawn). Method as in shared/research/tensor_anchors.md B3: warm-up runs, then the median (and
 * best) of several timed runs, each including the call and the readback into a JS typed array. GFLOP = 2N³/1e9.
 * Every result is cross-checked against heed's CPU result over the whole matrix and against a float64 reference
 * on a few rows. A peer that fails to load or run is reported as `n/a (reason)`. Writes bench/out/matmul.json.
 *
 * Flags: --sizes=256,512,1024; --quick (peers other than heed skip N > 512).
 */
/// <reference types="@webgpu/types" />
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-backend-wasm'
import { getBackend, matmul, memory, setBackend, tensor } from '@heed/tensor'

interface Timing {
  readonly medianMs: number
  readonly bestMs: number
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
  /** Filled in by load(): versions, adapter, flags. */
  info?: string
}

interface Cell {
  readonly n: number
  readonly timing?: Timing
  readonly gflops?: { readonly median: number; readonly best: number }
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
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    out = await fn()
    ms.push(performance.now() - t0)
  }
  ms.sort((x, y) => x - y)
  return { timing: { medianMs: ms[Math.floor(ms.length / 2)]!, bestMs: ms[0]!, runs }, out }
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

function tfjsImpl(name: string, backend: 'wasm' | 'webgpu'): Impl {
  const impl: Impl = {
    name,
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

// A one-node ONNX graph C = MatMul(A, B) with symbolic dims, encoded by hand (protobuf wire format) so the bench
// needs no ONNX tooling.
function onnxMatMulModel(): Uint8Array {
  const bytes: number[] = []
  const varint = (out: number[], v: number): void => {
    while (v > 0x7f) {
      out.push((v & 0x7f) | 0x80)
      v >>>= 7
    }
    out.push(v)
  }
  const field = (no: number, payload: number[] | string): number[] => {
    const body = typeof payload === 'string' ? [...new TextEncoder().encode(payload)] : payload
    const out: number[] = []
    varint(out, (no << 3) | 2)
    varint(out, body.length)
    return [...out, ...body]
  }
  const int = (no: number, v: number): number[] => {
    const out: number[] = []
    varint(out, no << 3)
    varint(out, v)
    return out
  }
  const dim = (param: string): number[] => field(1, field(2, param))
  const valueInfo = (name: string, d0: string, d1: string): number[] =>
    field(1, name).concat(field(2, field(1, [...int(1, 1 /* FLOAT */), ...field(2, [...dim(d0), ...dim(d1)])])))
  const node = [...field(1, 'A'), ...field(1, 'B'), ...field(2, 'C'), ...field(4, 'MatMul')]
  const graph = [...field(1, node), ...field(2, 'mm'), ...field(11, valueInfo('A', 'M', 'K')), ...field(11, valueInfo('B', 'K', 'N')), ...field(12, valueInfo('C', 'M', 'N'))]
  bytes.push(...int(1, 8), ...field(7, graph), ...field(8, [...field(1, ''), ...int(2, 13)]))
  return Uint8Array.from(bytes)
}

interface OrtTensor {
  readonly data: ArrayLike<number>
  dispose?(): void
}
interface OrtModule {
  Tensor: new (type: string, data: Float32Array, dims: number[]) => OrtTensor
  InferenceSession: { create(model: Uint8Array, opts: object): Promise<{ run(feeds: object): Promise<Record<string, OrtTensor>>; release(): Promise<void> }> }
}

function ortImpl(): Impl {
  let ort: OrtModule | undefined
  let session: Awaited<ReturnType<OrtModule['InferenceSession']['create']>> | undefined
  const impl: Impl = {
    name: 'onnxruntime-node webgpu',
    load: async () => {
      const spec = 'onnxruntime-node'
      ort = (await import(spec)) as OrtModule
      session = await ort.InferenceSession.create(onnxMatMulModel(), { executionProviders: ['webgpu'] })
      impl.info = `onnxruntime-node ${pkgVersion('onnxruntime-node')} (WebGPU EP, its own bundled Dawn)`
    },
    prepare: async (n, av, bv) => {
      const feeds = { A: new ort!.Tensor('float32', av, [n, n]), B: new ort!.Tensor('float32', bv, [n, n]) }
      return {
        run: async () => {
          const out = (await session!.run(feeds))['C']!
          const data = Float32Array.from(out.data)
          out.dispose?.()
          return data
        },
        dispose: () => undefined,
      }
    },
  }
  return impl
}

// ---- driver ---------------------------------------------------------------------------------------------------

export async function run(flags: readonly string[]): Promise<void> {
  const sizesFlag = flags.find(f => f.startsWith('--sizes='))
  const sizes = sizesFlag ? sizesFlag.slice('--sizes='.length).split(',').map(Number) : [256, 512, 1024]
  const quick = flags.includes('--quick')

  const impls: Impl[] = [
    heedImpl('heed cpu', 'cpu'),
    heedImpl('heed webgpu register', 'webgpu', 'register'),
    heedImpl('heed webgpu tiled', 'webgpu', 'tiled'),
    tfjsImpl('tfjs-backend-wasm', 'wasm'),
    tfjsImpl('tfjs-backend-webgpu', 'webgpu'),
    jaxImpl(),
    ortImpl(),
  ]
  const failed = new Map<string, string>()
  for (const impl of impls) {
    try {
      await impl.load()
    } catch (err) {
      failed.set(impl.name, reason(err))
    }
  }
  let adapter = 'n/a'
  try {
    await nodeWebGpu()
    adapter = await adapterName()
  } catch (err) {
    adapter = `n/a (${reason(err)})`
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
    const runs = n >= 1024 ? 5 : n >= 512 ? 7 : 9
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
          res = await time(prep.run, warmup, runs)
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
        list.push({ n, timing, gflops: { median: gflops(n, timing.medianMs), best: gflops(n, timing.bestMs) }, maxAbsDiff, errF64 })
      } catch (err) {
        list.push({ n, skipped: `n/a (${reason(err)})` })
      }
    }
  }
  const totalS = (performance.now() - started) / 1000

  const f = (x: number): string => x.toFixed(2).padStart(6)
  const e = (x: number): string => (Number.isNaN(x) ? 'NaN' : x.toExponential(1)).padStart(7)
  const w = 26
  console.log(`\nmatmul float32, C = A·B (N×N), GFLOP/s = 2N³/time; time includes the call and readback; median / best`)
  console.log(`${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; WebGPU adapter: ${adapter}`)
  console.log(`heed webgpu picks ${/software|llvmpipe/i.test(adapter) ? 'register' : 'tiled'} on this adapter (HEED_WEBGPU_MATMUL overrides)`)
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
  console.log(`\nruns per size after warm-up: ${sizes.map(n => (n >= 1024 ? 5 : n >= 512 ? 7 : 9)).join('/')}; total ${totalS.toFixed(1)} s; heed tensors live after: ${memory().tensors}`)

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
        adapter,
        quick,
        impls: impls.map(i => ({ name: i.name, info: i.info, failed: failed.get(i.name), cells: cells.get(i.name) })),
      },
      null,
      2,
    ),
  )
  console.log(`wrote ${out}`)
}
