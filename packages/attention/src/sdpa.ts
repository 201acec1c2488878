import { ArgumentError, DTypeError, isTensor, kernelOp, knownOptions, ShapeError, ValueError, zerosLike, type GradFn, type Tensor, positiveInt } from '@heed/tensor'
import { AttentionKernel, type AttentionAttrs } from './kernels/attrs.js'
import { ensureAttentionKernels } from './kernels/register.js'
import { Mask, mask as masks } from './mask.js'
import { ScoreMod } from './scoreMod.js'

export interface SdpaOptions {
  /** Score scale; default 1/√D. Never inferred from anything else. */
  readonly scale?: number
  /** Add the causal mask `pk ≤ pq`. */
  readonly causal?: boolean
  /**
   * Absolute position of query row 0. Default `max(0, Tk − Tq)`: the last query aligns with the last key
   * (FlashAttention's bottom-right convention), which is what decode wants.
   */
  readonly queryOffset?: number
  /** Absolute position of key row 0 (default 0). */
  readonly keyOffset?: number
  /** Which (query, key) pairs may attend; combined with `causal` by `and`. */
  readonly mask?: Mask
  /** Pre-softmax modification of each scaled score (ALiBi, soft-capping, relative bias, …). */
  readonly scoreMod?: ScoreMod
  /** Key tile of the online softmax (default 64). */
  readonly blockSize?: number
}

export interface AttentionResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
  /** [B, H, Tq]: natural-log normaliser of each row; −∞ on fully masked rows (whose `out` is 0). */
  readonly lse: Tensor
}

const OP = 'scaledDotProductAttention'
/** @internal */
export const SDPA_OPTIONS: readonly string[] = ['scale', 'causal', 'queryOffset', 'keyOffset', 'mask', 'scoreMod', 'blockSize']

/** @internal resolve options into kernel attrs (shared with observation, which recomputes scores). */
export function attentionAttrs(q: Tensor, k: Tensor, opts: SdpaOptions, op: string = OP): AttentionAttrs {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: opts === null ? 'null' : typeof opts })
  if (opts.causal !== undefined && typeof opts.causal !== 'boolean') throw new ArgumentError({ op, arg: 'causal', expected: 'a boolean', actual: typeof opts.causal })
  const D = q.shape[3]!
  const Tq = q.shape[2]!
  const Tk = k.shape[2]!
  const scale = opts.scale ?? 1 / Math.sqrt(D)
  if (!Number.isFinite(scale)) throw new ValueError({ op, arg: 'scale', expected: 'a finite number', actual: scale })
  const qOffset = opts.queryOffset ?? Math.max(0, Tk - Tq)
  const kOffset = opts.keyOffset ?? 0
  for (const [arg, v] of [['queryOffset', qOffset], ['keyOffset', kOffset]] as const)
    if (!Number.isInteger(v)) throw new ValueError({ op, arg, expected: 'an integer', actual: v })
  if (opts.mask !== undefined && !(opts.mask instanceof Mask)) throw new ArgumentError({ op, arg: 'mask', expected: 'a Mask (see `mask`)', actual: typeof opts.mask })
  if (opts.scoreMod !== undefined && !(opts.scoreMod instanceof ScoreMod))
    throw new ArgumentError({ op, arg: 'scoreMod', expected: 'a ScoreMod (see `scoreMod`)', actual: typeof opts.scoreMod })
  const blockSize = opts.blockSize ?? 64
  positiveInt(op, 'blockSize', blockSize)
  const parts = [...(opts.causal ? [masks.causal] : []), ...(opts.mask ? [opts.mask] : [])]
  return { scale, qOffset, kOffset, mask: masks.and(...parts), scoreMod: opts.scoreMod, blockSize }
}

