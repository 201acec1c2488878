import type { CpuKernel, CpuTensor } from '@heed/tensor/cpu'
import type { Mask } from '../mask.js'
import type { ScoreMod } from '../scoreMod.js'
import { AttentionKernel, attentionGeometry, type AttentionAttrs, type AttentionGeometry } from './attrs.js'
import { wasmAttentionForward } from './wasm/attentionForward.js'
import { wasmAttentionBackward } from './wasm/attentionBackward.js'
import { cpuWasmAttention, type CpuWasmAttention } from './wasm/cpuWasmAttention.js'
import { decodeAttention, DECODE_MAX_ROWS } from './decodeAttention.js'

/**
 * CPU kernels of scaled dot-product attention. Forward: FlashAttention's online softmax over key tiles, a block of
 * query rows at a time, so memory is O(T·D) whatever the mask. Each (query block, key tile) is classified once: a
 * tile the mask rules out is skipped, a tile it fully allows skips the per-pair test. Backward: FlashAttention-2's
 * recomputation from the saved logsumexp, so no probability matrix is ever stored.
 * Arithmetic is float64 throughout; results are rounded once on store. Every sum runs in the same order as the
 * one-row-at-a-time formulation (dot products over d, then tiles and keys in order), so blocking changes speed, not
 * results. Exception: float32 without a score mod, unmasked, causal or over a key prefix, takes a float32
 * WebAssembly forward and backward where available (`fastForward`, `fastBackward` below). Other float32 forwards run their two inner products in
 * WebAssembly (f64x2, see wasm/attentionModule.ts) where available: P·V sums in the same order,
 * Q·Kᵀ as two interleaved halves, a float64 reordering far below the float32 rounding of the output.
 * Layout: q [B,H,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]; query head h reads kv head ⌊h / (H/Hkv)⌋.
 */

/**
 * Query rows per block. Each key tile is classified once and read from cache for all of them; 48 divides by the 3-
 * and 4-row micro-kernels, and a 48×64 float64 score block (24 KB) stays in L1/L2 next to the tiles.
 */
const QUERY_BLOCK = 48

/**
 * Copy `rows` rows of width `n` from a typed array into float64 scratch. The hot loops then only ever see
 * Float64Array, so they stay monomorphic whether the tensors are float32 or float64.
 */
function load(dst: Float64Array, src: ArrayLike<number>, off: number, rows: number, n: number): void {
  const len = rows * n
  for (let x = 0; x < len; x++) dst[x] = src[off + x]!
}

/**
 * One kv head of k or v as float64: float64 tensors are read in place, float32 ones are converted once per kv head
 * (O(Tk·D) scratch) rather than once per query block, and the query heads of a GQA group reuse the conversion.
 */
class HeadView {
  private readonly f64: Float64Array | undefined
  private readonly scratch: Float64Array | undefined
  private base = -1
  offset = 0
  constructor(
    private readonly src: ArrayLike<number>,
    private readonly len: number,
    /** where float32 heads are converted to (WebAssembly memory, when the kernel reads them from there) */
    into?: Float64Array,
  ) {
    this.f64 = src instanceof Float64Array ? src : undefined
    this.scratch = this.f64 ? undefined : (into ?? new Float64Array(len))
  }
  /** The array holding the head that starts at `base` of the source; its first element is at `offset`. */
  at(base: number): Float64Array {
    if (this.f64) {
      this.offset = base
      return this.f64
    }
    if (base !== this.base) {
      load(this.scratch!, this.src, base, 1, this.len)
      this.base = base
    }
    this.offset = 0
    return this.scratch!
  }
}

/**
 * The forward's scratch laid out in the WebAssembly module's memory (byte addresses for the calls, float64 views for
 * the TypeScript softmax between them): query block, score tile, output accumulator, one kv head of k and of v.
 */
