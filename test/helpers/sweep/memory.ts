import type { SweepConfig } from './types.js'
import { memoryGaps } from './memory-gaps.js'

export const memorySweep: SweepConfig = {
  namespaces: ['memoryOperators'],
  allowed: {},
  aliases: {},
  gaps: memoryGaps,
}
