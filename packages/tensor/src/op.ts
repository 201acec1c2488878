import type { Attrs } from './backend.js'
import { record, type GradFn } from './autodiff/tape.js'
import { runKernel } from './engine.js'
import type { Tensor } from './Tensor.js'

/**
 * @internal the one path from a validated op to a kernel: run it, then record it for autodiff when a gradient
 * rule is given. Ops without a rule (comparisons, argmax, casts to int) are not differentiable and cut the tape.
 */
export function runOp(op: string, kernel: string, inputs: readonly Tensor[], attrs: Attrs, grad?: GradFn, backend?: string): Tensor[] {
  const outputs = runKernel(op, kernel, inputs, attrs, backend)
  if (grad) record(op, inputs, outputs, attrs, grad)
  return outputs
}

/** @internal single-output convenience. */
export function runOp1(op: string, kernel: string, inputs: readonly Tensor[], attrs: Attrs, grad?: GradFn, backend?: string): Tensor {
  return runOp(op, kernel, inputs, attrs, grad, backend)[0]!
}