class WasmScratch {
  readonly qb: Float64Array
  readonly s: Float64Array
  readonly acc: Float64Array
  readonly k: Float64Array
  readonly v: Float64Array
  readonly qbAt: number
  readonly sAt: number
  readonly accAt: number
  readonly kAt: number
  readonly vAt: number
  constructor(w: CpuWasmAttention, BQ: number, BK: number, Tk: number, D: number, Dv: number) {
    let at = 0
    const take = (n: number): [Float64Array, number] => {
      const view = w.f64.subarray(at, at + n)
      at += n
      return [view, (at - n) * 8]
    }
    ;[this.qb, this.qbAt] = take(BQ * D)
    ;[this.s, this.sAt] = take(BQ * BK)
    ;[this.acc, this.accAt] = take(BQ * Dv)
    ;[this.k, this.kAt] = take(Tk * D)
    ;[this.v, this.vAt] = take(Tk * Dv)
  }
}

/**
 * S[i·ldS + j] = (A_i · B_j)·scale for rows A_0..A_{nA−1} and B_0..B_{nB−1} (from bOff) of width n. Register-blocked 3×3 so each
 * loaded element feeds three products (scalar JS is load-bound, not multiply-bound; 3×3 measured faster than 4×2
 * and 4×4, which spill); each dot still sums over d in order, like the one-row formulation.
 */
function dots(A: Float64Array, nA: number, Bm: Float64Array, bOff: number, nB: number, n: number, S: Float64Array, ldS: number, scale: number): void {
  let i = 0
  for (; i + 2 < nA; i += 3) {
    const a0 = i * n
    const a1 = a0 + n
    const a2 = a1 + n
    const s0 = i * ldS
    const s1 = s0 + ldS
    const s2 = s1 + ldS
    let j = 0
    for (; j + 2 < nB; j += 3) {
      const b0 = bOff + j * n
      const b1 = b0 + n
      const b2 = b1 + n
      let c00 = 0, c01 = 0, c02 = 0, c10 = 0, c11 = 0, c12 = 0, c20 = 0, c21 = 0, c22 = 0
      for (let d = 0; d < n; d++) {
        const y0 = Bm[b0 + d]!
        const y1 = Bm[b1 + d]!
        const y2 = Bm[b2 + d]!
        const x0 = A[a0 + d]!
        const x1 = A[a1 + d]!
        const x2 = A[a2 + d]!
        c00 += x0 * y0
        c01 += x0 * y1
        c02 += x0 * y2
        c10 += x1 * y0
        c11 += x1 * y1
        c12 += x1 * y2
        c20 += x2 * y0
        c21 += x2 * y1
        c22 += x2 * y2
      }
      S[s0 + j] = c00 * scale
      S[s0 + j + 1] = c01 * scale
      S[s0 + j + 2] = c02 * scale
      S[s1 + j] = c10 * scale
      S[s1 + j + 1] = c11 * scale
      S[s1 + j + 2] = c12 * scale
      S[s2 + j] = c20 * scale
      S[s2 + j + 1] = c21 * scale
      S[s2 + j + 2] = c22 * scale
    }
    for (; j < nB; j++) {
      const b0 = bOff + j * n
      let c0 = 0, c1 = 0, c2 = 0
      for (let d = 0; d < n; d++) {
        const y = Bm[b0 + d]!
        c0 += A[a0 + d]! * y
        c1 += A[a1 + d]! * y
        c2 += A[a2 + d]! * y
      }
      S[s0 + j] = c0 * scale
      S[s1 + j] = c1 * scale
      S[s2 + j] = c2 * scale
    }
  }
  for (; i < nA; i++) {
    const a0 = i * n
    for (let j = 0; j < nB; j++) {
      const b0 = bOff + j * n
      let c = 0
      for (let d = 0; d < n; d++) c += A[a0 + d]! * Bm[b0 + d]!
      S[i * ldS + j] = c * scale
    }
  }
}

/**
 * C[cOff + r·n + d] += Σ_c W[r·sr + c·sc] · X[xOff + c·n + d] for r < nR, c < nC, d < n: P·V, dS·K (sr = ld, sc = 1) and
 * their transposes Pᵀ·dO, dSᵀ·Q (sr = 1, sc = ld). Four output rows × four terms per pass share the loads of X
 * and C (measured ~40% faster than 2×4 though the 16 weights spill); the terms are added left to right, so each
 * element accumulates in the order c = 0, 1, 2, …
 */
