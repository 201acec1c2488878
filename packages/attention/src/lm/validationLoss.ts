import { noGrad, scope, tensor, ValueError } from '@heed/tensor'
import { lmLoss, type TransformerLM, type TransformerLMParams } from './transformerLM.js'
import { operatorOptions } from '../operators/strict.js'
import { lmArg, paramsArg, tokenIds } from './check.js'

export interface ValidationLossOptions {
  /** Window length (default the model's training context). */
  readonly context?: number
  /** Read at most this many tokens from the start of the text (default all). */
  readonly maxTokens?: number
  /** Windows per forward pass (default 8). */
  readonly batch?: number
}

export interface ValidationLoss {
  /** Mean next-token cross-entropy, nats per token. */
  readonly nats: number
  /** The same in bits: bits per character for a character-level model. */
  readonly bitsPerChar: number
  /** Tokens predicted. */
  readonly tokens: number
}

/**
 * Next-token loss over consecutive, non-overlapping windows of `context` tokens (each window predicts its
 * tokens 2…T+1 from a fresh start, as training does): the validation metric of the training loop. Runs without
 * recording a tape; leaves no tensors behind. Async: the loss is read with `data()`, so it runs on WebGPU too.
 */
const VALIDATION_LOSS_OPTIONS: Record<keyof ValidationLossOptions, true> = { context: true, maxTokens: true, batch: true }

export async function validationLoss(lm: TransformerLM, params: TransformerLMParams, tokens: Int32Array, opts: ValidationLossOptions = {}): Promise<ValidationLoss> {
  const op = 'validationLoss'
  lmArg(op, lm)
  paramsArg(op, params)
  tokenIds(op, 'tokens', tokens)
  operatorOptions(op, opts, Object.keys(VALIDATION_LOSS_OPTIONS), '{ context?, maxTokens?, batch? }')
  const T = opts.context ?? lm.config.context
  const B = opts.batch ?? 8
  const n = Math.min(tokens.length, opts.maxTokens ?? tokens.length)
  const windows = Math.floor((n - 1) / T)
  if (windows < 1) throw new ValueError({ op, arg: 'tokens', expected: `at least context + 1 = ${T + 1} tokens`, actual: n })
  let total = 0
  for (let w0 = 0; w0 < windows; w0 += B) {
    const rows = Math.min(B, windows - w0)
    const x = new Int32Array(rows * T)
    const y = new Int32Array(rows * T)
    for (let r = 0; r < rows; r++) {
      const o = (w0 + r) * T
      x.set(tokens.subarray(o, o + T), r * T)
      y.set(tokens.subarray(o + 1, o + T + 1), r * T)
    }
    const at = { backend: params.embed.backend }
    const loss = noGrad(() => scope(() => lmLoss(lm.forward(params, tensor(x, [rows, T], 'int32', at)), tensor(y, [rows, T], 'int32', at))))
    try {
      total += (await loss.data())[0]! * rows * T
    } finally {
      loss.dispose()
    }
  }
  const nats = total / (windows * T)
  return { nats, bitsPerChar: nats / Math.LN2, tokens: windows * T }
}
