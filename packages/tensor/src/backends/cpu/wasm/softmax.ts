import { MAX_JOBS } from './pool.js'
import { wasmMode, wasmRuntime } from './runtime.js'
import { SM_OUT_ARGS, SM_STATS_ARGS } from './softmaxModule.js'

export type RowOp = 'softmax' | 'logSoftmax' | 'logSumExp'

/** Below this many elements the TypeScript loop is as fast once the copies in and out are counted. */
export const WASM_MIN_ELEMENTS = 4096
/** Below this many elements waking workers costs more than it saves. */
export const THREAD_MIN_ELEMENTS = 1 << 16

const align = (x: number): number => (x + 63) & ~63

/**
 * softmax / logSoftmax over each contiguous row of `cols` float32 values, or logSumExp of each row, through the
 * WebAssembly kernel (float64 lanes). Rows whose max is not finite (NaN, ±Infinity) are handed to `fallbackRow`,
 * which writes that row's result into `out` the way the TypeScript kernel does. Undefined when the WebAssembly
 * path does not apply; the caller then runs its own loop.
 */
export function wasmRowSoftmax(x: Float32Array, rows: number, cols: number, op: RowOp, fallbackRow: (row: number, out: Float32Array) => void): Float32Array | undefined {
  if (rows === 0 || cols === 0) return undefined
  const size = rows * cols
  if (wasmMode() !== 'force' && size < WASM_MIN_ELEMENTS) return undefined
  const rt = wasmRuntime()
  if (!rt) return undefined
  const stats = 64
  const xPtr = align(stats + rows * 16)
  const outPtr = align(xPtr + size * 4)
  const total = op === 'logSumExp' ? outPtr : outPtr + size * 4
  if (total >= 2 ** 31 || !rt.reserve(total)) return undefined
  rt.f32().set(x, xPtr >> 2)

  const threads = rt.threads()
  const parallel = threads > 1 && size >= THREAD_MIN_ELEMENTS
  const rowsPerJob = parallel ? Math.max(1, Math.ceil(rows / (8 * threads)), Math.ceil(rows / MAX_JOBS)) : rows
  const jobs = Math.ceil(rows / rowsPerJob)
  const statsArgs = [xPtr, rows, cols, rowsPerJob, stats]
  if (statsArgs.length !== SM_STATS_ARGS) throw new Error('sm_stats: argument count')
  rt.run('sm_stats', jobs, statsArgs, parallel)

  const st = new Float64Array(rt.memory.buffer, stats, rows * 2)
  if (op === 'logSumExp') {
    const out = new Float32Array(rows)
    for (let r = 0; r < rows; r++) {
      const s = st[2 * r + 1]!
      if (s < 0) fallbackRow(r, out)
      else out[r] = st[2 * r]! + Math.log(s)
    }
    return out
  }
  if (op === 'logSoftmax') for (let r = 0; r < rows; r++) if (st[2 * r + 1]! >= 0) st[2 * r + 1] = Math.log(st[2 * r + 1]!)
  const outArgs = [xPtr, outPtr, rows, cols, rowsPerJob, stats, op === 'logSoftmax' ? 1 : 0]
  if (outArgs.length !== SM_OUT_ARGS) throw new Error('sm_out: argument count')
  rt.run('sm_out', jobs, outArgs, parallel)
  const out = rt.f32().slice(outPtr >> 2, (outPtr >> 2) + size)
  const st2 = new Float64Array(rt.memory.buffer, stats, rows * 2)
  for (let r = 0; r < rows; r++) if (st2[2 * r + 1]! < 0) fallbackRow(r, out)
  return out
}
