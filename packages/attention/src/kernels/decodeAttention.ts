import type { AnyTypedArray } from '@heed/tensor'
import type { AttentionGeometry } from './attrs.js'
import { attentionWasmRuntime } from './wasm/attentionWasm.js'

/**
 * Most query rows a call may have for decodeAttention to take it. A decode step has one (a few with speculative or
 * batched drafts); the blocked kernels win beyond that, since each row here reads its keys again.
 */
export const DECODE_MAX_ROWS = 4

export interface DecodeAttentionProblem extends Omit<AttentionGeometry, 'g'> {
  /** [B, H, Tq, D], [B, Hkv, Tk, D], [B, Hkv, Tk, Dv]: float32 or float64, read in place */
  readonly q: AnyTypedArray
  readonly k: AnyTypedArray
  readonly v: AnyTypedArray
  readonly scale: number
  /** Query i sees key j only when j ≤ i + delta (delta = queryOffset − keyOffset); every key otherwise. */
  readonly causal: boolean
  readonly delta: number
  /** Keys j ≥ keyLimit are masked for every query (a KV cache filled up to there). */
  readonly keyLimit: number
  readonly float64: boolean
}

/**
 * Attention for a handful of query rows over a key prefix (a decode step against a KV cache): per row, the scores
 * of the keys it sees, their softmax and the weighted sum of values, in float64 with one rounding on store — the
 * arithmetic of the blocked float64 kernel, without its per-call conversion of whole heads (a cache's full
 * capacity) into scratch: the tensors are read where they are, and only the keys a row sees are touched, so a step
 * costs O(visible keys · D) whatever the cache's capacity.
 *
 * Undefined when a score is not finite (a NaN or ±∞ in the query or a visible key, or an overflowing product):
 * the blocked kernel owns those rows' rules.
 */
export function decodeAttention(p: DecodeAttentionProblem): { out: AnyTypedArray; lse: AnyTypedArray } | undefined {
  const { B, H, Hkv, Tq, Tk, D, Dv, q, k, v, scale, causal, delta, keyLimit } = p
  if (!p.float64 && D % 2 === 0 && Dv % 2 === 0 && q instanceof Float32Array && k instanceof Float32Array && v instanceof Float32Array) {
    const r = wasmDecode(p, q, k, v)
    if (r !== null) return r
  }
  const g = H / Hkv
  const out = p.float64 ? new Float64Array(B * H * Tq * Dv) : new Float32Array(B * H * Tq * Dv)
  const lse = p.float64 ? new Float64Array(B * H * Tq) : new Float32Array(B * H * Tq)
  const limit = Math.max(0, Math.min(Tk, keyLimit))
  const qs = new Float64Array(D)
  const s = new Float64Array(limit)
  const acc = new Float64Array(Dv)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kvHead = b * Hkv + Math.floor(h / g)
      const kBase = kvHead * Tk * D
      const vBase = kvHead * Tk * Dv
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i
        const n = visibleKeys(causal, limit, i, delta)
        if (n === 0) {
          // a row that sees no key: the identity of the state merge (out 0, lse −∞)
          lse[row] = -Infinity
          continue
        }
        for (let d = 0; d < D; d++) qs[d] = q[row * D + d]! * scale
        let m = -Infinity
        let j = 0
        // four keys per pass share each loaded query element
        for (; j + 3 < n; j += 4) {
          const k0 = kBase + j * D
          const k1 = k0 + D
          const k2 = k1 + D
          const k3 = k2 + D
          let c0 = 0, c1 = 0, c2 = 0, c3 = 0
          for (let d = 0; d < D; d++) {
            const x = qs[d]!
            c0 += x * k[k0 + d]!
            c1 += x * k[k1 + d]!
            c2 += x * k[k2 + d]!
            c3 += x * k[k3 + d]!
          }
          s[j] = c0
          s[j + 1] = c1
          s[j + 2] = c2
          s[j + 3] = c3
          const mx = Math.max(c0, c1, c2, c3)
          if (mx > m) m = mx
        }
        for (; j < n; j++) {
          const k0 = kBase + j * D
          let c = 0
          for (let d = 0; d < D; d++) c += qs[d]! * k[k0 + d]!
          s[j] = c
          if (c > m) m = c
        }
        if (!finite(s, n)) return undefined
        let l = 0
        for (let x = 0; x < n; x++) {
          const e = Math.exp(s[x]! - m)
          s[x] = e
          l += e
        }
        acc.fill(0)
        let x = 0
        for (; x + 3 < n; x += 4) {
          const p0 = s[x]!, p1 = s[x + 1]!, p2 = s[x + 2]!, p3 = s[x + 3]!
          const v0 = vBase + x * Dv
          const v1 = v0 + Dv
          const v2 = v1 + Dv
          const v3 = v2 + Dv
          for (let d = 0; d < Dv; d++) acc[d] = acc[d]! + p0 * v[v0 + d]! + p1 * v[v1 + d]! + p2 * v[v2 + d]! + p3 * v[v3 + d]!
        }
        for (; x < n; x++) {
          const p0 = s[x]!
          const v0 = vBase + x * Dv
          for (let d = 0; d < Dv; d++) acc[d] = acc[d]! + p0 * v[v0 + d]!
        }
        const o = row * Dv
        for (let d = 0; d < Dv; d++) out[o + d] = acc[d]! / l
        lse[row] = m + Math.log(l)
      }
    }
  return { out, lse }
}