function accumulate(C: Float64Array, cOff: number, W: Float64Array, sr: number, sc: number, nR: number, nC: number, X: Float64Array, xOff: number, n: number): void {
  let r = 0
  for (; r + 3 < nR; r += 4) {
    const o0 = cOff + r * n
    const o1 = o0 + n
    const o2 = o1 + n
    const o3 = o2 + n
    const w0 = r * sr
    const w1 = w0 + sr
    const w2 = w1 + sr
    const w3 = w2 + sr
    let c = 0
    for (; c + 3 < nC; c += 4) {
      const e0 = c * sc
      const e1 = e0 + sc
      const e2 = e1 + sc
      const e3 = e2 + sc
      const p00 = W[w0 + e0]!, p01 = W[w0 + e1]!, p02 = W[w0 + e2]!, p03 = W[w0 + e3]!
      const p10 = W[w1 + e0]!, p11 = W[w1 + e1]!, p12 = W[w1 + e2]!, p13 = W[w1 + e3]!
      const p20 = W[w2 + e0]!, p21 = W[w2 + e1]!, p22 = W[w2 + e2]!, p23 = W[w2 + e3]!
      const p30 = W[w3 + e0]!, p31 = W[w3 + e1]!, p32 = W[w3 + e2]!, p33 = W[w3 + e3]!
      const x0 = xOff + c * n
      const x1 = x0 + n
      const x2 = x1 + n
      const x3 = x2 + n
      for (let d = 0; d < n; d++) {
        const v0 = X[x0 + d]!
        const v1 = X[x1 + d]!
        const v2 = X[x2 + d]!
        const v3 = X[x3 + d]!
        C[o0 + d] = C[o0 + d]! + p00 * v0 + p01 * v1 + p02 * v2 + p03 * v3
        C[o1 + d] = C[o1 + d]! + p10 * v0 + p11 * v1 + p12 * v2 + p13 * v3
        C[o2 + d] = C[o2 + d]! + p20 * v0 + p21 * v1 + p22 * v2 + p23 * v3
        C[o3 + d] = C[o3 + d]! + p30 * v0 + p31 * v1 + p32 * v2 + p33 * v3
      }
    }
    for (; c < nC; c++) {
      const p0 = W[w0 + c * sc]!
      const p1 = W[w1 + c * sc]!
      const p2 = W[w2 + c * sc]!
      const p3 = W[w3 + c * sc]!
      const x0 = xOff + c * n
      for (let d = 0; d < n; d++) {
        const v0 = X[x0 + d]!
        C[o0 + d] = C[o0 + d]! + p0 * v0
        C[o1 + d] = C[o1 + d]! + p1 * v0
        C[o2 + d] = C[o2 + d]! + p2 * v0
        C[o3 + d] = C[o3 + d]! + p3 * v0
      }
    }
  }
  for (; r < nR; r++) {
    const o0 = cOff + r * n
    const w0 = r * sr
    let c = 0
    for (; c + 3 < nC; c += 4) {
      const p0 = W[w0 + c * sc]!, p1 = W[w0 + (c + 1) * sc]!, p2 = W[w0 + (c + 2) * sc]!, p3 = W[w0 + (c + 3) * sc]!
      const x0 = xOff + c * n
      const x1 = x0 + n
      const x2 = x1 + n
      const x3 = x2 + n
      for (let d = 0; d < n; d++) C[o0 + d] = C[o0 + d]! + p0 * X[x0 + d]! + p1 * X[x1 + d]! + p2 * X[x2 + d]! + p3 * X[x3 + d]!
    }
    for (; c < nC; c++) {
      const p0 = W[w0 + c * sc]!
      const x0 = xOff + c * n
      for (let d = 0; d < n; d++) C[o0 + d] = C[o0 + d]! + p0 * X[x0 + d]!
    }
  }
}

