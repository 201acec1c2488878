import type { WebGpuKernelTable } from '../types.js'
import { elementwiseKernels } from './elementwise.js'
import { reduceKernels } from './reduce.js'
import { shapeKernels } from './shape.js'
import { indexingKernels } from './indexing.js'
import { linalgKernels } from './linalg.js'
import { convKernels } from './conv.js'
import { fusedKernels } from './fused.js'

/** Every WebGPU kernel by name: the same names and attrs as the CPU backend's table. */
export const webgpuKernels: WebGpuKernelTable = {
  ...elementwiseKernels,
  ...reduceKernels,
  ...shapeKernels,
  ...indexingKernels,
  ...linalgKernels,
  ...convKernels,
  ...fusedKernels,
}
