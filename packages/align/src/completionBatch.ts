import { ArgumentError, positiveInt, tensor, ValueError, type Tensor } from '@heed/tensor'
import { optionKeys, requireOptions } from './internal.js'

/**
 * Prompt + completion sequences laid out for one teacher-forced forward pass of a causal language model: row `i`
 * reads `prompt_i ‖ completion_i` without its last token and predicts it shifted by one, right-padded to the
 * longest row. `mask` marks the positions whose label is a completion token — the only ones a preference loss
 * sums (TRL's `completion_mask`).
 */
export interface CompletionBatch {
  /** int32 `[N, T]` input ids (padding: id 0). */
  readonly input: Tensor
  /** int32 `[N, T]` next-token labels. */
  readonly labels: Tensor
  /** bool `[N, T]`: true where the label is a completion token. */
  readonly mask: Tensor
}

export interface CompletionBatchOptions {
  /** Backend the batch tensors are made on (default: the current backend). */
  readonly backend?: string
  /** Longest sequence allowed (prompt + completion), e.g. the model's context. Default: no limit. */
  readonly maxLength?: number
}

type Ids = Int32Array | readonly number[]

const OPTIONS = optionKeys<CompletionBatchOptions>({ backend: true, maxLength: true })

/** `opts` of a batch builder: only `CompletionBatchOptions`' keys, a backend name and a positive `maxLength`. */
export function batchOptions(op: string, opts: unknown, allowed: readonly string[] = OPTIONS): CompletionBatchOptions {
  const o = requireOptions(op, opts, allowed)
  if (o['backend'] !== undefined && typeof o['backend'] !== 'string') throw new ArgumentError({ op, arg: 'backend', expected: 'a backend name', actual: o['backend'] === null ? 'null' : typeof o['backend'] })
  if (o['maxLength'] !== undefined) positiveInt(op, 'maxLength', o['maxLength'])
  return o as CompletionBatchOptions
}

/**
 * Build a `CompletionBatch` from token ids. Padding sits after each row's last token, where a causal model's
 * earlier positions cannot see it, so every row's log-probs are those of the row alone. An empty prompt (nothing to
 * condition the first completion token on), an empty completion, or unequal numbers of prompts and completions
 * are `ValueError`s naming the row.
 */
export function completionBatch(prompts: readonly Ids[], completions: readonly Ids[], opts: CompletionBatchOptions = {}): CompletionBatch {
  const op = 'completionBatch'
  opts = batchOptions(op, opts)
  if (!Array.isArray(prompts) || !Array.isArray(completions)) throw new ValueError({ op, arg: Array.isArray(prompts) ? 'completions' : 'prompts', expected: 'an array of token-id arrays', actual: 'not an array' })
  if (prompts.length !== completions.length) throw new ValueError({ op, arg: 'completions', expected: `${prompts.length} completions (one per prompt)`, actual: completions.length })
  if (prompts.length === 0) throw new ValueError({ op, arg: 'prompts', expected: 'at least one sequence', actual: 0 })
  const N = prompts.length
  let T = 0
  for (let i = 0; i < N; i++) {
    if (prompts[i]!.length === 0) throw new ValueError({ op, arg: `prompts[${i}]`, expected: 'at least one token (the first completion token is predicted from it)', actual: 'an empty prompt' })
    if (completions[i]!.length === 0) throw new ValueError({ op, arg: `completions[${i}]`, expected: 'at least one token', actual: 'an empty completion' })
    const L = prompts[i]!.length + completions[i]!.length
    if (opts.maxLength !== undefined && L > opts.maxLength)
      throw new ValueError({ op, arg: `completions[${i}]`, expected: `prompt + completion of at most ${opts.maxLength} tokens (maxLength)`, actual: `${prompts[i]!.length} + ${completions[i]!.length}` })
    T = Math.max(T, L - 1)
  }
  const input = new Int32Array(N * T)
  const labels = new Int32Array(N * T)
  const mask = new Uint8Array(N * T)
  for (let i = 0; i < N; i++) {
    const p = prompts[i]!
    const c = completions[i]!
    const seq = [...p, ...c]
    for (let j = 0; j < seq.length - 1; j++) {
      input[i * T + j] = seq[j]!
      labels[i * T + j] = seq[j + 1]!
      mask[i * T + j] = j + 1 >= p.length ? 1 : 0
    }
  }
  const at = opts.backend !== undefined ? { backend: opts.backend } : {}
  return { input: tensor(input, [N, T], 'int32', at), labels: tensor(labels, [N, T], 'int32', at), mask: tensor(mask, [N, T], 'bool', at) }
}
