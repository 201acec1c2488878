import type { CpuKernelTable } from '../types.js'

export const indexingKernels: CpuKernelTable = {}
