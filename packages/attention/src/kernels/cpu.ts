import type { Attrs, CpuKernel, CpuTensor } from '@heed/tensor'
import type { AttentionAttrs } from './attrs.js'

/**
 * CPU kernels of scaled dot-product attention. Forward: FlashAttention's online softmax over key tiles, one query
 * row at a time, so memory is O(T·D) whatever the mask (a tile the mask rules out is skipped, a tile it fully
 * allows skips the per-pair test). Backward: FlashAttention-2's recomputation from the saved logsumexp, so no
 * probability matrix is ever stored. Arithmetic is float64 throughout; results are rounded once on store.
 * Layout: q [B,H,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]; query head h reads kv head ⌊h / (H/Hkv)⌋.
 */

interface Geometry {
  B: number
  H: number
  Hkv: number
  Tq: number
  Tk: number
  D: number
  Dv: number
  g: number
}

const geometry = (q: CpuTensor, k: CpuTensor, v: CpuTensor): Geometry => {
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const [, Hkv, Tk] = k.shape as [number, number, number, number]
  const Dv = v.shape[3]!
  return { B, H, Hkv, Tq, Tk, D, Dv, g: H / Hkv }
}

/** Scores of one query row against keys [k0, k1) into `s` (−∞ where masked); returns whether any is allowed. */
function rowScores(
  a: AttentionAttrs,
  geo: Geometry,
  qv: ArrayLike<number>,
  kv: ArrayLike<number>,
  b: number,
  h: number,
  qRow: number,
  kBase: number,
  k0: number,
  k1: number,
  full: boolean,
  s: Float64Array,
): boolean {
  const { D } = geo
  const pq = a.qOffset + qRow
  let any = false
  for (let j = k0; j < k1; j++) {
    const pk = a.kOffset + j
    if (!full && !a.mask.test(b, h, pq, pk)) {
      s[j - k0] = -Infinity
      continue
    }
    let dot = 0
    const ko = kBase + j * D
    for (let d = 0; d < D; d++) dot += qv[d]! * kv[ko + d]!
    let x = dot * a.scale
    if (a.scoreMod) x = a.scoreMod.apply(x, b, h, pq, pk)
    s[j - k0] = x
    if (x !== -Infinity) any = true
  }
  return any
}

const forward: CpuKernel = ([q, k, v], attrs: Attrs) => {
  const a = attrs as unknown as AttentionAttrs
  const geo = geometry(q!, k!, v!)
  const { B, H, Hkv, Tq, Tk, D, Dv, g } = geo
  const out = q!.dtype === 'float64' ? new Float64Array(B * H * Tq * Dv) : new Float32Array(B * H * Tq * Dv)
  const lse = q!.dtype === 'float64' ? new Float64Array(B * H * Tq) : new Float32Array(B * H * Tq)
  const bs = Math.max(1, a.blockSize)
  const s = new Float64Array(bs)
  const acc = new Float64Array(Dv)
  const qRowBuf = new Float64Array(D)
  const qvals = q!.values
  const kvals = k!.values
  const vvals = v!.values
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / g)
      const kBase = (b * Hkv + hk) * Tk * D
      const vBase = (b * Hkv + hk) * Tk * Dv
      for (let i = 0; i < Tq; i++) {
        const qo = ((b * H + h) * Tq + i) * D
        for (let d = 0; d < D; d++) qRowBuf[d] = qvals[qo + d]!
        let m = -Infinity
        let l = 0
        acc.fill(0)
        const pq = a.qOffset + i
        for (let k0 = 0; k0 < Tk; k0 += bs) {
          const k1 = Math.min(Tk, k0 + bs)
          const cls = a.mask.classify(h, { q0: pq, q1: pq, k0: a.kOffset + k0, k1: a.kOffset + k1 - 1 })
          if (cls === 'none') continue
          if (!rowScores(a, geo, qRowBuf, kvals, b, h, i, kBase, k0, k1, cls === 'full', s)) continue
          let mt = m
          for (let j = 0; j < k1 - k0; j++) if (s[j]! > mt) mt = s[j]!
          if (mt === Infinity) mt = Number.MAX_VALUE
          const corr = m === -Infinity ? 0 : Math.exp(m - mt)
          l *= corr
          for (let d = 0; d < Dv; d++) acc[d]! *= corr
          for (let j = 0; j < k1 - k0; j++) {
            if (s[j] === -Infinity) continue
            const p = Math.exp(s[j]! - mt)
            l += p
            const vo = vBase + (k0 + j) * Dv
            for (let d = 0; d < Dv; d++) acc[d]! += p * vvals[vo + d]!
          }
          m = mt
        }
        const oo = ((b * H + h) * Tq + i) * Dv
        if (l === 0) {
          // fully masked row: the identity of the state merge, o = 0 and lse = −∞, never NaN
          lse[(b * H + h) * Tq + i] = -Infinity
          continue
        }
        for (let d = 0; d < Dv; d++) out[oo + d] = acc[d]! / l
        lse[(b * H + h) * Tq + i] = m + Math.log(l)
      }
    }
  return [
    { values: out, shape: [B, H, Tq, Dv], dtype: q!.dtype },
    { values: lse, shape: [B, H, Tq], dtype: q!.dtype },
  ]
}

