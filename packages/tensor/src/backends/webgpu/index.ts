/// <reference types="@webgpu/types" preserve="true" />
import { acquireDevice } from './device.js'
import { WebGpuBackend } from './WebGpuBackend.js'

export { WebGpuBackend, type GpuTensor, type GpuData, type WebGpuContext, type WebGpuKernel, type DispatchSpec } from './WebGpuBackend.js'
export { acquireDevice, findGpu, type GpuDeviceInfo } from './device.js'

/** Create the WebGPU backend on a freshly acquired device (`gpu` defaults to navigator.gpu or Dawn). */
export async function createWebGpuBackend(gpu?: GPU): Promise<WebGpuBackend> {
  return new WebGpuBackend(await acquireDevice(gpu))
}
