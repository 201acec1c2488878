import { wasmApi, type WasmMemory, type WasmModule } from './api.js'
import { wasmFeatures } from './features.js'
import { kernelModule } from './matmulModule.js'
import type { WasmModulePart } from './module.js'
import { nodeWorkerHost, webWorkerHost, WorkerPool, type WorkerHost } from './pool.js'
import { ArgumentError, ValueError } from '../../../errors.js'
import { isTensor } from '../../../Tensor.js'
import { knownOptions, nonNegativeInt } from '../../../validate.js'

/**
 * The WebAssembly side of the CPU backend: one kernel module instance over one memory that every call uses as
 * scratch (operands are packed into it, results copied out), plus an optional worker pool over the same memory.
 *
 * Settings come from `configureCpuWasm` or, when it was not called, the environment:
 * - HEED_CPU_WASM: `0` keeps every kernel in TypeScript; `1` uses WebAssembly at every size (tests run the op
 *   suite through it that way); unset: WebAssembly above a size threshold.
 * - HEED_CPU_THREADS: threads including the calling one (default: the machine's cores, at most 8); 1 = no workers.
 * - HEED_CPU_RELAXED: `0` forbids relaxed-SIMD FMA even where the runtime has it.
 */

export type WasmMode = 'auto' | 'off' | 'force'

export interface CpuWasmOptions {
  /** `'auto'` (default: WebAssembly above a size threshold), `'off'` (TypeScript kernels only) or `'force'` (WebAssembly at every size); overrides HEED_CPU_WASM. */
  readonly mode?: WasmMode
  /** Threads including the calling one (default: the machine's cores, at most 8; 1 = no workers); overrides HEED_CPU_THREADS. */
  readonly threads?: number
  /** Allow relaxed-SIMD FMA where the runtime has it (default true); overrides HEED_CPU_RELAXED. */
  readonly relaxed?: boolean
  /** Where workers come from (default: worker_threads in Node, Web Workers in browsers). */
  readonly host?: WorkerHost
}

