import { ArgumentError, cast, dispose, isTensor, loadSafetensors, parseSafetensorsHeader, ParseError, saveSafetensors, ValueError, type FloatDType, type OptState, type Tensor } from '@heed/tensor'
import { transformerLM, type TransformerLM, type TransformerLMConfig, type TransformerLMOptions, type TransformerLMParams } from './transformerLM.js'
import { operatorOptions } from '../operators/strict.js'
import { lmArg, paramsArg } from './check.js'

/**
 * Checkpoints of a `transformerLM` as safetensors files.
 *
 * Tensor names are the parameter pytree's paths joined by dots, in heed's `x·W` layout (`[in, out]`):
 *
 *     embed                 [vocab, dModel]          token embedding (and the output head when tied)
 *     blocks.{l}.norm1      [dModel]                 RMSNorm gain before attention
 *     blocks.{l}.attn.Wq    [dModel, heads·headDim]  (Wk, Wv: [dModel, kvHeads·headDim]; Wo: [heads·headDim, dModel])
 *     blocks.{l}.norm2      [dModel]                 RMSNorm gain before the MLP
 *     blocks.{l}.W1, b1     [dModel, hidden], [hidden]
 *     blocks.{l}.W2, b2     [hidden, dModel], [dModel]
 *     normF                 [dModel]                 final RMSNorm gain
 *     head                  [dModel, vocab]          only when the head is untied
 *
 * A training checkpoint adds the optimizer's slots as `optimizer.{slot}.{path}` (Adam: `mu`, `nu`). `__metadata__`
 * holds JSON strings: `format` (`heed.transformerLM/1`), `config` (the `TransformerLMConfig`), `vocab` (the
 * tokenizer's characters in id order) and, in a training checkpoint, `training` (the optimizer step count and
 * whatever the trainer needs to resume exactly: data position, seed, log).
 */
export const LM_FORMAT = 'heed.transformerLM/1'

/** Pytree paths → tensors (a flat record; names as documented above). */
export function flattenParams(tree: unknown, prefix = ''): Record<string, Tensor> {
  const out: Record<string, Tensor> = {}
  const walk = (t: unknown, path: string): void => {
    if (isTensor(t)) out[path] = t
    else if (Array.isArray(t)) t.forEach((x, i) => walk(x, path === '' ? String(i) : `${path}.${i}`))
    else if (t !== null && typeof t === 'object') for (const [k, v] of Object.entries(t)) if (v !== undefined) walk(v, path === '' ? k : `${path}.${k}`)
  }
  walk(tree, prefix)
  return out
}

/** Rebuild a pytree shaped like `like` from named tensors (`flattenParams`' names); missing names throw. */
function unflatten<P>(op: string, like: P, get: (path: string, shape: readonly number[]) => Tensor, prefix = ''): P {
  const walk = (t: unknown, path: string): unknown => {
    if (isTensor(t)) return get(path, t.shape)
    if (Array.isArray(t)) return t.map((x, i) => walk(x, path === '' ? String(i) : `${path}.${i}`))
    if (t !== null && typeof t === 'object') return Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined).map(([k, v]) => [k, walk(v, path === '' ? k : `${path}.${k}`)]))
    throw new ValueError({ op, arg: path, expected: 'a tensor', actual: typeof t })
  }
  return walk(like, prefix) as P
}

export interface SaveLMOptions {
  /** The tokenizer's characters in id order (required: a model is useless without its alphabet). */
  readonly vocab: readonly string[]
  /** Storage dtype of the parameters (default float32; float16 halves the file). Optimizer state stays float32. */
  readonly dtype?: FloatDType
  /** A training checkpoint: the optimizer state and what the trainer needs to resume (JSON-serialisable). */
  readonly training?: { readonly state: OptState<TransformerLMParams>; readonly meta?: Readonly<Record<string, unknown>> }
}

