import type { FunctionBuilder, Local, ModuleBuilder, WasmPartContext } from '@heed/tensor/cpu'
import { emitExp } from './attentionForwardModule.js'

/**
 * The float32 attention backward (FlashAttention-2's, Dao 2023, Algorithm 2), for attentionBackward.ts. P is never
 * stored: each tile recomputes it from the forward's logsumexp.
 *
 * Work split (race-free without atomics): one work unit is a block of BK keys of one kv head. It owns dK and dV of
 * those keys, accumulated over every query block that sees them and over the query heads of its GQA group, in its
 * scratch slot. dQ of a (query head, query block) receives a term from every key block: each unit writes its term
 * to a buffer of its own, dQpart[query head][key block][row], and att_bwd_dq sums those in key-block order
 * afterwards. The result is the same whichever thread ran which unit, so one thread and the pool agree bit for bit.
 *
 * Per (query head, query block) of a unit, with Qs = scale·Q, everything packed by att_bwd_pack beforehand:
 *  1. S = Qs·Kᵀ and dP = dO·Vᵀ with the panel-output micro-kernel, stored as [key/4][query][4 keys]: the packed A
 *     layout of Pᵀ and dSᵀ (rows = keys, k = queries), so the two products over queries need no repacking.
 *  2. keys past the causal limit, past Tk, get S = −∞ (diagonal and last tiles only; tiles no query sees are
 *     skipped); P = exp(S − lse), dS = P ∘ (dP − Δ) with Δ = rowsum(dO ∘ O) − dLse, in place.
 *  3. dV += Pᵀ·dO and dK += dSᵀ·Qs (= scale·dSᵀ·Q) with the micro-kernel.
 *  4. dS is transposed 4×4 at a time to [query/4][key][4 queries], and dQpart = dS·K (scale applied in the sum).
 *
 * All arithmetic is float32 with float32 accumulation; sums over queries are blocked by BQ (inside the
 * micro-kernel) then across blocks, sums over keys by BK then across key blocks.
 */
export const enum BwdParam {
  Units,
  Counter,
  UnitTable,
  /** query heads per kv head */
  G,
  Tq,
  TqPad,
  Tk,
  /** Tk rounded up to 8: key rows of the packed K and V */
  TkPad,
  D,
  /** D rounded up to 8 (B panels of Qs and K over d) */
  DPad,
  /** D rounded up to 4: row stride of the dQ, dK outputs */
  D4,
  Dv,
  DvPad,
  Dv4,
  BQ,
  BK,
  /** key blocks per head */
  KB,
  Causal,
  /** queryOffset − keyOffset: query i sees key j when j ≤ i + delta */
  Delta,
  /** per query head: Qs as A panels [Tq/4][D][4], Qs as B panels [DPad/8][TqPad][8], dO likewise, Δ and lse rows */
  QA,
  QB,
  OA,
  OB,
  Delta_,
  Lse,
  /** per kv head: K as B panels over keys [TkPad/8][D][8] and over d [DPad/8][TkPad][8]; V as [TkPad/8][Dv][8] */
  KB1,
  KB2,
  VB,
  /** outputs: dQpart [BH][KB][TqPad][DPad], dQ [BH][Tq][D4], dK [B·Hkv][Tk][D4], dV [B·Hkv][Tk][Dv4] */
  DQPart,
  DQ,
  DK,
  DV,
  Scratch,
  SlotBytes,
  /** query heads in all (the dQ sum's jobs step over them) */
  QHeads,
  /** the jobs of att_bwd_dq */
  Jobs,
  /** first query head of this dispatch: att_bwd_dq sums heads [QHead0, QHeads) (the host slices large problems) */
  QHead0,
  /** float32 bits */
  Scale,
  Count,
}

/**
 * att_bwd_pack(job, params) fields. Raw row-major inputs: Q [BH][Tq][D], dO [BH][Tq][Dv], K [z][TkStride][D],
 * V [z][TkStride][Dv]. Job j packs query heads ≡ j and kv heads ≡ j (mod Jobs), and writes max |q|, |k|, |v|, |dO|
 * (NaN or ∞ propagate) at Stats + 16·j.
 */
export const enum BwdPackParam {
  Jobs,
  QHeads,
  KvHeads,
  TkStride,
  RawQ,
  RawO,
  RawK,
  RawV,
  Stats,
  Count,
}

/** Words per unit: kv head z (b·Hkv + kv head), first query head (b·H + kv head·g), key block, unused. */
export const BWD_UNIT_WORDS = 4

const lanes32 = (l: readonly number[]): number[] => l.flatMap(x => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3])

/**
 * pack(dst, src, nT, nTPad, nG, nGPad, w, sT, sG, scale) → max |x|: the elements (t, g) of a matrix at
 * src + 4·(t·sT + g·sG), times scale, into panels of w (4 or 8) along g: dst[((g/w)·nTPad + t)·w + g%w], zero past
 * nT, nG. With w = 4 and g the rows it is a packed A operand (k = t); with w = 8 and g the columns a packed B operand.
 * Full panels go by vectors: rows (sT = 1) 4×4 blocks at a time through a shuffle transpose, columns (sG = 1) as
 * two vector copies; edges one element at a time.
 */
