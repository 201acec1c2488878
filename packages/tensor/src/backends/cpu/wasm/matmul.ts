import { takeFloat32 } from '../float32Pool.js'
import { GEMM, MM_JOB_ARGS } from './matmulModule.js'
import { MAX_JOBS } from './pool.js'
import { wasmMode, wasmRuntime } from './runtime.js'

/**
 * float32 batched GEMM through the WebAssembly kernel: pack A and B into the module's memory, run row-panel jobs
 * (across the worker pool when the problem is large), copy the cropped result out.
 */

export interface GemmProblem {
  readonly a: Float32Array
  readonly b: Float32Array
  readonly m: number
  readonly k: number
  readonly n: number
  /** A is stored [..., k, m] (use its transpose). */
  readonly transA: boolean
  /** B is stored [..., n, k]. */
  readonly transB: boolean
  /** Output batches; z's operands are A batch ia[z] and B batch ib[z] (identity when undefined). */
  readonly batches: number
  readonly ia?: Int32Array | undefined
  readonly ib?: Int32Array | undefined
  /** Bound on the result bytes held in the module's memory at once (default C_SCRATCH; tests lower it). */
  readonly scratchBytes?: number
}

/**
 * Below this many multiply-adds the TypeScript kernel wins or ties once packing and the copy-out are counted (and
 * it accumulates in float64). Measured on the reference 2-core EPYC: ~16³ is the crossover.
 */
export const WASM_MIN_MACS = 4096
/** Below this many multiply-adds waking workers costs more than it saves. */
export const THREAD_MIN_MACS = 1 << 20
/** Most bytes of the result held in the module's memory at once. */
export const C_SCRATCH = 32 << 20
/** Most bytes of raw operand copies made for the WebAssembly packing; larger operands are packed in TypeScript. */
const RAW_MAX = 32 << 20

/**
 * At most this many rows of A (after folding batches into rows) go to the matrix–vector kernels (gemvModule.ts),
 * which read B as it is stored: packing B into panels costs as much as the whole product when A has few rows.
 */
export const GEMV_MAX_ROWS = 4

const { mr: MR, nr: NR, unroll: U } = GEMM

/**
 * A [m, k] (m ≤ GEMV_MAX_ROWS, row-major) times B ([k, n], or [n, k] when transB) on the calling thread: both copied
 * into the module's memory as they are, no packing. Undefined when the kernels are missing or the memory cannot grow.
 */
function wasmGemv(rt: NonNullable<ReturnType<typeof wasmRuntime>>, p: GemmProblem): Float32Array | undefined {
  const { m, k, n } = p
  const fn = (rt.exports as Partial<Record<string, (...args: number[]) => void>>)[p.transB ? 'gemv_t' : 'gemv_n']
  if (!fn || p.a.length !== m * k || p.b.length !== k * n) return undefined
  const aAt = 64
  const bAt = align(aAt + m * k * 4)
  const cAt = align(bAt + k * n * 4)
  const total = cAt + m * n * 4
  if (total >= 2 ** 31 || !rt.reserve(total)) return undefined
  const mem = rt.f32()
  mem.set(p.a, aAt >> 2)
  mem.set(p.b, bAt >> 2)
  fn(aAt, m, k, bAt, n, cAt)
  const out = takeFloat32(m * n)
  out.set(rt.f32().subarray(cAt >> 2, (cAt >> 2) + m * n))
  return out
}

const ceilDiv = (x: number, y: number): number => Math.ceil(x / y)
const align = (x: number): number => (x + 63) & ~63

/**
 * Rows i of A (m × k; stored transposed when `trans`) into MR-row panels, k-major, zero-padded to MR × kp, from
 * panel `from` on (the ones before it packed in WebAssembly).
 */
function packA(src: Float32Array, so: number, dst: Float32Array, d0: number, m: number, k: number, kp: number, trans: boolean, from = 0): void {
  for (let pi = from, i0 = from * MR; i0 < m; pi++, i0 += MR) {
    const base = d0 + pi * kp * MR
    const rows = Math.min(MR, m - i0)
    // Full panels write each k step's MR values together, reading MR row streams: one sequential store stream
    // instead of MR strided passes over the panel (a 256 × 256 A packs in ~40 µs instead of ~65–130 µs).
    if (!trans && rows === 4 && MR === 4) {
      const s0 = so + i0 * k
      const s1 = s0 + k
      const s2 = s1 + k
      const s3 = s2 + k
      for (let p = 0, d = base; p < k; p++, d += 4) {
        dst[d] = src[s0 + p]!
        dst[d + 1] = src[s1 + p]!
        dst[d + 2] = src[s2 + p]!
        dst[d + 3] = src[s3 + p]!
      }
    } else if (trans && rows === 4 && MR === 4) {
      for (let p = 0, s = so + i0, d = base; p < k; p++, s += m, d += 4) {
        dst[d] = src[s]!
        dst[d + 1] = src[s + 1]!
        dst[d + 2] = src[s + 2]!
        dst[d + 3] = src[s + 3]!
      }
    } else if (!trans) {
      for (let r = 0; r < rows; r++) {
        const s = so + (i0 + r) * k
        for (let p = 0, d = base + r; p < k; p++, d += MR) dst[d] = src[s + p]!
      }
    } else {
      for (let p = 0; p < k; p++) {
        const s = so + p * m + i0
        const d = base + p * MR
        for (let r = 0; r < rows; r++) dst[d + r] = src[s + r]!
      }
    }
    for (let r = rows; r < MR; r++) for (let p = 0, d = base + r; p < k; p++, d += MR) dst[d] = 0
    dst.fill(0, base + k * MR, base + kp * MR)
  }
}

