import type { Mask } from '../mask.js'
import type { ScoreMod } from '../scoreMod.js'

/** Host arrays of a [B, H, T, D] tensor. */
export interface HostTensor {
  readonly values: ArrayLike<number>
  readonly shape: readonly [number, number, number, number]
}

export interface ReferenceOptions {
  /** Score scale (default 1/√D). */
  readonly scale?: number
  /** Absolute position of query row 0 (default 0). */
  readonly queryOffset?: number
  /** Absolute position of key row 0 (default 0). */
  readonly keyOffset?: number
  /** Mask over absolute positions. */
  readonly mask?: Mask
  /** Score mod over absolute positions. */
  readonly scoreMod?: ScoreMod
}

/**
 * The float64 golden path: dense softmax attention, one (b, h) pair at a time, written for obviousness rather than
 * speed: JavaScript numbers are float64, so this plain loop is the reference. Every kernel and operator is checked
 * against it.
 */
export function referenceAttention(q: HostTensor, k: HostTensor, v: HostTensor, opts: ReferenceOptions = {}): { out: Float64Array; lse: Float64Array } {
  const [B, H, Tq, D] = q.shape
  const [, Hkv, Tk] = k.shape
  const Dv = v.shape[3]
  const g = H / Hkv
  const scale = opts.scale ?? 1 / Math.sqrt(D)
  const qOff = opts.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = opts.keyOffset ?? 0
  const out = new Float64Array(B * H * Tq * Dv)
  const lse = new Float64Array(B * H * Tq)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / g)
      for (let i = 0; i < Tq; i++) {
        const pq = qOff + i
        const s = new Float64Array(Tk).fill(-Infinity)
        for (let j = 0; j < Tk; j++) {
          const pk = kOff + j
          if (opts.mask && !opts.mask.test(b, h, pq, pk)) continue
          let dot = 0
          for (let d = 0; d < D; d++) dot += q.values[((b * H + h) * Tq + i) * D + d]! * k.values[((b * Hkv + hk) * Tk + j) * D + d]!
          s[j] = opts.scoreMod ? opts.scoreMod.apply(dot * scale, b, h, pq, pk) : dot * scale
        }
        const m = Math.max(...s)
        const row = (b * H + h) * Tq + i
        if (m === -Infinity) {
          lse[row] = -Infinity
          continue
        }
        let l = 0
        for (let j = 0; j < Tk; j++) l += Math.exp(s[j]! - m)
        lse[row] = m + Math.log(l)
        for (let j = 0; j < Tk; j++) {
          const p = Math.exp(s[j]! - m) / l
          if (p === 0) continue
          for (let d = 0; d < Dv; d++) out[row * Dv + d]! += p * v.values[((b * Hkv + hk) * Tk + j) * Dv + d]!
        }
      }
    }
  return { out, lse }
}