/**
 * accumulate() restricted to the visible entries (`vis[r·sr + c·sc]` ≠ 0, laid out like W): a masked entry adds
 * nothing at all, where accumulate() would add its weight 0 times the row of X, and 0·NaN = NaN. Used only on tiles
 * whose rows of X hold a non-finite value, so the common case keeps the register-blocked loops; the visible terms
 * are added in the same order as accumulate() adds them.
 */
function accumulateVisible(
  C: Float64Array,
  cOff: number,
  W: Float64Array,
  sr: number,
  sc: number,
  nR: number,
  nC: number,
  X: Float64Array,
  xOff: number,
  n: number,
  vis: Uint8Array,
): void {
  for (let r = 0; r < nR; r++) {
    const o = cOff + r * n
    for (let c = 0; c < nC; c++) {
      const e = r * sr + c * sc
      if (!vis[e]) continue
      const p = W[e]!
      const x = xOff + c * n
      for (let d = 0; d < n; d++) C[o + d] = C[o + d]! + p * X[x + d]!
    }
  }
}

/**
 * Which rows of a [rows, n] block (from `off`) hold a non-finite value, or undefined when none does: the tiles that
 * read such a row take accumulateVisible(), so a masked-out key (or query) never reaches an output it cannot see.
 */
function nonFiniteRows(src: ArrayLike<number>, off: number, rows: number, n: number): Uint8Array | undefined {
  let flags: Uint8Array | undefined
  for (let r = 0; r < rows; r++)
    for (let d = 0, x = off + r * n; d < n; d++, x++) {
      const y = src[x]!
      if (y - y !== 0) {
        ;(flags ??= new Uint8Array(rows))[r] = 1
        break
      }
    }
  return flags
}

/** Whether any of flags[from..from+count) is set. */
const anyIn = (flags: Uint8Array | undefined, from: number, count: number): boolean => {
  if (!flags) return false
  for (let i = from; i < from + count; i++) if (flags[i]) return true
  return false
}

/**
 * Mask a partially allowed tile of scaled scores in place (−∞ where not allowed) and apply the score mod to the
 * allowed ones. With `raw`, the pre-mod scores are kept there for the mod's derivative. Plain causal masks take a
 * per-row cut instead of a per-pair test.
 */
function maskAndMod(
  S: Float64Array,
  ldS: number,
  raw: Float64Array | undefined,
  m: Mask,
  mod: ScoreMod | undefined,
  full: boolean,
  b: number,
  h: number,
  pq0: number,
  nq: number,
  pk0: number,
  nk: number,
): void {
  const causal = m.node.kind === 'causal'
  for (let r = 0; r < nq; r++) {
    const pq = pq0 + r
    const row = r * ldS
    for (let j = 0; j < nk; j++) {
      const pk = pk0 + j
      if (!full && !(causal ? pk <= pq : m.test(b, h, pq, pk))) {
        S[row + j] = -Infinity
        continue
      }
      if (mod) {
        const x = S[row + j]!
        if (raw) raw[row + j] = x
        S[row + j] = mod.apply(x, b, h, pq, pk)
      }
    }
  }
}

/**
 * A mask the WebAssembly forward expresses: causal or not, and the keys below an absolute position (`sinks(n)`: a KV
 * cache filled up to n, whose full-cache view is `and(causal, sinks(n))`). Undefined for any other mask.
 */
function prefixMask(m: Mask): { causal: boolean; keysBelow: number } | undefined {
  const n = m.node
  switch (n.kind) {
    case 'all':
      return { causal: false, keysBelow: Infinity }
    case 'causal':
      return { causal: true, keysBelow: Infinity }
    case 'sinks':
      return { causal: false, keysBelow: n.count }
    case 'and': {
      let causal = false
      let keysBelow = Infinity
      for (const part of n.parts) {
        const x = prefixMask(part)
        if (!x) return undefined
        causal ||= x.causal
        keysBelow = Math.min(keysBelow, x.keysBelow)
      }
      return { causal, keysBelow }
    }
    default:
      return undefined
  }
}

