import type { SweepConfig } from './types.js'
import { fairnessGaps } from './fairness-gaps.js'

export const fairnessSweep: SweepConfig = {
  namespaces: [],
  allowed: {
    loadAdult: {
      noArgs: 'reads the bundled Adult data with its defaults',
      undefined: 'same as noArgs',
    },
    adultBenchmark: {
      noArgs: 'runs the whole Adult benchmark with its defaults (minutes)',
      undefined: 'same as noArgs',
    },
    initDistractionAttention: {
      noArgs: 'all options optional: the paper defaults',
      undefined: 'same as noArgs',
    },
  },
  aliases: {},
  gaps: fairnessGaps,
}