function addPanelPack(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32'], ['f32'])
  const [dst, src, nT, nTPad, nG, nGPad, w, sT, sG] = Array.from({ length: 9 }, (_, i) => f.param(i)) as Local[] as [Local, Local, Local, Local, Local, Local, Local, Local, Local]
  const scale = f.param(9)
  const g0 = f.local('i32')
  const t = f.local('i32')
  const t0 = f.local('i32')
  const l = f.local('i32')
  const g = f.local('i32')
  const hh = f.local('i32')
  const from = f.local('i32')
  const to = f.local('i32')
  const x = f.local('f32')
  const mx = f.local('f32')
  const sv = f.local('v128')
  const mv = f.local('v128')
  const r = Array.from({ length: 4 }, () => f.local('v128'))
  const tr = Array.from({ length: 4 }, () => f.local('v128'))
  f.get(scale).f32x4Splat().set(sv)
  // element (t, lane l) of the panel at g0, for t in [t0, nTPad), one at a time
  const scalar = (): void => {
    f.forRange(t, () => f.get(t0), () => f.get(nTPad), 1, () => {
      f.forRange(l, () => f.i32Const(0), () => f.get(w), 1, () => {
        f.get(g0).get(l).i32Add().set(g)
        f.f32Const(0).set(x)
        f.get(t).get(nT).i32LtS()
        f.if(() => {
          f.get(g).get(nG).i32LtS()
          f.if(() => {
            f.get(src).get(t).get(sT).i32Mul().get(g).get(sG).i32Mul().i32Add().i32Const(2).i32Shl().i32Add().f32Load().set(x)
            f.get(mx).get(x).f32Abs().f32Max().set(mx)
            f.get(x).get(scale).f32Mul().set(x)
          })
        })
        // dst + (((g0/w)·nTPad + t)·w + l)·4
        f.get(dst).get(g0).get(w).i32DivS().get(nTPad).i32Mul().get(t).i32Add().get(w).i32Mul().get(l).i32Add().i32Const(2).i32Shl().i32Add().get(x).f32Store()
      })
    })
  }
  const absMax = (v: Local): void => {
    f.get(mv).get(v).f32x4Abs().f32x4Max().set(mv)
  }
  f.forRange(g0, () => f.i32Const(0), () => f.get(nGPad), 1, () => {
    f.i32Const(0).set(t0)
    f.get(g0).get(w).i32Add().get(nG).i32LeS()
    f.if(() => {
      f.get(sT).i32Const(1).i32Eq()
      f.if(
        () => {
          // g are rows: 4 rows × 4 t at a time, transposed so that each t holds the 4 rows' values
          f.forRange(t0, () => f.i32Const(0), () => f.get(nT).i32Const(-4).i32And(), 4, () => {
            f.forRange(hh, () => f.i32Const(0), () => f.get(w), 4, () => {
              for (let i = 0; i < 4; i++) {
                f.get(src).get(g0).get(hh).i32Add().i32Const(i).i32Add().get(sG).i32Mul().get(t0).i32Add().i32Const(2).i32Shl().i32Add().v128Load().set(r[i]!)
                absMax(r[i]!)
              }
              f.get(r[0]!).get(r[1]!).i8x16Shuffle(lanes32([0, 4, 1, 5])).set(tr[0]!)
              f.get(r[0]!).get(r[1]!).i8x16Shuffle(lanes32([2, 6, 3, 7])).set(tr[1]!)
              f.get(r[2]!).get(r[3]!).i8x16Shuffle(lanes32([0, 4, 1, 5])).set(tr[2]!)
              f.get(r[2]!).get(r[3]!).i8x16Shuffle(lanes32([2, 6, 3, 7])).set(tr[3]!)
              // dst + (((g0/w)·nTPad + t0)·w + hh)·4, then + w·4 per t
              f.get(dst).get(g0).get(w).i32DivS().get(nTPad).i32Mul().get(t0).i32Add().get(w).i32Mul().get(hh).i32Add().i32Const(2).i32Shl().i32Add().set(to)
              const out = (a: Local, b: Local, lanes: number[], c: number): void => {
                f.get(to).get(w).i32Const(2 + 0).i32Shl().i32Const(c).i32Mul().i32Add()
                f.get(a).get(b).i8x16Shuffle(lanes32(lanes)).get(sv).f32x4Mul().v128Store()
              }
              out(tr[0]!, tr[2]!, [0, 1, 4, 5], 0)
              out(tr[0]!, tr[2]!, [2, 3, 6, 7], 1)
              out(tr[1]!, tr[3]!, [0, 1, 4, 5], 2)
              out(tr[1]!, tr[3]!, [2, 3, 6, 7], 3)
            })
          })
        },
        () => {
          f.get(sG).i32Const(1).i32Eq().get(w).i32Const(8).i32Eq().i32And()
          f.if(() => {
            // g are columns: each t is 8 adjacent values
            f.forRange(t0, () => f.i32Const(0), () => f.get(nT), 1, () => {
              f.get(src).get(t0).get(sT).i32Mul().get(g0).i32Add().i32Const(2).i32Shl().i32Add().set(from)
              f.get(dst).get(g0).i32Const(3).i32ShrS().get(nTPad).i32Mul().get(t0).i32Add().i32Const(5).i32Shl().i32Add().set(to)
              for (let v = 0; v < 2; v++) {
                f.get(from).v128Load(16 * v).set(r[v]!)
                absMax(r[v]!)
                f.get(to).get(r[v]!).get(sv).f32x4Mul().v128Store(16 * v)
              }
            })
          })
        },
      )
    })
    scalar()
    // next panel (forRange adds 1)
    f.get(g0).get(w).i32Add().i32Const(1).i32Sub().set(g0)
  })
  for (let lane = 0; lane < 4; lane++) f.get(mx).get(mv).f32x4ExtractLane(lane).f32Max().set(mx)
  f.get(mx)
  return index
}

