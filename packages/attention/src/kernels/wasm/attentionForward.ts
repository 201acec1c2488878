import { ATT_KC, AttParam, PackParam, STATE_BYTES, UNIT_WORDS } from './attentionForwardModule.js'
import { MAX_JOBS, wasmMode } from '@heed/tensor/cpu'
import type { AttentionGeometry } from '../attrs.js'
import { attentionWasmRuntime } from './attentionWasm.js'

/**
 * The float32 scaled dot-product attention forward in WebAssembly (attentionForwardModule.ts), for the CPU kernel
 * (../cpu.ts): unmasked or causal, no score modifier. The host copies Q, K and V into the module's memory and lists
 * the work units (blocks of query rows of one head, costliest first); att_pack jobs (one per head) pack K and V into
 * micro-kernel panels and report the inputs' largest magnitudes, then one att_fwd job per thread takes units from a
 * shared counter until none are left.
 */

/** The sizes are those of the kernel's geometry (attrs.ts); the grouping g = H / Hkv is derived here. */
export interface AttentionForwardProblem extends Omit<AttentionGeometry, 'g'> {
  /** [B, H, Tq, D] */
  readonly q: Float32Array
  /** [B, Hkv, Tk, D] */
  readonly k: Float32Array
  /** [B, Hkv, Tk, Dv] */
  readonly v: Float32Array
  readonly scale: number
  /** Query i may see key j only when j ≤ i + delta (delta = queryOffset − keyOffset); all keys otherwise. */
  readonly causal: boolean
  readonly delta: number
  /** Keys j ≥ keyLimit are masked for every query (a KV cache filled up to there); default Tk. */
  readonly keyLimit?: number
  /** Force one thread (tests compare it against the pool); default: the pool when the problem is large enough. */
  readonly threads?: 1
  /** Query rows per work unit, a multiple of 8 (default: QUERY_BLOCK, or Tq rounded up to 8 when shorter; tests vary it). */
  readonly queryBlock?: number
}

export interface AttentionForwardResult {
  /** [B, H, Tq, Dv] */
  readonly out: Float32Array
  /** [B, H, Tq]: logsumexp of each row's scaled scores, −∞ for a row that sees no key */
  readonly lse: Float32Array
}

/**
 * Below this many multiply-adds a call takes microseconds on either kernel (this one is still faster: ~2× at 8K
 * multiply-adds, ~10× at 128K, measured on the reference 2-core EPYC), so small problems keep the caller's
 * float64-arithmetic kernel, the more accurate of the two.
 */
export const ATTENTION_WASM_MIN_MACS = 1 << 16
/** Below this many multiply-adds waking workers costs more than it saves. */
export const ATTENTION_THREAD_MIN_MACS = 1 << 21
/**
 * Query rows per work unit (at most): 64 rows give the P·V micro-kernel 16 query panels over each chunk of V it
 * loads, and a 4096-key causal head 64 units to spread over the threads. 32 and 128 measured within 3%.
 */
export const QUERY_BLOCK = 64
/**
 * Largest |scale|·max|q|·max|k|·D the float32 scores may reach: far below float32's 3.4e38, so no score or partial
 * sum overflows. Beyond it (or with a non-finite input) the caller's float64 kernel runs instead.
 */
const SCORE_BOUND = 1e30

const align = (x: number): number => (x + 63) & ~63
const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m

/** Keys a block of `nq` query rows from row i0 sees. */
const keysSeen = (p: AttentionForwardProblem, i0: number, nq: number): number => (p.causal ? Math.max(0, Math.min(p.Tk, i0 + nq + p.delta)) : p.Tk)

/**
 * The attention forward through WebAssembly, or undefined when that path does not apply (unavailable or switched
 * off, too small to pay in 'auto' mode, memory too large, or inputs whose float32 scores could overflow or are not
 * finite); the caller then runs its own kernel.
 */
