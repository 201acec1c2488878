import type { SweepConfig } from './types.js'
import { streamGaps } from './stream-gaps.js'

/** The sweep's lists for the `@heed/<pkg>/stream` entries (the RxJS operator factories). */
export const streamSweeps: Record<'tensor' | 'attention' | 'memory' | 'align' | 'fairness', SweepConfig> = {
  tensor: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.tensor },
  attention: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.attention },
  memory: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.memory },
  align: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.align },
  fairness: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.fairness },
}
