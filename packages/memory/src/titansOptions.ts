/**
 * The options of the Titans memory and their checks, in one place because the layer, the stream and the LM
 * operator hand them on: each outer function checks its own set, then passes on only the inner one's keys.
 */
import { ArgumentError, isTensor, positiveInt, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import { flag, kindOf, oneOf, optionKeys, options, pick } from './internal.js'

export type MemoryActivation = 'silu' | 'gelu' | 'tanh' | 'relu'

export interface TitansOptions {
  /** Tokens per chunk, the paper's b. Default 16. */
  readonly chunkSize?: number
  /** `chunked` (default) or `sequential` (gradient at every token's previous weights; ignores chunkSize). */
  readonly mode?: 'chunked' | 'sequential'
  /** Non-linearity between the memory MLP's layers: `'silu'` (default, the paper's), `'gelu'`, `'tanh'` or `'relu'`. */
  readonly activation?: MemoryActivation
}

export interface NeuralMemoryOptions extends TitansOptions {
  /** θ = maxLr·σ(·). Default 1. */
  readonly maxLr?: number
  /** Unit-normalise keys and queries (default true): the step size then means the same for every input scale. */
  readonly normalize?: boolean
}

export const ACTIVATIONS: readonly MemoryActivation[] = ['silu', 'gelu', 'tanh', 'relu']
export const TITANS_OPTIONS = optionKeys<TitansOptions>({ chunkSize: true, mode: true, activation: true })
export const NEURAL_MEMORY_OPTIONS = optionKeys<NeuralMemoryOptions>({ chunkSize: true, mode: true, activation: true, maxLr: true, normalize: true })

/**
 * The values of `TitansOptions` (keys are checked by the caller). An unknown activation used to fall through to
 * relu, and an unknown mode to chunked: both are errors now.
 */
export function checkTitansOptions(op: string, o: TitansOptions): void {
  oneOf(op, 'mode', o.mode, ['chunked', 'sequential'])
  oneOf(op, 'activation', o.activation, ACTIVATIONS)
  if (o.chunkSize !== undefined) positiveInt(op, 'chunkSize', o.chunkSize)
}

/** The values of `NeuralMemoryOptions`. */
export function checkNeuralMemoryOptions(op: string, o: NeuralMemoryOptions): void {
  checkTitansOptions(op, o)
  const maxLr = o.maxLr
  if (maxLr !== undefined && !(typeof maxLr === 'number' && maxLr >= 0 && Number.isFinite(maxLr))) throw new ValueError({ op, arg: 'maxLr', expected: 'a finite number ≥ 0', actual: maxLr })
  flag(op, 'normalize', o.normalize)
}

export interface TitansLayerOptions extends NeuralMemoryOptions {
  /** Attention heads (d must divide). Default 1. */
  readonly heads?: number
  /** MAC segment length. Default 64. */
  readonly segment?: number
  /** MAG/MAL attention window (recent rows seen besides P). Default 64. */
  readonly window?: number
}

const OPTIONS = optionKeys<TitansLayerOptions>({ chunkSize: true, mode: true, activation: true, maxLr: true, normalize: true, heads: true, segment: true, window: true })

/** A layer's params and rows `x: [n, d]`, checked before any of them is read: returns d. */
export function checkLayerInputs(op: string, params: { readonly wq: Tensor; readonly memory: unknown }, x: Tensor, rows = 'T'): number {
  if (params === null || typeof params !== 'object' || !isTensor(params.wq) || params.memory === null || typeof params.memory !== 'object')
    throw new ArgumentError({ op, arg: 'params', expected: 'TitansLayerParams (initTitansLayer)', actual: kindOf(params) })
  const d = params.wq.shape[0]!
  if (!isTensor(x)) throw new ArgumentError({ op, arg: 'x', expected: `a [${rows}, ${d}] tensor`, actual: kindOf(x) })
  if (x.rank !== 2 || x.shape[1] !== d) throw new ShapeError({ op, arg: 'x', expected: `[${rows}, ${d}]`, actual: x.shape })
  return d
}

/** The layer options: only `TitansLayerOptions`' keys, checked values; returns the memory's share of them. */
export function layerOptions(op: string, opts: TitansLayerOptions): NeuralMemoryOptions {
  opts = options(op, opts, OPTIONS)
  checkNeuralMemoryOptions(op, opts)
  // checked whichever variant reads them: a bad `segment` passed to MAG would otherwise wait for a MAC call
  for (const k of ['heads', 'segment', 'window'] as const) if (opts[k] !== undefined) positiveInt(op, k, opts[k])
  return pick(opts, NEURAL_MEMORY_OPTIONS)
}
