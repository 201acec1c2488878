import type { FunctionBuilder, Local, ModuleBuilder, WasmPartContext } from '@heed/tensor/cpu'

/**
 * The float32 attention forward (no mask or causal), for attentionForward.ts. One work unit is a block of BQ query
 * rows of one head; a job claims units from a shared counter until none are left, so the pool balances the causal
 * triangle by itself (the host lists the costly units first). Per unit, in the job's own scratch slot, with
 * FlashAttention's online softmax over chunks of KC keys (everything a chunk touches stays in L2):
 *
 * 1. Sᵀ = K·(scale·Q_blk)ᵀ for the chunk's keys with the GEMM micro-kernel: the packed K panels are its A operand
 *    and the block's queries, packed k-major in 8-column panels, its B. The tiles are stored as 4-query panels
 *    ([query panel][key][4 lanes]), which is exactly the packed A layout P·V needs, so P is never repacked.
 * 2. Per 4-query panel: causal cut (keys past the panel's last query are never touched; the ≤ 3 keys inside its
 *    diagonal get −∞ per lane), running max, p = exp(s − max) in place, running sum rescaled to the new max — all
 *    4 rows in one vector.
 * 3. O_panel = O_panel·corr + P·V with the micro-kernel; after the last chunk out = O / l, and (max, l) per row go
 *    to the host for lse = max + log l.
 *
 * Everything is float32 with float32 accumulation: sums over keys are blocked (per chunk of KC, then across
 * chunks), so their rounding error grows with KC + Tk/KC rather than with Tk.
 *
 * att_fwd(job, params): `params` is the byte address of the i32 table below (more fields than the pool passes).
 */
export const enum AttParam {
  Units,
  Counter,
  UnitTable,
  Tq,
  Tk,
  D,
  DvPad,
  Dv,
  BQ,
  Causal,
  /** qOffset − kOffset: query i may see key j when j ≤ i + delta. */
  Delta,
  Q,
  K,
  V,
  Out,
  M,
  L,
  TqPad,
  Scratch,
  SlotBytes,
  /** float32 bits of the score scale */
  Scale,
  Count,
}

/**
 * att_pack(job, params) fields: job j packs the kv heads z ≡ j (mod Jobs) of K and V from their row-major copies, and
 * scans the query heads ≡ j for their largest |q|; it writes max |q|, max |k|, max |v| (NaN if one was NaN; ∞ if one
 * was infinite) as three float32 at Stats + 16·j, for the host to decide whether float32 scores are safe.
 */
export const enum PackParam {
  Jobs,
  KvHeads,
  QHeads,
  /** keys packed per head (the leading Tk of each head's TkStride rows) */
  Tk,
  TkStride,
  D,
  Dv,
  DvPad,
  RawK,
  RawV,
  K,
  V,
  Q,
  /** floats per query head: Tq·D */
  QLen,
  Stats,
  Count,
}

/** Words per unit in the unit table: head row (b·H + h), first query row, kv head (b·Hkv + h/g), unused. */
export const UNIT_WORDS = 4
/** Keys per chunk: per score block, partial row sum and P·V micro-kernel call. */
export const ATT_KC = 256

const LOG2E = Math.LOG2E
// ln 2 = LN2_HI + LN2_LO with LN2_HI short enough (9 bits) that n·LN2_HI is exact for the |n| ≤ 127 used here
const LN2_HI = 0.693359375
const LN2_LO = -2.12194440e-4
// below this exp(x) < 2^-126: the exponent trick then builds 0 (n = −127), which is what a masked −∞ must give
const EXP_MIN = -88

/**
 * exp of the f32x4 in `x` (clobbered; lanes ≤ 0 or −∞), left on the stack. Range reduction x = n·ln2 + r with
 * |r| ≤ ln2/2, a degree-7 Taylor polynomial for e^r (truncation < 6e-9 relative, under the float32 rounding), and
 * 2^n built in the exponent bits.
 */
