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
    disposeEvent: {
      noArgs: 'untyped TypeError: Cannot convert undefined or null to object',
      null: 'untyped TypeError: Cannot convert undefined or null to object',
      undefined: 'untyped TypeError: Cannot convert undefined or null to object',
      disposed: 'silent returned undefined',
      nestedArray: 'silent returned undefined',
      string: 'silent returned undefined',
      huge: 'silent returned undefined',
      unknownOption: 'silent returned undefined',
    },
  },
  align: {
  },
  fairness: {
    distractionBatches: {
      noArgs: 'untyped TypeError: Cannot read properties of undefined (reading \'embed\')',
      null: 'untyped TypeError: Cannot read properties of undefined (reading \'embed\')',
      undefined: 'untyped TypeError: Cannot read properties of undefined (reading \'embed\')',
      disposed: 'untyped TypeError: encoder.embed is not a function',
      nestedArray: 'untyped TypeError: Cannot read properties of undefined (reading \'embed\')',
      string: 'untyped TypeError: Cannot read properties of undefined (reading \'embed\')',
      huge: 'untyped TypeError: encoder.embed is not a function',
      unknownOption: 'untyped TypeError: encoder.embed is not a function',
    },
    distractionTraining: {
      noArgs: 'untyped TypeError: Cannot destructure property \'inputDim\' of \'opts\' as it is undefined.',
      null: 'untyped TypeError: Cannot destructure property \'inputDim\' of \'opts\' as it is null.',
      undefined: 'untyped TypeError: Cannot destructure property \'inputDim\' of \'opts\' as it is undefined.',
      huge: 'misnamed initDistraction: inputDim: expected a positive integer, got NaN (op initDistraction)',
    },
  },
}
