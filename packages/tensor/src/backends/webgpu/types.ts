/// <reference types="@webgpu/types" preserve="true" />
import type { Attrs } from '../../backend.js'
import type { AnyTypedArray, DType } from '../../dtype.js'
import type { KernelAttrs, KernelName } from '../../kernelContract.js'
import type { Shape } from '../../shape.js'
import type { GpuDeviceInfo } from './device.js'
import type { StorageType } from './dtypes.js'

/*
 * The contract between the WebGPU backend and its kernels (here and in other packages, through
 * @heed/tensor/webgpu): kernels depend on these types, never on the backend class that implements them.
 */

/** Device storage of one tensor. */
export interface GpuData {
  readonly buffer: GPUBuffer
  readonly st: StorageType
  /** Bytes requested (the buffer may be larger: it comes from a size-class pool). */
  readonly bytes: number
  /** A cached scalar constant: shared by every tensor of that value, never written, never recycled. */
  readonly constant?: true
  /** The host values of an int32/uint32 upload (up to HOST_INTEGERS elements), until the buffer is written again. */
  host?: AnyTypedArray | undefined
}

/** What a WebGPU kernel sees of a tensor. */
export interface GpuTensor {
  readonly data: GpuData
  readonly shape: Shape
  readonly dtype: DType
}

export interface DispatchSpec {
  /** Cache key: everything that changes the shader text, never sizes (those go in `uniforms`). */
  readonly key: string
  readonly code: () => string
  readonly inputs: readonly GpuTensor[]
  readonly outputs: readonly GpuTensor[]
  /** Uniform block (16-byte multiple); bound after inputs and outputs. Omit for none. */
  readonly uniforms?: ArrayBuffer
  readonly workgroups: readonly [number, number?, number?]
}

/** What an index kernel checks on the device, for the error the next read raises when an index is out of range. */
export interface IndexCheck {
  /** The public op ('gather', 'oneHot', …) and its argument, as the host-side check names them. */
  readonly op: string
  readonly arg: string
  /** The valid range, [0, n), and what n is (`dim 1 of [3,4]`, `depth`). */
  readonly n: number
  readonly what: string
}

/**
 * A slot of the device's index-check flags: bind `flags` as the last storage binding (after the outputs, before the
 * uniforms; `bindings(…, { checked: true })` declares it as `E`) and pass `slot` in the uniforms as `p.slot`.
 */
export interface IndexCheckSlot {
  readonly flags: GpuTensor
  readonly slot: number
}

/** The services kernels get: allocation, dispatch and device-side index checks. */
export interface WebGpuContext {
  readonly f16: boolean
  readonly info: GpuDeviceInfo
  output(dtype: DType, shape: Shape): GpuTensor
  dispatch(spec: DispatchSpec): void
  /**
   * Indices computed on the device cannot be read back before dispatch without stalling the queue, so the kernel
   * flags an out-of-range one and the next read of any tensor raises the op's ValueError (as CUDA's device-side
   * asserts surface at the next synchronisation).
   */
  indexCheck(check: IndexCheck): IndexCheckSlot
}

export type WebGpuKernel<A extends object = Attrs> = (ctx: WebGpuContext, inputs: readonly GpuTensor[], attrs: A) => GpuTensor | readonly GpuTensor[]

/**
 * Every kernel of the contract (kernelContract.ts) with its attrs type, as the CPU's `CpuKernelTable`: group tables
 * are `{ … } satisfies Partial<WebGpuKernelTable>`, the full table a `WebGpuKernelTable`.
 */
export type WebGpuKernelTable = { readonly [K in KernelName]: WebGpuKernel<KernelAttrs<K>> }
