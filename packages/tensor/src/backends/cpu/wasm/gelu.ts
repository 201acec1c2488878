import { GELU_ARGS, GELU_JOBS } from './geluModule.js'
import { MAX_JOBS } from './pool.js'
import { wasmMode, wasmRuntime } from './runtime.js'

export type WasmGeluFn = keyof typeof GELU_JOBS

/** Below this many elements the call and the copies in and out cost about what the kernel saves (at 1024 the kernel still runs in half the loop's time). */
export const GELU_WASM_MIN_ELEMENTS = 1024
/** Below this many elements waking workers costs more than it saves (GELU is ~70 f64x2 operations per pair of elements; unmeasured on an idle machine, set by softmax's 2^16 at about twice its work). */
export const GELU_THREAD_MIN_ELEMENTS = 1 << 15

const align = (x: number): number => (x + 63) & ~63

/**
 * out = fn(x), times dy for the derivatives when dy is given, through the WebAssembly kernel (geluModule.ts): the
 * same bits as float32Gelu's loops. False when the WebAssembly path does not apply; the caller then runs its own loop.
 */
export function wasmGelu(fn: WasmGeluFn, x: Float32Array, dy: Float32Array | undefined, out: Float32Array): boolean {
  const n = x.length
  if (n === 0 || (wasmMode() !== 'force' && n < GELU_WASM_MIN_ELEMENTS)) return false
  const rt = wasmRuntime()
  if (!rt) return false
  // address 0 means "no dy" to the kernel, so data starts past it; the result overwrites x in place
  const xPtr = 64
  const dyPtr = dy ? align(xPtr + n * 4) : 0
  const total = dy ? dyPtr + n * 4 : xPtr + n * 4
  if (total >= 2 ** 31 || !rt.reserve(total)) return false
  const mem = rt.f32()
  mem.set(x, xPtr >> 2)
  if (dy) mem.set(dy, dyPtr >> 2)

  const threads = rt.threads()
  const parallel = threads > 1 && n >= GELU_THREAD_MIN_ELEMENTS
  // even job lengths (whole cache lines where there are many), so that only the last job has an odd element
  const perJob = parallel ? Math.max(Math.ceil(n / (4 * threads)), Math.ceil(n / MAX_JOBS) + 16) & ~15 : n + (n & 1)
  const jobs = Math.ceil(n / perJob)
  const args = [xPtr, dyPtr, xPtr, n, perJob]
  if (args.length !== GELU_ARGS) throw new Error('gelu: argument count')
  rt.run(GELU_JOBS[fn], jobs, args, parallel)
  out.set(rt.f32().subarray(xPtr >> 2, (xPtr >> 2) + n))
  return true
}