/** Columns of B (k × n; stored transposed when `trans`) into NR-column panels, k-major, zero-padded to kp × NR, from panel `from` on. */
function packB(src: Float32Array, so: number, dst: Float32Array, d0: number, k: number, n: number, kp: number, trans: boolean, from = 0): void {
  for (let pj = from, j0 = from * NR; j0 < n; pj++, j0 += NR) {
    const base = d0 + pj * kp * NR
    const cols = Math.min(NR, n - j0)
    if (!trans && cols === NR) {
      for (let p = 0, s = so + j0, d = base; p < k; p++, s += n, d += NR) {
        dst[d] = src[s]!
        dst[d + 1] = src[s + 1]!
        dst[d + 2] = src[s + 2]!
        dst[d + 3] = src[s + 3]!
        dst[d + 4] = src[s + 4]!
        dst[d + 5] = src[s + 5]!
        dst[d + 6] = src[s + 6]!
        dst[d + 7] = src[s + 7]!
      }
    } else if (!trans) {
      for (let p = 0; p < k; p++) {
        const s = so + p * n + j0
        const d = base + p * NR
        for (let c = 0; c < cols; c++) dst[d + c] = src[s + c]!
        for (let c = cols; c < NR; c++) dst[d + c] = 0
      }
    } else {
      for (let c = 0; c < cols; c++) {
        const s = so + (j0 + c) * k
        for (let p = 0, d = base + c; p < k; p++, d += NR) dst[d] = src[s + p]!
      }
      for (let c = cols; c < NR; c++) for (let p = 0, d = base + c; p < k; p++, d += NR) dst[d] = 0
    }
    dst.fill(0, base + k * NR, base + kp * NR)
  }
}

/**
 * C = A·B per batch in float32 (f32 products and sums), or undefined when the WebAssembly path does not apply
 * (unavailable, switched off, too small to pay, or too large for the module's memory); the caller then uses the
 * TypeScript kernel.
 */
