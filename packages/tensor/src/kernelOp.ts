import type { Attrs } from './backend.js'
import type { GradFn } from './autodiff/tape.js'
import { runExtensionOp } from './op.js'
import type { Tensor } from './Tensor.js'

export type { GradFn } from './autodiff/tape.js'

/**
 * Run a kernel by name as an op: the extension point for packages that bring their own fused kernels
 * (register them with `registerKernel`). Inputs must share a backend; outputs are new tensors (or views of an
 * input when the kernel returns its storage). `attrs` is the kernel's own attrs type (plain data; an interface is
 * fine), and `grad`, when given, reads them with that type: it receives the cotangents of the outputs and the
 * saved inputs/outputs and returns one cotangent per input (null where none), and makes the call differentiable.
 */
export function kernelOp<A extends object = Attrs>(op: string, kernel: string, inputs: readonly Tensor[], attrs?: A, grad?: GradFn<A>): Tensor[] {
  return runExtensionOp(op, kernel, inputs, attrs ?? ({} as A), grad)
}
