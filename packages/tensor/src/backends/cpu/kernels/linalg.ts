import type { CpuKernelTable } from '../types.js'

export const linalgKernels: CpuKernelTable = {}
