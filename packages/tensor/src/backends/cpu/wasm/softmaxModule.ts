import type { FunctionBuilder, Local, ModuleBuilder } from './encoder.js'

/**
 * Row-wise softmax, log-softmax and log-sum-exp over float32 rows, computed in float64 lanes (f64x2) so results
 * match the TypeScript kernels' float64 arithmetic to well under a float32 ulp: the op suite's float32 tolerance
 * for these ops is tighter than one ulp, which an f32 exp could not meet.
 *
 * sm_stats(job, x, rows, cols, rowsPerJob, stats) writes per row (m, Σ exp(x − m)) as two f64 at stats + 16·row;
 * a row whose max is NaN or ±Infinity gets Σ = −1 and is left to the host (its semantics live in TypeScript).
 * sm_out(job, x, out, rows, cols, rowsPerJob, stats, mode) then writes mode 0: exp(x − m) / Σ; mode 1: (x − m) − L,
 * with L = log Σ put in the second slot by the host (WebAssembly has no log; one per row is cheap in JS).
 */
export const SM_STATS_ARGS = 5
export const SM_OUT_ARGS = 7

const LOG2E = Math.LOG2E
// ln 2 split so that n·LN2_HI is exact for |n| < 2^11 (the fdlibm constants)
const LN2_HI = 6.93147180369123816490e-1
const LN2_LO = 1.90821492927058770002e-10
// 1.5·2^52: adding it rounds to an integer held in the low mantissa bits
const MAGIC = 6755399441055744

/**
 * exp of the f64x2 in `x` (clobbered), left on the stack. x is clamped at −700 (inputs here are x − max ≤ 0, and
 * exp(−700) is 0 once rounded to float32); range reduction x = n·ln2 + r with |r| ≤ ~0.35, then a degree-12 Taylor
 * polynomial (truncation ~2e-16 relative) and 2^n built in the exponent bits.
 */
function emitExp(f: FunctionBuilder, x: Local, k: Local, n: Local): void {
  f.get(x).f64x2Const(-700).f64x2Max().set(x)
  f.get(x).f64x2Const(LOG2E).f64x2Mul().f64x2Const(MAGIC).f64x2Add().set(k)
  f.get(k).f64x2Const(MAGIC).f64x2Sub().set(n)
  f.get(x).get(n).f64x2Const(LN2_HI).f64x2Mul().f64x2Sub().get(n).f64x2Const(LN2_LO).f64x2Mul().f64x2Sub().set(x)
  let fact = 1
  for (let i = 2; i <= 12; i++) fact *= i
  f.f64x2Const(1 / fact)
  for (let i = 11; i >= 0; i--) {
    fact /= i + 1
    f.get(x).f64x2Mul().f64x2Const(1 / fact).f64x2Add()
  }
  // 2^n: the integer n sits in k's low bits; shifting it into the exponent field drops the magic's own bits
  f.get(k).i32Const(52).i64x2Shl().i64x2Const(1023n << 52n).i64x2Add().f64x2Mul()
}

/** Row range of a job: r0 = job·rowsPerJob, r1 = min(r0 + rowsPerJob, rows). */
function rowRange(f: FunctionBuilder, job: Local, rows: Local, rpj: Local, r0: Local, r1: Local): void {
  f.get(job).get(rpj).i32Mul().tee(r0).get(rpj).i32Add().tee(r1).get(rows).get(r1).get(rows).i32LtS().select().set(r1)
}