/**
 * float32 without a score mod, unmasked, causal and/or limited to a key prefix: the float32 WebAssembly forward
 * (wasm/attentionForward.ts), which runs both products with the GEMM micro-kernel across the worker pool.
 * A row's result depends only on its own keys (chunked from key 0), so a KV cache streamed chunk by chunk gives the
 * one-shot result bit for bit. Undefined where it does not apply (other masks, small problems, inputs whose float32
 * scores could overflow, no WebAssembly).
 */
function fastForward(q: CpuTensor, k: CpuTensor, v: CpuTensor, a: AttentionAttrs, geo: AttentionGeometry): CpuTensor[] | undefined {
  const m = prefixMask(a.mask)
  if (q.dtype !== 'float32' || a.scoreMod || !m) return undefined
  const { B, H, Hkv, Tq, Tk, D, Dv } = geo
  const r = wasmAttentionForward({
    q: q.values as Float32Array,
    k: k.values as Float32Array,
    v: v.values as Float32Array,
    B, H, Hkv, Tq, Tk, D, Dv,
    scale: a.scale,
    causal: m.causal,
    delta: a.qOffset - a.kOffset,
    keyLimit: Math.max(0, Math.min(Tk, m.keysBelow - a.kOffset)),
  })
  if (!r) return undefined
  return [
    { values: r.out, shape: [B, H, Tq, Dv], dtype: 'float32' },
    { values: r.lse, shape: [B, H, Tq], dtype: 'float32' },
  ]
}

/**
 * The backward of what fastForward covers (float32, no score mod, unmasked, causal and/or a key prefix): the float32
 * WebAssembly backward (wasm/attentionBackward.ts, FlashAttention-2's, on the GEMM micro-kernel over the worker pool).
 * Undefined where it does not apply, as for the forward.
 */
function fastBackward(ins: readonly CpuTensor[], a: AttentionAttrs, geo: AttentionGeometry): CpuTensor[] | undefined {
  const [q, k, v, o, lse, dO, dLse] = ins as [CpuTensor, CpuTensor, CpuTensor, CpuTensor, CpuTensor, CpuTensor, CpuTensor]
  const m = prefixMask(a.mask)
  if (q.dtype !== 'float32' || a.scoreMod || !m) return undefined
  for (const x of [o, lse, dO, dLse]) if (!(x.values instanceof Float32Array)) return undefined
  const { B, H, Hkv, Tq, Tk, D, Dv } = geo
  const r = wasmAttentionBackward({
    q: q.values as Float32Array,
    k: k.values as Float32Array,
    v: v.values as Float32Array,
    out: o.values as Float32Array,
    lse: lse.values as Float32Array,
    dOut: dO.values as Float32Array,
    dLse: dLse.values as Float32Array,
    B, H, Hkv, Tq, Tk, D, Dv,
    scale: a.scale,
    causal: m.causal,
    delta: a.qOffset - a.kOffset,
    keyLimit: Math.max(0, Math.min(Tk, m.keysBelow - a.kOffset)),
  })
  if (!r) return undefined
  return [
    { values: r.dq, shape: q.shape, dtype: 'float32' },
    { values: r.dk, shape: k.shape, dtype: 'float32' },
    { values: r.dv, shape: v.shape, dtype: 'float32' },
  ]
}

/**
 * A decode step (at most DECODE_MAX_ROWS query rows) without a score mod, unmasked, causal and/or over a key prefix:
 * decodeAttention, which reads only the keys each row sees. Before fastForward, which would copy and pack every
 * slot of a KV cache's storage into the module's memory at each step.
 */
