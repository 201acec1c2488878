/**
 * @heed/tensor/webgpu: the types a package needs to write its own WebGPU kernels (register them with
 * `registerKernel('webgpu', name, kernel)`). Kept out of the main entry so that a consumer of plain tensors never
 * loads the WebGPU type declarations (which would clash with a DOM lib that ships its own).
 */
/// <reference types="@webgpu/types" preserve="true" />
export type { WebGpuKernel, WebGpuKernelTable, WebGpuContext, GpuTensor, GpuData, DispatchSpec } from './backends/webgpu/types.js'
export type { GpuDeviceInfo } from './backends/webgpu/device.js'
