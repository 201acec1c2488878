/// <reference types="@webgpu/types" preserve="true" />
import { acquireDevice } from './device.js'
import { WebGpuBackend } from './WebGpuBackend.js'

export { WebGpuBackend } from './WebGpuBackend.js'
export type { GpuTensor, GpuData, WebGpuContext, WebGpuKernel, DispatchSpec } from './types.js'
export { acquireDevice, findGpu, type GpuDeviceInfo } from './device.js'

/** Create the WebGPU backend on a freshly acquired device (`gpu` defaults to navigator.gpu or Dawn). */
export async function createWebGpuBackend(gpu?: GPU): Promise<WebGpuBackend> {
  return new WebGpuBackend(await acquireDevice(gpu))
}
