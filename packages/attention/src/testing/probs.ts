import type { HostTensor, ReferenceOptions } from './reference.js'

/**
 * Dense float64 attention probabilities P [B, H, Tq, Tk] and the row argmax (first on ties, −1 on empty rows):
 * the oracle for lazy observation (contract C6). Same conventions as `referenceAttention`.
 */
export function referenceProbs(q: HostTensor, k: HostTensor, opts: ReferenceOptions = {}): { p: Float64Array; argmax: Int32Array } {
  const [B, H, Tq, D] = q.shape
  const [, Hkv, Tk] = k.shape
  const g = H / Hkv
  const scale = opts.scale ?? 1 / Math.sqrt(D)
  const qOff = opts.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = opts.keyOffset ?? 0
  const p = new Float64Array(B * H * Tq * Tk)
  const argmax = new Int32Array(B * H * Tq).fill(-1)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i
        const s = new Float64Array(Tk).fill(-Infinity)
        for (let j = 0; j < Tk; j++) {
          if (opts.mask && !opts.mask.test(b, h, qOff + i, kOff + j)) continue
          let dot = 0
          for (let d = 0; d < D; d++) dot += q.values[row * D + d]! * k.values[((b * Hkv + Math.floor(h / g)) * Tk + j) * D + d]!
          s[j] = opts.scoreMod ? opts.scoreMod.apply(dot * scale, b, h, qOff + i, kOff + j) : dot * scale
        }
        const m = Math.max(...s)
        if (m === -Infinity) continue
        let l = 0
        for (let j = 0; j < Tk; j++) l += Math.exp(s[j]! - m)
        let best = -1
        for (let j = 0; j < Tk; j++) {
          const x = Math.exp(s[j]! - m) / l
          p[row * Tk + j] = x
          if (best < 0 || x > p[row * Tk + best]!) best = j
        }
        argmax[row] = best
      }
  return { p, argmax }
}
