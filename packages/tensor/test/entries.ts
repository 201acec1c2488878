import t from 'tap'
import * as main from '@heed/tensor'
import * as cpu from '@heed/tensor/cpu'

// The main entry is for users of tensors; what kernel authors need lives behind ./cpu and ./webgpu.
t.test('the main entry exports no backend internals', async t => {
  for (const name of ['CpuBackend', 'WebGpuBackend', 'wasmAttentionForward', 'cpuWasmAttention', 'wasmRuntime', 'ModuleBuilder', 'WorkerPool'])
    t.notOk(name in main, `@heed/tensor does not export ${name}`)
  for (const name of ['configureCpuWasm', 'cpuWasmReady', 'shutdownCpuWasm', 'registerKernel', 'kernelOp'])
    t.type((main as Record<string, unknown>)[name], 'function', `@heed/tensor still exports the setting ${name}`)
})

t.test('./cpu offers what kernels in other packages build on', async t => {
  for (const name of ['CpuBackend', 'ModuleBuilder', 'FunctionBuilder', 'wasmFeatures', 'wasmApi', 'WorkerPool', 'nodeWorkerHost', 'webWorkerHost', 'addMicroKernel', 'registerWasmModulePart', 'wasmRuntime', 'wasmMode'])
    t.type((cpu as Record<string, unknown>)[name], 'function', `@heed/tensor/cpu exports ${name}`)
  t.equal(cpu.GEMM.nr % 4, 0)
})
