import type { SweepConfig } from './types.js'
import { tensorGaps } from './tensor-gaps.js'

export const tensorSweep: SweepConfig = {
  namespaces: ['random'],
  allowed: {
    // predicates: total by design, they answer false for anything
    isTensor: {
      '*': 'a predicate: false for anything that is not a live-or-disposed tensor',
    },
    isDType: {
      '*': 'a predicate: false for anything that is not a dtype name',
    },
    isFloat: { '*': 'a predicate on dtype names: false for anything else' },
    isInt: { '*': 'a predicate on dtype names: false for anything else' },
    kindOf: { '*': 'describes any value for an error message: total by design' },
    hasKernel: { '*': 'a predicate: false for an unknown kernel or backend' },
    // tree helpers: they walk any value and act on the tensors inside, skipping the rest (and disposed ones)
    dispose: {
      '*': 'disposes the tensors in any tree; everything else (and an already disposed tensor) is skipped',
    },
    keep: {
      '*': 'marks the tensors in any tree as kept; returns its argument',
    },
    // no-argument queries and setup
    memory: { '*': 'takes no arguments: the live tensor and byte counts' },
    listBackends: { '*': 'takes no arguments' },
    getBackend: { '*': 'takes no arguments' },
    trackTensors: { '*': 'takes no arguments: starts a tracking scope' },
    cpuWasmReady: { '*': 'takes no arguments' },
    shutdownCpuWasm: { '*': 'takes no arguments' },
    ready: {
      noArgs: 'waits for the current backend',
      undefined: 'same as noArgs',
    },
    // hot-path scalar conversions, total on numbers (NaN in, NaN out) and not validated on purpose
    f16Round: {
      '*': 'scalar float16 rounding on the hot path: total on numbers, no validation by design',
    },
    f32ToF16Bits: {
      '*': 'scalar conversion on the hot path: total on numbers, no validation by design',
    },
    f16BitsToF32: {
      '*': 'scalar conversion on the hot path: total on numbers, no validation by design',
    },
    'random.seed': { huge: '2**40 is a valid seed: any safe integer seeds the global generator' },
  },
  aliases: {
    // `parse` is `tensor.parse` itself (tensor.parse = parse, one function under two names), documented and
    // tested as returning a Left(ParseError) whose op is 'tensor.parse'
    parse: ['tensor.parse'],
  },
  gaps: tensorGaps,
}
