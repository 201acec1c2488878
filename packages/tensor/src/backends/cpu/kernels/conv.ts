import type { CpuKernelTable } from '../types.js'

export const convKernels: CpuKernelTable = {}
