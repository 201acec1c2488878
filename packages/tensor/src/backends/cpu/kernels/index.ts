import type { CpuKernelTable } from '../types.js'
import { elementwiseKernels } from './elementwise.js'
import { reduceKernels } from './reduce.js'
import { shapeKernels } from './shape.js'
import { linalgKernels } from './linalg.js'
import { indexingKernels } from './indexing.js'
import { convKernels } from './conv.js'
import { fusedKernels } from './fused.js'

/** Every CPU kernel by name. The WebGPU backend implements the same names. */
export const cpuKernels: CpuKernelTable = {
  ...elementwiseKernels,
  ...reduceKernels,
  ...shapeKernels,
  ...linalgKernels,
  ...indexingKernels,
  ...convKernels,
  ...fusedKernels,
}
