import type { Local, ModuleBuilder } from '@heed/tensor/cpu'

/**
 * The two inner products of the decode kernel (../decodeAttention.ts) on float32 keys and values, in float64 lanes
 * (f64x2, each float32 pair promoted on load) so they keep that kernel's float64 arithmetic; the softmax between
 * them stays in TypeScript. Addresses are bytes into the module's memory; D and Dv must be even.
 *
 * att_dec_dots(q, k, n, D, s): s[j] = Σ_d q[d]·k[j·D + d] for j < n — q float64 [D] (already scaled), k float32
 *   [n, D], s float64 [n]. Each dot sums two interleaved partial sums (even and odd d), added at the end.
 * att_dec_pv(p, v, n, Dv, acc): acc[d] += Σ_j p[j]·v[j·Dv + d] — p float64 [n], v float32 [n, Dv], acc float64
 *   [Dv]. Each element accumulates j = 0, 1, 2, … in order with separate multiply and add.
 */

/** Keys per register block of att_dec_dots: 4 accumulators + q + 4 loads fit the 16 registers. */
const KEYS = 4
/** f64x2 accumulators per column block of att_dec_pv (8 columns). */
const PV_VECS = 4

export function addDecodeAttention(mod: ModuleBuilder): void {
  {
    const f = mod.function(['i32', 'i32', 'i32', 'i32', 'i32'], [], 'att_dec_dots').fn
    const [q, k, n, D, s] = Array.from({ length: 5 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local]
    const j = f.local('i32')
    const rowBytes = f.local('i32')
    const pq = f.local('i32')
    const end = f.local('i32')
    const pk = Array.from({ length: KEYS }, () => f.local('i32'))
    const acc = Array.from({ length: KEYS }, () => f.local('v128'))
    const qv = f.local('v128')
    f.get(D).i32Const(2).i32Shl().set(rowBytes)
    // R keys at j..: pk[r] walks key j + r's row (4 bytes per element), pq the query (8 bytes per element)
    const block = (R: number): void => {
      for (let r = 0; r < R; r++) f.get(k).get(j).i32Const(r).i32Add().get(rowBytes).i32Mul().i32Add().set(pk[r]!)
      f.get(pk[0]!).get(rowBytes).i32Add().set(end)
      f.get(q).set(pq)
      for (let r = 0; r < R; r++) f.v128Zero().set(acc[r]!)
      f.block(exit => {
        f.loop(again => {
          f.get(pk[0]!).get(end).i32GeS().brIf(exit)
          f.get(pq).v128Load().set(qv)
          for (let r = 0; r < R; r++) {
            f.get(acc[r]!).get(pk[r]!).v128Load64Zero().f64x2PromoteLowF32x4().get(qv).f64x2Mul().f64x2Add().set(acc[r]!)
            f.get(pk[r]!).i32Const(8).i32Add().set(pk[r]!)
          }
          f.get(pq).i32Const(16).i32Add().set(pq)
          f.br(again)
        })
      })
      for (let r = 0; r < R; r++) {
        const v = acc[r]!
        f.get(s).get(j).i32Const(r).i32Add().i32Const(3).i32Shl().i32Add().get(v).f64x2ExtractLane(0).get(v).f64x2ExtractLane(1).f64Add().f64Store()
      }
    }
    f.forRange(j, () => f.i32Const(0), () => f.get(n).i32Const(-KEYS).i32And(), KEYS, () => block(KEYS))
    f.forRange(j, () => f.get(n).i32Const(-KEYS).i32And(), () => f.get(n), 1, () => block(1))
  }
  {
    const f = mod.function(['i32', 'i32', 'i32', 'i32', 'i32'], [], 'att_dec_pv').fn
    const [p, v, n, Dv, acc] = Array.from({ length: 5 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local]
    const j = f.local('i32')
    const d = f.local('i32')
    const rowBytes = f.local('i32')
    const pv = f.local('i32')
    const a = Array.from({ length: PV_VECS }, () => f.local('v128'))
    const w = f.local('v128')
    f.get(Dv).i32Const(2).i32Shl().set(rowBytes)
    // V vectors (2 columns each) at column d..
    const block = (V: number): void => {
      for (let x = 0; x < V; x++) f.get(acc).get(d).i32Const(3).i32Shl().i32Add().v128Load(x * 16).set(a[x]!)
      f.get(v).get(d).i32Const(2).i32Shl().i32Add().set(pv)
      f.forRange(j, () => f.i32Const(0), () => f.get(n), 1, () => {
        f.get(p).get(j).i32Const(3).i32Shl().i32Add().f64Load().f64x2Splat().set(w)
        for (let x = 0; x < V; x++) f.get(a[x]!).get(pv).v128Load64Zero(x * 8).f64x2PromoteLowF32x4().get(w).f64x2Mul().f64x2Add().set(a[x]!)
        f.get(pv).get(rowBytes).i32Add().set(pv)
      })
      for (let x = 0; x < V; x++) f.get(acc).get(d).i32Const(3).i32Shl().i32Add().get(a[x]!).v128Store(x * 16)
    }
    f.forRange(d, () => f.i32Const(0), () => f.get(Dv).i32Const(-2 * PV_VECS).i32And(), 2 * PV_VECS, () => block(PV_VECS))
    f.forRange(d, () => f.get(Dv).i32Const(-2 * PV_VECS).i32And(), () => f.get(Dv), 2, () => block(1))
  }
}
