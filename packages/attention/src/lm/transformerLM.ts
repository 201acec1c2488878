import { crossEntropy, DTypeError, knownOptions, positiveInt, gather, matmul, ones, random, scope, ShapeError, transpose, ValueError, zeros, type FloatDType, type Tensor } from '@heed/tensor'
import type { HeadPolicy, KvCache } from '../kvCache.js'
import type { MultiHeadAttentionOptions, OperatorParams } from '../multiHeadAttention.js'
import type { RopeOptions } from '../rope.js'
import { objectArg, operatorOptions } from '../operators/strict.js'
import { rmsNorm, transformerBlock, type TransformerBlock, type TransformerBlockParams } from '../transformerBlock.js'

/**
 * The serialisable part of a language model's configuration: it travels in every checkpoint's metadata, and a
 * checkpoint loads only into a model with the same config.
 */
export interface TransformerLMConfig {
  /** Vocabulary size. */
  readonly vocab: number
  readonly dModel: number
  readonly layers: number
  readonly heads: number
  /** Key/value heads (grouped-query attention when fewer than `heads`). Default `heads`. */
  readonly kvHeads?: number
  /** MLP hidden width, default 4·dModel. */
  readonly hidden?: number
  /** The training context length: positions a training window covers (generation may go further). */
  readonly context: number
  /** Rotary position embedding (default true: base 10000, half-split pairs). */
  readonly rope?: boolean | RopeOptions
  /** Output head tied to the token embedding (default true). */
  readonly tied?: boolean
  /** RMSNorm epsilon (default 1e-6). */
  readonly eps?: number
}

/** The attention operator of the heads of one layer, as `multiHeadAttention` takes it. */
export type LayerAttention = MultiHeadAttentionOptions['attention']

export interface TransformerLMOptions extends TransformerLMConfig {
  /**
   * Replace softmax attention in chosen layers and heads: a function from the layer index to that layer's
   * operator (one `AttentionFn`, or a per-head factory `(head) => AttentionFn`); `undefined` keeps softmax.
   * Operators are code, not configuration: they are not saved in checkpoints.
   */
  readonly attention?: (layer: number) => LayerAttention
}

/** A plain pytree: `valueAndGrad`, the optimizers and `trainStep` take it as it is. */
export interface TransformerLMParams {
  /** Token embedding [vocab, dModel]; also the output head when tied. */
  readonly embed: Tensor
  readonly blocks: readonly TransformerBlockParams[]
  /** Final RMSNorm gain [dModel]. */
  readonly normF: Tensor
  /** Untied output head [dModel, vocab]. */
  readonly head?: Tensor
  /** Per layer, the attention operators' own parameters (`multiHeadAttention.initOperators`), when any has some. */
  readonly ops?: readonly (readonly OperatorParams[])[]
}

export interface LMInitOptions {
  /** Seed of the initial parameters (default 0). */
  readonly seed?: number
  /** Default float32. */
  readonly dtype?: FloatDType
  /** Backend the parameters live on (default: the current backend). */
  readonly backend?: string
}

export interface LMForwardOptions {
  /** One KV cache per layer (`lm.cache(…)`): appends the chunk and attends over what each cache retains. */
  readonly caches?: readonly KvCache[]
  /** Absolute position of the first token (default: the caches' next position, or 0). */
  readonly position?: number
}

export interface LMCacheOptions {
  /** Sequences decoded side by side. */
  readonly batch: number
  /** Tokens each layer's cache can hold (streaming heads hold sink + recent whatever the capacity). */
  readonly capacity: number
  /** Per-kv-head policies, the same for every layer, or a function of the layer. Default: full. */
  readonly policies?: readonly HeadPolicy[] | ((layer: number) => readonly HeadPolicy[] | undefined)
  /** Longest chunk a streaming head takes in one append (default 64; see `KvCacheOptions.chunk`). */
  readonly chunk?: number
  /** Storage dtype of the cached keys and values (default float32). */
  readonly dtype?: FloatDType
  /** Backend the caches allocate on (default: the current backend). */
  readonly backend?: string
}

export interface TransformerLM {
  readonly config: Required<Omit<TransformerLMConfig, 'rope'>> & { readonly rope: RopeOptions | false }
  readonly blocks: readonly TransformerBlock[]
  /** GPT-2-style initialisation (Radford et al. 2019, §2.3): N(0, 0.02) weights, residual projections scaled by 1/√(2L). */
  init(opts?: LMInitOptions): TransformerLMParams
  /** `ids` int32 [B, T] or [T] → logits [B, T, vocab] or [T, vocab]. */
  forward(params: TransformerLMParams, ids: Tensor, opts?: LMForwardOptions): Tensor
  /** One KV cache per layer, for streaming decode. */
  cache(opts: LMCacheOptions): KvCache[]
  /** Number of trainable parameters (the tied head counted once). */
  readonly parameterCount: number
}

