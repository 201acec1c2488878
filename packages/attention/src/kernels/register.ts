import { hasKernel, registerKernel } from '@heed/tensor'
import { cpuAttentionKernels } from './cpu.js'
import { attentionWasmPart } from './wasm/attentionWasm.js'
import { registerWasmModulePart } from '@heed/tensor/cpu'
import { webgpuAttentionKernels } from './webgpu.js'

let done = false

/**
 * Register attention's fused kernels with @heed/tensor's backends. Called by the ops on first use rather than at
 * import time, so importing the package has no side effects. The WebGPU kernels are registered the same way by
 * name; a backend without them reports a clear "kernel not implemented" error.
 */
export function ensureAttentionKernels(): void {
  if (done && hasKernel('cpu', 'Attention')) return
  for (const [name, impl] of Object.entries(cpuAttentionKernels)) registerKernel('cpu', name, impl)
  // before any attention call, so the CPU kernel module gains attention's functions before its pool is needed
  registerWasmModulePart(attentionWasmPart)
  provideWebgpuAttentionKernels(webgpuAttentionKernels)
  for (const [name, impl] of Object.entries(webgpuKernels)) registerKernel('webgpu', name, impl)
  done = true
}

/** WebGPU kernels by name (kernels/webgpu.ts builds its shaders only when a call first needs them). */
const webgpuKernels: Record<string, unknown> = {}
export const provideWebgpuAttentionKernels = (k: Readonly<Record<string, unknown>>): void => {
  Object.assign(webgpuKernels, k)
  for (const [name, impl] of Object.entries(k)) registerKernel('webgpu', name, impl)
}