/** att_bwd_pack: see BwdPackParam. */
function addBackwardPack(mod: ModuleBuilder): void {
  const pack = addPanelPack(mod)
  const f = mod.function(['i32', 'i32', 'i32'], [], 'att_bwd_pack').fn
  const job = f.param(0)
  const params = f.param(1)
  const packParams = f.param(2)
  const field = (k: BwdParam): Local => {
    const l = f.local('i32')
    f.get(params).i32Load(k * 4).set(l)
    return l
  }
  const pfield = (k: BwdPackParam): Local => {
    const l = f.local('i32')
    f.get(packParams).i32Load(k * 4).set(l)
    return l
  }
  const [Tq, TqPad, Tk, TkPad, D, DPad, Dv, DvPad] = [BwdParam.Tq, BwdParam.TqPad, BwdParam.Tk, BwdParam.TkPad, BwdParam.D, BwdParam.DPad, BwdParam.Dv, BwdParam.DvPad].map(field) as [Local, Local, Local, Local, Local, Local, Local, Local]
  const [QA, QB, OA, OB, KB1, KB2, VB] = [BwdParam.QA, BwdParam.QB, BwdParam.OA, BwdParam.OB, BwdParam.KB1, BwdParam.KB2, BwdParam.VB].map(field) as [Local, Local, Local, Local, Local, Local, Local]
  const [jobs, qHeads, kvHeads, TkStride, rawQ, rawO, rawK, rawV] = [BwdPackParam.Jobs, BwdPackParam.QHeads, BwdPackParam.KvHeads, BwdPackParam.TkStride, BwdPackParam.RawQ, BwdPackParam.RawO, BwdPackParam.RawK, BwdPackParam.RawV].map(pfield) as [Local, Local, Local, Local, Local, Local, Local, Local]
  const scale = f.local('f32')
  f.get(params).f32Load(BwdParam.Scale * 4).set(scale)
  const z = f.local('i32')
  const src = f.local('i32')
  const mq = f.local('f32')
  const mk = f.local('f32')
  const mv = f.local('f32')
  const mo = f.local('f32')
  const at = f.local('i32')
  const max = (into: Local): void => {
    f.get(into).f32Max().set(into)
  }
  // one call of pack: dst, src, nT, nTPad, nG, nGPad, w, sT, sG, scale
  const call = (dst: () => void, nT: Local, nTPad: Local, nG: Local, nGPad: Local, w: number, sT: () => void, sG: () => void, s: () => void): void => {
    dst()
    f.get(src).get(nT).get(nTPad).get(nG).get(nGPad).i32Const(w)
    sT()
    sG()
    s()
    f.call(pack)
  }
  const one = (): void => void f.i32Const(1)
  f.forRange(z, () => f.get(job), () => f.get(qHeads), 1, () => {
    // Qs: A panels (g = rows, t = d) and B panels (g = d, t = rows)
    f.get(rawQ).get(z).get(Tq).i32Mul().get(D).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    call(() => f.get(QA).get(z).get(TqPad).i32Mul().get(D).i32Mul().i32Const(2).i32Shl().i32Add(), D, D, Tq, TqPad, 4, one, () => f.get(D), () => f.get(scale))
    max(mq)
    call(() => f.get(QB).get(z).get(TqPad).i32Mul().get(DPad).i32Mul().i32Const(2).i32Shl().i32Add(), Tq, TqPad, D, DPad, 8, () => f.get(D), one, () => f.get(scale))
    f.drop()
    // dO likewise (unscaled)
    f.get(rawO).get(z).get(Tq).i32Mul().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    call(() => f.get(OA).get(z).get(TqPad).i32Mul().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add(), Dv, Dv, Tq, TqPad, 4, one, () => f.get(Dv), () => f.f32Const(1))
    max(mo)
    call(() => f.get(OB).get(z).get(TqPad).i32Mul().get(DvPad).i32Mul().i32Const(2).i32Shl().i32Add(), Tq, TqPad, Dv, DvPad, 8, () => f.get(Dv), one, () => f.f32Const(1))
    f.drop()
    f.get(z).get(jobs).i32Add().i32Const(1).i32Sub().set(z)
  })
  f.forRange(z, () => f.get(job), () => f.get(kvHeads), 1, () => {
    f.get(rawK).get(z).get(TkStride).i32Mul().get(D).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    // K over keys (g = keys, t = d), for S; over d (g = d, t = keys), for dQ
    call(() => f.get(KB1).get(z).get(TkPad).i32Mul().get(D).i32Mul().i32Const(2).i32Shl().i32Add(), D, D, Tk, TkPad, 8, one, () => f.get(D), () => f.f32Const(1))
    max(mk)
    call(() => f.get(KB2).get(z).get(TkPad).i32Mul().get(DPad).i32Mul().i32Const(2).i32Shl().i32Add(), Tk, TkPad, D, DPad, 8, () => f.get(D), one, () => f.f32Const(1))
    f.drop()
    f.get(rawV).get(z).get(TkStride).i32Mul().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    call(() => f.get(VB).get(z).get(TkPad).i32Mul().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add(), Dv, Dv, Tk, TkPad, 8, one, () => f.get(Dv), () => f.f32Const(1))
    max(mv)
    f.get(z).get(jobs).i32Add().i32Const(1).i32Sub().set(z)
  })
  f.get(packParams).i32Load(BwdPackParam.Stats * 4).get(job).i32Const(4).i32Shl().i32Add().set(at)
  f.get(at).get(mq).f32Store(0)
  f.get(at).get(mk).f32Store(4)
  f.get(at).get(mv).f32Store(8)
  f.get(at).get(mo).f32Store(12)
}

