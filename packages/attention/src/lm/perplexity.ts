import { bytesPerElement, keep, logSoftmax, noGrad, oneHot, reshape, scope, sum, tensor, ValueError, where, type Tensor, positiveInt } from '@heed/tensor'
import { headPolicy, type HeadPolicy, type KvCache } from '../kvCache.js'
import type { LMCacheOptions, TransformerLM, TransformerLMParams } from './transformerLM.js'
import { operatorOptions } from '../operators/strict.js'
import { lmArg, paramsArg } from './check.js'

/** Per-kv-head cache policies of every layer, as `lm.cache` takes them. */
export type LMPolicies = NonNullable<LMCacheOptions['policies']>

/** One validated policy list per layer (full where none is given). */
export function layerPolicies(op: string, lm: TransformerLM, policies: LMPolicies | undefined): HeadPolicy[][] {
  const { layers, kvHeads } = lm.config
  if (policies !== undefined && typeof policies !== 'function' && !Array.isArray(policies))
    throw new ValueError({ op, arg: 'policies', expected: 'one policy per kv head, or a function of the layer', actual: typeof policies })
  return Array.from({ length: layers }, (_, l) => {
    const ps = typeof policies === 'function' ? policies(l) : policies
    if (ps === undefined) return Array.from({ length: kvHeads }, () => headPolicy.full())
    if (!Array.isArray(ps) || ps.length !== kvHeads)
      throw new ValueError({ op, arg: 'policies', expected: `${kvHeads} policies (one per kv head) for layer ${l}`, actual: Array.isArray(ps) ? ps.length : typeof ps })
    return ps.map((p: HeadPolicy, h) => {
      const ok = p?.kind === 'full' || (p?.kind === 'streaming' && Number.isInteger(p.sink) && p.sink >= 0 && Number.isInteger(p.recent) && p.recent >= 1)
      if (!ok) throw new ValueError({ op, arg: `policies (layer ${l}, kv head ${h})`, expected: 'headPolicy.full() or headPolicy.streaming(sink ≥ 0, recent ≥ 1)', actual: JSON.stringify(p) })
      return p
    })
  })
}

/** Check that `ids` are integer token ids of the model's vocabulary. */
export function checkIds(op: string, arg: string, ids: ArrayLike<number>, vocab: number): void {
  for (let i = 0; i < ids.length; i++) {
    const x = ids[i]!
    if (!Number.isInteger(x) || x < 0 || x >= vocab) throw new ValueError({ op, arg, expected: `token ids in [0, ${vocab})`, actual: `${x} at position ${i}` })
  }
}

/** Bytes of the keys and values the caches retain now (slots in use, not the preallocated storage). */
export function retainedKvBytes(caches: readonly KvCache[]): number {
  let n = 0
  for (const c of caches) {
    let tokens = 0
    for (let h = 0; h < c.kvHeads; h++) tokens += c.retained(h)
    n += c.batch * tokens * (c.headDim + c.valueDim) * bytesPerElement(c.dtype)
  }
  return n
}

export interface PerplexityOptions {
  /**
   * Cache policies per kv head, the same for every layer or a function of the layer (`lm.cache`'s `policies`):
   * `headPolicy.full()` (default), `headPolicy.streaming(0, w)` (a sliding window without sinks),
   * `headPolicy.streaming(s, w)` (StreamingLLM's sinks + recent), or any per-head mix (DuoAttention).
   */
  readonly policies?: LMPolicies
  /** Tokens per forward pass (default 64); also the streaming heads' chunk headroom. */
  readonly chunk?: number
  /** Read at most this many tokens from the start of `tokens` (default all). */
  readonly maxTokens?: number
  /**
   * Bucket edges over the query position (the position of the token read, 0-based; the token predicted is the
   * next one): ascending, from 0; the last bucket runs to the end. Default `[0, T, 2T, 4T, 8T, …]` for the training
   * context T, as far as the text goes: bucket [0, T) is what a training window covers.
   */
  readonly buckets?: readonly number[]
  /** Called after each chunk with the tokens read so far and the total. */
  readonly onProgress?: (read: number, total: number) => void
}

export interface PerplexityBucket {
  /** Query positions [from, to). */
  readonly from: number
  readonly to: number
  /** Tokens predicted in the bucket. */
  readonly tokens: number
  /** Mean next-token cross-entropy in nats (NaN for an empty bucket). */
  readonly nats: number
  readonly bitsPerChar: number
}

export interface PerplexityResult {
  /** Mean next-token cross-entropy over the whole text, nats per token. */
  readonly nats: number
  /** The same in bits: bits per character for a character-level model. */
  readonly bitsPerChar: number
  /** exp(nats). */
  readonly perplexity: number
  /** Tokens predicted (tokens read − 1). */
  readonly tokens: number
  readonly buckets: readonly PerplexityBucket[]
  readonly kvBytes: {
    /** Keys and values retained after the last chunk (slots in use, every layer). */
    readonly final: number
    /**
     * The caches' storage, preallocated and held throughout: the most KV bytes held at any moment (a full head
     * holds the whole text; a streaming head sink + recent − 1 + chunk slots).
     */
    readonly peak: number
  }
}

