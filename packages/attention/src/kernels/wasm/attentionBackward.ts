import { MAX_JOBS, wasmMode } from '@heed/tensor/cpu'
import { ATTENTION_THREAD_MIN_MACS, ATTENTION_WASM_MIN_MACS, type AttentionForwardProblem } from './attentionForward.js'
import { BWD_UNIT_WORDS, BwdPackParam, BwdParam } from './attentionBackwardModule.js'
import { attentionWasmRuntime } from './attentionWasm.js'

/**
 * The float32 attention backward in WebAssembly (attentionBackwardModule.ts: FlashAttention-2's backward, Dao 2023,
 * Algorithm 2), for the CPU kernel (../cpu.ts), over the same masks as the forward fast path: unmasked or causal
 * with an offset, and a key prefix. The host copies the inputs into the module's memory; att_bwd_pack jobs pack
 * them into micro-kernel panels (and report their magnitudes), att_bwd jobs take key blocks from a shared counter
 * (costliest first), and att_bwd_dq jobs sum the per-key-block dQ terms.
 */
export interface AttentionBackwardProblem extends AttentionForwardProblem {
  /** Bytes of per-key-block dQ terms per dispatch (default PART_BYTES; tests make it small to force slices). */
  readonly partBytes?: number
  /** [B, H, Tq, Dv]: the forward's output */
  readonly out: Float32Array
  /** [B, H, Tq]: the forward's logsumexp (−∞ for a row that sees no key) */
  readonly lse: Float32Array
  /** [B, H, Tq, Dv] */
  readonly dOut: Float32Array
  /** [B, H, Tq] */
  readonly dLse: Float32Array
  /** Keys per work unit, a multiple of 8 (default KEY_BLOCK; tests vary it). */
  readonly keyBlock?: number
}

export interface AttentionBackwardResult {
  readonly dq: Float32Array
  readonly dk: Float32Array
  readonly dv: Float32Array
}

/**
 * Keys per work unit (and per tile): a unit's dK, dV accumulators (BK × D each) and its three BQ × BK tiles stay in
 * L2, and B16 H4 T128 gives 128 units to spread over the threads.
 */
export const KEY_BLOCK = 64
/** Query rows per tile. */
export const BWD_QUERY_BLOCK = 64
/** Bound on the float32 scores and dO·V products (as the forward's): beyond it, or with non-finite inputs, undefined. */
const BOUND = 1e30
/**
 * Bytes of per-key-block dQ terms held at once (they grow with T²·D/BK): a larger problem runs as several dispatches
 * over slices of its kv heads, so memory stays O(T·D) per head beyond this.
 */
const PART_BYTES = 64 << 20

const align = (x: number): number => (x + 63) & ~63
const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m

/**
 * The attention backward through WebAssembly, or undefined when that path does not apply (unavailable or switched
 * off, too small to pay in 'auto' mode, memory too large, inputs whose float32 products could overflow or that are
 * not finite); the caller then runs its own kernel.
 */
