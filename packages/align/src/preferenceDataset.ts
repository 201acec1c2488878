import { ArgumentError, noGrad, positiveInt, scope, ValueError } from '@heed/tensor'
import type { CharTokenizer, TransformerLM, TransformerLMParams } from '@heed/attention'
import { completionBatch } from './completionBatch.js'
import { completionLogps } from './completionLogps.js'
import { optionKeys, requireOptions } from './internal.js'

/** A model and its parameters. */
export interface LanguageModel {
  readonly lm: TransformerLM
  readonly params: TransformerLMParams
}

/** A text pair: `kjvPreferencePairs` makes them, any `{ prompt, chosen, rejected }` will do. */
export interface TextPair {
  readonly prompt: string
  readonly chosen: string
  readonly rejected: string
  readonly task?: string
}

/** One encoded pair with the frozen reference's per-token log-probs of each completion token. */
export interface PreferenceExample {
  readonly prompt: Int32Array
  readonly chosen: Int32Array
  readonly rejected: Int32Array
  /** log π_ref of each chosen token, `chosen.length` entries. */
  readonly refChosen: Float32Array
  readonly refRejected: Float32Array
  readonly task?: string
}

export interface PreferenceDatasetOptions {
  /** The frozen reference model (e.g. `loadKjvModel()`); the policy starts as a copy of it. */
  readonly reference: LanguageModel
  /** The policy's architecture. A reference of another config is a `ValueError`. Default: the reference's. */
  readonly policy?: TransformerLM
  /** The models' tokenizer (`charTokenizer(vocab)`); its size must be the models' vocabulary. */
  readonly tokenizer: Pick<CharTokenizer, 'encode' | 'vocab' | 'size'>
  /**
   * `equal` (default): chosen and rejected of a pair must have the same length, because summed log-probs favour
   * the shorter side and a dataset of unequal pairs teaches length before anything else; `any` allows them.
   */
  readonly lengths?: 'equal' | 'any'
  /** Pairs per reference forward pass. Default 16. */
  readonly chunk?: number
}

const OPTIONS = optionKeys<PreferenceDatasetOptions>({ reference: true, policy: true, tokenizer: true, lengths: true, chunk: true })

const kindOf = (u: unknown): string => (u === null ? 'null' : Array.isArray(u) ? 'an array' : u === '' ? 'an empty string' : typeof u)

const CONFIG_KEYS = ['vocab', 'dModel', 'layers', 'heads', 'kvHeads', 'hidden', 'context', 'rope', 'tied', 'eps'] as const

/** The policy and the reference must be one architecture: DPO's log-ratio compares a model with its own starting point. */
export function requireSameArchitecture(op: string, policy: TransformerLM, reference: TransformerLM): void {
  // the check's own arguments, in its own name; a differing config is then reported in the caller's `op`
  const self = 'requireSameArchitecture'
  if (typeof op !== 'string' || op === '') throw new ArgumentError({ op: self, arg: 'op', expected: 'the name of the calling function (a non-empty string)', actual: kindOf(op) })
  for (const [arg, m] of [['policy', policy], ['reference', reference]] as const)
    if (m === null || typeof m !== 'object' || m.config === null || typeof m.config !== 'object')
      throw new ArgumentError({ op: self, arg, expected: 'a TransformerLM (an object with a config)', actual: m === null || typeof m !== 'object' ? kindOf(m) : `${kindOf(m.config)} config` })
  for (const k of CONFIG_KEYS) {
    const want = JSON.stringify(policy.config[k])
    const got = JSON.stringify(reference.config[k])
    if (want !== got) throw new ValueError({ op, arg: `reference.config.${k}`, expected: `${want} (the policy's)`, actual: got }, 'the reference model is of another architecture than the policy')
  }
}

function encode(op: string, tokenizer: PreferenceDatasetOptions['tokenizer'], text: unknown, arg: string): Int32Array {
  if (typeof text !== 'string') throw new ValueError({ op, arg, expected: 'a string', actual: typeof text })
  const known = new Set(tokenizer.vocab)
  for (let i = 0; i < text.length; i++)
    if (!known.has(text[i]!))
      throw new ValueError({ op, arg, expected: `characters of the model's ${tokenizer.size}-character vocabulary`, actual: `${JSON.stringify(text[i])} (code ${text.charCodeAt(i)}) at position ${i}` })
  return tokenizer.encode(text)
}

/**
 * Encode text preference pairs for a language model and attach the frozen reference's per-token log-probs of every
 * completion token, computed once here (TRL's `precompute_ref_log_probs`): the reference never changes, so each
 * training step runs the policy only. The result feeds `preferenceBatches({ collate: collatePreferences })` →
 * `trainStep`. Everything is checked before the reference runs: empty prompts or completions, characters outside the
 * vocabulary, unequal chosen/rejected lengths (unless `lengths: 'any'`), sequences longer than the context, a
 * tokenizer of another size and a reference of another architecture are `ValueError`s naming the pair and field.
 */
