import type { Attrs } from './backend.js'
import type { GradFn } from './autodiff/tape.js'
import { runOp } from './op.js'
import type { Tensor } from './Tensor.js'

export type { GradFn } from './autodiff/tape.js'

/**
 * Run a kernel by name as an op: the extension point for packages that bring their own fused kernels
 * (register them with `registerKernel`). Inputs must share a backend; outputs are new tensors (or views of an
 * input when the kernel returns its storage). With `grad`, the call is differentiable: `grad` receives the
 * cotangents of the outputs and the saved inputs/outputs and returns one cotangent per input (null where none).
 */
export function kernelOp(op: string, kernel: string, inputs: readonly Tensor[], attrs: Attrs = {}, grad?: GradFn): Tensor[] {
  return runOp(op, kernel, inputs, attrs, grad)
}
