import type { Attrs } from '../../../backend.js'
import { allocArray } from '../../../dtype.js'
import { sizeOf, type Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'
import { broadcastOffsets } from '../util.js'
import { wasmGemm } from '../wasm/matmul.js'

/**
 * Matrix multiply. The float kernels accumulate in float64 whatever the storage dtype: on the reference machine a
 * Float64Array accumulator is as fast as a Float32Array one (the products are formed in f64 by JS anyway), and a
 * float32 result then carries a single rounding instead of one per step.
 */

// k-block and rows per pass follow measurements on the development machines: a 128-deep
// slice of B stays in L2 while every row block of A passes over it, and each loaded B element feeds 4 rows.
const KB = 128
const ROWS = 4

/** C (f64, m×n, zero-initialised, at cOff) += A (m×k at aOff) · B (k×n at bOff), all row-major. */
// mmF32 and mmF64 are the same loop on different element types, kept as two functions so that each stays
// monomorphic for V8 (one shared function seeing both array kinds runs markedly slower).
function mmF32(a: Float32Array, aOff: number, b: Float32Array, bOff: number, c: Float64Array, m: number, k: number, n: number): void {
  for (let k0 = 0; k0 < k; k0 += KB) {
    const k1 = Math.min(k0 + KB, k)
    let i = 0
    for (; i + ROWS <= m; i += ROWS) {
      const c0 = i * n
      const c1 = c0 + n
      const c2 = c1 + n
      const c3 = c2 + n
      const a0 = aOff + i * k
      const a1 = a0 + k
      const a2 = a1 + k
      const a3 = a2 + k
      for (let p = k0; p < k1; p++) {
        const x0 = a[a0 + p]!
        const x1 = a[a1 + p]!
        const x2 = a[a2 + p]!
        const x3 = a[a3 + p]!
        const bp = bOff + p * n
        for (let j = 0; j < n; j++) {
          const y = b[bp + j]!
          c[c0 + j]! += x0 * y
          c[c1 + j]! += x1 * y
          c[c2 + j]! += x2 * y
          c[c3 + j]! += x3 * y
        }
      }
    }
    for (; i < m; i++) {
      const c0 = i * n
      const a0 = aOff + i * k
      for (let p = k0; p < k1; p++) {
        const x0 = a[a0 + p]!
        const bp = bOff + p * n
        for (let j = 0; j < n; j++) c[c0 + j]! += x0 * b[bp + j]!
      }
    }
  }
}

function mmF64(a: Float64Array, aOff: number, b: Float64Array, bOff: number, c: Float64Array, m: number, k: number, n: number): void {
  for (let k0 = 0; k0 < k; k0 += KB) {
    const k1 = Math.min(k0 + KB, k)
    let i = 0
    for (; i + ROWS <= m; i += ROWS) {
      const c0 = i * n
      const c1 = c0 + n
      const c2 = c1 + n
      const c3 = c2 + n
      const a0 = aOff + i * k
      const a1 = a0 + k
      const a2 = a1 + k
      const a3 = a2 + k
      for (let p = k0; p < k1; p++) {
        const x0 = a[a0 + p]!
        const x1 = a[a1 + p]!
        const x2 = a[a2 + p]!
        const x3 = a[a3 + p]!
        const bp = bOff + p * n
        for (let j = 0; j < n; j++) {
          const y = b[bp + j]!
          c[c0 + j]! += x0 * y
          c[c1 + j]! += x1 * y
          c[c2 + j]! += x2 * y
          c[c3 + j]! += x3 * y
        }
      }
    }
    for (; i < m; i++) {
      const c0 = i * n
      const a0 = aOff + i * k
      for (let p = k0; p < k1; p++) {
        const x0 = a[a0 + p]!
        const bp = bOff + p * n
        for (let j = 0; j < n; j++) c[c0 + j]! += x0 * b[bp + j]!
      }
    }
  }
}

/** int32 with two's-complement wrap-around, as int32 matmul does in C and WGSL. */
function mmI32(a: Int32Array, aOff: number, b: Int32Array, bOff: number, c: Int32Array, cOff: number, m: number, k: number, n: number): void {
  for (let i = 0; i < m; i++) {
    const c0 = cOff + i * n
    for (let p = 0; p < k; p++) {
      const x = a[aOff + i * k + p]!
      const bp = bOff + p * n
      for (let j = 0; j < n; j++) c[c0 + j] = (c[c0 + j]! + Math.imul(x, b[bp + j]!)) | 0
    }
  }
}

/** Copy with the last two dims swapped ([..., r, c] → [..., c, r]); cheap next to the O(n³) product. */
function swapLast(x: CpuTensor): CpuTensor {
  const rank = x.shape.length
  const r = x.shape[rank - 2]!
  const c = x.shape[rank - 1]!
  const out = allocArray(x.dtype, x.values.length)
  const v = x.values
  const mat = r * c
  for (let base = 0; base < v.length; base += mat)
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[base + j * r + i] = v[base + i * c + j]!
  return { values: out, shape: [...x.shape.slice(0, -2), c, r], dtype: x.dtype }
}

/** numpy matmul promotion of 1-D operands: a [k] → [1, k], b [k] → [k, 1]. */
const as2d = (t: CpuTensor, side: 'a' | 'b'): CpuTensor =>
  t.shape.length >= 2 ? t : { ...t, shape: side === 'a' ? [1, t.shape[0]!] : [t.shape[0]!, 1] }

/**
 * Batched matmul with numpy semantics: batch dims broadcast, a 1-D operand is promoted to a matrix and its
 * inserted dim dropped from the result. attrs: transposeA, transposeB (swap the last two dims of a rank ≥ 2
 * operand before multiplying; ignored for 1-D operands).
 */
function matMul(inputs: readonly CpuTensor[], attrs: Attrs): CpuTensor {
  let a = as2d(inputs[0]!, 'a')
  let b = as2d(inputs[1]!, 'b')
  const tA = attrs['transposeA'] === true && inputs[0]!.shape.length >= 2
  const tB = attrs['transposeB'] === true && inputs[1]!.shape.length >= 2
  const ra = a.shape.length
  const rb = b.shape.length
  const m = a.shape[ra - (tA ? 1 : 2)]!
  const k = a.shape[ra - (tA ? 2 : 1)]!
  const n = b.shape[rb - (tB ? 2 : 1)]!
  const aBatch = a.shape.slice(0, -2)
  const bBatch = b.shape.slice(0, -2)
  const batch: number[] = []
  for (let i = 0, r = Math.max(aBatch.length, bBatch.length); i < r; i++) {
    const da = aBatch[aBatch.length - r + i] ?? 1
    const db = bBatch[bBatch.length - r + i] ?? 1
    batch.push(da === 1 ? db : da)
  }
  const shape: Shape = [...batch, ...(inputs[0]!.shape.length >= 2 ? [m] : []), ...(inputs[1]!.shape.length >= 2 ? [n] : [])]
  const dtype = a.dtype
  const nb = sizeOf(batch)
  const ia = broadcastOffsets(aBatch, batch)
  const ib = broadcastOffsets(bBatch, batch)
  // float32 and float16 (held in a Float32Array) go to the WebAssembly SIMD kernel when it is available and the
  // product is large enough; it accumulates in float32, within the float32 tolerance. float64 stays here: this
  // kernel's float64 accumulation is the reference the other backends are tested against.
  if (dtype === 'float32' || dtype === 'float16') {
    const values = wasmGemm({ a: a.values as Float32Array, b: b.values as Float32Array, m, k, n, transA: tA, transB: tB, batches: nb, ia, ib })
    if (values) return { values, shape, dtype }
  }
  if (tA) a = swapLast(a)
  if (tB) b = swapLast(b)
  const out = allocArray(dtype, nb * m * n)
  const mn = m * n
  if (dtype === 'int32') {
    for (let z = 0; z < nb; z++)
      mmI32(a.values as Int32Array, (ia ? ia[z]! : z) * m * k, b.values as Int32Array, (ib ? ib[z]! : z) * k * n, out as Int32Array, z * mn, m, k, n)
  } else {
    const acc = new Float64Array(mn)
    for (let z = 0; z < nb; z++) {
      acc.fill(0)
      const aOff = (ia ? ia[z]! : z) * m * k
      const bOff = (ib ? ib[z]! : z) * k * n
      if (dtype === 'float64') mmF64(a.values as Float64Array, aOff, b.values as Float64Array, bOff, acc, m, k, n)
      else mmF32(a.values as Float32Array, aOff, b.values as Float32Array, bOff, acc, m, k, n)
      out.set(acc, z * mn)
    }
  }
  return { values: out, shape, dtype }
}

export const linalgKernels = {
  /** attrs: transposeA?, transposeB? (booleans). Inputs share a dtype: float32, float16, float64 or int32. */
  MatMul: matMul,
} satisfies Partial<CpuKernelTable>