/** Serialise a model's parameters (and optionally its optimizer state) with its config and vocabulary. */
const SAVE_LM_OPTIONS: Record<keyof SaveLMOptions, true> = { vocab: true, dtype: true, training: true }

export async function saveLM(lm: TransformerLM, params: TransformerLMParams, opts: SaveLMOptions): Promise<Uint8Array> {
  const op = 'saveLM'
  lmArg(op, lm)
  paramsArg(op, params)
  operatorOptions(op, opts, Object.keys(SAVE_LM_OPTIONS), '{ vocab, dtype?, training? }')
  if (!Array.isArray(opts?.vocab) || opts.vocab.length !== lm.config.vocab)
    throw new ValueError({ op, arg: 'vocab', expected: `the ${lm.config.vocab} characters of the model's vocabulary`, actual: Array.isArray(opts?.vocab) ? `${opts.vocab.length}` : typeof opts?.vocab })
  const dtype = opts.dtype ?? 'float32'
  const named = flattenParams(params)
  const casts: Tensor[] = []
  const tensors: Record<string, Tensor> = {}
  for (const [k, t] of Object.entries(named)) {
    if (t.dtype === dtype) tensors[k] = t
    else casts.push((tensors[k] = cast(t, dtype)))
  }
  const metadata: Record<string, string> = { format: LM_FORMAT, config: JSON.stringify(lm.config), vocab: JSON.stringify(opts.vocab) }
  if (opts.training) {
    for (const [slot, tree] of Object.entries(opts.training.state.slots)) Object.assign(tensors, flattenParams(tree, `optimizer.${slot}`))
    metadata['training'] = JSON.stringify({ count: opts.training.state.count, slots: Object.keys(opts.training.state.slots), ...(opts.training.meta ?? {}) })
  }
  try {
    return await saveSafetensors(tensors, metadata)
  } finally {
    dispose(casts)
  }
}

export interface LoadedLM {
  readonly lm: TransformerLM
  readonly config: TransformerLMConfig
  readonly vocab: readonly string[]
  readonly params: TransformerLMParams
  /** Present in a training checkpoint. */
  readonly training?: { readonly state: OptState<TransformerLMParams>; readonly meta: Readonly<Record<string, unknown>> }
}

export interface LoadLMOptions {
  /** The config the caller expects (e.g. the model being resumed): any difference is a `ValueError`. */
  readonly expect?: TransformerLMConfig
  /** Operators for chosen layers (not stored in checkpoints), passed to `transformerLM`. */
  readonly attention?: TransformerLMOptions['attention']
  /** Compute dtype of the loaded parameters (default float32, whatever the file stores). */
  readonly dtype?: FloatDType
  /** Backend the parameters load onto (default: the current backend). */
  readonly backend?: string
}

const CONFIG_KEYS = ['vocab', 'dModel', 'layers', 'heads', 'kvHeads', 'hidden', 'context', 'rope', 'tied', 'eps'] as const

/**
 * Load a checkpoint written by `saveLM` (or by the PyTorch twin in `scripts/`). Everything is checked before a
 * tensor is kept: the format tag, the config, the vocabulary, every expected tensor with its shape and no tensor
 * more; a truncated or corrupt file is a `ParseError`, a file of another model a `ValueError` naming the field.
 */
/** @internal */
export const LOAD_LM_OPTIONS: Record<keyof LoadLMOptions, true> = { expect: true, attention: true, dtype: true, backend: true }

