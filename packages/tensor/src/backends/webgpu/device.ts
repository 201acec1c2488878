/// <reference types="@webgpu/types" preserve="true" />
import { BackendError } from '../../errors.js'

/** What the backend learned about its adapter when it acquired the device. */
export interface GpuDeviceInfo {
  /**
   * The GPU object the device came from. Held for the device's lifetime: Dawn for Node tears its instance down
   * when this object is garbage-collected, even with a live device (random crashes otherwise).
   */
  readonly gpu: GPU
  readonly device: GPUDevice
  readonly f16: boolean
  readonly timestamps: boolean
  readonly vendor: string
  readonly architecture: string
  readonly description: string
  readonly fallback: boolean
}

/**
 * Find a WebGPU implementation: the browser's `navigator.gpu`, else Dawn from the optional `webgpu` package in
 * Node. The package is imported through a variable so bundlers for the browser never try to include it.
 */
export async function findGpu(): Promise<GPU | undefined> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator
  if (nav?.gpu) return nav.gpu
  // One Dawn instance per process, created on first use and kept: devices re-acquired after a loss come from
  // the same instance, and an instance must outlive every device it made.
  dawn ??= (async () => {
    const spec = 'webgpu'
    try {
      const mod = (await import(/* @vite-ignore */ spec)) as { create: (flags: string[]) => GPU }
      return mod.create([])
    } catch {
      return undefined
    }
  })()
  return dawn
}

let dawn: Promise<GPU | undefined> | undefined

/** Acquire a device, asking only for the optional features the adapter has (f16 storage, timestamps). */
export async function acquireDevice(gpu?: GPU): Promise<GpuDeviceInfo> {
  const g = gpu ?? (await findGpu())
  if (!g) throw new BackendError({ op: 'setBackend', arg: 'webgpu' }, 'no WebGPU implementation: not in a WebGPU browser and the optional `webgpu` package is not installed')
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' })
  if (!adapter) throw new BackendError({ op: 'setBackend', arg: 'webgpu' }, 'no WebGPU adapter (on Linux without a GPU, install Mesa lavapipe: mesa-vulkan-drivers)')
  const want: GPUFeatureName[] = []
  const f16 = adapter.features.has('shader-f16')
  const timestamps = adapter.features.has('timestamp-query')
  if (f16) want.push('shader-f16')
  if (timestamps) want.push('timestamp-query')
  const lim = adapter.limits
  const device = await adapter.requestDevice({
    requiredFeatures: want,
    requiredLimits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    },
  })
  const info = adapter.info
  return {
    gpu: g,
    device,
    f16,
    timestamps,
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    description: info?.description ?? '',
    fallback: (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || info?.architecture === 'software',
  }
}
