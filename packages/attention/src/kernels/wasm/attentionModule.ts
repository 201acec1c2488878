import type { Local, ModuleBuilder } from '@heed/tensor/cpu'

/**
 * The two inner products of the fused CPU attention forward (../cpu.ts), in float64
 * lanes (f64x2) so they keep that kernel's float64 arithmetic; the online softmax between them stays in
 * TypeScript (it needs exp and the mask's per-pair logic). All addresses are bytes into the module's memory,
 * every matrix is row-major float64, and row widths `n` must be even (the host falls back to TypeScript otherwise).
 *
 * att_dots(a, nA, b, nB, n, s, ldS, scale): S[i·ldS + j] = (A_i · B_j)·scale — Q block against a K tile. Each dot
 *   sums two interleaved partial sums (even and odd d), added at the end: a different order from a sequential
 *   sum, by an amount far below the float32 rounding of the output.
 * att_pv(c, w, ldW, nR, nC, x, n): C[r·n + d] += Σ_c W[r·ldW + c]·X[c·n + d] — P against a V tile. Each element
 *   accumulates c = 0, 1, 2, … in order with separate multiply and add, bit for bit the TypeScript kernel's sums.
 */

/** Rows of A per register block in att_dots (× 2 rows of B: 8 accumulators and 6 loads fit the 16 registers). */
const DOT_ROWS = 4
/** Output columns (f64) per register block in att_pv: 4 vectors per row, 2 rows. */
const PV_COLS = 8

export function addAttention(mod: ModuleBuilder): void {
  {
    const f = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f64'], [], 'att_dots').fn
    const [a, nA, b, nB, n, s, ldS] = Array.from({ length: 7 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local, Local]
    const scale = f.param(7)
    const i = f.local('i32')
    const j = f.local('i32')
    const off = f.local('i32')
    const rowBytes = f.local('i32')
    const pa = Array.from({ length: DOT_ROWS }, () => f.local('i32'))
    const pb = Array.from({ length: 2 }, () => f.local('i32'))
    const acc = Array.from({ length: DOT_ROWS * 2 }, () => f.local('v128'))
    const bv = Array.from({ length: 2 }, () => f.local('v128'))
    const av = f.local('v128')
    const sp = f.local('i32')
    f.get(n).i32Const(3).i32Shl().set(rowBytes)
    // one R × C block of dots at rows i.., columns j..
    const block = (R: number, C: number): void => {
      for (let r = 0; r < R; r++) f.get(a).get(i).i32Const(r).i32Add().get(rowBytes).i32Mul().i32Add().set(pa[r]!)
      for (let c = 0; c < C; c++) f.get(b).get(j).i32Const(c).i32Add().get(rowBytes).i32Mul().i32Add().set(pb[c]!)
      for (let x = 0; x < R * C; x++) f.v128Zero().set(acc[x]!)
      f.forRange(off, () => f.i32Const(0), () => f.get(rowBytes), 16, () => {
        for (let c = 0; c < C; c++) f.get(pb[c]!).get(off).i32Add().v128Load().set(bv[c]!)
        for (let r = 0; r < R; r++) {
          f.get(pa[r]!).get(off).i32Add().v128Load().set(av)
          for (let c = 0; c < C; c++) f.get(acc[r * C + c]!).get(av).get(bv[c]!).f64x2Mul().f64x2Add().set(acc[r * C + c]!)
        }
      })
      for (let r = 0; r < R; r++) {
        f.get(s).get(i).i32Const(r).i32Add().get(ldS).i32Mul().get(j).i32Add().i32Const(3).i32Shl().i32Add().set(sp)
        for (let c = 0; c < C; c++) {
          const x = acc[r * C + c]!
          f.get(sp).get(x).f64x2ExtractLane(0).get(x).f64x2ExtractLane(1).f64Add().get(scale).f64Mul().f64Store(c * 8)
        }
      }
    }
    // columns j in pairs, then the odd last one
    const columns = (R: number): void => {
      f.forRange(j, () => f.i32Const(0), () => f.get(nB).i32Const(-2).i32And(), 2, () => block(R, 2))
      f.get(nB).i32Const(1).i32And()
      f.if(() => {
        f.get(nB).i32Const(1).i32Sub().set(j)
        block(R, 1)
      })
    }
    f.forRange(i, () => f.i32Const(0), () => f.get(nA).i32Const(-DOT_ROWS).i32And(), DOT_ROWS, () => columns(DOT_ROWS))
    f.forRange(i, () => f.get(nA).i32Const(-DOT_ROWS).i32And(), () => f.get(nA), 1, () => columns(1))
  }
  {
    const f = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [], 'att_pv').fn
    const [c, w, ldW, nR, nC, x, n] = Array.from({ length: 7 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local, Local]
    const r = f.local('i32')
    const d = f.local('i32')
    const k = f.local('i32')
    const rowBytes = f.local('i32')
    const wRowBytes = f.local('i32')
    const pc = Array.from({ length: 2 }, () => f.local('i32'))
    const pw = Array.from({ length: 2 }, () => f.local('i32'))
    const px = f.local('i32')
    const acc = Array.from({ length: 2 * (PV_COLS / 2) }, () => f.local('v128'))
    const p = Array.from({ length: 2 }, () => f.local('v128'))
    const xv = f.local('v128')
    f.get(n).i32Const(3).i32Shl().set(rowBytes)
    f.get(ldW).i32Const(3).i32Shl().set(wRowBytes)
    // R rows × V vectors of output at rows r.., byte column d..
    const block = (R: number, V: number): void => {
      for (let q = 0; q < R; q++) {
        f.get(c).get(r).i32Const(q).i32Add().get(rowBytes).i32Mul().i32Add().get(d).i32Add().set(pc[q]!)
        f.get(w).get(r).i32Const(q).i32Add().get(wRowBytes).i32Mul().i32Add().set(pw[q]!)
        for (let v = 0; v < V; v++) f.get(pc[q]!).v128Load(v * 16).set(acc[q * V + v]!)
      }
      f.get(x).get(d).i32Add().set(px)
      f.forRange(k, () => f.i32Const(0), () => f.get(nC), 1, () => {
        for (let q = 0; q < R; q++) f.get(pw[q]!).get(k).i32Const(3).i32Shl().i32Add().f64Load().f64x2Splat().set(p[q]!)
        for (let v = 0; v < V; v++) {
          f.get(px).v128Load(v * 16).set(xv)
          for (let q = 0; q < R; q++) f.get(acc[q * V + v]!).get(p[q]!).get(xv).f64x2Mul().f64x2Add().set(acc[q * V + v]!)
        }
        f.get(px).get(rowBytes).i32Add().set(px)
      })
      for (let q = 0; q < R; q++) for (let v = 0; v < V; v++) f.get(pc[q]!).get(acc[q * V + v]!).v128Store(v * 16)
    }
    const chunks = (R: number): void => {
      const full = PV_COLS * 8
      f.forRange(d, () => f.i32Const(0), () => f.get(rowBytes).i32Const(-full).i32And(), full, () => block(R, PV_COLS / 2))
      f.forRange(d, () => f.get(rowBytes).i32Const(-full).i32And(), () => f.get(rowBytes), 16, () => block(R, 1))
    }
    f.forRange(r, () => f.i32Const(0), () => f.get(nR).i32Const(-2).i32And(), 2, () => chunks(2))
    f.get(nR).i32Const(1).i32And()
    f.if(() => {
      f.get(nR).i32Const(1).i32Sub().set(r)
      chunks(1)
    })
  }
}