export async function preferenceDataset(pairs: readonly TextPair[], opts: PreferenceDatasetOptions): Promise<PreferenceExample[]> {
  const op = 'preferenceDataset'
  if (opts === undefined) throw new ValueError({ op, arg: 'opts', expected: '{ reference, tokenizer, … }', actual: 'undefined' })
  const o = requireOptions(op, opts, OPTIONS)
  const reference = o['reference'] as LanguageModel | undefined
  if (reference === null || typeof reference !== 'object' || typeof reference.lm?.forward !== 'function' || reference.params === undefined)
    throw new ValueError({ op, arg: 'reference', expected: '{ lm, params } of the frozen reference model', actual: reference === null ? 'null' : typeof reference })
  const policy = (o['policy'] as TransformerLM | undefined) ?? reference.lm
  // checked here, in this function's name: requireSameArchitecture would name itself
  for (const [arg, m] of [['reference.lm', reference.lm], ['policy', policy]] as const) {
    const config: unknown = m !== null && typeof m === 'object' ? (m as { config?: unknown }).config : undefined
    if (config === null || typeof config !== 'object')
      throw new ValueError({ op, arg, expected: 'a TransformerLM (an object with a config)', actual: m === null || typeof m !== 'object' ? String(m === null ? 'null' : typeof m) : 'an object without a config' })
  }
  requireSameArchitecture(op, policy, reference.lm)
  const tokenizer = o['tokenizer'] as PreferenceDatasetOptions['tokenizer']
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function' || !Array.isArray(tokenizer.vocab))
    throw new ValueError({ op, arg: 'tokenizer', expected: 'a charTokenizer', actual: tokenizer === null ? 'null' : typeof tokenizer })
  if (tokenizer.size !== policy.config.vocab) throw new ValueError({ op, arg: 'tokenizer', expected: `${policy.config.vocab} characters (the model's vocabulary)`, actual: tokenizer.size })
  const lengths = o['lengths'] ?? 'equal'
  if (lengths !== 'equal' && lengths !== 'any') throw new ValueError({ op, arg: 'lengths', expected: "'equal' or 'any'", actual: String(lengths) })
  const chunk = positiveInt(op, 'chunk', o['chunk'] ?? 16)
  if (!Array.isArray(pairs) || pairs.length === 0) throw new ValueError({ op, arg: 'pairs', expected: 'a non-empty array of { prompt, chosen, rejected }', actual: Array.isArray(pairs) ? 'an empty array' : typeof pairs })
  const context = policy.config.context

  const encoded = pairs.map((p, i) => {
    if (p === null || typeof p !== 'object') throw new ValueError({ op, arg: `pairs[${i}]`, expected: '{ prompt, chosen, rejected }', actual: String(p) })
    const prompt = encode(op, tokenizer, p.prompt, `pairs[${i}].prompt`)
    const chosen = encode(op, tokenizer, p.chosen, `pairs[${i}].chosen`)
    const rejected = encode(op, tokenizer, p.rejected, `pairs[${i}].rejected`)
    if (prompt.length === 0) throw new ValueError({ op, arg: `pairs[${i}].prompt`, expected: 'at least one character', actual: 'an empty prompt' })
    for (const [side, ids] of [['chosen', chosen], ['rejected', rejected]] as const) {
      if (ids.length === 0) throw new ValueError({ op, arg: `pairs[${i}].${side}`, expected: 'at least one character', actual: 'an empty completion' })
      if (prompt.length + ids.length > context)
        throw new ValueError({ op, arg: `pairs[${i}].${side}`, expected: `prompt + completion of at most the context, ${context} characters`, actual: `${prompt.length} + ${ids.length}` })
    }
    if (lengths === 'equal' && chosen.length !== rejected.length)
      throw new ValueError({ op, arg: `pairs[${i}].rejected`, expected: `${chosen.length} characters, the chosen completion's length (or lengths: 'any')`, actual: rejected.length })
    return { prompt, chosen, rejected, task: p.task }
  })

  const out: PreferenceExample[] = []
  const backend = reference.params.embed.backend
  for (let i0 = 0; i0 < encoded.length; i0 += chunk) {
    const part = encoded.slice(i0, i0 + chunk)
    const n = part.length
    const perToken = noGrad(() =>
      scope(() => {
        const batch = completionBatch([...part.map(p => p.prompt), ...part.map(p => p.prompt)], [...part.map(p => p.chosen), ...part.map(p => p.rejected)], { backend })
        return completionLogps(reference.lm, reference.params, batch)
      }),
    )
    let values: ArrayLike<number>
    try {
      values = await perToken.data()
    } finally {
      perToken.dispose()
    }
    const T = perToken.shape[1]!
    // Row r's completion token k is predicted at position (prompt length − 1 + k).
    const row = (r: number, start: number, len: number): Float32Array => Float32Array.from({ length: len }, (_, k) => values[r * T + start + k]!)
    part.forEach((p, j) => {
      out.push({
        prompt: p.prompt,
        chosen: p.chosen,
        rejected: p.rejected,
        refChosen: row(j, p.prompt.length - 1, p.chosen.length),
        refRejected: row(n + j, p.prompt.length - 1, p.rejected.length),
        ...(p.task !== undefined ? { task: p.task } : {}),
      })
    })
  }
  return out
}
