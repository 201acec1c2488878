import { AttParam, UNIT_WORDS } from './attentionForwardModule.js'
import { wasmMode, wasmRuntime } from './runtime.js'

/**
 * The float32 scaled dot-product attention forward in WebAssembly (attentionForwardModule.ts), for @heed/attention's
 * CPU kernel: unmasked or causal, no score modifier. The host packs K and V once per kv head, lists the work units
 * (blocks of query rows of one head, costliest first) and runs one job per thread; each job takes units from a shared
 * counter until none are left.
 */

export interface AttentionForwardProblem {
  /** [B, H, Tq, D] */
  readonly q: Float32Array
  /** [B, Hkv, Tk, D] */
  readonly k: Float32Array
  /** [B, Hkv, Tk, Dv] */
  readonly v: Float32Array
  readonly B: number
  readonly H: number
  readonly Hkv: number
  readonly Tq: number
  readonly Tk: number
  readonly D: number
  readonly Dv: number
  readonly scale: number
  /** Query i may see key j only when j ≤ i + delta (delta = queryOffset − keyOffset); all keys otherwise. */
  readonly causal: boolean
  readonly delta: number
  /** Force one thread (tests compare it against the pool); default: the pool when the problem is large enough. */
  readonly threads?: 1
  /** Query rows per work unit, a multiple of 8 (default QUERY_BLOCK; tests vary it). */
  readonly queryBlock?: number
}

export interface AttentionForwardResult {
  /** [B, H, Tq, Dv] */
  readonly out: Float32Array
  /** [B, H, Tq]: logsumexp of each row's scaled scores, −∞ for a row that sees no key */
  readonly lse: Float32Array
}

/**
 * Below this many multiply-adds the float64-lane kernel is as fast once the packing is counted, and it is the more
 * accurate of the two, so it keeps small problems.
 */
export const ATTENTION_WASM_MIN_MACS = 1 << 18
/** Below this many multiply-adds waking workers costs more than it saves. */
export const ATTENTION_THREAD_MIN_MACS = 1 << 21
/**
 * Query rows per work unit: the unit's transposed scores (rows × keys float32, 1 MiB at 64 × 4096) stay within L2,
 * and 64 rows give the P·V micro-kernel 16 query panels over each chunk of V it loads.
 */
export const QUERY_BLOCK = 64
/**
 * Largest |scale|·max|q|·max|k|·D the float32 scores may reach: far below float32's 3.4e38, so no score or partial
 * sum overflows. Beyond it (or with a non-finite input) the caller's float64 kernel runs instead.
 */
const SCORE_BOUND = 1e30

const align = (x: number): number => (x + 63) & ~63
const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m

/** Largest |x|, or NaN when some element is NaN or infinite. */
function maxAbs(x: Float32Array): number {
  let m = 0
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!)
    if (!(a <= m)) {
      if (a > m) m = a
      else return NaN
    }
  }
  return m === Infinity ? NaN : m
}

/**
 * K as 4-key panels, d-major inside ([key/4][d][key%4], keys past Tk zero): the A operand of Sᵀ = K·Qᵀ. Returns
 * max |k|, NaN when some element is not finite.
 */
function packK(k: Float32Array, mem: Float32Array, at: number, heads: number, Tk: number, D: number, kPad: number): number {
  let m = 0
  for (let z = 0; z < heads; z++) {
    const dst = at + z * kPad * D
    for (let j = 0, s = z * Tk * D; j < Tk; j++) {
      const o = dst + (j >> 2) * 4 * D + (j & 3)
      for (let d = 0; d < D; d++, s++) {
        const x = k[s]!
        mem[o + 4 * d] = x
        const a = Math.abs(x)
        if (!(a <= m)) m = a > m ? a : NaN
      }
      if (Number.isNaN(m)) return NaN
    }
    for (let j = Tk; j < kPad; j++) for (let d = 0; d < D; d++) mem[dst + (j >> 2) * 4 * D + (j & 3) + 4 * d] = 0
  }
  return m === Infinity ? NaN : m
}

/**
 * V as 8-column panels, key-major inside ([column/8][key][column%8], columns past Dv zero): the B operand of P·V.
 * Returns whether every element is finite.
 */
function packV(v: Float32Array, mem: Float32Array, at: number, heads: number, Tk: number, Dv: number, DvPad: number): boolean {
  let bad = 0
  for (let z = 0; z < heads; z++) {
    const dst = at + z * Tk * DvPad
    const src = z * Tk * Dv
    for (let pj = 0; pj < DvPad; pj += 8) {
      const cols = Math.min(8, Dv - pj)
      if (cols === 8) {
        for (let j = 0, o = dst + pj * Tk, s = src + pj; j < Tk; j++, o += 8, s += Dv) {
          const x0 = v[s]!, x1 = v[s + 1]!, x2 = v[s + 2]!, x3 = v[s + 3]!, x4 = v[s + 4]!, x5 = v[s + 5]!, x6 = v[s + 6]!, x7 = v[s + 7]!
          mem[o] = x0
          mem[o + 1] = x1
          mem[o + 2] = x2
          mem[o + 3] = x3
          mem[o + 4] = x4
          mem[o + 5] = x5
          mem[o + 6] = x6
          mem[o + 7] = x7
          // x − x is 0 for finite x and NaN for ±∞ and NaN
          bad += x0 - x0 + x1 - x1 + x2 - x2 + x3 - x3 + x4 - x4 + x5 - x5 + x6 - x6 + x7 - x7
        }
      } else {
        for (let j = 0, o = dst + pj * Tk, s = src + pj; j < Tk; j++, o += 8, s += Dv) {
          for (let c = 0; c < cols; c++) {
            const x = v[s + c]!
            mem[o + c] = x
            bad += x - x
          }
          for (let c = cols; c < 8; c++) mem[o + c] = 0
        }
      }
    }
  }
  return bad === 0
}