/**
 * att_bwd_ds(s, dp, lse, delta, n): n 16-byte vectors (4 keys of one query each, queries 0… of the block in order,
 * wrapping every `n` is the caller's: it calls once per key panel) become P = exp(S − lse_q) in s and
 * dS = P ∘ (dP − Δ_q) in dp; lse and Δ hold one float per query.
 */
function addDs(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32', 'i32', 'i32'], [])
  const [s, dp, lse, delta, n] = [0, 1, 2, 3, 4].map(i => f.param(i)) as [Local, Local, Local, Local, Local]
  const q = f.local('i32')
  const x = f.local('v128')
  const e = f.local('v128')
  const p = f.local('v128')
  f.forRange(q, () => f.i32Const(0), () => f.get(n), 1, () => {
    f.get(s).v128Load().get(lse).v128Load32Splat().f32x4Sub().set(x)
    emitExp(f, x, e)
    f.set(p)
    f.get(s).get(p).v128Store()
    f.get(dp).get(dp).v128Load().get(delta).v128Load32Splat().f32x4Sub().get(p).f32x4Mul().v128Store()
    f.get(s).i32Const(16).i32Add().set(s)
    f.get(dp).i32Const(16).i32Add().set(dp)
    f.get(lse).i32Const(4).i32Add().set(lse)
    f.get(delta).i32Const(4).i32Add().set(delta)
  })
  return index
}

/**
 * att_bwd_t(dst, src, nk4, nq4, BQ, BK): the [key/4][query (BQ)][4] tile at src, nk4 key panels × nq4 query panels,
 * transposed into [query/4][key (BK)][4] at dst, a 4×4 block at a time with shuffles.
 */
function addTranspose(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [])
  const [dst, src, nk4, nq4, BQ, BK] = [0, 1, 2, 3, 4, 5].map(i => f.param(i)) as [Local, Local, Local, Local, Local, Local]
  const kp = f.local('i32')
  const qp = f.local('i32')
  const from = f.local('i32')
  const to = f.local('i32')
  const r = Array.from({ length: 4 }, () => f.local('v128'))
  const t = Array.from({ length: 4 }, () => f.local('v128'))
  f.forRange(kp, () => f.i32Const(0), () => f.get(nk4), 1, () => {
    f.forRange(qp, () => f.i32Const(0), () => f.get(nq4), 1, () => {
      // src: (kp·BQ + 4·qp)·16; dst: (qp·BK + 4·kp)·16
      f.get(src).get(kp).get(BQ).i32Mul().get(qp).i32Const(2).i32Shl().i32Add().i32Const(4).i32Shl().i32Add().set(from)
      f.get(dst).get(qp).get(BK).i32Mul().get(kp).i32Const(2).i32Shl().i32Add().i32Const(4).i32Shl().i32Add().set(to)
      for (let i = 0; i < 4; i++) f.get(from).v128Load(16 * i).set(r[i]!)
      f.get(r[0]!).get(r[1]!).i8x16Shuffle(lanes32([0, 4, 1, 5])).set(t[0]!)
      f.get(r[0]!).get(r[1]!).i8x16Shuffle(lanes32([2, 6, 3, 7])).set(t[1]!)
      f.get(r[2]!).get(r[3]!).i8x16Shuffle(lanes32([0, 4, 1, 5])).set(t[2]!)
      f.get(r[2]!).get(r[3]!).i8x16Shuffle(lanes32([2, 6, 3, 7])).set(t[3]!)
      f.get(to).get(t[0]!).get(t[2]!).i8x16Shuffle(lanes32([0, 1, 4, 5])).v128Store(0)
      f.get(to).get(t[0]!).get(t[2]!).i8x16Shuffle(lanes32([2, 3, 6, 7])).v128Store(16)
      f.get(to).get(t[1]!).get(t[3]!).i8x16Shuffle(lanes32([0, 1, 4, 5])).v128Store(32)
      f.get(to).get(t[1]!).get(t[3]!).i8x16Shuffle(lanes32([2, 3, 6, 7])).v128Store(48)
    })
  })
  return index
}

