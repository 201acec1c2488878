import type { CpuKernelTable } from '../types.js'

export const shapeKernels: CpuKernelTable = {}
