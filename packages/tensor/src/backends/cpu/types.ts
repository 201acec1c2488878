import type { Attrs } from '../../backend.js'
import type { AnyTypedArray, DType } from '../../dtype.js'
import type { KernelAttrs, KernelName } from '../../kernelContract.js'
import type { Shape } from '../../shape.js'

/** A tensor as CPU kernels see it: contiguous row-major host values. */
export interface CpuTensor {
  readonly values: AnyTypedArray
  readonly shape: Shape
  readonly dtype: DType
}

/**
 * A CPU kernel. Returning an input's `values` array unchanged makes the output share that input's storage
 * (reshape, identity); otherwise the returned arrays become new allocations owned by the backend. The backend
 * reuses freed float32 arrays, so an output that views an input's memory through another array must be larger
 * than 64 bytes or start past its buffer's first byte (then the backend sees the sharing); better, copy.
 */
export type CpuKernel<A extends object = Attrs> = (inputs: readonly CpuTensor[], attrs: A) => CpuTensor | readonly CpuTensor[]

/**
 * Every kernel of the contract (kernelContract.ts) with its attrs type. Group tables are written
 * `{ … } satisfies Partial<CpuKernelTable>`, so each kernel's `attrs` is typed, and the full table is a
 * `CpuKernelTable`, so a missing kernel is a compile error.
 */
export type CpuKernelTable = { readonly [K in KernelName]: CpuKernel<KernelAttrs<K>> }
