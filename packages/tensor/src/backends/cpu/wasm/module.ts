import type { ModuleBuilder } from './encoder.js'

/**
 * The types shared by the CPU kernel module's parts: the GEMM register tile every part may call into, and the
 * contract by which a package outside @heed/tensor adds functions to that module. Kept apart from matmulModule.ts
 * so that a kernel (here or in another package) depends on the contract, not on the GEMM's implementation.
 */

export interface GemmShape {
  /** Rows of the register tile. */
  readonly mr: number
  /** Columns of the register tile, a multiple of 4 (one v128 holds 4). */
  readonly nr: number
  /** k steps per loop iteration; the host pads k to a multiple of it. */
  readonly unroll: number
  /** k-block: a kc × (ncb·nr) slice of packed B is reused from L2 by every row panel. */
  readonly kc: number
  /** B panels per n-block. */
  readonly ncb: number
}

/** What a part is given when the kernel module is built. */
export interface WasmPartContext {
  /** Function index of the GEMM micro-kernel writing row-major C tiles (see addMicroKernel). */
  readonly micro: number
  /** Function index of the micro-kernel writing C as 4-column panels. */
  readonly microPanels: number
  readonly shape: GemmShape
  /** Whether the memory is shared (worker threads run the same module over it): counters must then be atomic. */
  readonly shared: boolean
  /** Whether relaxed-SIMD FMA may be used. */
  readonly relaxed: boolean
}

/**
 * Functions another package adds to the CPU kernel module (registerWasmModulePart), so that they share its memory,
 * its micro-kernels and its worker pool: one module, because a worker instantiates the module once when it starts.
 */
export interface WasmModulePart {
  /** Identifies the part (compiled modules are cached by the set of parts they include). */
  readonly name: string
  /** Exports the worker pool may run as jobs: fn(job, ...args), at most MAX_ARGS i32 arguments. */
  readonly jobs: readonly string[]
  /** Add the part's functions (and their exports) to the module. */
  build(mod: ModuleBuilder, ctx: WasmPartContext): void
}