const env = (key: string): string | undefined => (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[key]

interface Settings {
  mode: WasmMode
  threads: number
  relaxed: boolean
  host: WorkerHost | undefined
}

function defaultThreads(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency
  return Math.max(1, Math.min(8, nodeCores ?? nav ?? 1))
}

// filled in by the async pool start, which can import node:os; until then a pool is not started anyway
let nodeCores: number | undefined

let settings: Settings | undefined
function current(): Settings {
  if (settings) return settings
  const m = env('HEED_CPU_WASM')
  const t = Number(env('HEED_CPU_THREADS'))
  settings = {
    mode: m === '0' || m === 'off' ? 'off' : m === '1' || m === 'force' ? 'force' : 'auto',
    threads: Number.isInteger(t) && t >= 1 ? t : 0,
    relaxed: env('HEED_CPU_RELAXED') !== '0',
    host: undefined,
  }
  return settings
}

/** Exports of the module's own kernels that the pool may run by name; parts add theirs (WasmModulePart.jobs). */
const JOB_NAMES = ['mm_job', 'sm_stats', 'sm_out', 'gl_gelu', 'gl_gelu_grad', 'gl_tanh', 'gl_tanh_grad'] as const
export type JobName = (typeof JOB_NAMES)[number]

/** Parts other packages added to the module, in registration order (the module is built from them). */
const parts: WasmModulePart[] = []

/**
 * Add functions to the CPU kernel module (for kernels in other packages, such as @heed/attention's). Idempotent per
 * part. A runtime built before the part was added is dropped, so the next kernel gets a module that has it; its
 * workers are restarted in the background (kernels meanwhile run on the calling thread), so register a part before
 * its first use rather than at every call when the pool matters. Scratch never outlives a kernel, so nothing is lost.
 */
export function registerWasmModulePart(part: WasmModulePart): void {
  if (parts.includes(part)) return
  if (parts.some(p => p.name === part.name)) throw new Error(`registerWasmModulePart: another part is named ${part.name}`)
  parts.push(part)
  if (runtime === undefined) return
  const p = pool
  pool = undefined
  runtime = undefined
  void p?.close()
}

export interface WasmRuntime {
  readonly memory: WasmMemory
  readonly relaxed: boolean
  readonly shared: boolean
  /** Every export of the module by name: its own kernels' and those of the parts (registerWasmModulePart). */
  readonly exports: Readonly<Record<string, (...args: number[]) => void>>
  /** Make the memory at least `bytes` long; false when it cannot grow that far. */
  reserve(bytes: number): boolean
  f32(): Float32Array
  i32(): Int32Array
  /** Threads available right now (1 until the workers are started). */
  threads(): number
  /**
   * Run exports[name](job, ...args) for job in [0, total): across the pool when `parallel` and there is one.
   * `reset` runs before each attempt (jobs that share state in memory, such as a work counter, start it afresh).
   */
  run(name: JobName | (string & {}), total: number, args: readonly number[], parallel: boolean, reset?: () => void): void
}

let runtime: WasmRuntime | null | undefined
let pool: WorkerPool | undefined
let poolStarting: Promise<void> | undefined

const PAGE = 65536

/**
 * Compiled modules outlive runtimes (a reconfiguration or shutdown drops only the memory and the workers): V8
 * compiles a module with its baseline tier first and optimises hot functions later, so a fresh compile would run
 * its first kernels slower.
 */
const compiled = new Map<string, WasmModule>()

function createRuntime(s: Settings): (WasmRuntime & { module: WasmModule }) | null {
  const feats = wasmFeatures()
  const wa = wasmApi()
  if (!feats.simd || !wa) return null
  const relaxed = s.relaxed && feats.relaxedSimd
  // a shared memory is reserved at its maximum up front; fall back to smaller reservations where address space is
  // short (32-bit browsers)
  for (const shared of feats.sharedMemory ? [true, false] : [false]) {
    for (const maximumPages of [32768, 16384, 4096]) {
      try {
        const memory = new wa.Memory({ initial: 16, maximum: maximumPages, shared })
        const key = `${relaxed}/${shared}/${maximumPages}/${parts.map(p => p.name).join(',')}`
        const module = compiled.get(key) ?? new wa.Module(kernelModule({ relaxed, shared, maximumPages, parts }))
        compiled.set(key, module)
        const inst = new wa.Instance(module, { env: { memory } })
        const exports = inst.exports as unknown as WasmRuntime['exports']
        let f32 = new Float32Array(memory.buffer)
        let i32 = new Int32Array(memory.buffer)
        const refresh = (): void => {
          if (f32.buffer.byteLength !== memory.buffer.byteLength) {
            f32 = new Float32Array(memory.buffer)
            i32 = new Int32Array(memory.buffer)
          }
        }
        const rt: WasmRuntime & { module: WasmModule } = {
          module,
          memory,
          relaxed,
          shared,
          exports,
          reserve(bytes) {
            const have = memory.buffer.byteLength
            if (bytes <= have) return true
            const pages = Math.ceil((bytes - have) / PAGE)
            if (have / PAGE + pages > maximumPages) return false
            try {
              memory.grow(pages)
            } catch {
              return false
            }
            refresh()
            return true
          },
          f32() {
            refresh()
            return f32
          },
          i32() {
            refresh()
            return i32
          },
          threads: () => (pool ? pool.threads : 1),
          run(name, total, args, parallel, reset) {
            if (parallel && pool && total > 1) {
              try {
                reset?.()
                return pool.run(name, total, args)
              } catch {
                // A job failed somewhere. Every job rewrites its whole output, so the dispatch is redone here: a
                // worker-only failure (one that had not yet seen a memory growth, say) costs time, not the result,
                // and a genuine fault throws again below.
              }
            }
            reset?.()
            const fn = exports[name]
            if (!fn) throw new Error(`cpu wasm: the kernel module exports no ${name}`)
            for (let j = 0; j < total; j++) fn(j, ...args)
          },
        }
        return rt
      } catch {
        // next reservation size / private memory
      }
    }
  }
  return null
}

function startPool(rt: WasmRuntime & { module: WasmModule }, s: Settings): void {
  poolStarting = (async () => {
    const host = s.host ?? (await nodeWorkerHost()) ?? webWorkerHost()
    if (!host) return
    if (nodeCores === undefined) {
      try {
        const spec = 'node:os'
        const os = (await import(spec)) as typeof import('node:os')
        nodeCores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
      } catch {
        nodeCores = undefined
      }
    }
    const threads = s.threads || defaultThreads()
    // the runtime may have been reset while this was starting
    const jobs = [...JOB_NAMES, ...parts.flatMap(p => p.jobs)]
    if (threads > 1 && runtime === rt) pool = new WorkerPool(host, rt.module, rt.memory, rt.exports, jobs, threads)
  })()
  poolStarting.catch(() => undefined)
}

/** The runtime, created on first use; null where WebAssembly SIMD is unavailable or the mode is 'off'. */
export function wasmRuntime(): WasmRuntime | null {
  if (current().mode === 'off') return null
  if (runtime === undefined) {
    const rt = createRuntime(current())
    runtime = rt
    if (rt?.shared) startPool(rt, current())
  }
  return runtime
}

export const wasmMode = (): WasmMode => current().mode

/**
 * Change the WebAssembly settings; the runtime and pool are rebuilt on next use. Resolves once the old pool's
 * workers have exited.
 */
export async function configureCpuWasm(opts: CpuWasmOptions): Promise<void> {
  checkCpuWasmOptions(opts)
  const s = current()
  settings = {
    mode: opts.mode ?? s.mode,
    threads: opts.threads ?? s.threads,
    relaxed: opts.relaxed ?? s.relaxed,
    host: opts.host ?? s.host,
  }
  await shutdownCpuWasm()
}

const CPU_WASM_KEYS: Record<keyof CpuWasmOptions, true> = { mode: true, threads: true, relaxed: true, host: true }
const CPU_WASM_OPTIONS = Object.keys(CPU_WASM_KEYS)

/** Every setting checked before any is applied: a bad call leaves the current settings (and pool) as they were. */
function checkCpuWasmOptions(opts: unknown): asserts opts is CpuWasmOptions {
  const op = 'configureCpuWasm'
  const kind = (u: unknown): string => (u === null ? 'null' : Array.isArray(u) ? 'an array' : isTensor(u) ? 'a Tensor' : typeof u)
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || isTensor(opts))
    throw new ArgumentError({ op, arg: 'opts', expected: '{ mode?, threads?, relaxed?, host? }', actual: kind(opts) })
  knownOptions(op, opts, CPU_WASM_OPTIONS)
  const o = opts as CpuWasmOptions
  if (o.mode !== undefined && o.mode !== 'auto' && o.mode !== 'off' && o.mode !== 'force')
    throw new ValueError({ op, arg: 'mode', expected: "'auto', 'off' or 'force'", actual: String(o.mode) })
  // 0 restores the default (the machine's cores, at most 8), as HEED_CPU_THREADS unset does
  if (o.threads !== undefined) nonNegativeInt(op, 'threads', o.threads)
  if (o.relaxed !== undefined && typeof o.relaxed !== 'boolean') throw new ArgumentError({ op, arg: 'relaxed', expected: 'a boolean', actual: kind(o.relaxed) })
  if (o.host !== undefined && (o.host === null || typeof o.host !== 'object' || typeof o.host.spawn !== 'function'))
    throw new ArgumentError({ op, arg: 'host', expected: 'a WorkerHost { spawn(source, data) }', actual: kind(o.host) })
}

/** Resolves when the worker pool (if any) has been started, so that the next large kernel can use it. */
export async function cpuWasmReady(): Promise<{ threads: number; relaxed: boolean; shared: boolean } | null> {
  const rt = wasmRuntime()
  if (!rt) return null
  await poolStarting
  return { threads: rt.threads(), relaxed: rt.relaxed, shared: rt.shared }
}

/** Stop the workers and drop the runtime (its memory is freed with it); the next kernel starts afresh. */
export async function shutdownCpuWasm(): Promise<void> {
  await poolStarting
  const p = pool
  pool = undefined
  poolStarting = undefined
  runtime = undefined
  await p?.close()
}