export function loadLM(bytes: Uint8Array, opts: LoadLMOptions = {}): LoadedLM {
  const op = 'loadLM'
  if (!(bytes instanceof Uint8Array))
    throw new ArgumentError({ op, arg: 'bytes', expected: 'the bytes of a checkpoint, a Uint8Array (from saveLM)', actual: bytes === null ? 'null' : Array.isArray(bytes) ? 'an array' : typeof bytes })
  operatorOptions(op, opts, Object.keys(LOAD_LM_OPTIONS), '{ expect?, attention?, dtype?, backend? }')
  const header = parseSafetensorsHeader(bytes)
  if (header._tag === 'Left') throw header.left
  const meta = header.right.metadata
  if (meta['format'] !== LM_FORMAT) throw new ParseError({ op, arg: '__metadata__.format', expected: LM_FORMAT, actual: meta['format'] ?? 'none' }, 'not a heed language-model checkpoint')
  const json = (key: string): unknown => {
    try {
      return JSON.parse(meta[key] ?? '')
    } catch {
      throw new ParseError({ op, arg: `__metadata__.${key}`, expected: 'JSON', actual: (meta[key] ?? 'none').slice(0, 40) })
    }
  }
  const config = json('config') as TransformerLMConfig
  const vocab = json('vocab') as string[]
  if (!Array.isArray(vocab) || vocab.some(c => typeof c !== 'string')) throw new ParseError({ op, arg: '__metadata__.vocab', expected: 'an array of characters', actual: typeof vocab })
  const lm = transformerLM({ ...config, ...(opts.attention ? { attention: opts.attention } : {}) })
  if (vocab.length !== lm.config.vocab) throw new ValueError({ op, arg: '__metadata__.vocab', expected: `${lm.config.vocab} characters (config.vocab)`, actual: vocab.length })
  if (opts.expect !== undefined) {
    const want = transformerLM(opts.expect).config
    for (const k of CONFIG_KEYS)
      if (JSON.stringify(want[k]) !== JSON.stringify(lm.config[k]))
        throw new ValueError({ op, arg: `config.${k}`, expected: JSON.stringify(want[k]), actual: JSON.stringify(lm.config[k]) }, 'the checkpoint is of another model')
  }
  const training = meta['training'] !== undefined ? (json('training') as { count: number; slots: string[] } & Record<string, unknown>) : undefined

  // Shapes and names against a skeleton of the model, before any tensor is allocated.
  const skeleton = lm.init({ dtype: 'float32' })
  const expected = new Map<string, readonly number[]>()
  try {
    for (const [k, t] of Object.entries(flattenParams(skeleton))) expected.set(k, t.shape)
    for (const slot of training?.slots ?? []) for (const [k, t] of Object.entries(flattenParams(skeleton, `optimizer.${slot}`))) expected.set(k, t.shape)
  } finally {
    dispose(skeleton)
  }
  const present = new Map(header.right.entries.map(e => [e.name, e]))
  for (const [name, shape] of expected) {
    const e = present.get(name)
    if (e === undefined) throw new ValueError({ op, arg: name, expected: `a tensor of shape [${shape.join(',')}]`, actual: 'missing' })
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) throw new ValueError({ op, arg: name, expected: shape, actual: e.shape })
  }
  for (const name of present.keys()) if (!expected.has(name)) throw new ValueError({ op, arg: name, expected: 'only the tensors of the config', actual: 'an unexpected tensor' })

  const raw = loadSafetensors(bytes, opts.backend !== undefined ? { backend: opts.backend } : {})
  const dtype = opts.dtype ?? 'float32'
  const tensors: Record<string, Tensor> = {}
  for (const [k, t] of Object.entries(raw)) {
    const slot = k.startsWith('optimizer.')
    const want: FloatDType = slot ? 'float32' : dtype
    if (t.dtype === want) tensors[k] = t
    else {
      tensors[k] = cast(t, want)
      t.dispose()
    }
  }
  const get = (path: string): Tensor => tensors[path]!
  const shape = lm.init({ dtype: 'float32' })
  try {
    const params = unflatten(op, shape, get)
    const loaded: LoadedLM = { lm, config: lm.config, vocab, params }
    if (training === undefined) return loaded
    const slots: Record<string, TransformerLMParams> = {}
    for (const slot of training.slots) slots[slot] = unflatten(op, shape, get, `optimizer.${slot}`)
    const { count, slots: _names, ...rest } = training
    return { ...loaded, training: { state: { count, slots }, meta: rest } }
  } finally {
    dispose(shape)
  }
}
