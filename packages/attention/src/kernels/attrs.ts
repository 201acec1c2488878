import type { Mask } from '../mask.js'
import type { ScoreMod } from '../scoreMod.js'

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
