import { ArgumentError, ShapeError, scope, type Tensor } from '@heed/tensor'
import type { TransformerLM, TransformerLMParams } from '@heed/attention'
import type { CompletionBatch } from './completionBatch.js'
import { tokenLogps } from './tokenLogps.js'

/**
 * Per-token log-probabilities `[N, T]` of a `CompletionBatch` under a `transformerLM`: one forward pass, then the
 * label's entry of each position's log-softmax (`tokenLogps`). Positions outside `batch.mask` hold the prompt's
 * and the padding's log-probs; `logpsFromTokens(…, batch.mask)` and the paired losses select them away.
 * Differentiable in `params`.
 */
export function completionLogps(lm: TransformerLM, params: TransformerLMParams, batch: CompletionBatch): Tensor {
  const op = 'completionLogps'
  if (lm === null || typeof lm !== 'object' || typeof lm.forward !== 'function') throw new ArgumentError({ op, arg: 'lm', expected: 'a transformerLM', actual: lm === null ? 'null' : typeof lm })
  if (batch === null || typeof batch !== 'object') throw new ArgumentError({ op, arg: 'batch', expected: 'a CompletionBatch (completionBatch(…))', actual: String(batch) })
  const { input, labels } = batch
  if (input?.rank !== 2 || labels?.shape.length !== 2 || labels.shape[0] !== input.shape[0] || labels.shape[1] !== input.shape[1])
    throw new ShapeError({ op, arg: 'batch.labels', expected: input?.shape ?? '[N, T]', actual: labels?.shape })
  return scope(() => tokenLogps(lm.forward(params, input), labels))
}
