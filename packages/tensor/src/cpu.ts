/**
 * @heed/tensor/cpu: what a package needs to write its own CPU kernels (register them with
 * `registerKernel('cpu', name, kernel)`), including kernels in run-time generated WebAssembly that share the CPU
 * backend's module, memory and worker pool. Kept out of the main entry, which is for users of tensors: these are
 * backend internals whose shape follows the kernels that need them.
 */
export { CpuBackend } from './backends/cpu/CpuBackend.js'
export type { CpuKernel, CpuKernelTable, CpuTensor } from './backends/cpu/types.js'
export { ModuleBuilder, FunctionBuilder, type Local, type ValType, type MemoryImport } from './backends/cpu/wasm/encoder.js'
export { wasmApi, type WasmApi, type WasmInstance, type WasmMemory, type WasmModule } from './backends/cpu/wasm/api.js'
export { wasmFeatures, type WasmFeatures } from './backends/cpu/wasm/features.js'
export type { GemmShape, WasmModulePart, WasmPartContext } from './backends/cpu/wasm/module.js'
export { GEMM, addMicroKernel } from './backends/cpu/wasm/matmulModule.js'
export { WorkerPool, nodeWorkerHost, webWorkerHost, MAX_ARGS, MAX_JOBS, type WorkerHost, type WorkerHandle, type WorkerData } from './backends/cpu/wasm/pool.js'
export { registerWasmModulePart, wasmRuntime, wasmMode, type WasmRuntime, type WasmMode } from './backends/cpu/wasm/runtime.js'
