import { add, gelu, matmul, ones, random, rmsNorm as fusedRmsNorm, scope, ShapeError, ValueError, zeros, type Tensor, positiveInt } from '@heed/tensor'
import type { KvCache } from './kvCache.js'
import { asBatched, mhaLayer, type CacheOptions, type ForwardOptions, type InitOptions, type MhaParams, type MultiHeadAttention, type MultiHeadAttentionOptions } from './multiHeadAttention.js'
import { objectArg, operatorOptions } from './operators/strict.js'

export interface TransformerBlockOptions extends MultiHeadAttentionOptions {
  /** MLP hidden width (default 4·dModel). */
  readonly hidden?: number
  /** RMSNorm epsilon (default 1e-6). */
  readonly eps?: number
}

export interface TransformerBlockParams {
  readonly attn: MhaParams
  /** RMSNorm gains [dModel]. */
  readonly norm1: Tensor
  readonly norm2: Tensor
  /** [dModel, hidden], [hidden], [hidden, dModel], [dModel] */
  readonly W1: Tensor
  readonly b1: Tensor
  readonly W2: Tensor
  readonly b2: Tensor
}

export interface TransformerBlock {
  readonly attention: MultiHeadAttention
  readonly dModel: number
  readonly hidden: number
  init(opts?: InitOptions): TransformerBlockParams
  /** `x [B, T, dModel]` or `[T, dModel]` → the same shape. Same options as the attention layer (cache, positions, …). */
  forward(params: TransformerBlockParams, x: Tensor, opts?: ForwardOptions): Tensor
  cache(opts: CacheOptions): KvCache
}

/** RMSNorm over the last axis: `x / √(mean(x²) + eps) · gain`; @heed/tensor's fused kernel (one pass each way). */
export function rmsNorm(x: Tensor, gain: Tensor, eps = 1e-6): Tensor {
  return fusedRmsNorm(x, gain, { eps })
}

/**
 * A pre-norm decoder block: `h = x + attn(rmsNorm(x))`, `y = h + W2·gelu(W1·rmsNorm(h) + b1) + b2`.
 * Parameters are a plain pytree (trainable with valueAndGrad and adam); the KV cache belongs to the attention.
 */
const BLOCK_OPTIONS: Record<keyof TransformerBlockOptions, true> = { dModel: true, heads: true, kvHeads: true, headDim: true, rope: true, scale: true, attention: true, hidden: true, eps: true }

export function transformerBlock(opts: TransformerBlockOptions): TransformerBlock {
  const op = 'transformerBlock'
  operatorOptions(op, opts, Object.keys(BLOCK_OPTIONS), '{ dModel, heads, hidden?, … }')
  // The block's own options stay here; the attention layer's are checked in the block's name.
  const { hidden: hiddenOpt, eps: epsOpt, ...attentionOpts } = opts
  const attention = mhaLayer(attentionOpts, op)
  const dModel = attention.dModel
  const hidden = hiddenOpt ?? 4 * dModel
  positiveInt(op, 'hidden', hidden)
  const eps = epsOpt ?? 1e-6
  if (!(eps >= 0)) throw new ValueError({ op, arg: 'eps', expected: 'a non-negative number', actual: eps })

  const init = (o: InitOptions = {}): TransformerBlockParams => {
    operatorOptions('transformerBlock.init', o, ['seed', 'dtype', 'backend'], '{ seed?, dtype?, backend? }')
    const seed = o.seed ?? 0
    const dtype = o.dtype ?? 'float32'
    const at = { dtype, ...(o.backend !== undefined ? { backend: o.backend } : {}) }
    return {
      attn: attention.init({ ...o, seed: seed * 2 + 1 }),
      norm1: ones([dModel], at),
      norm2: ones([dModel], at),
      W1: random.normal([dModel, hidden], { ...at, seed: seed * 2 + 2 ** 20, std: 1 / Math.sqrt(dModel) }),
      b1: zeros([hidden], at),
      W2: random.normal([hidden, dModel], { ...at, seed: seed * 2 + 2 ** 21, std: 1 / Math.sqrt(hidden) }),
      b2: zeros([dModel], at),
    }
  }

  const forward = (p: TransformerBlockParams, x: Tensor, fo: ForwardOptions = {}): Tensor => {
    // validates x; the reshape it may make is freed by the scope, x itself is not the scope's
    scope(() => void asBatched('transformerBlock.forward', x, dModel))
    objectArg('transformerBlock.forward', 'params', p, 'the block parameters (block.init())')
    for (const [name, t, n] of [['norm1', p.norm1, dModel], ['norm2', p.norm2, dModel], ['b1', p.b1, hidden], ['b2', p.b2, dModel]] as const)
      if (t?.rank !== 1 || t.shape[0] !== n) throw new ShapeError({ op: 'transformerBlock.forward', arg: `params.${name}`, expected: [n], actual: t?.shape })
    return scope(() => {
      const h = add(x, attention.forward(p.attn, rmsNorm(x, p.norm1, eps), fo))
      const m = add(matmul(gelu(add(matmul(rmsNorm(h, p.norm2, eps), p.W1), p.b1)), p.W2), p.b2)
      return add(h, m)
    })
  }

  return { attention, dModel, hidden, init, forward, cache: o => attention.cache(o) }
}