export function emitExp(f: FunctionBuilder, x: Local, n: Local): void {
  f.get(x).f32x4Const(EXP_MIN).f32x4Pmax().set(x)
  f.get(x).f32x4Const(LOG2E).f32x4Mul().f32x4Nearest().set(n)
  f.get(x).get(n).f32x4Const(LN2_HI).f32x4Mul().f32x4Sub().get(n).f32x4Const(LN2_LO).f32x4Mul().f32x4Sub().set(x)
  let fact = 1
  for (let i = 2; i <= 7; i++) fact *= i
  f.f32x4Const(1 / fact)
  for (let i = 6; i >= 0; i--) {
    fact /= i + 1
    f.get(x).f32x4Mul().f32x4Const(1 / fact).f32x4Add()
  }
  f.get(n).i32x4TruncSatF32x4S().i32x4Const(127).i32x4Add().i32Const(23).i32x4Shl().f32x4Mul()
}

/** into = min(a, b) (signed), where a and b each push one i32. */
function emitMin(f: FunctionBuilder, a: () => void, b: () => void, into: Local): void {
  a()
  b()
  a()
  b()
  f.i32LtS().select().set(into)
}

/**
 * att_pack_q(dst, src, nq, BQ, D, scale): rows src[0..nq) of width D, times scale, into B panels of 8 queries,
 * d-major inside ([query/8][d][query%8]); rows nq..BQ are zero.
 */
function addPackQ(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'f32'], [])
  const [dst, src, nq, BQ, D] = [0, 1, 2, 3, 4].map(i => f.param(i)) as [Local, Local, Local, Local, Local]
  const scale = f.param(5)
  const c = f.local('i32')
  const d = f.local('i32')
  const p = f.local('i32')
  const from = f.local('i32')
  f.forRange(c, () => f.i32Const(0), () => f.get(BQ), 1, () => {
    // destination of (c, d = 0): panel c/8 starts (c − c%8)·D floats in
    f.get(dst).get(c).get(c).i32Const(7).i32And().i32Sub().get(D).i32Mul().get(c).i32Const(7).i32And().i32Add().i32Const(2).i32Shl().i32Add().set(p)
    f.get(c).get(nq).i32LtS()
    f.if(
      () => {
        f.get(src).get(c).get(D).i32Mul().i32Const(2).i32Shl().i32Add().set(from)
        f.forRange(d, () => f.i32Const(0), () => f.get(D), 1, () => {
          f.get(p).get(from).f32Load().get(scale).f32Mul().f32Store()
          f.get(from).i32Const(4).i32Add().set(from)
          f.get(p).i32Const(32).i32Add().set(p)
        })
      },
      () => {
        f.forRange(d, () => f.i32Const(0), () => f.get(D), 1, () => {
          f.get(p).f32Const(0).f32Store()
          f.get(p).i32Const(32).i32Add().set(p)
        })
      },
    )
  })
  return index
}

/** Bytes of a 4-query panel's online-softmax state: running max, running sum, and the last rescale factor. */
export const STATE_BYTES = 48

/**
 * att_softmax(base, n, st): one key chunk of a 4-query panel of Sᵀ ([key][4 lanes] from base, n > 0 keys) becomes
 * P = exp(s − m) in place, m the running max over this and earlier chunks (the state at st: m, l, corr as f32x4).
 * l becomes l·corr + Σ p with corr = exp(m_old − m), the factor the caller then applies to O. A function of its own
 * rather than a loop inside att_fwd, which runs once per job: the engine optimises a function for its next call, so
 * only a frequently called one leaves the baseline tier within the first forward.
 */
