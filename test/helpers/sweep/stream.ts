import type { SweepConfig } from './types.js'
import { streamGaps } from './stream-gaps.js'

/** The sweep's lists for the `@heed/<pkg>/stream` entries (the RxJS operator factories). */
export const streamSweeps: Record<'tensor' | 'attention' | 'memory' | 'align' | 'fairness', SweepConfig> = {
  tensor: {
    namespaces: [],
    allowed: {
      borrow: { '*': 'marks the tensors in any tree as read by an operator and returns its argument, like keep' },
      retainTree: { '*': 'copies any tree with new handles on its tensors, leaving other values as they are' },
      isBorrowed: { '*': 'a predicate: false for anything an operator has not borrowed' },
      describeItem: { '*': 'describes any value for an error message: total by design' },
    },
    aliases: {},
    gaps: streamGaps.tensor,
  },
  attention: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.attention },
  memory: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.memory },
  align: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.align },
  fairness: { namespaces: [], allowed: {}, aliases: {}, gaps: streamGaps.fairness },
}