export function wasmGemm(p: GemmProblem): Float32Array | undefined {
  const { m, k, n, batches } = p
  if (m === 0 || n === 0 || k === 0 || batches === 0) return undefined
  const macs = batches * m * n * k
  if (wasmMode() !== 'force' && macs < WASM_MIN_MACS) return undefined
  const rt = wasmRuntime()
  if (!rt) return undefined
  // x·W with x [..., m, k] and one W for every batch (a linear layer on [B, T, d]): the batches of row-major A are
  // consecutive rows, so this is one [batches·m, k] × [k, n] product — one packing of W, and row-panel jobs spread
  // over all batch·m rows instead of batches small products of m rows each.
  if (batches > 1 && !p.transA && p.ia === undefined && p.a.length === batches * m * k && p.b.length === k * n && batches * m <= 2 ** 24)
    return wasmGemm({ ...p, m: batches * m, batches: 1, ib: undefined })
  if (batches === 1 && m <= GEMV_MAX_ROWS && !p.transA) {
    const out = wasmGemv(rt, p)
    if (out) return out
  }

  const mPanels = ceilDiv(m, MR)
  const nPanels = ceilDiv(n, NR)
  const kp = ceilDiv(k, U) * U
  const mPad = mPanels * MR
  const nPad = nPanels * NR
  const aCount = p.a.length / (m * k)
  const bCount = p.b.length / (k * n)
  const aBytes = mPanels * kp * MR * 4
  const bBytes = nPanels * kp * NR * 4
  const cBytes = mPad * nPad * 4
  const panelBytes = MR * nPad * 4

  // The result is computed in slices of at most C_SCRATCH bytes (whole batches, or row panels of one batch) and
  // copied out after each: the module's memory never shrinks, and a result far larger than its operands
  // (attention scores, k ≪ m, n) would otherwise stay reserved after the call.
  const scratch = p.scratchBytes ?? C_SCRATCH
  const chunkPanels = Math.max(1, Math.min(mPanels, Math.floor(scratch / panelBytes)))
  const chunkBatches = chunkPanels === mPanels ? Math.max(1, Math.min(batches, Math.floor(scratch / cBytes))) : 1
  const cRegion = chunkBatches * chunkPanels * panelBytes

  // layout: [64-byte header][A table][B table][packed A batches][packed B batches][C slice]
  const aTable = 64
  const bTable = aTable + batches * 4
  const aPack = align(bTable + batches * 4)
  const bPack = align(aPack + aCount * aBytes)
  const cBase = align(bPack + bCount * bBytes)
  const total = cBase + cRegion
  if (!Number.isSafeInteger(total) || total >= 2 ** 31 || !rt.reserve(total)) return undefined

  // Full panels are packed in WebAssembly from raw copies placed after the C slice (packModule.ts); B stored
  // transposed, a ragged last panel, and operands too large to copy twice are packed here.
  const ex = rt.exports as unknown as Partial<Record<'pack_a_rows' | 'pack_a_cols' | 'pack_b_cols', (...args: number[]) => void>>
  const rawA = align(total)
  const rawB = align(rawA + p.a.length * 4)
  const rawEnd = p.transB ? rawB : rawB + p.b.length * 4
  const wasmPack = kp === k && MR === 4 && NR === 8 && ex.pack_a_rows !== undefined && rawEnd - total <= RAW_MAX && rawEnd < 2 ** 31 && rt.reserve(rawEnd)

  const mem = rt.f32()
  const tab = rt.i32()
  for (let z = 0; z < batches; z++) {
    tab[(aTable >> 2) + z] = aPack + (p.ia ? p.ia[z]! : z) * aBytes
    tab[(bTable >> 2) + z] = bPack + (p.ib ? p.ib[z]! : z) * bBytes
  }
  if (wasmPack) {
    mem.set(p.a, rawA >> 2)
    if (!p.transB) mem.set(p.b, rawB >> 2)
  }
  const aFull = wasmPack ? Math.floor(m / MR) : 0
  const bFull = wasmPack && !p.transB ? Math.floor(n / NR) : 0
  for (let s = 0; s < aCount; s++) {
    const dst = aPack + s * aBytes
    if (aFull > 0) ex[p.transA ? 'pack_a_cols' : 'pack_a_rows']!(rawA + s * m * k * 4, dst, aFull, k, p.transA ? m : k, kp * MR * 4)
    packA(p.a, s * m * k, mem, dst >> 2, m, k, kp, p.transA, aFull)
  }
  for (let s = 0; s < bCount; s++) {
    const dst = bPack + s * bBytes
    if (bFull > 0) ex.pack_b_cols!(rawB + s * k * n * 4, dst, bFull, k, n, kp * NR * 4)
    packB(p.b, s * k * n, mem, dst >> 2, k, n, kp, p.transB, bFull)
  }

  // Row-panel jobs, about eight per thread: on a shared machine a thread can be descheduled holding a job, and the
  // caller then waits for that job alone. Each job re-reads B from L3 once, which at ≥ 4 panels per job is
  // small next to the L2 traffic of the micro-kernel.
  const threads = rt.threads()
  const parallel = threads > 1 && macs >= THREAD_MIN_MACS
  // every row of every batch is copied out below, so a recycled (dirty) array will do
  const out = takeFloat32(batches * m * n)
  const cStride = chunkPanels * panelBytes
  for (let pBase = 0; pBase < mPanels; pBase += chunkPanels) {
    const pEnd = Math.min(pBase + chunkPanels, mPanels)
    const panels = pEnd - pBase
    let jobsPerBatch = 1
    let panelsPerJob = panels
    if (parallel) {
      jobsPerBatch = Math.min(Math.max(1, panels >> 2), ceilDiv(8 * threads, chunkBatches))
      panelsPerJob = ceilDiv(panels, jobsPerBatch)
      jobsPerBatch = ceilDiv(panels, panelsPerJob)
    }
    const perDispatch = Math.max(1, Math.min(chunkBatches, Math.floor(MAX_JOBS / jobsPerBatch)))
    for (let z0 = 0; z0 < batches; z0 += perDispatch) {
      const zs = Math.min(perDispatch, batches - z0)
      const args = [pBase, pEnd, nPanels, kp, aTable, bTable, cBase, cStride, nPad * 4, jobsPerBatch, panelsPerJob, z0]
      if (args.length !== MM_JOB_ARGS) throw new Error('mm_job: argument count')
      rt.run('mm_job', zs * jobsPerBatch, args, parallel)
      const view = rt.f32()
      const r0 = pBase * MR
      const rows = Math.min(pEnd * MR, m) - r0
      for (let z = 0; z < zs; z++) {
        const c0 = (cBase + z * cStride) >> 2
        const o0 = ((z0 + z) * m + r0) * n
        if (n === nPad) out.set(view.subarray(c0, c0 + rows * n), o0)
        // narrow results (a classifier's logits): a view per row would cost more than the copy
        else if (n < 64) for (let i = 0; i < rows; i++) for (let j = 0, s = c0 + i * nPad, o = o0 + i * n; j < n; j++) out[o + j] = view[s + j]!
        else for (let i = 0; i < rows; i++) out.set(view.subarray(c0 + i * nPad, c0 + i * nPad + n), o0 + i * n)
      }
    }
  }
  return out
}