export function addSoftmax(mod: ModuleBuilder): void {
  {
    const f = mod.function(new Array<'i32'>(SM_STATS_ARGS + 1).fill('i32'), [], 'sm_stats').fn
    const [job, x, rows, cols, rpj, stats] = Array.from({ length: SM_STATS_ARGS + 1 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local]
    const r0 = f.local('i32')
    const r1 = f.local('i32')
    const row = f.local('i32')
    const p = f.local('i32')
    const end4 = f.local('i32')
    const end2 = f.local('i32')
    const end = f.local('i32')
    const q = f.local('i32')
    const m = f.local('f32')
    const md = f.local('f64')
    const s = f.local('f64')
    const mv = f.local('v128')
    const mdv = f.local('v128')
    const acc = f.local('v128')
    const v = f.local('v128')
    const k = f.local('v128')
    const n = f.local('v128')
    rowRange(f, job, rows, rpj, r0, r1)
    f.forRange(row, () => f.get(r0), () => f.get(r1), 1, () => {
      f.get(x).get(row).get(cols).i32Mul().i32Const(2).i32Shl().i32Add().tee(p)
      f.get(cols).i32Const(-4).i32And().i32Const(2).i32Shl().i32Add().set(end4)
      f.get(p).get(cols).i32Const(-2).i32And().i32Const(2).i32Shl().i32Add().set(end2)
      f.get(p).get(cols).i32Const(2).i32Shl().i32Add().set(end)
      // max, NaN-propagating like the TypeScript kernel
      f.f32Const(-Infinity).f32x4Splat().set(mv)
      f.forRange(q, () => f.get(p), () => f.get(end4), 16, () => {
        f.get(mv).get(q).v128Load().f32x4Max().set(mv)
      })
      f.get(mv).f32x4ExtractLane(0).get(mv).f32x4ExtractLane(1).f32Max().get(mv).f32x4ExtractLane(2).f32Max().get(mv).f32x4ExtractLane(3).f32Max().set(m)
      f.forRange(q, () => f.get(end4), () => f.get(end), 4, () => {
        f.get(m).get(q).f32Load().f32Max().set(m)
      })
      // stats address for this row
      f.get(stats).get(row).i32Const(4).i32Shl().i32Add().set(q)
      f.get(m).get(m).f32Sub().f32Const(0).f32Eq()
      f.if(
        () => {
          f.get(m).f64PromoteF32().tee(md).f64x2Splat().set(mdv)
          f.v128Zero().set(acc)
          f.forRange(p, () => f.get(p), () => f.get(end2), 8, () => {
            f.get(p).v128Load64Zero().f64x2PromoteLowF32x4().get(mdv).f64x2Sub().set(v)
            emitExp(f, v, k, n)
            f.get(acc).f64x2Add().set(acc)
          })
          f.get(acc).f64x2ExtractLane(0).get(acc).f64x2ExtractLane(1).f64Add().set(s)
          // odd column count: the last element through the same vector path, lane 0
          f.get(end2).get(end).i32LtU()
          f.if(() => {
            f.get(end2).f32Load().f32x4Splat().f64x2PromoteLowF32x4().get(mdv).f64x2Sub().set(v)
            emitExp(f, v, k, n)
            f.f64x2ExtractLane(0).get(s).f64Add().set(s)
          })
          f.get(q).get(md).f64Store(0)
          f.get(q).get(s).f64Store(8)
        },
        () => {
          f.get(q).f64Const(-1).f64Store(8)
        },
      )
    })
  }
  {
    const f = mod.function(new Array<'i32'>(SM_OUT_ARGS + 1).fill('i32'), [], 'sm_out').fn
    const [job, x, out, rows, cols, rpj, stats, mode] = Array.from({ length: SM_OUT_ARGS + 1 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local, Local, Local]
    const r0 = f.local('i32')
    const r1 = f.local('i32')
    const row = f.local('i32')
    const p = f.local('i32')
    const o = f.local('i32')
    const end2 = f.local('i32')
    const end = f.local('i32')
    const q = f.local('i32')
    const mdv = f.local('v128')
    const sv = f.local('v128')
    const v = f.local('v128')
    const k = f.local('v128')
    const n = f.local('v128')
    // one element pair (or the odd last one, lane 0) of the output, left on the stack as f64x2
    const body = (): void => {
      f.get(v).get(mdv).f64x2Sub().set(v)
      f.get(mode).if(
        () => {
          // mode 1: (x − m) − log Σ
          f.get(v).get(sv).f64x2Sub().set(v)
        },
        () => {
          emitExp(f, v, k, n)
          f.get(sv).f64x2Div().set(v)
        },
      )
    }
    rowRange(f, job, rows, rpj, r0, r1)
    f.forRange(row, () => f.get(r0), () => f.get(r1), 1, () => {
      f.get(stats).get(row).i32Const(4).i32Shl().i32Add().set(q)
      f.block(skip => {
        f.get(q).f64Load(8).f64Const(0).f64Lt().brIf(skip)
        f.get(q).f64Load(0).f64x2Splat().set(mdv)
        f.get(q).f64Load(8).f64x2Splat().set(sv)
        f.get(row).get(cols).i32Mul().i32Const(2).i32Shl().set(o)
        f.get(x).get(o).i32Add().set(p)
        f.get(out).get(o).i32Add().set(o)
        f.get(p).get(cols).i32Const(-2).i32And().i32Const(2).i32Shl().i32Add().set(end2)
        f.get(p).get(cols).i32Const(2).i32Shl().i32Add().set(end)
        f.block(done => {
          f.loop(next => {
            f.get(p).get(end2).i32GeS().brIf(done)
            f.get(p).v128Load64Zero().f64x2PromoteLowF32x4().set(v)
            body()
            f.get(o).get(v).f32x4DemoteF64x2Zero().v128Store64Lane0()
            f.get(p).i32Const(8).i32Add().set(p)
            f.get(o).i32Const(8).i32Add().set(o)
            f.br(next)
          })
        })
        f.get(p).get(end).i32LtU()
        f.if(() => {
          f.get(p).f32Load().f32x4Splat().f64x2PromoteLowF32x4().set(v)
          body()
          f.get(o).get(v).f32x4DemoteF64x2Zero().f32x4ExtractLane(0).f32Store()
        })
      })
    })
  }
}
