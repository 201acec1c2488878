import { ArgumentError, ShapeError, ValueError, add, checkAllocation, finiteNumber, broadcastTo, matmul, permute, reshape, rng as makeRng, scope, tensor, type Rng, type Tensor, positiveInt } from '@heed/tensor'
import { scaledDotProductAttention } from '@heed/attention'
import { initDense } from './dense.js'
import { kindOf, options } from './validate.js'

/** Trainable parameters of the Distraction attention (6 scalars at the paper's token size 1 and one head). */
export interface DistractionAttentionParams {
  /** `[d, H·d]` key projection of each hidden token, and its bias `[H·d]`. */
  readonly wk: Tensor
  readonly bk: Tensor
  /** `[d, H·d]` value projection and bias. */
  readonly wv: Tensor
  readonly bv: Tensor
  /** `[H·d, d]` output projection and bias `[d]`. */
  readonly wo: Tensor
  readonly bo: Tensor
}

export interface DistractionAttentionOptions {
  /** Features per token `d` (default 1: each hidden unit is a token, as in the paper). */
  readonly tokenDim?: number
  /** Attention heads `H` (default 1). */
  readonly heads?: number
  /** Score scale (default 1/√d). */
  readonly scale?: number
}

const OP = 'distractionAttention'

const KEYS: Record<keyof DistractionAttentionOptions, true> = { tokenDim: true, heads: true, scale: true }
const INIT_KEYS: Record<keyof InitOptions, true> = { ...KEYS, seed: true, rng: true }

/** The options of initDistractionAttention: the module's sizes and where its randomness comes from. */
type InitOptions = DistractionAttentionOptions & { readonly seed?: number; readonly rng?: Rng }

function dims(op: string, opts: DistractionAttentionOptions): { d: number; H: number } {
  const d = opts.tokenDim ?? 1
  const H = opts.heads ?? 1
  for (const [arg, v] of [['tokenDim', d], ['heads', H]] as const)
    positiveInt(op, arg, v)
  if (opts.scale !== undefined) finiteNumber(op, 'scale', opts.scale)
  // a size no tensor can hold fails here, not inside the initialiser
  checkAllocation(op, 'tokenDim·heads', d * d * H * 2, 'float32')
  return { d, H }
}

/** Xavier-initialised weights and zero biases (the paper's init). */
export function initDistractionAttention(opts: InitOptions = {}): DistractionAttentionParams {
  const op = 'initDistractionAttention'
  opts = options(op, opts, Object.keys(INIT_KEYS))
  const { d, H } = dims(op, opts)
  if (opts.seed !== undefined && !Number.isInteger(opts.seed)) throw new ValueError({ op, arg: 'seed', expected: 'an integer seed', actual: typeof opts.seed === 'number' ? opts.seed : kindOf(opts.seed) })
  if (opts.rng !== undefined && (opts.rng === null || typeof (opts.rng as { nextUint32?: unknown }).nextUint32 !== 'function'))
    throw new ArgumentError({ op, arg: 'rng', expected: 'an Rng (rng(seed))', actual: kindOf(opts.rng) })
  const g = opts.rng ?? makeRng(opts.seed ?? 0)
  // Keys and values come from one Linear(d → 2·H·d) in the paper; its Xavier bound uses the joint fan-out.
  const [kv] = initDense([d, 2 * H * d], g)
  const [o] = initDense([H * d, d], g)
  const kvw = kv!.w.dataSync()
  const kw = new Float32Array(d * H * d), vw = new Float32Array(d * H * d)
  for (let i = 0; i < d; i++)
    for (let j = 0; j < H * d; j++) (kw[i * H * d + j] = kvw[i * 2 * H * d + j]!), (vw[i * H * d + j] = kvw[i * 2 * H * d + H * d + j]!)
  kv!.w.dispose()
  kv!.b.dispose()
  return {
    wk: tensor(kw, [d, H * d], 'float32'), bk: tensor(new Float32Array(H * d), [H * d], 'float32'),
    wv: tensor(vw, [d, H * d], 'float32'), bv: tensor(new Float32Array(H * d), [H * d], 'float32'),
    wo: o!.w, bo: o!.b,
  }
}

/**
 * The Distraction module's attention: the classifier's hidden activations `[B, T·d]` are cut into T tokens of
 * size d and give keys and values; the frozen protected-attribute embedding `[B, Tq·d]`, cut the same way,
 * gives the queries unchanged (the module learns how to attend, not what to ask). Scaled dot-product attention
 * over the T tokens (`@heed/attention`'s scaledDotProductAttention), heads concatenated and projected back to d.
 * Returns `[B, Tq·d]`, which replaces the hidden activations before the classifier's output layer.
 */
export function distractionAttention(params: DistractionAttentionParams, hidden: Tensor, embedding: Tensor, opts: DistractionAttentionOptions = {}): Tensor {
  opts = options(OP, opts, Object.keys(KEYS))
  const { d, H } = dims(OP, opts)
  if (params === null || typeof params !== 'object' || !('wk' in params)) throw new ArgumentError({ op: OP, arg: 'params', expected: 'params from initDistractionAttention', actual: typeof params })
  if (params.wk.shape[0] !== d || params.wk.shape[1] !== H * d)
    throw new ShapeError({ op: OP, arg: 'params.wk', expected: [d, H * d], actual: params.wk.shape }, 'parameters were made for another tokenDim/heads')
  for (const [arg, t] of [['hidden', hidden], ['embedding', embedding]] as const)
    if (t.rank !== 2 || t.shape[1]! % d !== 0) throw new ShapeError({ op: OP, arg, expected: `[B, T·${d}]`, actual: t.shape })
  const B = hidden.shape[0]!
  if (embedding.shape[0] !== B) throw new ShapeError({ op: OP, arg: 'embedding', expected: `${B} rows (as hidden)`, actual: embedding.shape })
  const T = hidden.shape[1]! / d
  const Tq = embedding.shape[1]! / d
  return scope(() => {
  const tokens = reshape(hidden, [B, T, d])
  const heads = (w: Tensor, b: Tensor): Tensor => permute(reshape(add(matmul(tokens, w), b), [B, T, H, d]), [0, 2, 1, 3])
  const q = broadcastTo(reshape(embedding, [B, 1, Tq, d]), [B, H, Tq, d])
  const { out } = scaledDotProductAttention(q, heads(params.wk, params.bk), heads(params.wv, params.bv), opts.scale === undefined ? {} : { scale: opts.scale })
  const merged = reshape(permute(out, [0, 2, 1, 3]), [B, Tq, H * d])
  return reshape(add(matmul(merged, params.wo), params.bo), [B, Tq * d])
  })
}
