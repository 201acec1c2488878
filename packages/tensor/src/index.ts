/**
 * @heed/tensor: typed tensors on CPU and WebGPU, reverse-mode autodiff, scoped memory, safetensors I/O.
 * Nothing happens at import time: backends are created on first use.
 */
export type { DType, FloatDType, IntDType, TypedArrayFor, AnyTypedArray } from './dtype.js'
export { DTYPES, isDType, isFloat, isInt, bytesPerElement, f16Round, f32ToF16Bits, f16BitsToF32, checkAllocation, MAX_TENSOR_BYTES } from './dtype.js'
export type { Shape } from './shape.js'
export { broadcastShapes, checkedSizeOf as sizeOf } from './shape.js'
export type { Broadcast, ShapeOf, ShapeMismatch, DTypeOf } from './types/shapeTypes.js'
export * from './errors.js'
export { positiveInt, nonNegativeInt, intAtLeast, finiteNumber, positiveNumber, nonNegativeNumber, inRange, knownOptions, closestName, requireTensor, requireFunction } from './validate.js'
export type { Backend, DataId, TensorInfo, Attrs } from './backend.js'
export { Tensor, isTensor, type NestedArray } from './Tensor.js'
export { setBackend, getBackend, withBackend, registerBackend, listBackends, initBackend, ready, registerKernel, hasKernel, type BackendFactory } from './engine.js'
export { kernelOp, type GradFn } from './kernelOp.js'
export { Kernel, type KernelName, type KernelAttrs, type KernelAttrMap } from './kernelContract.js'
export { writeSlice, type WriteSliceOptions } from './ops/writeSlice.js'
export { profile, type Profile, type KernelProfile } from './profile.js'
export { configureCpuWasm, cpuWasmReady, shutdownCpuWasm, type CpuWasmOptions } from './backends/cpu/wasm/runtime.js'
export { toBackend } from './toBackend.js'
export { scope, keep, dispose, memory, trackTensors, type MemoryInfo, type BackendMemory, type TensorTracker } from './memory.js'

export { tensor, scalar, parse, type TensorData, type CreationOptions } from './creation/tensor.js'
export { full, zeros, ones, fullLike, zerosLike, onesLike, arange, linspace, eye, type FillOptions } from './creation/fill.js'

export * from './ops/index.js'

export { grad, valueAndGrad, stopGradient, type GradTree, type GradOptions } from './autodiff/grad.js'
export { noGrad } from './autodiff/tape.js'
export { random, rng, type Rng, type RandomSource, type UniformOptions, type NormalOptions, type BernoulliOptions, type RandintOptions } from './random/index.js'
export { sgd, adam, adamw, type Optimizer, type OptState, type LearningRate, type SgdOptions, type AdamOptions } from './optim/index.js'
export { clipByGlobalNorm, type ClippedGrads } from './optim/clipByGlobalNorm.js'
export { warmupCosine, type WarmupCosineOptions } from './optim/warmupCosine.js'
export { trainer, type Trainer, type TrainerOptions, type StepScalars, type TrainLoss, type NonFiniteLoss } from './optim/trainer.js'
export { progressBar, type Progress, type ProgressOptions, type ProgressStream } from './progressBar.js'
export { parseSafetensors, parseSafetensorsHeader, loadSafetensors, saveSafetensors, SAFETENSORS_DTYPES, type SafetensorsDType, type SafetensorsEntry, type SafetensorsHeader, type LoadOptions } from './io/safetensors.js'
