import type { Attrs } from '../backend.js'
import { shadow } from '../engine.js'
import type { Tensor } from '../Tensor.js'
import { requireFunction } from '../validate.js'

/**
 * Vector-Jacobian product of one op: given the cotangents of its outputs, return one cotangent per input
 * (`null` where the input is not differentiable). Written with public ops, so every backend gets it.
 */
export type GradFn<A extends object = Attrs> = (
  dys: readonly Tensor[],
  saved: {
    readonly inputs: readonly Tensor[]
    readonly outputs: readonly Tensor[]
    /** The attrs the kernel ran with, typed as that kernel's (see `KernelAttrs` in kernelContract.ts). */
    readonly attrs: A
    /**
     * Per input, whether its cotangent is used (false where no differentiated argument reaches that input, such
     * as a network's input batch). A rule may return null for those and skip the work; absent means all are.
     */
    readonly needs?: readonly boolean[]
  },
) => readonly (Tensor | null | undefined)[]

export interface TapeNode {
  readonly op: string
  /** The kernel that ran: its rule in src/gradients/ is the node's VJP unless `grad` is given. */
  readonly kernel: string
  /** The tensors the op was called with (identity is what links nodes). */
  readonly inputs: readonly Tensor[]
  readonly outputs: readonly Tensor[]
  /** Handles on the same storage, kept alive until the tape is released. */
  readonly savedInputs: readonly Tensor[]
  readonly savedOutputs: readonly Tensor[]
  readonly attrs: Attrs
  /** A rule of the call's own (kernels of other packages); absent for the kernels of the contract. */
  readonly grad: GradFn | undefined
}

/** One recording: the tensors reachable from the differentiated arguments, and the ops that made them. */
export class Tape {
  readonly nodes: TapeNode[] = []
  readonly watched = new Set<Tensor>()
  release(): void {
    for (const n of this.nodes) {
      for (const t of n.savedInputs) t.dispose()
      for (const t of n.savedOutputs) t.dispose()
    }
    this.nodes.length = 0
    this.watched.clear()
  }
}

const active: Tape[] = []

export const pushTape = (t: Tape): void => {
  active.push(t)
}
export const popTape = (t: Tape): void => {
  const i = active.lastIndexOf(t)
  if (i >= 0) active.splice(i, 1)
}

/** Run `fn` with recording paused (stopGradient, optimizer updates, backward bookkeeping). */
export function noGrad<T>(fn: () => T): T {
  requireFunction('noGrad', 'fn', fn)
  const saved = active.splice(0, active.length)
  try {
    return fn()
  } finally {
    active.unshift(...saved)
  }
}

/**
 * Saved handles → the tensor they stand for. Gradient rules run on saved handles, so when an inner grad's
 * backward pass runs while an outer tape records (grad of grad), the outer tape must see a saved handle as the
 * tensor it shadows, or every second-order path would be cut.
 */
const origin = new WeakMap<Tensor, Tensor>()
const canonical = (t: Tensor): Tensor => origin.get(t) ?? t

function save(t: Tensor): Tensor {
  const s = shadow(t)
  origin.set(s, canonical(t))
  return s
}

/**
 * @internal record an op on every open tape that watches one of its inputs. Pruning is free this way. The rule is
 * looked up by `kernel` when the backward pass runs (src/gradients/), unless `grad` brings one.
 */
export function record(op: string, kernel: string, inputs: readonly Tensor[], outputs: readonly Tensor[], attrs: Attrs, grad?: GradFn): void {
  const ins = inputs.map(canonical)
  for (const tape of active) {
    if (!ins.some(t => tape.watched.has(t))) continue
    tape.nodes.push({
      op,
      kernel,
      inputs: ins,
      outputs,
      savedInputs: inputs.map(save),
      savedOutputs: outputs.map(save),
      attrs,
      grad,
    })
    for (const o of outputs) tape.watched.add(o)
  }
}

export const isRecording = (): boolean => active.length > 0