/** Keys a block of `nq` query rows from row i0 sees. */
const keysSeen = (p: AttentionForwardProblem, i0: number, nq: number): number => (p.causal ? Math.max(0, Math.min(p.Tk, i0 + nq + p.delta)) : p.Tk)

/**
 * The attention forward through WebAssembly, or undefined when that path does not apply (unavailable or switched
 * off, too small to pay in 'auto' mode, memory too large, or inputs whose float32 scores could overflow or are not
 * finite); the caller then runs its own kernel.
 */
export function wasmAttentionForward(p: AttentionForwardProblem): AttentionForwardResult | undefined {
  const { B, H, Hkv, Tq, Tk, D, Dv } = p
  const BH = B * H
  const BQ = p.queryBlock ?? QUERY_BLOCK
  if (BH === 0 || Tq === 0 || Tk === 0 || D === 0 || Dv === 0 || BQ % 8 !== 0 || BQ <= 0) return undefined
  if (H % Hkv !== 0 || !Number.isInteger(p.delta)) return undefined
  const g = H / Hkv
  const blocks = Math.ceil(Tq / BQ)
  let macs = 0
  for (let b = 0; b < blocks; b++) macs += BQ * keysSeen(p, b * BQ, BQ)
  macs *= BH * (D + Dv)
  if (wasmMode() !== 'force' && macs < ATTENTION_WASM_MIN_MACS) return undefined
  const rt = wasmRuntime()
  if (!rt) return undefined

  const kPad = roundUp(Tk, 4)
  const DvPad = roundUp(Dv, 8)
  const TqPad = blocks * BQ
  const units = BH * blocks
  const parallel = p.threads !== 1 && rt.threads() > 1 && macs >= ATTENTION_THREAD_MIN_MACS
  const jobs = parallel ? rt.threads() : 1
  const slotBytes = align(4 * (D * BQ + BQ * DvPad + (BQ / 4) * kPad * 4))

  // layout: [params][counter][unit table][Q][packed K][packed V][out][max][l][scratch slots]
  const paramsAt = 64
  const counterAt = align(paramsAt + AttParam.Count * 4)
  const tableAt = align(counterAt + 4)
  const qAt = align(tableAt + units * UNIT_WORDS * 4)
  const kAt = align(qAt + BH * Tq * D * 4)
  const vAt = align(kAt + B * Hkv * kPad * D * 4)
  const outAt = align(vAt + B * Hkv * Tk * DvPad * 4)
  const mAt = align(outAt + BH * Tq * Dv * 4)
  const lAt = align(mAt + BH * TqPad * 4)
  const scratchAt = align(lAt + BH * TqPad * 4)
  const total = scratchAt + jobs * slotBytes
  if (!Number.isSafeInteger(total) || total >= 2 ** 31 || !rt.reserve(total)) return undefined

  const mem = rt.f32()
  const words = rt.i32()
  const fields: [AttParam, number][] = [
    [AttParam.Units, units],
    [AttParam.Counter, counterAt],
    [AttParam.UnitTable, tableAt],
    [AttParam.Tq, Tq],
    [AttParam.Tk, Tk],
    [AttParam.D, D],
    [AttParam.DvPad, DvPad],
    [AttParam.Dv, Dv],
    [AttParam.BQ, BQ],
    [AttParam.Causal, p.causal ? 1 : 0],
    [AttParam.Delta, p.delta],
    [AttParam.Q, qAt],
    [AttParam.K, kAt],
    [AttParam.V, vAt],
    [AttParam.Out, outAt],
    [AttParam.M, mAt],
    [AttParam.L, lAt],
    [AttParam.TqPad, TqPad],
    [AttParam.Scratch, scratchAt],
    [AttParam.SlotBytes, slotBytes],
  ]
  for (const [f, x] of fields) words[(paramsAt >> 2) + f] = x
  mem[(paramsAt >> 2) + AttParam.Scale] = p.scale

  // costliest units first (most keys seen): the last ones claimed are then the cheap ones, which evens out the threads
  const order = Array.from({ length: blocks }, (_, b) => b).sort((x, y) => keysSeen(p, y * BQ, BQ) - keysSeen(p, x * BQ, BQ))
  let t = tableAt >> 2
  for (const blk of order)
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        words[t] = b * H + h
        words[t + 1] = blk * BQ
        words[t + 2] = b * Hkv + Math.floor(h / g)
        t += UNIT_WORDS
      }

  mem.set(p.q, qAt >> 2)
  const qMax = maxAbs(p.q)
  const kMax = packK(p.k, mem, kAt >> 2, B * Hkv, Tk, D, kPad)
  const vFinite = packV(p.v, mem, vAt >> 2, B * Hkv, Tk, Dv, DvPad)
  // scores beyond SCORE_BOUND (or non-finite inputs) are left to the caller's float64 kernel
  if (!(Math.abs(p.scale) * qMax * kMax * D <= SCORE_BOUND) || !vFinite) return undefined

  rt.run('att_fwd', jobs, [paramsAt], parallel, () => {
    rt.i32()[counterAt >> 2] = 0
  })

  const view = rt.f32()
  const out = view.slice(outAt >> 2, (outAt >> 2) + BH * Tq * Dv)
  const lse = new Float32Array(BH * Tq)
  for (let bh = 0; bh < BH; bh++)
    for (let i = 0; i < Tq; i++) {
      const at = bh * TqPad + i
      const l = view[(lAt >> 2) + at]!
      lse[bh * Tq + i] = l > 0 ? view[(mAt >> 2) + at]! + Math.log(l) : -Infinity
    }
  return { out, lse }
}
