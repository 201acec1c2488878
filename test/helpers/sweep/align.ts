import type { SweepConfig } from './types.js'
import { alignGaps } from './align-gaps.js'

export const alignSweep: SweepConfig = {
  namespaces: [],
  allowed: {
    alphasCumprod: { noArgs: 'every argument has a default: Stable Diffusion\'s schedule', undefined: 'same as noArgs' },
  },
  aliases: {},
  gaps: alignGaps,
}
