import type { FunctionBuilder, Local } from './encoder.js'

/**
 * exp of x ≤ 0 in f64x2 lanes, bit for bit what V8's Math.exp returns (its port of fdlibm's e_exp.c): same
 * reduction, same rational approximation, same operation order, so a kernel built on it gives exactly the float64
 * values of the TypeScript loop it replaces, and rounding to float32 gives the same bits. (softmaxModule's Taylor exp
 * is as accurate but not equal to Math.exp in the last bit, which flips a float32 rounding now and then.)
 *
 * fdlibm branches on |x| by its high word; here every lane takes the general path and the branches become selects:
 * - k = (int)(x/ln2 − ½), except 0 where |x| ≤ ½ln2 as fdlibm reads it (high word ≤ 0x3fd62e42); its middle case
 *   (|x| < 1.5 ln2, k = −1 directly) gives the same hi and lo as the general one;
 * - y·2^k is formed as y·2^(k+1000)·2^−1000 in every lane: exact where fdlibm scales by the exponent bits
 *   (k ≥ −1021, y ∈ [0.7, 1.5], so y·2^k is normal), and literally fdlibm's product below that;
 * - |x| < 2^−28: 1 + x; x < −745.13 (and −∞): 0; NaN stays NaN.
 * Positive x would overflow the 2^(k+1000) exponent: callers pass −|u| or −x²/2.
 */

const INVLN2 = 1.442695040888963387
const LN2_HI = 6.9314718036912381649e-1
const LN2_LO = 1.90821492927058770002e-10
const P1 = 1.66666666666666019037e-1
const P2 = -2.77777777770155933842e-3
const P3 = 6.61375632143793436117e-5
const P4 = -1.6533902205465251539e-6
const P5 = 4.13813679705723846039e-8
const U_THRESHOLD = -7.4513321910194110842e2

const fromBits = (bits: bigint): number => new Float64Array(new BigUint64Array([bits]).buffer)[0]!
/** Smallest |x| that fdlibm reduces (high word 0x3fd62e43). */
const REDUCE_FROM = fromBits(0x3fd62e4300000000n)
const TINY = fromBits(0x3e30000000000000n)
const TWO_M1000 = 2 ** -1000
// 1.5·2^52 + 2023: adding it to an integer t leaves t + 1000 + 1023 (the biased exponent of 2^(t+1000)) in the low bits
const MAGIC_BIASED = 6755399441055744 + 2023

export interface ExpScratch {
  readonly t: Local
  readonly hi: Local
  readonly lo: Local
  readonly r: Local
  readonly c: Local
}

export function expScratch(f: FunctionBuilder): ExpScratch {
  return { t: f.local('v128'), hi: f.local('v128'), lo: f.local('v128'), r: f.local('v128'), c: f.local('v128') }
}

/** exp of the f64x2 in `x` (each lane ≤ 0 or NaN; x is kept), left on the stack. */
export function emitExpNonPositive(f: FunctionBuilder, x: Local, s: ExpScratch): void {
  const { t, hi, lo, r, c } = s
  f.v128Zero()
  f.get(x).f64x2Const(INVLN2).f64x2Mul().f64x2Const(-0.5).f64x2Add().f64x2Trunc()
  f.get(x).f64x2Abs().f64x2Const(REDUCE_FROM).f64x2Lt().v128Bitselect().set(t)
  // t·LN2_HI is exact (LN2_HI has 32 trailing zero bits)
  f.get(x).get(t).f64x2Const(LN2_HI).f64x2Mul().f64x2Sub().set(hi)
  f.get(t).f64x2Const(LN2_LO).f64x2Mul().set(lo)
  f.get(hi).get(lo).f64x2Sub().set(r)
  // c = r − r²·(P1 + r²·(P2 + r²·(P3 + r²·(P4 + r²·P5)))), c holding r² meanwhile
  f.get(r).get(r).f64x2Mul().set(c)
  f.get(r).f64x2Const(P5)
  for (const p of [P4, P3, P2, P1]) f.get(c).f64x2Mul().f64x2Const(p).f64x2Add()
  f.get(c).f64x2Mul().f64x2Sub().set(c)
  // y = 1 − ((lo − r·c/(2 − c)) − hi)
  f.f64x2Const(1).get(lo).get(r).get(c).f64x2Mul().f64x2Const(2).get(c).f64x2Sub().f64x2Div().f64x2Sub().get(hi).f64x2Sub().f64x2Sub()
  f.get(t).f64x2Const(MAGIC_BIASED).f64x2Add().i32Const(52).i64x2Shl().f64x2Mul().f64x2Const(TWO_M1000).f64x2Mul().set(c)
  f.f64x2Const(1).get(x).f64x2Add().get(c).get(x).f64x2Abs().f64x2Const(TINY).f64x2Lt().v128Bitselect()
  f.get(x).f64x2Const(U_THRESHOLD).f64x2Lt().v128Andnot()
}