export function wasmAttentionForward(problem: AttentionForwardProblem): AttentionForwardResult | undefined {
  // a key limit is a shorter key sequence: every key row past it is skipped (the heads keep their TkStride rows)
  const TkStride = problem.Tk
  const p = { ...problem, Tk: Math.min(problem.Tk, problem.keyLimit ?? problem.Tk) }
  const { B, H, Hkv, Tq, Tk, D, Dv } = p
  const BH = B * H
  // a short query (a decode step) gets a block of its own size: the score product runs over whole 8-row panels
  const BQ = p.queryBlock ?? Math.min(QUERY_BLOCK, roundUp(p.Tq, 8))
  if (BH === 0 || Tq === 0 || !(Tk > 0) || D === 0 || Dv === 0 || BQ % 8 !== 0 || BQ <= 0) return undefined
  if (H % Hkv !== 0 || !Number.isInteger(p.delta)) return undefined
  const g = H / Hkv
  const blocks = Math.ceil(Tq / BQ)
  let macs = 0
  for (let b = 0; b < blocks; b++) macs += BQ * keysSeen(p, b * BQ, BQ)
  macs *= BH * (D + Dv)
  if (wasmMode() !== 'force' && macs < ATTENTION_WASM_MIN_MACS) return undefined
  const rt = attentionWasmRuntime()
  if (!rt) return undefined

  const kPad = roundUp(Tk, 4)
  const DvPad = roundUp(Dv, 8)
  const TqPad = blocks * BQ
  const units = BH * blocks
  const parallel = p.threads !== 1 && rt.threads() > 1 && macs >= ATTENTION_THREAD_MIN_MACS
  const jobs = parallel ? rt.threads() : 1
  const slotBytes = align(4 * (D * BQ + BQ * DvPad + BQ * ATT_KC) + (BQ / 4) * STATE_BYTES)

  const packJobs = Math.min(MAX_JOBS, Math.max(B * Hkv, BH))

  // layout: [params][pack params][counter][pack stats][unit table][Q][packed K][packed V][out][max][l][scratch slots]
  const paramsAt = 64
  const packAt = align(paramsAt + AttParam.Count * 4)
  const counterAt = align(packAt + PackParam.Count * 4)
  const statsAt = align(counterAt + 4)
  const tableAt = align(statsAt + packJobs * 16)
  const qAt = align(tableAt + units * UNIT_WORDS * 4)
  const kAt = align(qAt + BH * Tq * D * 4)
  const vAt = align(kAt + B * Hkv * kPad * D * 4)
  const outAt = align(vAt + B * Hkv * Tk * DvPad * 4)
  const mAt = align(outAt + BH * Tq * Dv * 4)
  const lAt = align(mAt + BH * TqPad * 4)
  const scratchAt = align(lAt + BH * TqPad * 4)
  // the row-major K and V are read by att_pack only, before att_fwd writes anything from outAt on: they share that space
  const rawKAt = outAt
  const rawVAt = align(rawKAt + B * Hkv * TkStride * D * 4)
  const total = Math.max(scratchAt + jobs * slotBytes, rawVAt + B * Hkv * TkStride * Dv * 4)
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
  mem.set(p.k, rawKAt >> 2)
  mem.set(p.v, rawVAt >> 2)
  const pack: [PackParam, number][] = [
    [PackParam.Jobs, packJobs],
    [PackParam.KvHeads, B * Hkv],
    [PackParam.QHeads, BH],
    [PackParam.Tk, Tk],
    [PackParam.TkStride, TkStride],
    [PackParam.D, D],
    [PackParam.Dv, Dv],
    [PackParam.DvPad, DvPad],
    [PackParam.RawK, rawKAt],
    [PackParam.RawV, rawVAt],
    [PackParam.K, kAt],
    [PackParam.V, vAt],
    [PackParam.Q, qAt],
    [PackParam.QLen, Tq * D],
    [PackParam.Stats, statsAt],
  ]
  for (const [f, x] of pack) words[(packAt >> 2) + f] = x
  rt.run('att_pack', packJobs, [packAt], parallel)
  // Math.max keeps a NaN
  let qMax = 0
  let kMax = 0
  let vMax = 0
  const stats = rt.f32()
  for (let j = 0; j < packJobs; j++) {
    qMax = Math.max(qMax, stats[(statsAt >> 2) + 4 * j]!)
    kMax = Math.max(kMax, stats[(statsAt >> 2) + 4 * j + 1]!)
    vMax = Math.max(vMax, stats[(statsAt >> 2) + 4 * j + 2]!)
  }
  // scores beyond SCORE_BOUND (or non-finite inputs) are left to the caller's float64 kernel
  if (!(Math.abs(p.scale) * qMax * kMax * D <= SCORE_BOUND) || !Number.isFinite(vMax)) return undefined

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
