import type { Mask } from '../mask.js'
import type { ScoreMod } from '../scoreMod.js'

/**
 * The kernels @heed/attention registers with @heed/tensor's backends: its part of the kernel contract, so that no
 * call site spells a kernel name (@heed/tensor's own are `Kernel.X` in its kernelContract.ts).
 */
export const AttentionKernel = {
  /** q, k, v → out, lse; attrs: AttentionAttrs. */
  Forward: 'Attention',
  /** q, k, v, out, lse, dOut, dLse → dq, dk, dv; attrs: AttentionAttrs. */
  Backward: 'AttentionBackward',
  /** A `scoreMod.custom` applied to materialised scores (CPU only), and its derivative. */
  ScoreModCustom: 'AttentionScoreModCustom',
  ScoreModCustomGrad: 'AttentionScoreModCustomGrad',
} as const

/** Attributes of the `Attention` and `AttentionBackward` kernels (CPU and WebGPU share them). */
export interface AttentionAttrs {
  readonly scale: number
  /** Absolute position of query row 0 and key row 0. */
  readonly qOffset: number
  readonly kOffset: number
  /** The effective mask (causal already folded in); `mask.all` when unmasked. */
  readonly mask: Mask
  readonly scoreMod: ScoreMod | undefined
  /** Key tile size of the online softmax. */
  readonly blockSize: number
}

/** Sizes of an attention call read off q [B,H,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]; g query heads per kv head. */
export interface AttentionGeometry {
  readonly B: number
  readonly H: number
  readonly Hkv: number
  readonly Tq: number
  readonly Tk: number
  readonly D: number
  readonly Dv: number
  readonly g: number
}

export function attentionGeometry(q: { readonly shape: readonly number[] }, k: { readonly shape: readonly number[] }, v: { readonly shape: readonly number[] }): AttentionGeometry {
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const [, Hkv, Tk] = k.shape as [number, number, number, number]
  return { B, H, Hkv, Tq, Tk, D, Dv: v.shape[3]!, g: H / Hkv }
}
