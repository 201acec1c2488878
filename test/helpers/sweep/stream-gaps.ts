import type { SweepConfig } from './types.js'

/** Bad calls of the `@heed/<pkg>/stream` entries that do not yet give a typed error naming their function; shrink-only. */
export const streamGaps: Record<'tensor' | 'attention' | 'memory' | 'align' | 'fairness', SweepConfig['gaps']> = {
  tensor: {
  },
  attention: {
  },
  memory: {
  },
  align: {
  },
  fairness: {
  },
}
