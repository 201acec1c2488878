import { Observable, map, type SchedulerLike } from 'rxjs'
import { keep, noGrad, scope, slice, tensor, ValueError, type Tensor, positiveInt } from '@heed/tensor'
import type { KvCache } from '../kvCache.js'
import type { CharTokenizer } from './charTokenizer.js'
import { checkIds, layerPolicies, retainedKvBytes, type LMPolicies } from './perplexity.js'
import { sampler, SAMPLING_KEYS, type SamplingOptions } from './sampling.js'
import type { TransformerLM, TransformerLMParams } from './transformerLM.js'

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 256). */
  readonly maxTokens?: number
  /**
   * Stop after a token that ends one of these id sequences (the stop sequence is emitted, then the stream
   * completes), or when the predicate, given every token generated so far, returns true (after emitting it).
   */
  readonly stop?: readonly (readonly number[])[] | ((generated: readonly number[]) => boolean)
  /** Cache policies per kv head, the same for every layer or a function of the layer, as `lm.cache` takes them. */
  readonly policies?: LMPolicies
  /**
   * Tokens a full head's cache holds (default prompt + maxTokens − 1, exactly what the run appends). A prompt
   * that does not fit, or no room left for `maxTokens`, is a ValueError naming the lengths: never a silent cut.
   */
  readonly capacity?: number
  /** Prefill chunk length (default 64); also the streaming heads' chunk headroom. */
  readonly chunk?: number
  /** When given, each decode step waits for this scheduler (e.g. rxjs `asyncScheduler`), so a page can repaint. */
  readonly scheduler?: SchedulerLike
  /**
   * Called before each token is emitted with the bytes of keys and values the caches retain for drawing it (the
   * prompt and the tokens before it; slots in use, not the preallocated storage, as `perplexity`'s `kvBytes.final`):
   * it grows by one token per step under full heads and stops growing once streaming heads hold sink + recent.
   */
  readonly onKvBytes?: (bytes: number) => void
}

interface Plan {
  readonly prompt: Int32Array
  readonly maxTokens: number
  readonly capacity: number
  readonly chunk: number
  readonly stop: (generated: readonly number[]) => boolean
  readonly pick: (logits: ArrayLike<number>, counter: number) => number
  readonly policies: LMPolicies
  readonly scheduler: SchedulerLike | undefined
  readonly onKvBytes: ((bytes: number) => void) | undefined
}

function plan(op: string, lm: TransformerLM, prompt: Int32Array | readonly number[], opts: GenerateOptions): Plan {
  if (lm === null || typeof lm !== 'object' || typeof lm.forward !== 'function' || typeof lm.cache !== 'function')
    throw new ValueError({ op, arg: 'lm', expected: 'a transformerLM', actual: lm === null ? 'null' : typeof lm })
  if (opts === null || typeof opts !== 'object') throw new ValueError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  const { vocab } = lm.config
  if (prompt === null || typeof prompt !== 'object' || typeof prompt.length !== 'number') throw new ValueError({ op, arg: 'prompt', expected: 'an array of token ids', actual: typeof prompt })
  if (prompt.length === 0) throw new ValueError({ op, arg: 'prompt', expected: 'at least one token', actual: 'an empty prompt' })
  checkIds(op, 'prompt', prompt, vocab)
  const ids = Int32Array.from(prompt)
  const maxTokens = opts.maxTokens ?? 256
  positiveInt(op, 'maxTokens', maxTokens)
  const chunk = opts.chunk ?? 64
  positiveInt(op, 'chunk', chunk)
  const perLayer = layerPolicies(op, lm, opts.policies)
  const need = ids.length + maxTokens - 1
  const capacity = opts.capacity ?? need
  positiveInt(op, 'capacity', capacity)
  if (capacity < need && perLayer.some(ps => ps.some(p => p.kind === 'full'))) {
    if (ids.length > capacity)
      throw new ValueError({ op, arg: 'prompt', expected: `at most ${capacity} tokens (the full heads' cache capacity)`, actual: `${ids.length} tokens` }, 'pass a larger capacity, or keep the last tokens of the prompt yourself')
    throw new ValueError({ op, arg: 'maxTokens', expected: `at most ${capacity - ids.length + 1} (capacity ${capacity} − prompt ${ids.length} + 1)`, actual: maxTokens }, 'the full heads cannot hold the prompt and every generated token')
  }
  // the sampling keys only: the rest of generate's options are its own (the sampler rejects keys it does not know)
  const sampling = Object.fromEntries(SAMPLING_KEYS.filter(k => opts[k] !== undefined).map(k => [k, opts[k]])) as SamplingOptions
  const s = sampler(op, vocab, sampling)
  let stop: (generated: readonly number[]) => boolean = () => false
  if (typeof opts.stop === 'function') stop = opts.stop
  else if (opts.stop !== undefined) {
    if (!Array.isArray(opts.stop)) throw new ValueError({ op, arg: 'stop', expected: 'token-id sequences or a predicate', actual: typeof opts.stop })
    const seqs = opts.stop.map((q, i) => {
      if (!Array.isArray(q) || q.length === 0) throw new ValueError({ op, arg: `stop[${i}]`, expected: 'a non-empty token-id sequence', actual: Array.isArray(q) ? 'an empty sequence' : typeof q })
      checkIds(op, `stop[${i}]`, q, vocab)
      return q
    })
    stop = g => seqs.some(q => q.length <= g.length && q.every((x, j) => g[g.length - q.length + j] === x))
  }
  if (opts.scheduler !== undefined && typeof opts.scheduler?.schedule !== 'function') throw new ValueError({ op, arg: 'scheduler', expected: 'an rxjs SchedulerLike', actual: typeof opts.scheduler })
  if (opts.onKvBytes !== undefined && typeof opts.onKvBytes !== 'function') throw new ValueError({ op, arg: 'onKvBytes', expected: 'a function of the byte count', actual: typeof opts.onKvBytes })
  return { prompt: ids, maxTokens, capacity, chunk, stop, pick: s.pick, policies: l => perLayer[l], scheduler: opts.scheduler, onKvBytes: opts.onKvBytes }
}