/** att_bwd_copy(dst, src, rows, vecs, dstStride, srcStride): rows of `vecs` 16-byte vectors (strides in bytes); zero-fill with src = −1 is not offered. */
function addCopy(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [])
  const [dst, src, rows, vecs, ds, ss] = [0, 1, 2, 3, 4, 5].map(i => f.param(i)) as [Local, Local, Local, Local, Local, Local]
  const r = f.local('i32')
  const v = f.local('i32')
  f.forRange(r, () => f.i32Const(0), () => f.get(rows), 1, () => {
    f.forRange(v, () => f.i32Const(0), () => f.get(vecs).i32Const(4).i32Shl(), 16, () => {
      f.get(dst).get(v).i32Add().get(src).get(v).i32Add().v128Load().v128Store()
    })
    f.get(dst).get(ds).i32Add().set(dst)
    f.get(src).get(ss).i32Add().set(src)
  })
  return index
}

/** into = min(a, b) (signed), where a and b each push one i32. */
function emitMin(f: FunctionBuilder, a: () => void, b: () => void, into: Local): void {
  a()
  b()
  a()
  b()
  f.i32LtS().select().set(into)
}

/** att_bwd(job, params): claim units (key blocks of one kv head) until none are left. */
function addBackwardFn(mod: ModuleBuilder, ctx: WasmPartContext, fns: { ds: number; transpose: number; copy: number; tile?: number }): number {
  const { ds, transpose, copy } = fns
  const isTile = fns.tile === undefined
  const { index, fn: f } = isTile ? mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], []) : mod.function(['i32', 'i32'], [], 'att_bwd')
  const job = f.param(0)
  const params = f.param(1)
  const field = (k: BwdParam): Local => {
    const l = f.local('i32')
    f.get(params).i32Load(k * 4).set(l)
    return l
  }
  const units = field(BwdParam.Units)
  const counter = field(BwdParam.Counter)
  const table = field(BwdParam.UnitTable)
  const G = field(BwdParam.G)
  const Tq = field(BwdParam.Tq)
  const TqPad = field(BwdParam.TqPad)
  const Tk = field(BwdParam.Tk)
  const TkPad = field(BwdParam.TkPad)
  const D = field(BwdParam.D)
  const DPad = field(BwdParam.DPad)
  const D4 = field(BwdParam.D4)
  const Dv = field(BwdParam.Dv)
  const DvPad = field(BwdParam.DvPad)
  const Dv4 = field(BwdParam.Dv4)
  const BQ = field(BwdParam.BQ)
  const BK = field(BwdParam.BK)
  const KB = field(BwdParam.KB)
  const causal = field(BwdParam.Causal)
  const delta = field(BwdParam.Delta)
  const QA = field(BwdParam.QA)
  const QB = field(BwdParam.QB)
  const OA = field(BwdParam.OA)
  const OB = field(BwdParam.OB)
  const DeltaA = field(BwdParam.Delta_)
  const LseA = field(BwdParam.Lse)
  const KB1 = field(BwdParam.KB1)
  const KB2 = field(BwdParam.KB2)
  const VB = field(BwdParam.VB)
  const DQPart = field(BwdParam.DQPart)
  const DK = field(BwdParam.DK)
  const DV = field(BwdParam.DV)
  const i32 = (): Local => f.local('i32')
  const u = i32(), p = i32(), z = i32(), bh0 = i32(), kb = i32(), k0 = i32(), nk = i32(), nk8 = i32(), h = i32(), bh = i32()
  const i0 = i32(), nq = i32(), nq4 = i32(), qp = i32(), kp = i32(), q = i32(), j = i32(), e = i32(), full = i32(), x = i32()
  const sBuf = i32(), dpBuf = i32(), tBuf = i32(), dK = i32(), dV = i32()
  const tile = (): void => void f.get(BQ).get(BK).i32Mul().i32Const(2).i32Shl()
  // the tile function's parameters: (slot, params, bh, z, kb, i0); the job's: (job, params)
  if (isTile) f.get(job).tee(sBuf)
  else f.get(params).i32Load(BwdParam.Scratch * 4).get(job).get(params).i32Load(BwdParam.SlotBytes * 4).i32Mul().i32Add().tee(sBuf)
  tile()
  f.i32Add().tee(dpBuf)
  tile()
  f.i32Add().tee(tBuf)
  tile()
  f.i32Add().tee(dK)
  f.get(BK).get(DPad).i32Mul().i32Const(2).i32Shl().i32Add().set(dV)
  const min = (a: () => void, b: () => void, into: Local): void => emitMin(f, a, b, into)
  const micro = (panels: boolean, a: () => void, b: () => void, c: () => void, kc: () => void, nPanels: () => void, bStride: () => void, ldc: () => void, acc: number, vStride?: () => void): void => {
    a()
    b()
    c()
    kc()
    nPanels()
    bStride()
    ldc()
    f.i32Const(acc)
    if (panels) vStride!()
    f.call(panels ? ctx.microPanels : ctx.micro)
  }

  if (isTile) {
    f.get(f.param(2)).set(bh)
    f.get(f.param(3)).set(z)
    f.get(f.param(4)).tee(kb).get(BK).i32Mul().set(k0)
    f.get(f.param(5)).set(i0)
    min(() => f.get(BK), () => f.get(Tk).get(k0).i32Sub(), nk)
    f.get(nk).i32Const(7).i32Add().i32Const(3).i32ShrS().set(nk8)
    min(() => f.get(BQ), () => f.get(Tq).get(i0).i32Sub(), nq)
    f.get(nq).i32Const(3).i32Add().i32Const(-4).i32And().set(nq4)
    // ---- S = Qs·Kᵀ, dP = dO·Vᵀ as [key/4][query][4] ------------------------------------------------------
    f.forRange(qp, () => f.i32Const(0), () => f.get(nq4), 4, () => {
      micro(
        true,
        () => f.get(QA).get(bh).get(TqPad).i32Mul().get(i0).i32Add().get(qp).i32Add().get(D).i32Mul().i32Const(2).i32Shl().i32Add(),
        () => f.get(KB1).get(z).get(TkPad).i32Mul().get(k0).i32Add().get(D).i32Mul().i32Const(2).i32Shl().i32Add(),
        () => f.get(sBuf).get(qp).i32Const(4).i32Shl().i32Add(),
        () => f.get(D),
        () => f.get(nk8),
        () => f.get(D).i32Const(5).i32Shl(),
        () => f.i32Const(16),
        0,
        () => f.get(BQ).i32Const(4).i32Shl(),
      )
      micro(
        true,
        () => f.get(OA).get(bh).get(TqPad).i32Mul().get(i0).i32Add().get(qp).i32Add().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add(),
        () => f.get(VB).get(z).get(TkPad).i32Mul().get(k0).i32Add().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add(),
        () => f.get(dpBuf).get(qp).i32Const(4).i32Shl().i32Add(),
        () => f.get(Dv),
        () => f.get(nk8),
        () => f.get(Dv).i32Const(5).i32Shl(),
        () => f.i32Const(16),
        0,
        () => f.get(BQ).i32Const(4).i32Shl(),
      )
    })
    // ---- mask: keys past a row's causal limit or past Tk get S = −∞ (the first query sees the tile's
    // last padded key and the tile ends within Tk: nothing to do) ------------------------------------------
    f.get(k0).get(nk8).i32Const(3).i32Shl().i32Add().set(e) // padded end of the tile
    f.get(e).get(Tk).i32LeS().get(causal).i32Eqz().get(e).i32Const(1).i32Sub().get(i0).get(delta).i32Add().i32LeS().i32Add().i32Const(0).i32GtS().i32And().set(full)
    f.get(full).i32Eqz().if(() => {
      f.forRange(q, () => f.i32Const(0), () => f.get(nq), 1, () => {
        // first masked key of row i0 + q: min(Tk, i0 + q + delta + 1) if causal, else Tk; at least k0
        f.get(causal).if(
          () => min(() => f.get(Tk), () => f.get(i0).get(q).i32Add().get(delta).i32Add().i32Const(1).i32Add(), j),
          () => f.get(Tk).set(j),
        )
        f.get(j).get(k0).get(j).get(k0).i32GtS().select().set(j)
        f.forRange(j, () => f.get(j), () => f.get(e), 1, () => {
          // sBuf + (((j − k0)/4)·BQ + q)·16 + (j % 4)·4
          f.get(sBuf).get(j).get(k0).i32Sub().i32Const(2).i32ShrS().get(BQ).i32Mul().get(q).i32Add().i32Const(4).i32Shl().i32Add()
          f.get(j).i32Const(3).i32And().i32Const(2).i32Shl().i32Add()
          f.f32Const(-Infinity).f32Store()
        })
      })
    })
    // ---- P and dS in place, one key panel at a time -----------------------------------------------------
    f.forRange(kp, () => f.i32Const(0), () => f.get(nk8).i32Const(1).i32Shl(), 1, () => {
      f.get(kp).get(BQ).i32Mul().i32Const(4).i32Shl().set(x)
      f.get(sBuf).get(x).i32Add()
      f.get(dpBuf).get(x).i32Add()
      f.get(LseA).get(bh).get(TqPad).i32Mul().get(i0).i32Add().i32Const(2).i32Shl().i32Add()
      f.get(DeltaA).get(bh).get(TqPad).i32Mul().get(i0).i32Add().i32Const(2).i32Shl().i32Add()
      f.get(nq4)
      f.call(ds)
      // dV[keys of kp] += Pᵀ·dO and dK += dSᵀ·Qs over this block's queries
      micro(
        false,
        () => f.get(sBuf).get(x).i32Add(),
        () => f.get(OB).get(bh).get(TqPad).i32Mul().get(DvPad).i32Mul().get(i0).i32Const(3).i32Shl().i32Add().i32Const(2).i32Shl().i32Add(),
        () => f.get(dV).get(kp).get(DvPad).i32Mul().i32Const(4).i32Shl().i32Add(),
        () => f.get(nq4),
        () => f.get(DvPad).i32Const(3).i32ShrS(),
        () => f.get(TqPad).i32Const(5).i32Shl(),
        () => f.get(DvPad).i32Const(2).i32Shl(),
        1,
      )
      micro(
        false,
        () => f.get(dpBuf).get(x).i32Add(),
        () => f.get(QB).get(bh).get(TqPad).i32Mul().get(DPad).i32Mul().get(i0).i32Const(3).i32Shl().i32Add().i32Const(2).i32Shl().i32Add(),
        () => f.get(dK).get(kp).get(DPad).i32Mul().i32Const(4).i32Shl().i32Add(),
        () => f.get(nq4),
        () => f.get(DPad).i32Const(3).i32ShrS(),
        () => f.get(TqPad).i32Const(5).i32Shl(),
        () => f.get(DPad).i32Const(2).i32Shl(),
        1,
      )
    })
    // ---- dQpart = dS·K: dS transposed to [query/4][key][4] -----------------------------------------------
    f.get(tBuf).get(dpBuf).get(nk8).i32Const(1).i32Shl().get(nq4).i32Const(2).i32ShrS().get(BQ).get(BK)
    f.call(transpose)
    f.forRange(qp, () => f.i32Const(0), () => f.get(nq4), 4, () => {
      micro(
        false,
        () => f.get(tBuf).get(qp).get(BK).i32Mul().i32Const(2).i32Shl().i32Add(),
        () => f.get(KB2).get(z).get(TkPad).i32Mul().get(DPad).i32Mul().get(k0).i32Const(3).i32Shl().i32Add().i32Const(2).i32Shl().i32Add(),
        () =>
          f.get(DQPart).get(bh).get(KB).i32Mul().get(kb).i32Add().get(TqPad).i32Mul().get(i0).i32Add().get(qp).i32Add().get(DPad).i32Mul().i32Const(2).i32Shl().i32Add(),
        () => f.get(nk8).i32Const(3).i32Shl(),
        () => f.get(DPad).i32Const(3).i32ShrS(),
        () => f.get(TkPad).i32Const(5).i32Shl(),
        () => f.get(DPad).i32Const(2).i32Shl(),
        0,
      )
    })
    void [units, counter, table, G, KB, DK, DV, D4, Dv4, copy, u, p, bh0, h]
    return index
  }
  f.block(done => {
    f.loop(next => {
      if (ctx.shared) f.get(counter).i32Const(1).i32AtomicRmwAdd().tee(u)
      else f.get(counter).i32Load().tee(u).get(counter).get(u).i32Const(1).i32Add().i32Store()
      f.get(units).i32GeS().brIf(done)
      f.get(table).get(u).i32Const(BWD_UNIT_WORDS * 4).i32Mul().i32Add().tee(p).i32Load(0).set(z)
      f.get(p).i32Load(4).set(bh0)
      f.get(p).i32Load(8).tee(kb).get(BK).i32Mul().set(k0)
      min(() => f.get(BK), () => f.get(Tk).get(k0).i32Sub(), nk)
      f.get(nk).i32Const(7).i32Add().i32Const(3).i32ShrS().set(nk8)
      // dK, dV accumulators of the block's keys start at zero (they are contiguous in the slot)
      f.forRange(x, () => f.get(dK), () => f.get(dV).get(BK).get(DvPad).i32Mul().i32Const(2).i32Shl().i32Add(), 16, () => {
        f.get(x).v128Zero().v128Store()
      })
      f.forRange(h, () => f.i32Const(0), () => f.get(G), 1, () => {
        f.get(bh0).get(h).i32Add().set(bh)
        f.forRange(i0, () => f.i32Const(0), () => f.get(Tq), 0, () => {
          min(() => f.get(BQ), () => f.get(Tq).get(i0).i32Sub(), nq)
          f.get(nq).i32Const(3).i32Add().i32Const(-4).i32And().set(nq4)
          // a query block sees this key block unless causal and its last row is before the first key
          f.get(causal).i32Eqz().get(i0).get(nq).i32Add().i32Const(1).i32Sub().get(delta).i32Add().get(k0).i32GeS().i32Add().i32Const(0).i32GtS()
          f.if(() => {
            // one (query head, query block) tile: a function of its own, so the engine optimises it after its first calls
            f.get(sBuf).get(params).get(bh).get(z).get(kb).get(i0)
            f.call(fns.tile!)
          })
          // next query block (forRange's step is 0: the block size is a local)
          f.get(i0).get(BQ).i32Add().set(i0)
        })
      })
      // ---- the block's dK, dV rows out (row strides D4, Dv4) -------------------------------------------------
      f.get(DK).get(z).get(Tk).i32Mul().get(k0).i32Add().get(D4).i32Mul().i32Const(2).i32Shl().i32Add()
      f.get(dK).get(nk).get(D4).i32Const(2).i32ShrS().get(D4).i32Const(2).i32Shl().get(DPad).i32Const(2).i32Shl()
      f.call(copy)
      f.get(DV).get(z).get(Tk).i32Mul().get(k0).i32Add().get(Dv4).i32Mul().i32Const(2).i32Shl().i32Add()
      f.get(dV).get(nk).get(Dv4).i32Const(2).i32ShrS().get(Dv4).i32Const(2).i32Shl().get(DvPad).i32Const(2).i32Shl()
      f.call(copy)
      f.br(next)
    })
  })
  void [Dv, ds, transpose, qp, kp, q, j, e, full, tBuf, dpBuf, micro]
  return index
}


