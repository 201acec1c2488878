import type { SweepConfig } from './types.js'

/** Bad calls of the `@heed/<pkg>/stream` entries that do not yet give a typed error naming their function; shrink-only. */
export const streamGaps: Record<'tensor' | 'attention' | 'memory' | 'align' | 'fairness', SweepConfig['gaps']> = {
  tensor: {
  },
  attention: {
    checkpointStep: {
      noArgs: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got undefined (op loadLM)',
      null: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got null (op loadLM)',
      undefined: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got undefined (op loadLM)',
      disposed: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got object (op loadLM)',
      nestedArray: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got an array (op loadLM)',
      string: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got string (op loadLM)',
      huge: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got number (op loadLM)',
      unknownOption: 'misnamed loadLM: bytes: expected the bytes of a checkpoint, a Uint8Array (from saveLM), got object (op loadLM)',
    },
    lmRecipe: {
      noArgs: 'untyped TypeError: Cannot read properties of undefined (reading \'steps\')',
      null: 'untyped TypeError: Cannot read properties of null (reading \'steps\')',
      undefined: 'untyped TypeError: Cannot read properties of undefined (reading \'steps\')',
      disposed: 'misnamed trainLM: steps: expected a positive integer (op trainLM)',
      nestedArray: 'misnamed trainLM: steps: expected a positive integer (op trainLM)',
      string: 'misnamed trainLM: steps: expected a positive integer (op trainLM)',
      huge: 'misnamed trainLM: steps: expected a positive integer (op trainLM)',
      unknownOption: 'misnamed trainLM: steps: expected a positive integer (op trainLM)',
    },
    trainLM: {
      noArgs: 'untyped TypeError: Cannot read properties of undefined (reading \'steps\')',
      null: 'untyped TypeError: Cannot read properties of null (reading \'steps\')',
      undefined: 'untyped TypeError: Cannot read properties of undefined (reading \'steps\')',
    },
  },
  memory: {
  },
  align: {
  },
  fairness: {
  },
}