function addSoftmaxChunk(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32'], [])
  const [base, n, st] = [0, 1, 2].map(i => f.param(i)) as [Local, Local, Local]
  const p = f.local('i32')
  const pEnd = f.local('i32')
  const mOld = f.local('v128')
  const mv = f.local('v128')
  const lc = f.local('v128')
  const x = f.local('v128')
  const e = f.local('v128')
  f.get(st).v128Load(0).tee(mOld).set(mv)
  f.get(base).get(n).i32Const(4).i32Shl().i32Add().set(pEnd)
  f.forRange(p, () => f.get(base), () => f.get(pEnd), 16, () => {
    f.get(mv).get(p).v128Load().f32x4Pmax().set(mv)
  })
  // m starts at −FLT_MAX, so a lane that has seen only masked keys keeps a finite max: its p are exp(−∞) = 0
  f.get(mOld).get(mv).f32x4Sub().set(x)
  emitExp(f, x, e)
  f.set(x)
  f.get(st).get(x).v128Store(32)
  f.v128Zero().set(lc)
  f.forRange(p, () => f.get(base), () => f.get(pEnd), 16, () => {
    f.get(p).v128Load().get(mv).f32x4Sub().set(x)
    emitExp(f, x, e)
    f.tee(x)
    f.get(p).get(x).v128Store()
    f.get(lc).f32x4Add().set(lc)
  })
  f.get(st).get(mv).v128Store(0)
  f.get(st).get(st).v128Load(16).get(st).v128Load(32).f32x4Mul().get(lc).f32x4Add().v128Store(16)
  return index
}

/** att_rescale(o, st, DvPad): rows 0…3 of O (stride DvPad floats) times the 4 lanes of the factor at st + 32. */
function addRescale(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32'], [])
  const [o, st, DvPad] = [0, 1, 2].map(i => f.param(i)) as [Local, Local, Local]
  const p = f.local('i32')
  const end = f.local('i32')
  const c = f.local('v128')
  for (let r = 0; r < 4; r++) {
    f.get(st).v128Load32Splat(32 + 4 * r).set(c)
    f.get(o).get(DvPad).i32Const(2).i32Shl().i32Add().set(end)
    f.forRange(p, () => f.get(o), () => f.get(end), 16, () => {
      f.get(p).get(p).v128Load().get(c).f32x4Mul().v128Store()
    })
    f.get(end).set(o)
  }
  return index
}

