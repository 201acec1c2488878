import { dispose, positiveInt, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import type { OperatorFunction } from 'rxjs'
import { disposeHcam, hcamMemory, hcamRead, hcamWrite, type HcamMemory, type HcamMemoryOptions, type HcamReadOptions } from './hcam.js'
import { config, finite, flag, optionKeys, pick } from './internal.js'
import { memoryOperator } from './memoryStream.js'
import type { Recall } from './recall.js'

export interface HcamStreamOptions extends HcamReadOptions, HcamMemoryOptions {
  /** Tokens per stored chunk (each chunk gets one summary key). */
  readonly chunkSize: number
  /** Most chunks kept; the oldest are dropped past it (default: no limit). */
  readonly maxChunks?: number
}

// the two halves the stream hands on: to hcamMemory at the factory, to hcamRead per recall
const MEMORY_OPTIONS = optionKeys<HcamMemoryOptions>({ chunkSize: true, maxChunks: true })
const READ_OPTIONS = optionKeys<HcamReadOptions>({ topK: true, heads: true, scale: true, mask: true, queryPositions: true, positionalEncoding: true, params: true })
const OPTIONS = optionKeys<HcamStreamOptions>({ chunkSize: true, maxChunks: true, topK: true, heads: true, scale: true, mask: true, queryPositions: true, positionalEncoding: true, params: true })

/**
 * HCAM as an RxJS operator: `TokenChunk` rows `[T, D]` are written as they stream (chunked by `chunkSize`, which
 * need not match the stream's chunking); `{ query: [Q, D] }` emits the `[Q, D]` read over every complete chunk.
 */
export function hcamStream(opts: HcamStreamOptions): OperatorFunction<TokenChunk | Recall, Tensor> {
  const op = 'hcamStream'
  // every check here, at the factory call: inside the subscription a typo would only surface at the first recall
  config(op, opts, OPTIONS, 'opts')
  const init = hcamMemory(pick(opts, MEMORY_OPTIONS) as HcamMemoryOptions)
  positiveInt(op, 'topK', opts.topK)
  if (opts.heads !== undefined) positiveInt(op, 'heads', opts.heads)
  flag(op, 'positionalEncoding', opts.positionalEncoding)
  finite(op, 'scale', opts.scale)
  const readOpts = pick(opts, READ_OPTIONS) as HcamReadOptions
  return memoryOperator<HcamMemory>(
    op,
    () => init,
    (s, chunk) => ({ state: hcamWrite(s, chunk.tokens), out: null }),
    (s, query) => {
      const r = hcamRead(s, query, readOpts)
      dispose([r.indices, r.weights])
      return r.out
    },
    disposeHcam,
  )
}
