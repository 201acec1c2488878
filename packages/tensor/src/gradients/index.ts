import type { Attrs } from '../backend.js'
import type { GradFn } from '../autodiff/tape.js'
import type { KernelName } from '../kernelContract.js'
import { convGradients } from './conv.js'
import { elementwiseGradients } from './elementwise.js'
import { fusedGradients } from './fused.js'
import type { GradientTable } from './gradientTable.js'
import { indexingGradients } from './indexing.js'
import { linalgGradients } from './linalg.js'
import { reduceGradients } from './reduce.js'
import { shapeGradients } from './shape.js'

/**
 * Every gradient rule, keyed by kernel name (as tfjs-core's gradients/ or tinygrad's rules table): ops only say
 * whether a call is differentiable, and the backward pass finds the VJP here. So no op imports another op for its
 * backward, and the ops form no import cycle; the rules import ops, never the other way round.
 */
export const gradients: GradientTable = {
  ...elementwiseGradients,
  ...reduceGradients,
  ...linalgGradients,
  ...convGradients,
  ...shapeGradients,
  ...indexingGradients,
  ...fusedGradients,
}

/** @internal the rule of a recorded kernel; recording a kernel that has none is a bug of the op that did it. */
export function gradientOf(kernel: string, op: string): GradFn {
  const rule = (gradients as Readonly<Record<string, GradientTable[KernelName]>>)[kernel]
  if (!rule) throw new Error(`internal: ${op} recorded kernel ${kernel}, which has no gradient rule`)
  // The tape keeps attrs as the backend-level record; each rule reads them as its kernel declares them.
  return rule as GradFn<Attrs>
}