export function wasmAttentionBackward(problem: AttentionBackwardProblem): AttentionBackwardResult | undefined {
  const TkStride = problem.Tk
  const p = { ...problem, Tk: Math.min(problem.Tk, problem.keyLimit ?? problem.Tk) }
  const { B, H, Hkv, Tq, Tk, D, Dv, causal, delta } = p
  const BH = B * H
  const Z = B * Hkv
  const BQ = p.queryBlock ?? Math.min(BWD_QUERY_BLOCK, roundUp(Tq, 8))
  const BK = p.keyBlock ?? Math.min(KEY_BLOCK, roundUp(Math.max(Tk, 1), 8))
  if (BH === 0 || Tq === 0 || !(Tk > 0) || D === 0 || Dv === 0 || BQ % 8 !== 0 || BQ <= 0 || BK % 8 !== 0 || BK <= 0) return undefined
  if (H % Hkv !== 0 || !Number.isInteger(delta)) return undefined
  const g = H / Hkv
  const KB = Math.ceil(Tk / BK)
  const blocks = Math.ceil(Tq / BQ)
  // pairs (query, key) of the visible tiles; five products of D or Dv each
  const sees = (i0: number, nq: number, k0: number): boolean => !causal || i0 + nq - 1 + delta >= k0
  let pairs = 0
  const unitCost = new Array<number>(KB).fill(0)
  for (let kb = 0; kb < KB; kb++)
    for (let qb = 0; qb < blocks; qb++) {
      const nq = Math.min(BQ, Tq - qb * BQ)
      if (sees(qb * BQ, nq, kb * BK)) unitCost[kb]! += nq * Math.min(BK, Tk - kb * BK)
    }
  for (const c of unitCost) pairs += c
  const macs = pairs * BH * (3 * D + 2 * Dv)
  if (wasmMode() !== 'force' && macs < ATTENTION_WASM_MIN_MACS) return undefined
  const rt = attentionWasmRuntime()
  if (!rt) return undefined

  const TqPad = blocks * BQ
  const TkPad = roundUp(Tk, 8)
  const DPad = roundUp(D, 8)
  const DvPad = roundUp(Dv, 8)
  const D4 = roundUp(D, 4)
  const Dv4 = roundUp(Dv, 4)
  // kv heads per dispatch (their query heads are z·g … z·g + g − 1)
  const headPart = g * KB * TqPad * DPad * 4
  const slice = Math.max(1, Math.min(Z, Math.floor((p.partBytes ?? PART_BYTES) / headPart)))
  const units = slice * KB
  const parallel = p.threads !== 1 && rt.threads() > 1 && macs >= ATTENTION_THREAD_MIN_MACS
  const jobs = parallel ? rt.threads() : 1
  const packJobs = Math.min(MAX_JOBS, Math.max(Z, BH))
  const dqJobs = Math.min(MAX_JOBS, slice * g)
  const slotBytes = align(4 * (3 * BQ * BK + BK * DPad + BK * DvPad))

  // layout: [params][pack params][counter][stats][unit table][Δ][lse][QA][QB][OA][OB][KB1][KB2][VB][dQpart][dQ][dK][dV][slots]
  let at = 64
  const take = (bytes: number): number => {
    const x = at
    at = align(at + bytes)
    return x
  }
  const paramsAt = take(BwdParam.Count * 4)
  const packAt = take(BwdPackParam.Count * 4)
  const counterAt = take(4)
  const statsAt = take(packJobs * 16)
  const tableAt = take(units * BWD_UNIT_WORDS * 4)
  const deltaAt = take(BH * TqPad * 4)
  const lseAt = take(BH * TqPad * 4)
  const qaAt = take(BH * TqPad * D * 4)
  const qbAt = take(BH * TqPad * DPad * 4)
  const oaAt = take(BH * TqPad * Dv * 4)
  const obAt = take(BH * TqPad * DvPad * 4)
  const kb1At = take(Z * TkPad * D * 4)
  const kb2At = take(Z * TkPad * DPad * 4)
  const vbAt = take(Z * TkPad * Dv * 4)
  const partAt = take(slice * headPart)
  const dqAt = take(BH * Tq * D4 * 4)
  const dkAt = take(Z * Tk * D4 * 4)
  const dvAt = take(Z * Tk * Dv4 * 4)
  const scratchAt = take(jobs * slotBytes)
  // the raw inputs are read by att_bwd_pack only, before anything from dQpart on is written: they share that space
  at = partAt
  const rawQAt = take(BH * Tq * D * 4)
  const rawOAt = take(BH * Tq * Dv * 4)
  const rawKAt = take(Z * TkStride * D * 4)
  const rawVAt = take(Z * TkStride * Dv * 4)
  const total = Math.max(scratchAt + jobs * slotBytes, at)
  if (!Number.isSafeInteger(total) || total >= 2 ** 31 || !rt.reserve(total)) return undefined

  // Δ = rowsum(dO ∘ O) − dLse (float64 sums, rounded once), and lse with +∞ where no key is seen (P = 0 there)
  const deltaRow = new Float32Array(BH * TqPad)
  const lseRow = new Float32Array(BH * TqPad).fill(Infinity)
  let finite = true
  for (let bh = 0; bh < BH; bh++)
    for (let i = 0; i < Tq; i++) {
      const row = bh * Tq + i
      let s = 0
      for (let d = row * Dv, e = d + Dv; d < e; d++) s += p.dOut[d]! * p.out[d]!
      s -= p.dLse[row]!
      if (!Number.isFinite(s)) finite = false
      deltaRow[bh * TqPad + i] = s
      const l = p.lse[row]!
      if (l !== -Infinity) lseRow[bh * TqPad + i] = l
      if (Number.isNaN(l) || l === Infinity) finite = false
    }
  if (!finite) return undefined

  const mem = rt.f32()
  const words = rt.i32()
  const fields: [BwdParam, number][] = [
    [BwdParam.Units, units],
    [BwdParam.Counter, counterAt],
    [BwdParam.UnitTable, tableAt],
    [BwdParam.G, g],
    [BwdParam.Tq, Tq],
    [BwdParam.TqPad, TqPad],
    [BwdParam.Tk, Tk],
    [BwdParam.TkPad, TkPad],
    [BwdParam.D, D],
    [BwdParam.DPad, DPad],
    [BwdParam.D4, D4],
    [BwdParam.Dv, Dv],
    [BwdParam.DvPad, DvPad],
    [BwdParam.Dv4, Dv4],
    [BwdParam.BQ, BQ],
    [BwdParam.BK, BK],
    [BwdParam.KB, KB],
    [BwdParam.Causal, causal ? 1 : 0],
    [BwdParam.Delta, delta],
    [BwdParam.QA, qaAt],
    [BwdParam.QB, qbAt],
    [BwdParam.OA, oaAt],
    [BwdParam.OB, obAt],
    [BwdParam.Delta_, deltaAt],
    [BwdParam.Lse, lseAt],
    [BwdParam.KB1, kb1At],
    [BwdParam.KB2, kb2At],
    [BwdParam.VB, vbAt],
    [BwdParam.DQ, dqAt],
    [BwdParam.DK, dkAt],
    [BwdParam.DV, dvAt],
    [BwdParam.Scratch, scratchAt],
    [BwdParam.SlotBytes, slotBytes],
    [BwdParam.Jobs, dqJobs],
  ]
  for (const [f, x] of fields) words[(paramsAt >> 2) + f] = x
  mem[(paramsAt >> 2) + BwdParam.Scale] = p.scale
  const pack: [BwdPackParam, number][] = [
    [BwdPackParam.Jobs, packJobs],
    [BwdPackParam.QHeads, BH],
    [BwdPackParam.KvHeads, Z],
    [BwdPackParam.TkStride, TkStride],
    [BwdPackParam.RawQ, rawQAt],
    [BwdPackParam.RawO, rawOAt],
    [BwdPackParam.RawK, rawKAt],
    [BwdPackParam.RawV, rawVAt],
    [BwdPackParam.Stats, statsAt],
  ]
  for (const [f, x] of pack) words[(packAt >> 2) + f] = x

  mem.set(deltaRow, deltaAt >> 2)
  mem.set(lseRow, lseAt >> 2)
  mem.set(p.q, rawQAt >> 2)
  mem.set(p.dOut, rawOAt >> 2)
  mem.set(p.k, rawKAt >> 2)
  mem.set(p.v, rawVAt >> 2)

  rt.run('att_bwd_pack', packJobs, [paramsAt, packAt], parallel)
  let qMax = 0
  let kMax = 0
  let vMax = 0
  let oMax = 0
  const stats = rt.f32()
  for (let j = 0; j < packJobs; j++) {
    const s = (statsAt >> 2) + 4 * j
    qMax = Math.max(qMax, stats[s]!)
    kMax = Math.max(kMax, stats[s + 1]!)
    vMax = Math.max(vMax, stats[s + 2]!)
    oMax = Math.max(oMax, stats[s + 3]!)
  }
  if (!(Math.abs(p.scale) * qMax * kMax * D <= BOUND) || !(oMax * vMax * Dv <= BOUND)) return undefined

  // units: key blocks of the slice's kv heads, those that the most query blocks see first
  const order = Array.from({ length: KB }, (_, kb) => kb).sort((x, y) => unitCost[y]! - unitCost[x]!)
  for (let z0 = 0; z0 < Z; z0 += slice) {
    const z1 = Math.min(Z, z0 + slice)
    const w = rt.i32()
    let t = tableAt >> 2
    for (const kb of order)
      for (let z = z0; z < z1; z++) {
        w[t] = z
        w[t + 1] = Math.floor(z / Hkv) * H + (z % Hkv) * g
        w[t + 2] = kb
        t += BWD_UNIT_WORDS
      }
    w[(paramsAt >> 2) + BwdParam.Units] = (z1 - z0) * KB
    // dQpart is indexed by the absolute query head: its base moves back by the slice's first one (i32 arithmetic
    // wraps in the module, so the addresses it forms are the slice's)
    w[(paramsAt >> 2) + BwdParam.DQPart] = (partAt - z0 * headPart) | 0
    w[(paramsAt >> 2) + BwdParam.QHead0] = z0 * g
    w[(paramsAt >> 2) + BwdParam.QHeads] = z1 * g
    rt.run('att_bwd', jobs, [paramsAt], parallel, () => {
      rt.i32()[counterAt >> 2] = 0
    })
    rt.run('att_bwd_dq', Math.min(dqJobs, (z1 - z0) * g), [paramsAt], parallel)
  }

  const view = rt.f32()
  const crop = (from: number, rows: number, w: number, w4: number): Float32Array => {
    if (w === w4) return view.slice(from >> 2, (from >> 2) + rows * w)
    const out = new Float32Array(rows * w)
    for (let r = 0; r < rows; r++) out.set(view.subarray((from >> 2) + r * w4, (from >> 2) + r * w4 + w), r * w)
    return out
  }
  const dq = crop(dqAt, BH * Tq, D, D4)
  // keys past a key limit get no gradient
  const heads = (from: number, w: number, w4: number): Float32Array => {
    const x = crop(from, Z * Tk, w, w4)
    if (Tk === TkStride) return x
    const out = new Float32Array(Z * TkStride * w)
    for (let z = 0; z < Z; z++) out.set(x.subarray(z * Tk * w, (z + 1) * Tk * w), z * TkStride * w)
    return out
  }
  return { dq, dk: heads(dkAt, D, D4), dv: heads(dvAt, Dv, Dv4) }
}
