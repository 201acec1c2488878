import { registerKernel } from '@heed/tensor'
import { registerWasmModulePart } from '@heed/tensor/cpu'
import { cpuAttentionKernels } from './cpu.js'
import { attentionWasmPart } from './wasm/attentionWasm.js'
import { webgpuAttentionKernels } from './webgpu.js'

let registered = false

/**
 * Register attention's fused kernels with @heed/tensor's backends, each once. Called by the ops on first use rather
 * than at import time, so importing the package has no side effects. Once is enough: the engine keeps extension
 * kernels and hands them to every instance of the backend they name, one created later or after a device loss too.
 * The WebGPU kernels build their shaders only when a call first needs them; a backend without a kernel reports a
 * clear "kernel not implemented" error.
 */
export function ensureAttentionKernels(): void {
  if (registered) return
  for (const [name, impl] of Object.entries(cpuAttentionKernels)) registerKernel('cpu', name, impl)
  for (const [name, impl] of Object.entries(webgpuAttentionKernels)) registerKernel('webgpu', name, impl)
  // before any attention call, so the CPU kernel module gains attention's functions before its pool is needed
  registerWasmModulePart(attentionWasmPart)
  registered = true
}
