import { ArgumentError, tensor, ValueError, type Tensor } from '@heed/tensor'
import { batchOptions, completionBatch, type CompletionBatch } from './completionBatch.js'
import { optionKeys } from './internal.js'
import type { PreferenceExample } from './preferenceDataset.js'

/**
 * A batch of `B` preference pairs for a language model: chosen and rejected completions stacked into one
 * `CompletionBatch` (rows `0…B−1` chosen, `B…2B−1` rejected), so the policy runs one forward pass for both sides
 * (TRL's `concatenated_forward`).
 */
export interface LmPreferenceBatch {
  readonly sequences: CompletionBatch
  /** float32 `[2B, T]` reference per-token log-probs at the masked positions (0 elsewhere). */
  readonly refLogps: Tensor
  readonly pairs: number
  /** The examples themselves (host arrays), for losses that rebuild sequences, such as KTO's mismatched pairs. */
  readonly examples: readonly PreferenceExample[]
}

export interface CollatePreferencesOptions {
  /** Backend the batch tensors are made on (default: the current backend). */
  readonly backend?: string
}

const OPTIONS = optionKeys<CollatePreferencesOptions>({ backend: true })

/** `preferenceBatches`' collate for `preferenceDataset`'s examples. */
export function collatePreferences(examples: readonly PreferenceExample[], opts: CollatePreferencesOptions = {}): LmPreferenceBatch {
  const op = 'collatePreferences'
  opts = batchOptions(op, opts, OPTIONS)
  if (!Array.isArray(examples) || examples.length === 0) throw new ValueError({ op, arg: 'examples', expected: 'a non-empty array of preference examples', actual: Array.isArray(examples) ? 'an empty array' : typeof examples })
  // O(B): each example is the record preferenceDataset makes, named by index (not a TypeError reading `length`)
  examples.forEach((e, i) => {
    if (e === null || typeof e !== 'object' || Array.isArray(e))
      throw new ArgumentError({ op, arg: `examples[${i}]`, expected: 'a preference example { prompt, chosen, rejected, refChosen, refRejected }', actual: e === null ? 'null' : Array.isArray(e) ? 'an array' : typeof e })
    for (const k of ['prompt', 'chosen', 'rejected'] as const)
      if (!ArrayBuffer.isView(e[k]) && !Array.isArray(e[k])) throw new ArgumentError({ op, arg: `examples[${i}].${k}`, expected: 'token ids (an Int32Array)', actual: e[k] === null ? 'null' : typeof e[k] })
  })
  const B = examples.length
  const prompts = [...examples.map(e => e.prompt), ...examples.map(e => e.prompt)]
  const completions = [...examples.map(e => e.chosen), ...examples.map(e => e.rejected)]
  const refs = [...examples.map(e => e.refChosen), ...examples.map(e => e.refRejected)]
  refs.forEach((r, i) => {
    if (r?.length !== completions[i]!.length)
      throw new ValueError({ op, arg: `examples[${i % B}].${i < B ? 'refChosen' : 'refRejected'}`, expected: `${completions[i]!.length} log-probs (one per completion token)`, actual: r?.length })
  })
  const sequences = completionBatch(prompts, completions, opts)
  const T = sequences.input.shape[1]!
  const ref = new Float32Array(2 * B * T)
  refs.forEach((r, i) => ref.set(r, i * T + prompts[i]!.length - 1))
  return { sequences, refLogps: tensor(ref, [2 * B, T], 'float32', opts.backend !== undefined ? { backend: opts.backend } : {}), pairs: B, examples }
}
