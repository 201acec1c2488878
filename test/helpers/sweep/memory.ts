import type { SweepConfig } from './types.js'
import { memoryGaps } from './memory-gaps.js'

export const memorySweep: SweepConfig = {
  namespaces: ['memoryOperators'],
  allowed: {
    isRecall: { '*': 'a predicate: false for anything that is not a { query: Tensor } request' },
  },
  aliases: {},
  gaps: memoryGaps,
}
