import type { AnyTypedArray, DType } from './dtype.js'
import type { Shape } from './shape.js'

/**
 * The whole contract between ops and a device. Ops never touch memory: they validate, then `run` a kernel by
 * name. A backend that implements these eight members and registers kernels under the same names as the CPU
 * backend runs every op and every gradient of heed.
 */

/** An opaque handle to device memory, owned by the backend that allocated it. */
export type DataId = object

/** What a kernel sees of a tensor: its storage handle, logical shape and dtype (storage is contiguous). */
export interface TensorInfo {
  readonly dataId: DataId
  readonly shape: Shape
  readonly dtype: DType
}

/** Kernel attributes: plain, serialisable data (axes, flags, scalars), never tensors. */
export type Attrs = Readonly<Record<string, unknown>>

export interface Backend {
  readonly name: string
  /** Allocate storage for `size` elements of `dtype`, optionally filled from host `values`. */
  allocate(dtype: DType, size: number, values?: AnyTypedArray): DataId
  /** Overwrite storage with host values (same element count). */
  write(dataId: DataId, values: AnyTypedArray): void
  /** Copy storage to the host. The returned array is the caller's to keep. */
  read(dataId: DataId, dtype: DType, size: number): Promise<AnyTypedArray>
  /** Synchronous read where data is host-resident; `undefined` where it is not (GPU). */
  readSync(dataId: DataId, dtype: DType, size: number): AnyTypedArray | undefined
  /**
   * A host copy of integer data the backend still holds from its upload (indices made on the host), so index ops
   * can check values before dispatch where readSync cannot; undefined where there is none (computed on the device).
   */
  hostIntegers?(dataId: DataId): AnyTypedArray | undefined
  /** Release storage. Called exactly once per allocation, when its last tensor is disposed. */
  free(dataId: DataId): void
  /**
   * Run a kernel. Outputs are freshly allocated, except that a kernel may return an input's `dataId`
   * unchanged (reshape, identity) to share its storage.
   */
  run(kernel: string, inputs: readonly TensorInfo[], attrs: Attrs): TensorInfo[]
  hasKernel(kernel: string): boolean
  /** Device-level counters: live allocations (or pooled buffers) and their bytes. */
  memory(): { readonly buffers: number; readonly bytes: number }
  /**
   * Optional: add a kernel after construction (packages such as @heed/attention bring fused kernels). The
   * implementation's type is the backend's own kernel type (CpuKernel, WebGpuKernel).
   */
  registerKernel?(name: string, impl: unknown): void
  /** Optional: called once if the device is lost, so the engine can re-acquire one. */
  onLost?(listener: (reason: string) => void): void
  /** Optional: start collecting per-dispatch device timings (timestamp queries). */
  beginProfile?(): void
  /** Optional: stop collecting; resolves to device timings in dispatch order, or undefined where unsupported. */
  endProfile?(): Promise<readonly { readonly kernel: string; readonly ms: number }[] | undefined>
}