/** Keys query row i sees: those before the cache's fill `limit`, and when causal only j ≤ i + delta. */
const visibleKeys = (causal: boolean, limit: number, i: number, delta: number): number => (causal ? Math.max(0, Math.min(limit, i + delta + 1)) : limit)

/** Whether s[0..n) are all finite (the running max above skips a NaN: NaN > m is false). */
function finite(s: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) if (s[j]! - s[j]! !== 0) return false
  return true
}

/**
 * float32 q, k, v with even D and Dv: the same float64 arithmetic with both products in WebAssembly
 * (wasm/decodeModule.ts) over a copy of the keys and values each kv head's rows see (one memcpy each; V8 runs the
 * TypeScript loops above at ~6 cycles per multiply-add). Null where WebAssembly is unavailable or off, or the
 * memory cannot grow that far; undefined, as above, for a non-finite score.
 */
function wasmDecode(p: DecodeAttentionProblem, q: Float32Array, k: Float32Array, v: Float32Array): { out: Float32Array; lse: Float32Array } | undefined | null {
  const rt = attentionWasmRuntime()
  const dots = rt?.exports['att_dec_dots']
  const pv = rt?.exports['att_dec_pv']
  if (!rt || !dots || !pv) return null
  const { B, H, Hkv, Tq, Tk, D, Dv, scale, causal, delta, keyLimit } = p
  const g = H / Hkv
  const limit = Math.max(0, Math.min(Tk, keyLimit))
  // keys any row of the call sees: the last row's, when causal
  const seen = visibleKeys(causal, limit, Tq - 1, delta)
  // layout (bytes): q·scale f64 [D] | scores f64 [seen] | acc f64 [Dv] | keys f32 [seen, D] | values f32 [seen, Dv]
  const sAt = D * 8
  const accAt = sAt + seen * 8
  const kAt = accAt + Dv * 8
  const vAt = kAt + seen * D * 4
  const total = vAt + seen * Dv * 4
  if (!rt.reserve(total)) return null
  const f64 = new Float64Array(rt.memory.buffer, 0, kAt >> 3)
  const f32 = new Float32Array(rt.memory.buffer, 0, total >> 2)
  const out = new Float32Array(B * H * Tq * Dv)
  const lse = new Float32Array(B * H * Tq)
  const s0 = sAt >> 3
  const a0 = accAt >> 3
  for (let kvHead = 0; kvHead < B * Hkv; kvHead++) {
    if (seen > 0) {
      f32.set(k.subarray(kvHead * Tk * D, kvHead * Tk * D + seen * D), kAt >> 2)
      f32.set(v.subarray(kvHead * Tk * Dv, kvHead * Tk * Dv + seen * Dv), vAt >> 2)
    }
    const b = Math.floor(kvHead / Hkv)
    const h0 = (kvHead % Hkv) * g
    for (let h = h0; h < h0 + g; h++)
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i
        const n = visibleKeys(causal, limit, i, delta)
        if (n === 0) {
          lse[row] = -Infinity
          continue
        }
        for (let d = 0; d < D; d++) f64[d] = q[row * D + d]! * scale
        dots(0, kAt, n, D, sAt)
        let m = -Infinity
        for (let j = s0; j < s0 + n; j++) if (f64[j]! > m) m = f64[j]!
        if (!finite(f64.subarray(s0, s0 + n), n)) return undefined
        let l = 0
        for (let j = s0; j < s0 + n; j++) {
          const e = Math.exp(f64[j]! - m)
          f64[j] = e
          l += e
        }
        f64.fill(0, a0, a0 + Dv)
        pv(sAt, vAt, n, Dv, accAt)
        const o = row * Dv
        for (let d = 0; d < Dv; d++) out[o + d] = f64[a0 + d]! / l
        lse[row] = m + Math.log(l)
      }
  }
  return { out, lse }
}
