import { ArgumentError, isTensor, type Tensor, kindOf } from '@heed/tensor'
import type { TransformerLM, TransformerLMParams } from './transformerLM.js'

/**
 * @internal argument checks of the LM helpers (validationLoss, perplexity, saveLM, lmDuoGates): a missing model, a
 * parameter tree holding a disposed tensor, or a plain array of tokens is named at the top, in the name of the
 * function called, instead of failing as a TypeError on `lm.config` or a DisposedError of an inner op.
 */

/** A model from `transformerLM`. */
export function lmArg(op: string, lm: TransformerLM): TransformerLM {
  if (lm === null || typeof lm !== 'object' || typeof lm.forward !== 'function' || lm.config === null || typeof lm.config !== 'object')
    throw new ArgumentError({ op, arg: 'lm', expected: 'a TransformerLM (see transformerLM)', actual: kindOf(lm) })
  return lm
}

/** A parameter tree (`lm.init()`): an object whose tensors are all live. */
export function paramsArg(op: string, params: TransformerLMParams): TransformerLMParams {
  if (params === null || typeof params !== 'object' || Array.isArray(params))
    throw new ArgumentError({ op, arg: 'params', expected: 'the parameter tree of the model (lm.init())', actual: kindOf(params) })
  const walk = (t: unknown): void => {
    if (isTensor(t)) (t as Tensor).assertLive(op)
    else if (Array.isArray(t)) t.forEach(walk)
    else if (t !== null && typeof t === 'object') Object.values(t).forEach(walk)
  }
  walk(params)
  return params
}

/** Token ids as an Int32Array. */
export function tokenIds(op: string, arg: string, tokens: Int32Array): Int32Array {
  if (!(tokens instanceof Int32Array)) throw new ArgumentError({ op, arg, expected: 'an Int32Array of token ids (tokenizer.encode)', actual: kindOf(tokens) })
  return tokens
}
