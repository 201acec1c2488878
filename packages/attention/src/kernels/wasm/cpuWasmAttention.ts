import { attentionWasmRuntime } from './attentionWasm.js'

/**
 * Attention's float64 inner products (attentionModule.ts), run on the calling thread over the kernel module's
 * memory. Scratch is the memory from byte 0 up to the reserved size; `f64` views it, and stays valid only until
 * something else reserves memory (any other CPU kernel), so a caller uses it within one synchronous kernel.
 */
export interface CpuWasmAttention {
  readonly f64: Float64Array
  /** S[i·ldS + j] = (A_i·B_j)·scale; addresses in bytes, row width n even. */
  dots(a: number, nA: number, b: number, nB: number, n: number, s: number, ldS: number, scale: number): void
  /** C[r·n + d] += Σ_c W[r·ldW + c]·X[c·n + d]; addresses in bytes, row width n even. */
  pv(c: number, w: number, ldW: number, nR: number, nC: number, x: number, n: number): void
}

/**
 * The attention inner products with `bytes` of scratch reserved, or null where WebAssembly is unavailable or off
 * or the memory cannot grow that far (the caller then keeps its TypeScript loops).
 */
export function cpuWasmAttention(bytes: number): CpuWasmAttention | null {
  const rt = attentionWasmRuntime()
  if (!rt || !rt.reserve(bytes)) return null
  const { att_dots: dots, att_pv: pv } = rt.exports
  if (!dots || !pv) return null
  return { f64: new Float64Array(rt.memory.buffer, 0, bytes >> 3), dots, pv }
}