/**
 * Inputs q, k, v, out, lse, dOut, dLse. With P_ij = exp(S_ij − lse_i) recomputed tile by tile:
 * dV_j = Σ_i P_ij dO_i;  dS_ij = P_ij (dO_i·V_j − Δ_i + dLse_i) · mod'(S);  Δ_i = dO_i·O_i;
 * dQ_i = scale Σ_j dS_ij K_j;  dK_j = scale Σ_i dS_ij Q_i  (summed over the query heads of a kv group).
 */
const backward: CpuKernel = ([q, k, v, o, lse, dO, dLse], attrs: Attrs) => {
  const a = attrs as unknown as AttentionAttrs
  const geo = geometry(q!, k!, v!)
  const { B, H, Hkv, Tq, Tk, D, Dv, g } = geo
  const dq = new Float64Array(B * H * Tq * D)
  const dk = new Float64Array(B * Hkv * Tk * D)
  const dv = new Float64Array(B * Hkv * Tk * Dv)
  const bs = Math.max(1, a.blockSize)
  const s = new Float64Array(bs)
  const raw = new Float64Array(bs)
  const qRow = new Float64Array(D)
  const [qv, kv, vv, ov, lv, dov, dlv] = [q!.values, k!.values, v!.values, o!.values, lse!.values, dO!.values, dLse!.values]
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / g)
      const kBase = (b * Hkv + hk) * Tk * D
      const vBase = (b * Hkv + hk) * Tk * Dv
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i
        const L = lv[row]!
        if (L === -Infinity) continue
        const qo = row * D
        const oo = row * Dv
        for (let d = 0; d < D; d++) qRow[d] = qv[qo + d]!
        let delta = 0
        for (let d = 0; d < Dv; d++) delta += dov[oo + d]! * ov[oo + d]!
        const dl = dlv[row]!
        const pq = a.qOffset + i
        for (let k0 = 0; k0 < Tk; k0 += bs) {
          const k1 = Math.min(Tk, k0 + bs)
          const cls = a.mask.classify(h, { q0: pq, q1: pq, k0: a.kOffset + k0, k1: a.kOffset + k1 - 1 })
          if (cls === 'none') continue
          // raw scaled scores are needed for the score-mod derivative
          for (let j = k0; j < k1; j++) {
            const pk = a.kOffset + j
            if (cls !== 'full' && !a.mask.test(b, h, pq, pk)) {
              s[j - k0] = -Infinity
              continue
            }
            let dot = 0
            const ko = kBase + j * D
            for (let d = 0; d < D; d++) dot += qRow[d]! * kv[ko + d]!
            raw[j - k0] = dot * a.scale
            s[j - k0] = a.scoreMod ? a.scoreMod.apply(raw[j - k0]!, b, h, pq, pk) : raw[j - k0]!
          }
          for (let j = k0; j < k1; j++) {
            const sj = s[j - k0]!
            if (sj === -Infinity) continue
            const p = Math.exp(sj - L)
            const vo = vBase + j * Dv
            let dp = 0
            for (let d = 0; d < Dv; d++) {
              dv[vo + d]! += p * dov[oo + d]!
              dp += dov[oo + d]! * vv[vo + d]!
            }
            let ds = p * (dp - delta + dl)
            if (a.scoreMod) ds *= a.scoreMod.derivative(raw[j - k0]!, b, h, pq, a.kOffset + j)
            ds *= a.scale
            const ko = kBase + j * D
            for (let d = 0; d < D; d++) {
              dq[qo + d]! += ds * kv[ko + d]!
              dk[ko + d]! += ds * qRow[d]!
            }
          }
        }
      }
    }
  const as = (x: Float64Array) => (q!.dtype === 'float64' ? x : Float32Array.from(x))
  return [
    { values: as(dq), shape: q!.shape, dtype: q!.dtype },
    { values: as(dk), shape: k!.shape, dtype: k!.dtype },
    { values: as(dv), shape: v!.shape, dtype: v!.dtype },
  ]
}

export const cpuAttentionKernels: Readonly<Record<string, CpuKernel>> = {
  Attention: forward,
  AttentionBackward: backward,
}
