import { ArgumentError, checkAllocation, nonNegativeInt, tensor, ValueError, type Tensor } from '@heed/tensor'
import { operatorOptions } from '../operators/strict.js'

export interface LMBatchOptions {
  /** Sequences per batch. */
  readonly batch: number
  /** Tokens per sequence (the model's training context). */
  readonly context: number
  /** The data order's seed: batch `i` of a seed is the same on every machine and in every run. */
  readonly seed?: number
}

/** One training batch: inputs and next-token targets, int32 [batch, context] each (the caller owns them). */
export interface LMBatch {
  readonly x: Tensor
  readonly y: Tensor
  /** The batch's index in the data order (its position in the stream). */
  readonly index: number
  /** Start offsets of the windows in the token array. */
  readonly offsets: Int32Array
}

/** A 32-bit integer hash (the murmur3 finaliser): counter-based randomness, no state to save. */
const mix = (h: number): number => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/**
 * The window offsets of batch `index`: `batch` uniform draws from [0, tokens − context − 1], a pure function of
 * (seed, index, row). Because the data order is counter-based, a run's data position is just the batch index:
 * resuming at step s reads exactly the batches an uninterrupted run would, with no RNG state in the checkpoint.
 */
export function lmBatchOffsets(tokens: number, opts: LMBatchOptions, index: number): Int32Array {
  const op = 'lmBatchOffsets'
  nonNegativeInt(op, 'tokens', tokens)
  return offsetsOf(op, tokens, opts, index)
}

const LM_BATCH_OPTIONS: Record<keyof LMBatchOptions, true> = { batch: true, context: true, seed: true }

function offsetsOf(op: string, tokens: number, opts: LMBatchOptions, index: number): Int32Array {
  operatorOptions(op, opts, Object.keys(LM_BATCH_OPTIONS), '{ batch, context, seed? }')
  const { batch, context } = opts
  if (!(Number.isInteger(batch) && batch >= 1)) throw new ValueError({ op, arg: 'batch', expected: 'a positive integer', actual: batch })
  if (!(Number.isInteger(context) && context >= 1)) throw new ValueError({ op, arg: 'context', expected: 'a positive integer', actual: context })
  if (!(Number.isInteger(index) && index >= 0)) throw new ValueError({ op, arg: 'index', expected: 'a non-negative integer', actual: index })
  checkAllocation(op, 'batch', batch * context, 'int32')
  const span = tokens - context
  if (span < 1) throw new ValueError({ op, arg: 'tokens', expected: `more than context + 1 = ${context + 1} tokens`, actual: tokens })
  const seed = opts.seed ?? 0
  const out = new Int32Array(batch)
  for (let r = 0; r < batch; r++) {
    const h = mix(mix(mix(seed ^ 0x9e3779b9) ^ index) ^ Math.imul(r + 1, 0x27d4eb2f))
    // 2^32 is not a multiple of span: the bias is below span / 2^32 (< 1e-3 for the corpus), immaterial here.
    out[r] = Math.floor((h / 2 ** 32) * span)
  }
  return out
}

/** Batch `index` of the data order over `tokens`: windows x = tokens[o, o+T), y = tokens[o+1, o+T+1). */
export function lmBatch(tokens: Int32Array, opts: LMBatchOptions, index: number): LMBatch {
  if (!(tokens instanceof Int32Array)) throw new ArgumentError({ op: 'lmBatch', arg: 'tokens', expected: 'an Int32Array of token ids', actual: tokens === null ? 'null' : Array.isArray(tokens) ? 'an array' : typeof tokens })
  const offsets = offsetsOf('lmBatch', tokens.length, opts, index)
  const T = opts.context
  const x = new Int32Array(offsets.length * T)
  const y = new Int32Array(offsets.length * T)
  offsets.forEach((o, r) => {
    x.set(tokens.subarray(o, o + T), r * T)
    y.set(tokens.subarray(o + 1, o + T + 1), r * T)
  })
  return { x: tensor(x, [offsets.length, T], 'int32'), y: tensor(y, [offsets.length, T], 'int32'), index, offsets }
}
