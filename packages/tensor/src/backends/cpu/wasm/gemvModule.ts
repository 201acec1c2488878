import type { Local, ModuleBuilder } from './encoder.js'

/**
 * Matrix–vector products for a few rows of A (a decode step's [1, d] × [d, n]): B is read as the host copied it
 * (one memcpy), with no packing into panels, and A's rows need no padding to the GEMM's 4-row tile. Every output
 * element is a float32 sum over p = 0, 1, 2, … in order with separate multiply and add, as the GEMM's own.
 * All addresses are bytes, matrices row-major float32:
 * - gemv_n(a, m, k, b, n, c): C[i, j] = Σ_p A[i, p]·B[p, j] with B stored [k, n] (SIMD across 32 columns of B,
 *   then 4, then one at a time).
 * - gemv_t(a, m, k, b, n, c): C[i, j] = Σ_p A[i, p]·B[j, p] with B stored [n, k] (each output a dot product of
 *   two contiguous rows: four columns of B share each load of A; lanes hold p ≡ 0, 1, 2, 3 mod 4, summed at the
 *   end, then the k mod 4 tail in order).
 */
export const GEMV_ARGS = 6

/** f32x4 accumulators per block of gemv_n: 8 of them + 1 splat + 1 load fit the 16 xmm registers. */
const N_VECS = 8

export function addGemv(mod: ModuleBuilder): void {
  const sig = new Array<'i32'>(GEMV_ARGS).fill('i32')
  {
    const f = mod.function(sig, [], 'gemv_n').fn
    const [a, m, k, b, n, c] = Array.from({ length: GEMV_ARGS }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local]
    const i = f.local('i32')
    const j = f.local('i32')
    const p = f.local('i32')
    const pa = f.local('i32')
    const pb = f.local('i32')
    const pc = f.local('i32')
    const rowB = f.local('i32')
    const acc = Array.from({ length: N_VECS }, () => f.local('v128'))
    const x = f.local('v128')
    const s = f.local('f32')
    f.get(n).i32Const(2).i32Shl().set(rowB)
    // V vectors of columns at j.. for row i; a scalar column when V = 0
    const block = (V: number): void => {
      f.get(a).get(i).get(k).i32Mul().i32Const(2).i32Shl().i32Add().set(pa)
      f.get(b).get(j).i32Const(2).i32Shl().i32Add().set(pb)
      if (V === 0) f.f32Const(0).set(s)
      for (let v = 0; v < V; v++) f.v128Zero().set(acc[v]!)
      f.forRange(p, () => f.i32Const(0), () => f.get(k), 1, () => {
        if (V === 0) {
          f.get(s).get(pa).f32Load().get(pb).f32Load().f32Mul().f32Add().set(s)
        } else {
          f.get(pa).v128Load32Splat().set(x)
          for (let v = 0; v < V; v++) f.get(acc[v]!).get(x).get(pb).v128Load(v * 16).f32x4Mul().f32x4Add().set(acc[v]!)
        }
        f.get(pa).i32Const(4).i32Add().set(pa)
        f.get(pb).get(rowB).i32Add().set(pb)
      })
      f.get(c).get(i).get(rowB).i32Mul().i32Add().get(j).i32Const(2).i32Shl().i32Add().set(pc)
      if (V === 0) f.get(pc).get(s).f32Store()
      for (let v = 0; v < V; v++) f.get(pc).get(acc[v]!).v128Store(v * 16)
    }
    f.forRange(i, () => f.i32Const(0), () => f.get(m), 1, () => {
      f.forRange(j, () => f.i32Const(0), () => f.get(n).i32Const(-4 * N_VECS).i32And(), 4 * N_VECS, () => block(N_VECS))
      f.forRange(j, () => f.get(n).i32Const(-4 * N_VECS).i32And(), () => f.get(n).i32Const(-4).i32And(), 4, () => block(1))
      f.forRange(j, () => f.get(n).i32Const(-4).i32And(), () => f.get(n), 1, () => block(0))
    })
  }
  {
    const f = mod.function(sig, [], 'gemv_t').fn
    const [a, m, k, b, n, c] = Array.from({ length: GEMV_ARGS }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local]
    const i = f.local('i32')
    const j = f.local('i32')
    const p = f.local('i32')
    const pa = f.local('i32')
    const rowBytes = f.local('i32')
    const k4 = f.local('i32')
    const pb = Array.from({ length: 4 }, () => f.local('i32'))
    const acc = Array.from({ length: 4 }, () => f.local('v128'))
    const x = f.local('v128')
    const s = f.local('f32')
    f.get(k).i32Const(2).i32Shl().set(rowBytes)
    f.get(k).i32Const(-4).i32And().i32Const(2).i32Shl().set(k4)
    // C columns j..j+C−1 of row i
    const block = (C: number): void => {
      f.get(a).get(i).get(rowBytes).i32Mul().i32Add().set(pa)
      for (let q = 0; q < C; q++) f.get(b).get(j).i32Const(q).i32Add().get(rowBytes).i32Mul().i32Add().set(pb[q]!)
      for (let q = 0; q < C; q++) f.v128Zero().set(acc[q]!)
      // p: byte offset along the rows
      f.forRange(p, () => f.i32Const(0), () => f.get(k4), 16, () => {
        f.get(pa).get(p).i32Add().v128Load().set(x)
        for (let q = 0; q < C; q++) f.get(acc[q]!).get(x).get(pb[q]!).get(p).i32Add().v128Load().f32x4Mul().f32x4Add().set(acc[q]!)
      })
      for (let q = 0; q < C; q++) {
        const v = acc[q]!
        f.get(v).f32x4ExtractLane(0).get(v).f32x4ExtractLane(1).f32Add().get(v).f32x4ExtractLane(2).get(v).f32x4ExtractLane(3).f32Add().f32Add().set(s)
        f.forRange(p, () => f.get(k4), () => f.get(rowBytes), 4, () => {
          f.get(s).get(pa).get(p).i32Add().f32Load().get(pb[q]!).get(p).i32Add().f32Load().f32Mul().f32Add().set(s)
        })
        f.get(c).get(i).get(n).i32Mul().get(j).i32Add().i32Const(q).i32Add().i32Const(2).i32Shl().i32Add().get(s).f32Store()
      }
    }
    f.forRange(i, () => f.i32Const(0), () => f.get(m), 1, () => {
      f.forRange(j, () => f.i32Const(0), () => f.get(n).i32Const(-4).i32And(), 4, () => block(4))
      f.forRange(j, () => f.get(n).i32Const(-4).i32And(), () => f.get(n), 1, () => block(1))
    })
  }
}