/**
 * A decoder-only transformer language model from heed's layers: token embedding, `layers` pre-norm
 * `transformerBlock`s (RMSNorm, multi-head attention with RoPE, GELU MLP), a final RMSNorm and an output head
 * tied to the embedding or not. Any attention operator can replace softmax in chosen layers or heads through
 * `attention`; the KV cache path (`cache`, `forward(…, { caches })`) serves streaming generation.
 */
const LM_OPTIONS: Record<keyof TransformerLMOptions, true> = { vocab: true, dModel: true, layers: true, heads: true, kvHeads: true, hidden: true, context: true, rope: true, tied: true, eps: true, attention: true }

export function transformerLM(opts: TransformerLMOptions): TransformerLM {
  const op = 'transformerLM'
  if (opts === null || typeof opts !== 'object') throw new ValueError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  knownOptions(op, opts, Object.keys(LM_OPTIONS))
  const vocab = positiveInt(op, 'vocab', opts.vocab)
  const dModel = positiveInt(op, 'dModel', opts.dModel)
  const L = positiveInt(op, 'layers', opts.layers)
  const heads = positiveInt(op, 'heads', opts.heads)
  const kvHeads = positiveInt(op, 'kvHeads', opts.kvHeads ?? heads)
  const hidden = positiveInt(op, 'hidden', opts.hidden ?? 4 * dModel)
  const context = positiveInt(op, 'context', opts.context)
  const tied = opts.tied ?? true
  const eps = opts.eps ?? 1e-6
  if (!(eps >= 0)) throw new ValueError({ op, arg: 'eps', expected: 'a non-negative number', actual: eps })
  const rope: RopeOptions | false = opts.rope === undefined || opts.rope === true ? {} : opts.rope === false ? false : opts.rope
  if (opts.attention !== undefined && typeof opts.attention !== 'function')
    throw new ValueError({ op, arg: 'attention', expected: 'a function (layer) => operator or undefined', actual: typeof opts.attention })
  const blocks = Array.from({ length: L }, (_, l) => {
    const attention = opts.attention?.(l)
    return transformerBlock({ dModel, heads, kvHeads, hidden, eps, rope: rope === false ? false : rope, ...(attention !== undefined ? { attention } : {}) })
  })
  const headDim = blocks[0]!.attention.headDim
  const perBlock = 2 * dModel + dModel * heads * headDim * 2 + dModel * kvHeads * headDim * 2 + 2 * dModel * hidden + hidden + dModel
  const parameterCount = vocab * dModel + L * perBlock + dModel + (tied ? 0 : dModel * vocab)

  // Operators with parameters of their own (MoH's router, Titans' memory), seeded per layer after the rest.
  const withOps = blocks.some(b => b.attention.attention?.some(f => f.init !== undefined))
  const init = (o: LMInitOptions = {}): TransformerLMParams => {
    operatorOptions('transformerLM.init', o, ['seed', 'dtype', 'backend'] satisfies (keyof LMInitOptions)[], '{ seed?, dtype?, backend? }')
    const seed = o.seed ?? 0
    const at = { dtype: o.dtype ?? 'float32', ...(o.backend !== undefined ? { backend: o.backend } : {}) } as const
    // Every tensor its own stream: seed·1024 + a fixed index, so adding a layer leaves the others' draws alone.
    let k = 0
    const normal = (shape: readonly number[], std: number): Tensor => random.normal(shape, { ...at, std, seed: seed * 1024 + k++ })
    const std = 0.02
    const resid = std / Math.sqrt(2 * L)
    return {
      embed: normal([vocab, dModel], std),
      blocks: blocks.map(() => ({
        attn: { Wq: normal([dModel, heads * headDim], std), Wk: normal([dModel, kvHeads * headDim], std), Wv: normal([dModel, kvHeads * headDim], std), Wo: normal([heads * headDim, dModel], resid) },
        norm1: ones([dModel], at),
        norm2: ones([dModel], at),
        W1: normal([dModel, hidden], std),
        b1: zeros([hidden], at),
        W2: normal([hidden, dModel], resid),
        b2: zeros([dModel], at),
      })),
      normF: ones([dModel], at),
      ...(tied ? {} : { head: normal([dModel, vocab], std) }),
      ...(withOps ? { ops: blocks.map((b, l) => b.attention.initOperators({ ...at, seed: seed * 1024 + 512 + l }) ?? []) } : {}),
    }
  }

  const forward = (p: TransformerLMParams, ids: Tensor, fo: LMForwardOptions = {}): Tensor => {
    const fop = 'transformerLM.forward'
    objectArg(fop, 'params', p, 'the model parameters (lm.init())')
    operatorOptions(fop, fo, ['caches', 'position'] satisfies (keyof LMForwardOptions)[])
    if (ids?.dtype !== 'int32' && ids?.dtype !== 'uint32') throw new DTypeError({ op: fop, arg: 'ids', expected: 'int32 token ids', actual: ids?.dtype })
    if (ids.rank !== 1 && ids.rank !== 2) throw new ShapeError({ op: fop, arg: 'ids', expected: '[B, T] or [T]', actual: ids.shape })
    if (p?.embed?.rank !== 2 || p.embed.shape[0] !== vocab || p.embed.shape[1] !== dModel) throw new ShapeError({ op: fop, arg: 'params.embed', expected: [vocab, dModel], actual: p?.embed?.shape })
    if (!Array.isArray(p.blocks) || p.blocks.length !== L) throw new ShapeError({ op: fop, arg: 'params.blocks', expected: `${L} blocks`, actual: Array.isArray(p.blocks) ? `${p.blocks.length}` : typeof p.blocks })
    if (p.normF?.rank !== 1 || p.normF.shape[0] !== dModel) throw new ShapeError({ op: fop, arg: 'params.normF', expected: [dModel], actual: p.normF?.shape })
    if (tied && p.head !== undefined) throw new ShapeError({ op: fop, arg: 'params.head', expected: 'none (the head is tied to the embedding)', actual: p.head?.shape })
    if (!tied && (p.head?.rank !== 2 || p.head.shape[0] !== dModel || p.head.shape[1] !== vocab)) throw new ShapeError({ op: fop, arg: 'params.head', expected: [dModel, vocab], actual: p.head?.shape })
    const caches = fo.caches
    if (caches !== undefined && caches.length !== L) throw new ValueError({ op: fop, arg: 'caches', expected: `${L} caches (one per layer)`, actual: caches.length })
    const position = fo.position ?? caches?.[0]?.nextPosition ?? 0
    return scope(() => {
      let h = gather(p.embed, ids, 0)
      for (let l = 0; l < L; l++) h = blocks[l]!.forward(p.blocks[l]!, h, { positions: position, ...(caches ? { cache: caches[l]! } : {}), ...(p.ops?.[l]?.length ? { operatorParams: p.ops[l] } : {}) })
      h = rmsNorm(h, p.normF, eps)
      return matmul(h, tied ? transpose(p.embed) : p.head!)
    })
  }

  const cache = (co: LMCacheOptions): KvCache[] => {
    operatorOptions('transformerLM.cache', co, ['batch', 'capacity', 'policies', 'chunk', 'dtype', 'backend'] satisfies (keyof LMCacheOptions)[], '{ batch, capacity, … }')
    positiveInt('transformerLM.cache', 'batch', co.batch)
    if (co.policies !== undefined && typeof co.policies !== 'function' && !Array.isArray(co.policies))
      throw new ValueError({ op: 'transformerLM.cache', arg: 'policies', expected: 'an array of head policies or a function (layer) => policies', actual: typeof co.policies })
    return blocks.map((b, l) => {
      const policies = typeof co.policies === 'function' ? co.policies(l) : co.policies
      return b.cache({ batch: co.batch, capacity: co.capacity, ...(policies ? { policies } : {}), ...(co.chunk !== undefined ? { chunk: co.chunk } : {}), ...(co.dtype ? { dtype: co.dtype } : {}), ...(co.backend ? { backend: co.backend } : {}) })
    })
  }

  return { config: { vocab, dModel, layers: L, heads, kvHeads, hidden, context, rope, tied, eps }, blocks, init, forward, cache, parameterCount }
}

/**
 * Mean next-token cross-entropy in nats: `logits [..., V]` against int32 `targets [...]`, through @heed/tensor's
 * fused `crossEntropy` (log-sum-exp, no one-hot; its gradient is softmax − onehot in one kernel).
 */
export function lmLoss(logits: Tensor, targets: Tensor): Tensor {
  const op = 'lmLoss'
  if (targets?.dtype !== 'int32') throw new DTypeError({ op, arg: 'targets', expected: 'int32 token ids', actual: targets?.dtype })
  if (logits.rank !== targets.rank + 1 || targets.shape.some((d, i) => d !== logits.shape[i]))
    throw new ShapeError({ op, arg: 'targets', expected: `logits' shape without its last dim: [${logits.shape.slice(0, -1).join(',')}]`, actual: targets.shape })
  return crossEntropy(logits, targets, { reduction: 'mean' })
}