function addBackwardJob(mod: ModuleBuilder, ctx: WasmPartContext): void {
  const fns = { ds: addDs(mod), transpose: addTranspose(mod), copy: addCopy(mod) }
  const tile = addBackwardFn(mod, ctx, fns)
  addBackwardFn(mod, ctx, { ...fns, tile })
}

/**
 * att_bwd_dq(job, params): dQ[bh][i] = scale · Σ_kb dQpart[bh][kb][i] over the key blocks the row's query block
 * saw, in key-block order; query heads bh ≡ job (mod Jobs). Rows of a block that saw no key block get 0.
 */
function addDqSum(mod: ModuleBuilder): void {
  const f = mod.function(['i32', 'i32'], [], 'att_bwd_dq').fn
  const job = f.param(0)
  const params = f.param(1)
  const field = (k: BwdParam): Local => {
    const l = f.local('i32')
    f.get(params).i32Load(k * 4).set(l)
    return l
  }
  const [Tq, TqPad, Tk, DPad, D4, BQ, BK, KB, causal, delta, DQPart, DQ, qHeads, jobs, qHead0] = [
    BwdParam.Tq, BwdParam.TqPad, BwdParam.Tk, BwdParam.DPad, BwdParam.D4, BwdParam.BQ, BwdParam.BK, BwdParam.KB, BwdParam.Causal, BwdParam.Delta, BwdParam.DQPart,
    BwdParam.DQ, BwdParam.QHeads, BwdParam.Jobs, BwdParam.QHead0,
  ].map(field) as Local[] as [Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local]
  const scale = f.local('f32')
  f.get(params).f32Load(BwdParam.Scale * 4).set(scale)
  const sv = f.local('v128')
  f.get(scale).f32x4Splat().set(sv)
  const bh = f.local('i32'), i0 = f.local('i32'), nq = f.local('i32'), kbEnd = f.local('i32'), r = f.local('i32'), d = f.local('i32'), kb = f.local('i32')
  const src = f.local('i32'), dst = f.local('i32'), step = f.local('i32')
  const acc = f.local('v128')
  // bytes between the same row of consecutive key blocks
  f.get(TqPad).get(DPad).i32Mul().i32Const(2).i32Shl().set(step)
  f.forRange(bh, () => f.get(job).get(qHead0).i32Add(), () => f.get(qHeads), 1, () => {
    f.forRange(i0, () => f.i32Const(0), () => f.get(Tq), 0, () => {
      emitMin(f, () => f.get(BQ), () => f.get(Tq).get(i0).i32Sub(), nq)
      // key blocks seen: all, or those starting at or before the causal limit of the block's last row (≥ 0)
      f.get(KB).set(kbEnd)
      f.get(causal).if(() => {
        f.get(i0).get(nq).i32Add().i32Const(1).i32Sub().get(delta).i32Add().tee(kbEnd).i32Const(0).i32LtS()
        f.if(
          () => f.i32Const(0).set(kbEnd),
          () => {
            f.get(kbEnd).get(BK).i32DivS().i32Const(1).i32Add().set(kbEnd)
            emitMin(f, () => f.get(kbEnd), () => f.get(KB), kbEnd)
          },
        )
      })
      f.forRange(r, () => f.get(i0), () => f.get(i0).get(nq).i32Add(), 1, () => {
        f.get(DQ).get(bh).get(Tq).i32Mul().get(r).i32Add().get(D4).i32Mul().i32Const(2).i32Shl().i32Add().set(dst)
        f.forRange(d, () => f.i32Const(0), () => f.get(D4).i32Const(2).i32Shl(), 16, () => {
          f.get(DQPart).get(bh).get(KB).i32Mul().get(TqPad).i32Mul().get(r).i32Add().get(DPad).i32Mul().i32Const(2).i32Shl().i32Add().get(d).i32Add().set(src)
          f.v128Zero().set(acc)
          f.forRange(kb, () => f.i32Const(0), () => f.get(kbEnd), 1, () => {
            f.get(acc).get(src).v128Load().f32x4Add().set(acc)
            f.get(src).get(step).i32Add().set(src)
          })
          f.get(dst).get(d).i32Add().get(acc).get(sv).f32x4Mul().v128Store()
        })
      })
      f.get(i0).get(BQ).i32Add().set(i0)
    })
    f.get(bh).get(jobs).i32Add().i32Const(1).i32Sub().set(bh)
  })
  void Tk
}

export function addAttentionBackward(mod: ModuleBuilder, ctx: WasmPartContext): void {
  const { mr, nr } = ctx.shape
  if (mr !== 4 || nr !== 8) throw new Error('att_bwd: written for the 4×8 micro-kernel')
  addBackwardPack(mod)
  addBackwardJob(mod, ctx)
  addDqSum(mod)
}
