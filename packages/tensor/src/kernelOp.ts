import type { Attrs } from './backend.js'
import type { GradFn } from './autodiff/tape.js'
import { runExtensionOp } from './op.js'
import { ArgumentError } from './errors.js'
import { isTensor, type Tensor } from './Tensor.js'

const kindOf = (u: unknown): string => (u === null ? 'null' : Array.isArray(u) ? 'an array' : u === '' ? 'an empty string' : typeof u)
const bad = (arg: string, expected: string, v: unknown): never => {
  throw new ArgumentError({ op: 'kernelOp', arg, expected, actual: kindOf(v) })
}

export type { GradFn } from './autodiff/tape.js'

/**
 * Run a kernel by name as an op: the extension point for packages that bring their own fused kernels
 * (register them with `registerKernel`). Inputs must share a backend; outputs are new tensors (or views of an
 * input when the kernel returns its storage). `attrs` is the kernel's own attrs type (plain data; an interface is
 * fine), and `grad`, when given, reads them with that type: it receives the cotangents of the outputs and the
 * saved inputs/outputs and returns one cotangent per input (null where none), and makes the call differentiable.
 */
export function kernelOp<A extends object = Attrs>(op: string, kernel: string, inputs: readonly Tensor[], attrs?: A, grad?: GradFn<A>): Tensor[] {
  // O(inputs): the call itself in kernelOp's name; the inputs' liveness and backends are checked in `op`'s name
  if (typeof op !== 'string' || op === '') bad('op', 'the name of the op (a non-empty string)', op)
  if (typeof kernel !== 'string' || kernel === '') bad('kernel', 'a kernel name (a non-empty string)', kernel)
  if (!Array.isArray(inputs)) bad('inputs', 'an array of tensors', inputs)
  for (let i = 0; i < inputs.length; i++) if (!isTensor(inputs[i])) throw new ArgumentError({ op, arg: `inputs[${i}]`, expected: 'a Tensor', actual: kindOf(inputs[i]) })
  if (attrs !== undefined && (attrs === null || typeof attrs !== 'object')) bad('attrs', 'an attrs object or undefined', attrs)
  if (grad !== undefined && typeof grad !== 'function') bad('grad', 'a gradient function or undefined', grad)
  return runExtensionOp(op, kernel, inputs, attrs ?? ({} as A), grad)
}