/**
 * Generate tokens from `prompt` (token ids): prefill the prompt through one KV cache per layer in chunks, then
 * decode one token per step against the caches, each drawn by the counter-based sampler (`temperature` 0 is
 * greedy; draw i of a seed is the same in Node and in a browser). Emits each generated token id as it is drawn.
 *
 * Cold: each subscription runs on its own caches, so `share()`, several subscribers and `retry` behave as usual
 * (same seed, same tokens). The caches are freed when the subscription ends: complete, error or unsubscribe, early
 * or late. Bad arguments (an empty prompt, ids outside the vocabulary, a prompt the full heads cannot hold,
 * temperature < 0, topP outside (0, 1], …) throw a typed error when `generate` is called; failures while running
 * (parameters of another model, a backend error) go to the error channel.
 *
 * Positions past the training context with full heads extrapolate RoPE (see `perplexity`); streaming heads hold
 * sink + recent tokens at any length.
 */
export function generate(lm: TransformerLM, params: TransformerLMParams, prompt: Int32Array | readonly number[], opts: GenerateOptions = {}): Observable<number> {
  const p = plan('generate', lm, prompt, opts)
  return new Observable<number>(subscriber => {
    let caches: KvCache[] | undefined
    let pending: Tensor | undefined
    let done = false
    const release = (): void => {
      done = true
      pending?.dispose()
      pending = undefined
      if (caches) for (const c of caches) c.dispose()
      caches = undefined
    }
    const backend = params?.embed?.backend
    // the last row of the logits of `ids` read at `position`, kept out of any enclosing scope
    const step = (ids: Int32Array, position: number): Tensor =>
      noGrad(() =>
        scope(() => {
          const y = lm.forward(params, tensor(ids, [1, ids.length], 'int32', backend !== undefined ? { backend } : {}), { caches: caches!, position })
          return keep(slice(y, [null, [ids.length - 1, ids.length]]))
        }),
      )
    const read = async (): Promise<ArrayLike<number>> => {
      const v = await pending!.data()
      pending?.dispose()
      pending = undefined
      return v
    }
    const run = async (): Promise<void> => {
      const dtype = params?.embed?.dtype as 'float32' | 'float16' | 'float64'
      caches = lm.cache({ batch: 1, capacity: p.capacity, policies: p.policies, chunk: p.chunk, dtype, ...(backend !== undefined ? { backend } : {}) })
      const P = p.prompt.length
      for (let i0 = 0; i0 < P; i0 += p.chunk) {
        const i1 = Math.min(P, i0 + p.chunk)
        pending?.dispose()
        pending = step(p.prompt.subarray(i0, i1), i0)
      }
      const generated: number[] = []
      for (let i = 0; ; i++) {
        const logits = await read()
        if (done) return
        const id = p.pick(logits, i)
        generated.push(id)
        p.onKvBytes?.(retainedKvBytes(caches!))
        if (done) return
        subscriber.next(id)
        if (done) return
        if (generated.length >= p.maxTokens || p.stop(generated)) break
        if (p.scheduler) {
          await new Promise<void>(resolve => p.scheduler!.schedule(() => resolve()))
          if (done) return
        }
        pending = step(Int32Array.of(id), P + i)
      }
      release()
      subscriber.complete()
    }
    run().catch((err: unknown) => {
      release()
      subscriber.error(err)
    })
    return release
  })
}

export interface GenerateTextOptions extends Omit<GenerateOptions, 'stop'> {
  /** Stop after the generated text ends with one of these strings (emitted, then the stream completes). */
  readonly stop?: string | readonly string[]
}

/**
 * `generate` through a tokenizer: the prompt is encoded first (a character outside the vocabulary is the
 * tokenizer's `ValueError`, thrown before anything starts), and each generated token is emitted as its string.
 */
export function generateText(lm: TransformerLM, params: TransformerLMParams, tokenizer: Pick<CharTokenizer, 'encode' | 'decode'>, prompt: string, opts: GenerateTextOptions = {}): Observable<string> {
  const op = 'generateText'
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function' || typeof tokenizer.decode !== 'function')
    throw new ValueError({ op, arg: 'tokenizer', expected: 'a tokenizer with encode and decode', actual: tokenizer === null ? 'null' : typeof tokenizer })
  if (typeof prompt !== 'string') throw new ValueError({ op, arg: 'prompt', expected: 'a string', actual: typeof prompt })
  const ids = tokenizer.encode(prompt)
  const { stop: stopText, ...rest } = opts
  const strings = stopText === undefined ? undefined : typeof stopText === 'string' ? [stopText] : stopText
  if (strings !== undefined && !Array.isArray(strings)) throw new ValueError({ op, arg: 'stop', expected: 'a string or an array of strings', actual: typeof stopText })
  const stop = strings?.map((s, i) => {
    if (typeof s !== 'string' || s.length === 0) throw new ValueError({ op, arg: `stop[${i}]`, expected: 'a non-empty string', actual: JSON.stringify(s) })
    return [...tokenizer.encode(s)]
  })
  return generate(lm, params, ids, { ...rest, ...(stop ? { stop } : {}) }).pipe(map(id => tokenizer.decode([id])))
}