/** att_store_out(out, o, lAt, nq, Dv, DvPad): rows of O (stride DvPad) divided by their l into out (stride Dv); 0 where l = 0. */
function addStoreOut(mod: ModuleBuilder): number {
  const { index, fn: f } = mod.function(['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], [])
  const [out, o, lAt, nq, Dv, DvPad] = [0, 1, 2, 3, 4, 5].map(i => f.param(i)) as [Local, Local, Local, Local, Local, Local]
  const r = f.local('i32')
  const d = f.local('i32')
  const src = f.local('i32')
  const l = f.local('f32')
  f.forRange(r, () => f.i32Const(0), () => f.get(nq), 1, () => {
    f.get(lAt).get(r).i32Const(2).i32Shl().i32Add().f32Load().set(l)
    f.get(o).get(r).get(DvPad).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    f.get(l).f32Const(0).f32Gt()
    f.if(
      () => {
        f.forRange(d, () => f.i32Const(0), () => f.get(Dv), 1, () => {
          f.get(out).get(src).f32Load().get(l).f32Div().f32Store()
          f.get(out).i32Const(4).i32Add().set(out)
          f.get(src).i32Const(4).i32Add().set(src)
        })
      },
      () => {
        // a row that saw no key: the identity of the attention-state merge, never 0/0
        f.forRange(d, () => f.i32Const(0), () => f.get(Dv), 1, () => {
          f.get(out).f32Const(0).f32Store()
          f.get(out).i32Const(4).i32Add().set(out)
        })
      },
    )
  })
  return index
}

/** att_pack: see PackParam. Scalar loops (the transposes need no more), spread over the pool with the heads. */
function addPack(mod: ModuleBuilder): void {
  const f = mod.function(['i32', 'i32'], [], 'att_pack').fn
  const job = f.param(0)
  const params = f.param(1)
  const field = (k: PackParam): Local => {
    const l = f.local('i32')
    f.get(params).i32Load(k * 4).set(l)
    return l
  }
  const jobs = field(PackParam.Jobs)
  const kvHeads = field(PackParam.KvHeads)
  const qHeads = field(PackParam.QHeads)
  const Tk = field(PackParam.Tk)
  const TkStride = field(PackParam.TkStride)
  const D = field(PackParam.D)
  const Dv = field(PackParam.Dv)
  const DvPad = field(PackParam.DvPad)
  const rawK = field(PackParam.RawK)
  const rawV = field(PackParam.RawV)
  const kA = field(PackParam.K)
  const vA = field(PackParam.V)
  const qA = field(PackParam.Q)
  const qLen = field(PackParam.QLen)
  const z = f.local('i32')
  const j = f.local('i32')
  const d = f.local('i32')
  const src = f.local('i32')
  const dst = f.local('i32')
  const end = f.local('i32')
  const kPad = f.local('i32')
  const x = f.local('f32')
  const mq = f.local('f32')
  const mk = f.local('f32')
  const mvs = f.local('f32')
  const acc = f.local('v128')
  f.get(Tk).i32Const(3).i32Add().i32Const(-4).i32And().set(kPad)
  f.forRange(z, () => f.get(job), () => f.get(kvHeads), 1, () => {
    // K: (key j, d) to [j/4][d][j%4] of this head's panels
    f.get(rawK).get(z).get(TkStride).i32Mul().get(D).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    f.forRange(j, () => f.i32Const(0), () => f.get(kPad), 1, () => {
      f.get(kA).get(z).get(kPad).i32Mul().get(j).i32Const(-4).i32And().i32Add().get(D).i32Mul().get(j).i32Const(3).i32And().i32Add().i32Const(2).i32Shl().i32Add().set(dst)
      f.forRange(d, () => f.i32Const(0), () => f.get(D), 1, () => {
        f.get(j).get(Tk).i32LtS()
        f.if(
          () => {
            f.get(src).f32Load().set(x)
            f.get(src).i32Const(4).i32Add().set(src)
          },
          () => f.f32Const(0).set(x),
        )
        f.get(dst).get(x).f32Store()
        f.get(mk).get(x).f32Abs().f32Max().set(mk)
        f.get(dst).i32Const(16).i32Add().set(dst)
      })
    })
    // V: (key j, column c) to [c/8][j][c%8], columns past Dv zero
    f.get(rawV).get(z).get(TkStride).i32Mul().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add().set(src)
    f.forRange(j, () => f.i32Const(0), () => f.get(Tk), 1, () => {
      f.forRange(d, () => f.i32Const(0), () => f.get(DvPad), 1, () => {
        f.get(d).get(Dv).i32LtS()
        f.if(
          () => {
            f.get(src).f32Load().set(x)
            f.get(src).i32Const(4).i32Add().set(src)
          },
          () => f.f32Const(0).set(x),
        )
        // vA + ((z·Tk·DvPad) + (d − d%8)·Tk + j·8 + d%8)·4
        f.get(vA).get(z).get(Tk).i32Mul().get(DvPad).i32Mul().get(d).i32Const(-8).i32And().get(Tk).i32Mul().i32Add().get(j).i32Const(3).i32Shl().i32Add().get(d).i32Const(7).i32And().i32Add().i32Const(2).i32Shl().i32Add()
        f.get(x).f32Store()
        f.get(mvs).get(x).f32Abs().f32Max().set(mvs)
      })
    })
    // step by the job count (forRange adds the 1)
    f.get(z).get(jobs).i32Add().i32Const(1).i32Sub().set(z)
  })
  // Q: |q| maxima, four lanes at a time (f32x4.max propagates NaN like f32.max)
  f.v128Zero().set(acc)
  f.forRange(z, () => f.get(job), () => f.get(qHeads), 1, () => {
    f.get(qA).get(z).get(qLen).i32Mul().i32Const(2).i32Shl().i32Add().tee(src).get(qLen).i32Const(-4).i32And().i32Const(2).i32Shl().i32Add().set(end)
    f.forRange(src, () => f.get(src), () => f.get(end), 16, () => {
      f.get(acc).get(src).v128Load().f32x4Abs().f32x4Max().set(acc)
    })
    f.get(qA).get(z).i32Const(1).i32Add().get(qLen).i32Mul().i32Const(2).i32Shl().i32Add().set(end)
    f.forRange(src, () => f.get(src), () => f.get(end), 4, () => {
      f.get(mq).get(src).f32Load().f32Abs().f32Max().set(mq)
    })
    f.get(z).get(jobs).i32Add().i32Const(1).i32Sub().set(z)
  })
  for (let lane = 0; lane < 4; lane++) f.get(mq).get(acc).f32x4ExtractLane(lane).f32Max().set(mq)
  f.get(params).i32Load(PackParam.Stats * 4).get(job).i32Const(4).i32Shl().i32Add().set(dst)
  f.get(dst).get(mq).f32Store(0)
  f.get(dst).get(mk).f32Store(4)
  f.get(dst).get(mvs).f32Store(8)
}

export function addAttentionForward(mod: ModuleBuilder, opts: WasmPartContext): void {
  const { mr, nr } = opts.shape
  if (mr !== 4 || nr !== 8) throw new Error('att_fwd: written for the 4×8 micro-kernel')
  addPack(mod)
  const packQ = addPackQ(mod)
  const softmax = addSoftmaxChunk(mod)
  const rescale = addRescale(mod)
  const storeOut = addStoreOut(mod)
  const f = mod.function(['i32', 'i32'], [], 'att_fwd').fn
  const job = f.param(0)
  const params = f.param(1)
  // parameters read from the table
  const field = (k: AttParam): Local => {
    const l = f.local('i32')
    f.get(params).i32Load(k * 4).set(l)
    return l
  }
  const units = field(AttParam.Units)
  const counter = field(AttParam.Counter)
  const table = field(AttParam.UnitTable)
  const Tq = field(AttParam.Tq)
  const Tk = field(AttParam.Tk)
  const D = field(AttParam.D)
  const DvPad = field(AttParam.DvPad)
  const Dv = field(AttParam.Dv)
  const BQ = field(AttParam.BQ)
  const causal = field(AttParam.Causal)
  const delta = field(AttParam.Delta)
  const qA = field(AttParam.Q)
  const kA = field(AttParam.K)
  const vA = field(AttParam.V)
  const outA = field(AttParam.Out)
  const mA = field(AttParam.M)
  const lA = field(AttParam.L)
  const TqPad = field(AttParam.TqPad)
  const i32 = (): Local => f.local('i32')
  // unit: head row, first query, kv head, rows; keys seen by the block
  const u = i32(), bh = i32(), i0 = i32(), z = i32(), nq = i32(), kend = i32()
  // scratch: packed queries, O, Sᵀ chunk panels, softmax state; this head's packed K and V
  const qpack = i32(), oBuf = i32(), sBuf = i32(), stBuf = i32(), kBase = i32(), vBase = i32()
  // loop counters and addresses
  const j = i32(), qp = i32(), kq = i32(), k0 = i32(), n = i32(), chunkEnd = i32(), base = i32(), st = i32(), o = i32(), lim = i32(), r = i32(), p = i32()
  const scale = f.local('f32')
  f.get(params).f32Load(AttParam.Scale * 4).set(scale)
  // this job's scratch slot: packed queries (D × BQ), O (BQ × DvPad), Sᵀ (BQ/4 panels × KC keys × 4), state (BQ/4)
  f.get(params).i32Load(AttParam.Scratch * 4).get(job).get(params).i32Load(AttParam.SlotBytes * 4).i32Mul().i32Add().tee(qpack)
  f.get(D).get(BQ).i32Mul().i32Const(2).i32Shl().i32Add().tee(oBuf)
  f.get(BQ).get(DvPad).i32Mul().i32Const(2).i32Shl().i32Add().tee(sBuf)
  f.get(BQ).i32Const(ATT_KC * 4).i32Mul().i32Add().set(stBuf)
  const min = (a: () => void, b: () => void, into: Local): void => emitMin(f, a, b, into)

  f.block(done => {
    f.loop(next => {
      // claim a unit
      if (opts.shared) f.get(counter).i32Const(1).i32AtomicRmwAdd().tee(u)
      else f.get(counter).i32Load().tee(u).get(counter).get(u).i32Const(1).i32Add().i32Store()
      f.get(units).i32GeS().brIf(done)
      f.get(table).get(u).i32Const(UNIT_WORDS * 4).i32Mul().i32Add().tee(p).i32Load(0).set(bh)
      f.get(p).i32Load(4).set(i0)
      f.get(p).i32Load(8).set(z)
      min(() => f.get(BQ), () => f.get(Tq).get(i0).i32Sub(), nq)
      // keys the block can see: [0, kend)
      f.get(causal).if(
        () => min(() => f.get(Tk), () => f.get(i0).get(nq).i32Add().get(delta).i32Add(), kend),
        () => f.get(Tk).set(kend),
      )

      // ---- scale·Q_blk as B panels ------------------------------------------------------------------------------
      f.get(qpack).get(qA).get(bh).get(Tq).i32Mul().get(i0).i32Add().get(D).i32Mul().i32Const(2).i32Shl().i32Add().get(nq).get(BQ).get(D).get(scale)
      f.call(packQ)

      // ---- online softmax state per 4-query panel: m = −FLT_MAX, l = 0 ---------------------------------------------
      f.forRange(qp, () => f.i32Const(0), () => f.get(BQ), 4, () => {
        f.get(stBuf).get(qp).i32Const(2).i32ShrS().i32Const(STATE_BYTES).i32Mul().i32Add().tee(p).f32x4Const(-3.4028234663852886e38).v128Store(0)
        f.get(p).v128Zero().v128Store(16)
      })
      // K panels of this kv head (z · kPad · D floats in) and V panels (z · Tk · DvPad floats in)
      f.get(kA).get(z).get(Tk).i32Const(3).i32Add().i32Const(-4).i32And().i32Mul().get(D).i32Mul().i32Const(2).i32Shl().i32Add().set(kBase)
      f.get(vA).get(z).get(Tk).i32Mul().get(DvPad).i32Mul().i32Const(2).i32Shl().i32Add().set(vBase)

      // ---- key chunks of KC: scores, softmax and P·V of a chunk while it is in L2 ------------------------------
      f.forRange(k0, () => f.i32Const(0), () => f.get(kend), ATT_KC, () => {
        // Sᵀ = K·Qᵀ for the chunk's keys, 4 per micro-kernel call, into 4-query panels of ATT_KC keys
        min(() => f.get(kend), () => f.get(k0).i32Const(ATT_KC).i32Add(), chunkEnd)
        f.forRange(j, () => f.get(k0), () => f.get(chunkEnd), 4, () => {
          f.get(kBase).get(j).get(D).i32Mul().i32Const(2).i32Shl().i32Add() // a: key panel j/4 (4·D floats each)
          f.get(qpack) // b
          f.get(sBuf).get(j).get(k0).i32Sub().i32Const(4).i32Shl().i32Add() // c: key j of query panel 0
          f.get(D) // kc
          f.get(nq).i32Const(7).i32Add().i32Const(3).i32ShrS() // B panels: the block's rows, not all BQ
          f.get(D).i32Const(5).i32Shl() // bStride
          f.i32Const(16) // ldc: next key
          f.i32Const(0) // accumulate
          f.i32Const(ATT_KC * 16) // vStride: next 4-query panel
          f.call(opts.microPanels)
        })
        f.forRange(qp, () => f.i32Const(0), () => f.get(nq), 4, () => {
          // qp is the panel's first query (a multiple of 4); its lanes are queries qp … qp+3, which see keys
          // [0, kq) at most, n of them in this chunk
          f.get(causal).if(
            () => min(() => f.get(Tk), () => f.get(i0).get(qp).i32Add().i32Const(4).i32Add().get(delta).i32Add(), kq),
            () => f.get(Tk).set(kq),
          )
          min(() => f.get(kq).get(k0).i32Sub(), () => f.i32Const(ATT_KC), n)
          f.get(n).i32Const(0).i32GtS()
          f.if(() => {
            f.get(sBuf).get(qp).i32Const(2).i32ShrS().i32Const(ATT_KC * 16).i32Mul().i32Add().set(base)
            f.get(stBuf).get(qp).i32Const(2).i32ShrS().i32Const(STATE_BYTES).i32Mul().i32Add().set(st)
            // diagonal: key j is masked for lane l when j > i0 + qp + l + delta (≤ 3 keys, all in [k0, k0 + n))
            f.get(causal).if(() => {
              f.get(i0).get(qp).i32Add().get(delta).i32Add().tee(lim).i32Const(1).i32Add().set(j)
              f.get(j).get(k0).get(j).get(k0).i32GtS().select().set(j)
              f.forRange(j, () => f.get(j), () => f.get(k0).get(n).i32Add(), 1, () => {
                f.forRange(r, () => f.i32Const(0), () => f.i32Const(4), 1, () => {
                  f.get(j).get(lim).get(r).i32Add().i32GtS()
                  f.if(() => {
                    f.get(base).get(j).get(k0).i32Sub().i32Const(4).i32Shl().i32Add().get(r).i32Const(2).i32Shl().i32Add().f32Const(-Infinity).f32Store()
                  })
                })
              })
            })
            f.get(base).get(n).get(st)
            f.call(softmax)
            // O of this panel: rescaled to the new max after the first chunk, then += P·V (a chunk of packed V
            // serves every panel of the block from L2)
            f.get(oBuf).get(qp).get(DvPad).i32Mul().i32Const(2).i32Shl().i32Add().set(o)
            f.get(k0).if(() => {
              f.get(o).get(st).get(DvPad)
              f.call(rescale)
            })
            f.get(base) // a
            f.get(vBase).get(k0).i32Const(5).i32Shl().i32Add() // b
            f.get(o) // c
            f.get(n) // kc
            f.get(DvPad).i32Const(3).i32ShrS() // B panels
            f.get(Tk).i32Const(5).i32Shl() // bStride
            f.get(DvPad).i32Const(2).i32Shl() // ldc
            f.get(k0) // accumulate after the first chunk
            f.call(opts.micro)
          })
        })
      })
      // (max, l) per row for the host's lse; l = 0 marks a row that saw no key (out 0, lse −∞)
      f.forRange(qp, () => f.i32Const(0), () => f.get(nq), 4, () => {
        f.get(stBuf).get(qp).i32Const(2).i32ShrS().i32Const(STATE_BYTES).i32Mul().i32Add().set(st)
        f.get(bh).get(TqPad).i32Mul().get(i0).i32Add().get(qp).i32Add().i32Const(2).i32Shl().set(p)
        f.get(mA).get(p).i32Add().get(st).v128Load(0).v128Store()
        f.get(lA).get(p).i32Add().get(st).v128Load(16).v128Store()
      })

      // ---- out = O / l ------------------------------------------------------------------------------------------
      f.get(outA).get(bh).get(Tq).i32Mul().get(i0).i32Add().get(Dv).i32Mul().i32Const(2).i32Shl().i32Add()
      f.get(oBuf)
      f.get(lA).get(bh).get(TqPad).i32Mul().get(i0).i32Add().i32Const(2).i32Shl().i32Add()
      f.get(nq).get(Dv).get(DvPad)
      f.call(storeOut)
      f.br(next)
    })
  })
}