function decodeForward(q: CpuTensor, k: CpuTensor, v: CpuTensor, a: AttentionAttrs, geo: AttentionGeometry): CpuTensor[] | undefined {
  const m = prefixMask(a.mask)
  if (geo.Tq > DECODE_MAX_ROWS || a.scoreMod || !m) return undefined
  const { B, H, Tq, Dv } = geo
  const r = decodeAttention({ ...geo, q: q.values, k: k.values, v: v.values, scale: a.scale, causal: m.causal, delta: a.qOffset - a.kOffset, keyLimit: m.keysBelow - a.kOffset, float64: q.dtype === 'float64' })
  if (!r) return undefined
  return [
    { values: r.out, shape: [B, H, Tq, Dv], dtype: q.dtype },
    { values: r.lse, shape: [B, H, Tq], dtype: q.dtype },
  ]
}

const forward: CpuKernel<AttentionAttrs> = ([q, k, v], a) => {
  const geo = attentionGeometry(q!, k!, v!)
  const fast = decodeForward(q!, k!, v!, a, geo) ?? fastForward(q!, k!, v!, a, geo)
  if (fast) return fast
  const { B, H, Hkv, Tq, Tk, D, Dv, g } = geo
  const out = q!.dtype === 'float64' ? new Float64Array(B * H * Tq * Dv) : new Float32Array(B * H * Tq * Dv)
  const lse = q!.dtype === 'float64' ? new Float64Array(B * H * Tq) : new Float32Array(B * H * Tq)
  const BK = Math.max(1, Math.min(a.blockSize, Tk))
  const BQ = Math.max(1, Math.min(QUERY_BLOCK, Tq))
  // float32 inputs get the WebAssembly inner products (same float64 arithmetic, SIMD); float64 inputs keep the
  // TypeScript loops, which read those tensors in place instead of copying whole heads into the module's memory
  const wasm = q!.dtype === 'float32' && D % 2 === 0 && Dv % 2 === 0 ? cpuWasmAttention(8 * (BQ * D + BQ * BK + BQ * Dv + Tk * D + Tk * Dv)) : null
  const scratch = wasm ? new WasmScratch(wasm, BQ, BK, Tk, D, Dv) : undefined
  const qb = scratch ? scratch.qb : new Float64Array(BQ * D)
  const kHead = new HeadView(k!.values, Tk * D, scratch?.k)
  const vHead = new HeadView(v!.values, Tk * Dv, scratch?.v)
  const S = scratch ? scratch.s : new Float64Array(BQ * BK)
  const acc = scratch ? scratch.acc : new Float64Array(BQ * Dv)
  const mRow = new Float64Array(BQ)
  const lRow = new Float64Array(BQ)
  const vis = new Uint8Array(BQ * BK)
  const { mask: msk, scoreMod: mod, scale, qOffset, kOffset } = a
  const qv = q!.values
  let vBadAt = -1
  let vBad: Uint8Array | undefined
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / g)
      const kBase = (b * Hkv + hk) * Tk * D
      const vBase = (b * Hkv + hk) * Tk * Dv
      const kt = kHead.at(kBase)
      const vt = vHead.at(vBase)
      const kt0 = kHead.offset
      const vt0 = vHead.offset
      if (vBase !== vBadAt) {
        vBad = nonFiniteRows(v!.values, vBase, Tk, Dv)
        vBadAt = vBase
      }
      for (let i0 = 0; i0 < Tq; i0 += BQ) {
        const nq = Math.min(BQ, Tq - i0)
        const row0 = (b * H + h) * Tq + i0
        load(qb, qv, row0 * D, nq, D)
        mRow.fill(-Infinity)
        lRow.fill(0)
        acc.fill(0)
        const pq0 = qOffset + i0
        for (let k0 = 0; k0 < Tk; k0 += BK) {
          const nk = Math.min(BK, Tk - k0)
          const pk0 = kOffset + k0
          const cls = msk.classify(h, { q0: pq0, q1: pq0 + nq - 1, k0: pk0, k1: pk0 + nk - 1 })
          if (cls === 'none') continue
          if (scratch) wasm!.dots(scratch.qbAt, nq, scratch.kAt + 8 * (kt0 + k0 * D), nk, D, scratch.sAt, BK, scale)
          else dots(qb, nq, kt, kt0 + k0 * D, nk, D, S, BK, scale)
          if (cls !== 'full' || mod) maskAndMod(S, BK, undefined, msk, mod, cls === 'full', b, h, pq0, nq, pk0, nk)
          // a value row holding NaN or ±∞ in this tile: only the keys a row sees may reach it (0·NaN = NaN)
          const bad = anyIn(vBad, k0, nk)
          // online softmax per row; S becomes P (0 where masked, and on rows this tile leaves untouched)
          for (let r = 0; r < nq; r++) {
            const s0 = r * BK
            const m = mRow[r]!
            let mt = m
            let any = false
            for (let j = 0; j < nk; j++) {
              const x = S[s0 + j]!
              if (x !== -Infinity) any = true
              if (x > mt) mt = x
              if (bad) vis[s0 + j] = x === -Infinity ? 0 : 1
            }
            if (!any) {
              for (let j = 0; j < nk; j++) S[s0 + j] = 0
              continue
            }
            if (mt === Infinity) mt = Number.MAX_VALUE
            const corr = m === -Infinity ? 0 : Math.exp(m - mt)
            let l = lRow[r]! * corr
            if (corr !== 1) for (let d = r * Dv, e = d + Dv; d < e; d++) acc[d]! *= corr
            for (let j = 0; j < nk; j++) {
              const x = S[s0 + j]!
              const p = x === -Infinity ? 0 : Math.exp(x - mt)
              S[s0 + j] = p
              l += p
            }
            lRow[r] = l
            mRow[r] = mt
          }
          if (bad) accumulateVisible(acc, 0, S, BK, 1, nq, nk, vt, vt0 + k0 * Dv, Dv, vis)
          else if (scratch) wasm!.pv(scratch.accAt, scratch.sAt, BK, nq, nk, scratch.vAt + 8 * (vt0 + k0 * Dv), Dv)
          else accumulate(acc, 0, S, BK, 1, nq, nk, vt, vt0 + k0 * Dv, Dv)
        }
        for (let r = 0; r < nq; r++) {
          const l = lRow[r]!
          if (l === 0) {
            // fully masked row: the identity of the state merge, o = 0 and lse = −∞, never NaN
            lse[row0 + r] = -Infinity
            continue
          }
          const oo = (row0 + r) * Dv
          for (let d = 0; d < Dv; d++) out[oo + d] = acc[r * Dv + d]! / l
          lse[row0 + r] = mRow[r]! + Math.log(l)
        }
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
const backward: CpuKernel<AttentionAttrs> = ([q, k, v, o, lse, dO, dLse], a) => {
  const fast = fastBackward([q!, k!, v!, o!, lse!, dO!, dLse!], a, attentionGeometry(q!, k!, v!))
  if (fast) return fast
  const { B, H, Hkv, Tq, Tk, D, Dv, g } = attentionGeometry(q!, k!, v!)
  const dq = new Float64Array(B * H * Tq * D)
  const dk = new Float64Array(B * Hkv * Tk * D)
  const dv = new Float64Array(B * Hkv * Tk * Dv)
  const BK = Math.max(1, Math.min(a.blockSize, Tk))
  const BQ = Math.max(1, Math.min(QUERY_BLOCK, Tq))
  const qb = new Float64Array(BQ * D)
  const dob = new Float64Array(BQ * Dv)
  const kHead = new HeadView(k!.values, Tk * D)
  const vHead = new HeadView(v!.values, Tk * Dv)
  const S = new Float64Array(BQ * BK)
  const dP = new Float64Array(BQ * BK)
  const raw = a.scoreMod ? new Float64Array(BQ * BK) : undefined
  const L = new Float64Array(BQ)
  const delta = new Float64Array(BQ)
  const dl = new Float64Array(BQ)
  const vis = new Uint8Array(BQ * BK)
  const { mask: msk, scoreMod: mod, scale, qOffset, kOffset } = a
  const [qv, ov, lv, dov, dlv] = [q!.values, o!.values, lse!.values, dO!.values, dLse!.values]
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / g)
      const kBase = (b * Hkv + hk) * Tk * D
      const vBase = (b * Hkv + hk) * Tk * Dv
      const kt = kHead.at(kBase)
      const vt = vHead.at(vBase)
      const kt0 = kHead.offset
      const vt0 = vHead.offset
      const kBad = nonFiniteRows(k!.values, kBase, Tk, D)
      for (let i0 = 0; i0 < Tq; i0 += BQ) {
        const nq = Math.min(BQ, Tq - i0)
        const row0 = (b * H + h) * Tq + i0
        load(qb, qv, row0 * D, nq, D)
        load(dob, dov, row0 * Dv, nq, Dv)
        // non-finite query or upstream-gradient rows reach dK and dV only through the keys they see
        const rowsBad = !!nonFiniteRows(qb, 0, nq, D) || !!nonFiniteRows(dob, 0, nq, Dv)
        let live = false
        for (let r = 0; r < nq; r++) {
          const row = row0 + r
          L[r] = lv[row]!
          if (L[r] !== -Infinity) live = true
          let dlt = 0
          for (let d = 0; d < Dv; d++) dlt += dov[row * Dv + d]! * ov[row * Dv + d]!
          delta[r] = dlt
          dl[r] = dlv[row]!
        }
        // every row fully masked (lse = −∞): no gradient flows from this block
        if (!live) continue
        const pq0 = qOffset + i0
        for (let k0 = 0; k0 < Tk; k0 += BK) {
          const nk = Math.min(BK, Tk - k0)
          const pk0 = kOffset + k0
          const cls = msk.classify(h, { q0: pq0, q1: pq0 + nq - 1, k0: pk0, k1: pk0 + nk - 1 })
          if (cls === 'none') continue
          dots(qb, nq, kt, kt0 + k0 * D, nk, D, S, BK, scale)
          if (cls !== 'full' || mod) maskAndMod(S, BK, raw, msk, mod, cls === 'full', b, h, pq0, nq, pk0, nk)
          dots(dob, nq, vt, vt0 + k0 * Dv, nk, Dv, dP, BK, 1)
          const bad = rowsBad || anyIn(kBad, k0, nk)
          // S becomes P, dP becomes dS
          for (let r = 0; r < nq; r++) {
            const s0 = r * BK
            const Lr = L[r]!
            const dr = delta[r]!
            const lr = dl[r]!
            for (let j = 0; j < nk; j++) {
              const x = S[s0 + j]!
              if (Lr === -Infinity || x === -Infinity) {
                S[s0 + j] = 0
                dP[s0 + j] = 0
                if (bad) vis[s0 + j] = 0
                continue
              }
              if (bad) vis[s0 + j] = 1
              const p = Math.exp(x - Lr)
              S[s0 + j] = p
              let ds = p * (dP[s0 + j]! - dr + lr)
              if (mod) ds *= mod.derivative(raw![s0 + j]!, b, h, pq0 + r, pk0 + j)
              dP[s0 + j] = ds * scale
            }
          }
          if (bad) {
            accumulateVisible(dv, vBase + k0 * Dv, S, 1, BK, nk, nq, dob, 0, Dv, vis)
            accumulateVisible(dq, row0 * D, dP, BK, 1, nq, nk, kt, kt0 + k0 * D, D, vis)
            accumulateVisible(dk, kBase + k0 * D, dP, 1, BK, nk, nq, qb, 0, D, vis)
          } else {
            accumulate(dv, vBase + k0 * Dv, S, 1, BK, nk, nq, dob, 0, Dv)
            accumulate(dq, row0 * D, dP, BK, 1, nq, nk, kt, kt0 + k0 * D, D)
            accumulate(dk, kBase + k0 * D, dP, 1, BK, nk, nq, qb, 0, D)
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

export const cpuAttentionKernels: Readonly<Record<string, CpuKernel<AttentionAttrs>>> = {
  [AttentionKernel.Forward]: forward,
  [AttentionKernel.Backward]: backward,
}