/** @internal shape and dtype checks shared by every attention entry point. */
export function checkQkv(op: string, q: Tensor, k: Tensor, v: Tensor): void {
  for (const [arg, t] of [['q', q], ['k', k], ['v', v]] as const)
    if (!isTensor(t)) throw new ArgumentError({ op, arg, expected: 'a Tensor [B, H, T, D]', actual: t === null ? 'null' : Array.isArray(t) ? 'an array' : typeof t })
  // a disposed tensor is named here, in the public op's name, not by the first kernel that reads it
  for (const t of [q, k, v]) t.assertLive(op)
  for (const [arg, t] of [['q', q], ['k', k], ['v', v]] as const)
    if (t.rank !== 4) throw new ShapeError({ op, arg, expected: 'rank 4 [B, H, T, D]', actual: t.shape })
  if (!['float32', 'float16', 'float64'].includes(q.dtype)) throw new DTypeError({ op, arg: 'q', expected: 'a float dtype', actual: q.dtype })
  for (const [arg, t] of [['k', k], ['v', v]] as const)
    if (t.dtype !== q.dtype) throw new DTypeError({ op, arg, expected: `${q.dtype} like q`, actual: t.dtype })
  const [B, H, , D] = q.shape as [number, number, number, number]
  const [Bk, Hkv, Tk, Dk] = k.shape as [number, number, number, number]
  const [Bv, Hv, Tv] = v.shape as [number, number, number, number]
  if (Bk !== B || Bv !== B) throw new ShapeError({ op }, `batch sizes differ, q is [${q.shape.join(',')}], k is [${k.shape.join(',')}], v is [${v.shape.join(',')}]`)
  if (Dk !== D) throw new ShapeError({ op }, `head dims differ, q is [${q.shape.join(',')}], k is [${k.shape.join(',')}]`)
  if (Hv !== Hkv || Tv !== Tk) throw new ShapeError({ op }, `k and v differ in heads or length, k is [${k.shape.join(',')}], v is [${v.shape.join(',')}]`)
  if (Hkv === 0 || H % Hkv !== 0)
    throw new ShapeError({ op, arg: 'k' }, `query heads H=${H} must be a multiple of key/value heads Hkv=${Hkv} (grouped-query attention)`)
}

const attentionGrad: GradFn<AttentionAttrs> = (dys, { inputs, outputs, attrs }) => {
  const [q, k, v] = inputs as [Tensor, Tensor, Tensor]
  const [out, lse] = outputs as [Tensor, Tensor]
  const [dOut, dLse] = dys as [Tensor, Tensor]
  const [dq, dk, dv] = kernelOp('scaledDotProductAttention.grad', AttentionKernel.Backward, [q, k, v, out, lse, dOut, dLse ?? zerosLike(lse)], attrs)
  return [dq!, dk!, dv!]
}

/**
 * Scaled dot-product attention on `[B, H, T, D]` tensors, returning the output and the per-row logsumexp.
 *
 * - q `[B, H, Tq, D]`, k `[B, Hkv, Tk, D]`, v `[B, Hkv, Tk, Dv]`; grouped-query attention when Hkv divides H.
 * - Masks and score mods see absolute positions: query row i sits at `queryOffset + i`, key row j at
 *   `keyOffset + j`.
 * - Tiled online softmax: memory O(T·D) for any mask; no T×T buffer is ever made. Differentiable (recomputing
 *   probabilities from `lse` in the backward pass), including through `lse`.
 * - Fully masked rows give `out = 0` and `lse = −∞`, the identity of `attnState.merge`.
 * - NaN rule (every backend): a key or value row a query cannot see (masked out, a cache slot past the filled
 *   prefix, padding) never influences that query's output or gradients, whatever its values. A NaN in what a row
 *   does see propagates to that row: a NaN query row or a NaN visible key gives a NaN row and a NaN `lse`, a NaN in
 *   a visible value row gives NaN in that column of `out`.
 * - WebGPU: float32 or float16 storage, f32 arithmetic. Library masks and score mods compile to WGSL; a
 *   `mask.custom` closure is evaluated on the host into a B·H·Tq·Tk/8-byte bit table per call, and a
 *   `scoreMod.custom` throws a BackendError (it runs on the CPU only: move the tensors with `toBackend`).
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: SdpaOptions = {}): AttentionResult {
  checkQkv(OP, q, k, v)
  knownOptions(OP, opts, SDPA_OPTIONS)
  const attrs = attentionAttrs(q, k, opts)
  ensureAttentionKernels()
  const [out, lse] = kernelOp(OP, AttentionKernel.Forward, [q, k, v], attrs, attentionGrad)
  return { out: out!, lse: lse! }
}
