import type { SweepConfig } from './types.js'

/** Bad calls of @heed/memory that do not yet give a typed error naming their function (the outcome seen); shrink-only. */
export const memoryGaps: SweepConfig['gaps'] = {}
