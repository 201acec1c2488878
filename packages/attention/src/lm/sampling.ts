import { ArgumentError, checkAllocation, ValueError, positiveInt } from '@heed/tensor'
import { operatorOptions } from '../operators/strict.js'

/** How the next token is drawn from a row of logits. */
export interface SamplingOptions {
  /** Softmax temperature (default 1); 0 is greedy (argmax, the lowest id among ties). */
  readonly temperature?: number
  /** Keep only the `topK` most likely tokens (default: all). */
  readonly topK?: number
  /**
   * Nucleus sampling (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration", §3.1): keep the
   * smallest set of most likely tokens whose probability reaches `topP`, in (0, 1] (default 1: all).
   */
  readonly topP?: number
  /** Seed of the counter-based draws (default 0). */
  readonly seed?: number
}

/** A 32-bit integer hash (the murmur3 finaliser). */
const mix = (h: number): number => {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/**
 * A uniform draw in [0, 1) that is a pure function of `(seed, counter)`: 53 bits from two hashes of the pair.
 * Integer arithmetic only (`Math.imul`, shifts), so Node and every browser give the same number; there is no
 * state to carry, and draw `i` of a seed never depends on how many draws came before.
 */
export function counterUniform(seed: number, counter: number): number {
  const s = mix((seed >>> 0) ^ 0x9e3779b9) ^ mix(Math.floor(seed / 2 ** 32) >>> 0)
  const c = mix(counter >>> 0) ^ Math.imul(Math.floor(counter / 2 ** 32) >>> 0, 0x27d4eb2f)
  const a = mix(s ^ c)
  const b = mix(a ^ 0x5bd1e995 ^ s)
  return (a * 2 ** 21 + (b >>> 11)) / 2 ** 53
}

/** Resolved, validated sampling options. */
export interface Sampler {
  readonly temperature: number
  readonly topK: number
  readonly topP: number
  readonly seed: number
  /** The token drawn from `logits` (one row of `vocab` numbers) for draw number `counter`. */
  pick(logits: ArrayLike<number>, counter: number): number
}

/**
 * Validate sampling options (typed errors naming `op`) and return the sampler. The draw: tokens ordered by logit
 * (ties by id), cut to `topK`, then to the nucleus of mass `topP` under the temperature's softmax (computed in
 * float64), then the inverse CDF at `counterUniform(seed, counter)`. `topK: 1` and a tiny `topP` are greedy.
 */
const SAMPLING_OPTIONS: Record<keyof SamplingOptions, true> = { temperature: true, topK: true, topP: true, seed: true }
/** @internal the sampling keys of an options object that has others too (generate's). */
export const SAMPLING_KEYS = Object.keys(SAMPLING_OPTIONS) as (keyof SamplingOptions)[]

export function sampler(op: string, vocab: number, opts: SamplingOptions = {}): Sampler {
  // `op` is the caller's name (generate, a decoding loop): the sampler's errors are in it, so it must be one
  if (typeof op !== 'string' || op === '') throw new ArgumentError({ op: 'sampler', arg: 'op', expected: "the caller's op name, a non-empty string (errors of the sampler name it)", actual: op === null ? 'null' : Array.isArray(op) ? 'an array' : typeof op })
  positiveInt(op, 'vocab', vocab)
  checkAllocation(op, 'vocab', vocab, 'float64')
  operatorOptions(op, opts, SAMPLING_KEYS, '{ temperature?, topK?, topP?, seed? }')
  const temperature = opts.temperature ?? 1
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)
    throw new ValueError({ op, arg: 'temperature', expected: 'a finite number ≥ 0 (0: greedy)', actual: temperature })
  const topK = opts.topK ?? vocab
  positiveInt(op, 'topK', topK)
  const topP = opts.topP ?? 1
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new ValueError({ op, arg: 'topP', expected: 'a number in (0, 1]', actual: topP })
  const seed = opts.seed ?? 0
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) throw new ValueError({ op, arg: 'seed', expected: 'a non-negative safe integer', actual: seed })
  const k = Math.min(topK, vocab)
  const order = new Int32Array(vocab)
  const w = new Float64Array(vocab)

  const pick = (logits: ArrayLike<number>, counter: number): number => {
    if (logits.length !== vocab) throw new ValueError({ op, arg: 'logits', expected: `${vocab} logits`, actual: logits.length })
    let best = -1
    for (let i = 0; i < vocab; i++) {
      const x = logits[i]!
      if (Number.isNaN(x)) throw new ValueError({ op, arg: 'logits', expected: 'no NaN logits', actual: `NaN at token ${i} (draw ${counter})` })
      if (best < 0 || x > logits[best]!) best = i
    }
    if (logits[best] === -Infinity) throw new ValueError({ op, arg: 'logits', expected: 'at least one finite logit', actual: `all −∞ (draw ${counter})` })
    if (temperature === 0 || k === 1) return best
    for (let i = 0; i < vocab; i++) order[i] = i
    const sorted = order.sort((a, b) => logits[b]! - logits[a]! || a - b)
    const top = logits[best]!
    let total = 0
    for (let r = 0; r < k; r++) total += w[r] = Math.exp((logits[sorted[r]!]! - top) / temperature)
    // the nucleus: the shortest prefix whose mass reaches topP (at least the first token)
    let n = k
    if (topP < 1) {
      let cum = 0
      for (let r = 0; r < k; r++) {
        cum += w[r]!
        if (cum >= topP * total) {
          n = r + 1
          break
        }
      }
    }
    let mass = 0
    for (let r = 0; r < n; r++) mass += w[r]!
    const u = counterUniform(seed, counter) * mass
    let cum = 0
    for (let r = 0; r < n; r++) {
      cum += w[r]!
      if (u < cum) return sorted[r]!
    }
    return sorted[n - 1]!
  }
  return { temperature, topK: k, topP, seed, pick }
}
