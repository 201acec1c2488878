import type { Attrs } from './backend.js'
import { record, type GradFn } from './autodiff/tape.js'
import { runKernel } from './engine.js'
import type { KernelAttrs, KernelName } from './kernelContract.js'
import type { Tensor } from './Tensor.js'

/**
 * @internal the one path from a validated op to a kernel of the contract (`Kernel.X` with its `KernelAttrs<'X'>`):
 * run it, and record it for autodiff when `grad` says so. `true` records the call, and the backward pass applies
 * the kernel's rule from src/gradients/ (how every op of this package does it, so that no op imports another for
 * its backward); a function is a rule of the call's own; false (the default) leaves the call off the tape, as for
 * comparisons, argmax and casts to int, which are not differentiable.
 */
export function runOp<K extends KernelName>(
  op: string,
  kernel: K,
  inputs: readonly Tensor[],
  attrs: KernelAttrs<K>,
  grad: boolean | GradFn<KernelAttrs<K>> = false,
  backend?: string,
): Tensor[] {
  const outputs = runKernel(op, kernel, inputs, attrs, backend)
  if (grad === true) record(op, kernel, inputs, outputs, attrs)
  else if (grad) record(op, kernel, inputs, outputs, attrs, (dys, saved) => grad(dys, { ...saved, attrs }))
  return outputs
}

/** @internal single-output convenience. */
export function runOp1<K extends KernelName>(
  op: string,
  kernel: K,
  inputs: readonly Tensor[],
  attrs: KernelAttrs<K>,
  grad: boolean | GradFn<KernelAttrs<K>> = false,
  backend?: string,
): Tensor {
  return runOp(op, kernel, inputs, attrs, grad, backend)[0]!
}

/**
 * @internal a kernel outside the contract (one another package registered): its attrs are its own record type,
 * an interface as often as not, and its rule reads them with that type.
 */
export function runExtensionOp<A extends object>(op: string, kernel: string, inputs: readonly Tensor[], attrs: A, grad?: GradFn<A>): Tensor[] {
  // The one place where a kernel's own attrs type is erased to the backend-level record it travels as; the rule
  // gets them back typed through the closure.
  const wire = attrs as object as Attrs
  const outputs = runKernel(op, kernel, inputs, wire, undefined)
  if (grad) record(op, kernel, inputs, outputs, wire, (dys, saved) => grad(dys, { ...saved, attrs }))
  return outputs
}
