import { ArgumentError, isTensor, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import type { OperatorFunction } from 'rxjs'
import { memoryOperator } from './memoryStream.js'
import type { Recall } from './recall.js'
import { flag, optionKeys, options, pick } from './internal.js'
import { checkNeuralMemoryOptions, NEURAL_MEMORY_OPTIONS } from './titansOptions.js'
import { disposeTitansState, neuralMemory, neuralMemoryInputs, neuralMemoryState, titansRead, type NeuralMemoryOptions, type NeuralMemoryParams, type TitansState } from './titans.js'

export interface NeuralMemoryStreamOptions extends NeuralMemoryOptions {
  /** Emit the per-token reads `[T, dv]` of every stored chunk too (default false: only recalls emit). */
  readonly emitReads?: boolean
}

const OPTIONS = optionKeys<NeuralMemoryStreamOptions>({ chunkSize: true, mode: true, activation: true, maxLr: true, normalize: true, emitReads: true })

/**
 * The neural memory as an RxJS operator: each `TokenChunk` (`tokens: [T, d]` embeddings) is written as it arrives;
 * each `{ query: [Q, d] }` is answered with `[Q, dv]` read from the committed weights. The params are borrowed
 * (never disposed); each subscription starts from M₀ with its own state.
 */
export function neuralMemoryStream(params: NeuralMemoryParams, opts: NeuralMemoryStreamOptions = {}): OperatorFunction<TokenChunk | Recall, Tensor> {
  const op = 'neuralMemoryStream'
  if (params === null || typeof params !== 'object' || !isTensor(params.wk)) throw new ArgumentError({ op, arg: 'params', expected: 'NeuralMemoryParams', actual: typeof params })
  // checked at the factory call, where the options were written, not at the first chunk of a subscription
  options(op, opts, OPTIONS)
  checkNeuralMemoryOptions(op, opts)
  const emitReads = flag(op, 'emitReads', opts.emitReads) ?? false
  const memOpts = pick(opts, NEURAL_MEMORY_OPTIONS)
  const readOpts = pick(memOpts, ['activation'])
  return memoryOperator<TitansState>(
    op,
    () => neuralMemoryState(params),
    (s, chunk) => {
      const res = neuralMemory(params, chunk.tokens, s, memOpts)
      if (!emitReads) res.out.dispose()
      return { state: res.state, out: emitReads ? res.out : null }
    },
    (s, query) => {
      const q = neuralMemoryInputs(params, query, memOpts)
      return titansRead(s, q.queries!, readOpts)
    },
    disposeTitansState,
  )
}
