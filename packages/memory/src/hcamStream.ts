import { dispose, positiveInt, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import type { OperatorFunction } from 'rxjs'
import { disposeHcam, hcamMemory, hcamRead, hcamWrite, type HcamMemory, type HcamReadOptions } from './hcam.js'
import { memoryOperator } from './memoryStream.js'
import type { Recall } from './recall.js'

export interface HcamStreamOptions extends HcamReadOptions {
  /** Tokens per stored chunk (each chunk gets one summary key). */
  readonly chunkSize: number
  /** Most chunks kept; the oldest are dropped past it (default: no limit). */
  readonly maxChunks?: number
}

/**
 * HCAM as an RxJS operator: `TokenChunk` rows `[T, D]` are written as they stream (chunked by `chunkSize`, which
 * need not match the stream's chunking); `{ query: [Q, D] }` emits the `[Q, D]` read over every complete chunk.
 */
export function hcamStream(opts: HcamStreamOptions): OperatorFunction<TokenChunk | Recall, Tensor> {
  const op = 'hcamStream'
  const init = hcamMemory(opts)
  positiveInt(op, 'topK', opts.topK)
  const { chunkSize: _c, maxChunks: _m, ...readOpts } = opts
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