/**
 * Next-token loss of `lm` over one long token array read as a single stream: the text goes through the model in
 * chunks of `chunk` tokens with one KV cache per layer under the chosen policies, every token predicted from all
 * the tokens before it that the cache retains (unlike `validationLoss`, whose windows restart every T tokens).
 * Reports nats and bits per character overall and by position bucket, also past the training context, and the
 * KV bytes.
 *
 * With a full cache, positions past the training context T put RoPE at angles the model never saw in training:
 * the figures there measure how the model extrapolates, not what it learnt. Streaming heads keep keys at their
 * original positions (DuoAttention's choice), so a query at position p still sees relative distances up to p to
 * its sinks. With a full cache and a text of at most T + 1 tokens the result is `validationLoss` over that one
 * window, to rounding.
 *
 * Runs without a tape, on the params' backend (async, so WebGPU reads can be awaited); leaves no tensors behind.
 */
const PERPLEXITY_OPTIONS: Record<keyof PerplexityOptions, true> = { policies: true, chunk: true, maxTokens: true, buckets: true, onProgress: true }

export async function perplexity(lm: TransformerLM, params: TransformerLMParams, tokens: Int32Array | readonly number[], opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  const op = 'perplexity'
  lmArg(op, lm)
  paramsArg(op, params)
  operatorOptions(op, opts, Object.keys(PERPLEXITY_OPTIONS), '{ policies?, chunk?, maxTokens?, buckets?, onProgress? }')
  const { vocab, context: T } = lm.config
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') throw new ValueError({ op, arg: 'tokens', expected: 'an array of token ids', actual: typeof tokens })
  const maxTokens = opts.maxTokens ?? tokens.length
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new ValueError({ op, arg: 'maxTokens', expected: 'an integer ≥ 2', actual: maxTokens })
  const n = Math.min(tokens.length, maxTokens)
  if (n < 2) throw new ValueError({ op, arg: 'tokens', expected: 'at least 2 tokens (one to read, one to predict)', actual: tokens.length })
  const ids = Int32Array.from({ length: n }, (_, i) => tokens[i]!)
  checkIds(op, 'tokens', ids, vocab)
  const chunk = opts.chunk ?? 64
  positiveInt(op, 'chunk', chunk)
  const policies = layerPolicies(op, lm, opts.policies)
  const reads = n - 1
  const edges = opts.buckets !== undefined ? [...opts.buckets] : defaultEdges(T, reads)
  if (edges.length === 0 || edges[0] !== 0 || edges.some((e, i) => !Number.isInteger(e) || (i > 0 && e <= edges[i - 1]!)))
    throw new ValueError({ op, arg: 'buckets', expected: 'strictly increasing integer edges starting at 0', actual: JSON.stringify(opts.buckets) })
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw new ValueError({ op, arg: 'onProgress', expected: 'a function', actual: typeof opts.onProgress })

  const dtype = params.embed.dtype as 'float32' | 'float64' | 'float16'
  const backend = params.embed.backend
  const sums = new Float64Array(edges.length)
  const counts = new Float64Array(edges.length)
  const caches = lm.cache({ batch: 1, capacity: reads, policies: l => policies[l], chunk, dtype, backend })
  let picked: Tensor | undefined
  try {
    let b = 0
    for (let i0 = 0; i0 < reads; i0 += chunk) {
      const i1 = Math.min(reads, i0 + chunk)
      const c = i1 - i0
      picked = noGrad(() =>
        scope(() => {
          const x = tensor(ids.subarray(i0, i1), [1, c], 'int32', { backend })
          const y = tensor(ids.subarray(i0 + 1, i1 + 1), [c], 'int32', { backend })
          const lp = logSoftmax(reshape(lm.forward(params, x, { caches, position: i0 }), [c, vocab]), { axis: -1 })
          return keep(sum(where(oneHot(y, vocab, { dtype: 'bool' }), lp, 0), { axis: -1 }))
        }),
      )
      const v = await picked.data()
      picked.dispose()
      picked = undefined
      for (let j = 0; j < c; j++) {
        const p = i0 + j
        while (b + 1 < edges.length && p >= edges[b + 1]!) b++
        sums[b] = sums[b]! - v[j]!
        counts[b] = counts[b]! + 1
      }
      opts.onProgress?.(i1 + 1, n)
    }
    let total = 0
    for (const s of sums) total += s
    const nats = total / reads
    const buckets = edges.map((from, k) => {
      const m = counts[k]!
      const bn = m > 0 ? sums[k]! / m : NaN
      return { from, to: k + 1 < edges.length ? edges[k + 1]! : Math.max(from, reads), tokens: m, nats: bn, bitsPerChar: bn / Math.LN2 }
    })
    const peak = caches.reduce((s, c) => s + c.bytes(), 0)
    return { nats, bitsPerChar: nats / Math.LN2, perplexity: Math.exp(nats), tokens: reads, buckets, kvBytes: { final: retainedKvBytes(caches), peak } }
  } finally {
    picked?.dispose()
    for (const c of caches) c.dispose()
  }
}

/** [0, T, 2T, 4T, …] up to the last query position. */
function defaultEdges(T: number, reads: number): number[] {
  const edges = [0]
  for (let e = T; e < reads; e *= 2) edges.push(e)
  return edges
}
