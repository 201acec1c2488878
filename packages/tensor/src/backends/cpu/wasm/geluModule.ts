import type { FunctionBuilder, Local, ModuleBuilder } from './encoder.js'
import { emitExpNonPositive, expScratch, type ExpScratch } from './expFdlibm.js'
import { ERFC_POLY, ERFC_T_SCALE, GELU_C, GELU_K, INV_SQRT_2PI } from '../geluFit.js'

/**
 * GELU (exact and tanh forms) and their derivatives over float32 arrays, in float64 lanes (f64x2) with the same
 * operations in the same order as the TypeScript loops of float32Gelu.ts, and an exp equal to Math.exp
 * (expFdlibm.ts): every output, NaN and ±0 included, is the TypeScript loop's to the bit. That keeps the fallback
 * (HEED_CPU_WASM=0, no SIMD) and the documented ulp bounds of the fit valid for both, with one reference.
 *
 * gl_<fn>(job, x, dy, out, n, perJob): elements [job·perJob, min(+perJob, n)) of out = fn(x), times dy where
 * dy ≠ 0 (the derivative kernels; a zero address means "no dy": the host never places data at 0). perJob is even,
 * so only the last job has an odd element. out may equal x or dy: each pair is read before it is written.
 */
export const GELU_ARGS = 5
export const GELU_JOBS = { gelu: 'gl_gelu', geluGrad: 'gl_gelu_grad', geluTanh: 'gl_tanh', geluTanhGrad: 'gl_tanh_grad' } as const

// evaluated as the TypeScript loops do, constant products first (JS folds nothing: the same doubles either way)
const T_SCALE = ERFC_T_SCALE * Math.SQRT1_2
const TWO_C = 2 * GELU_C
const THREE_K = 3 * GELU_K

interface Lanes {
  readonly v: Local
  readonly d: Local
  readonly a: Local
  readonly b: Local
  readonly e: Local
  readonly exp: ExpScratch
}

/** Φ(v) in `a` and e^{−v²/2} in `e`. */
function normalCdf(f: FunctionBuilder, l: Lanes): void {
  const { v, a, b, e } = l
  // t = 1 / (1 + T_SCALE·|v|) in b; ½t·P(t) in a
  f.f64x2Const(1).f64x2Const(1).f64x2Const(T_SCALE).get(v).f64x2Abs().f64x2Mul().f64x2Add().f64x2Div().set(b)
  f.f64x2Const(0.5).get(b).f64x2Mul()
  f.f64x2Const(ERFC_POLY[ERFC_POLY.length - 1]!)
  for (let i = ERFC_POLY.length - 2; i >= 0; i--) f.get(b).f64x2Mul().f64x2Const(ERFC_POLY[i]!).f64x2Add()
  f.f64x2Mul().set(a)
  f.f64x2Const(-0.5).get(v).f64x2Mul().get(v).f64x2Mul().set(b)
  emitExpNonPositive(f, b, l.exp)
  f.tee(e).get(a).f64x2Mul().set(a)
  // h for v < 0, 1 − h otherwise (NaN: 1 − h, as `v < 0 ? h : 1 − h`)
  f.get(a).f64x2Const(1).get(a).f64x2Sub().get(v).v128Zero().f64x2Lt().v128Bitselect().set(a)
}

/** s = σ(u) of the tanh form, u = 2√(2/π)(v + 0.044715v³) (½(1 + tanh(u/2)) = σ(u)), in `a`; u is left in `b`, e^{−|u|} in `e`. */
function tanhSigmoid(f: FunctionBuilder, l: Lanes): void {
  const { v, a, b, e } = l
  f.f64x2Const(TWO_C).get(v).f64x2Const(GELU_K).get(v).f64x2Mul().get(v).f64x2Mul().get(v).f64x2Mul().f64x2Add().f64x2Mul().set(b)
  // exp(−u) for u ≥ 0 and exp(u) below are both exp(−|u|)
  f.v128Zero().get(b).f64x2Abs().f64x2Sub().set(a)
  emitExpNonPositive(f, a, l.exp)
  f.set(e)
  // 1 / (1 + e) for u ≥ 0, e / (1 + e) otherwise (NaN: the latter)
  f.f64x2Const(1).get(e).get(b).v128Zero().f64x2Ge().v128Bitselect().f64x2Const(1).get(e).f64x2Add().f64x2Div().set(a)
}

/** One f64x2 of results for the lanes in v (and dy in d), left on the stack. */
function body(f: FunctionBuilder, fn: keyof typeof GELU_JOBS, l: Lanes, withDy: boolean): void {
  const { v, d, a } = l
  switch (fn) {
    case 'gelu':
      normalCdf(f, l)
      f.get(v).get(a).f64x2Mul()
      return
    case 'geluGrad':
      normalCdf(f, l)
      f.get(a).get(v).f64x2Const(INV_SQRT_2PI).f64x2Mul().get(l.e).f64x2Mul().f64x2Add()
      break
    case 'geluTanh':
      tanhSigmoid(f, l)
      f.get(v).get(a).f64x2Mul()
      return
    case 'geluTanhGrad':
      tanhSigmoid(f, l)
      // s + 2v·s·(1 − s)·C·(1 + 3K·v²), left to right as in TypeScript
      f.get(a).f64x2Const(2).get(v).f64x2Mul().get(a).f64x2Mul().f64x2Const(1).get(a).f64x2Sub().f64x2Mul().f64x2Const(GELU_C).f64x2Mul()
      f.f64x2Const(1).f64x2Const(THREE_K).get(v).f64x2Mul().get(v).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add()
      break
  }
  if (withDy) {
    f.set(a)
    f.get(d).get(a).f64x2Mul()
  }
}

export function addGelu(mod: ModuleBuilder): void {
  for (const fn of Object.keys(GELU_JOBS) as (keyof typeof GELU_JOBS)[]) {
    const f = mod.function(new Array<'i32'>(GELU_ARGS + 1).fill('i32'), [], GELU_JOBS[fn]).fn
    const [job, x, dy, out, n, perJob] = Array.from({ length: GELU_ARGS + 1 }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local]
    const i0 = f.local('i32')
    const i1 = f.local('i32')
    const o = f.local('i32')
    const end2 = f.local('i32')
    const l: Lanes = { v: f.local('v128'), d: f.local('v128'), a: f.local('v128'), b: f.local('v128'), e: f.local('v128'), exp: expScratch(f) }
    f.get(job).get(perJob).i32Mul().tee(i0).get(perJob).i32Add().tee(i1).get(n).get(i1).get(n).i32LtS().select().set(i1)
    // byte offsets: pairs up to end2, then the odd last element
    f.get(i0).get(i1).get(i0).i32Sub().i32Const(-2).i32And().i32Add().i32Const(2).i32Shl().set(end2)
    f.get(i1).i32Const(2).i32Shl().set(i1)
    f.get(i0).i32Const(2).i32Shl().set(o)
    const loop = (withDy: boolean): void => {
      f.block(done => {
        f.loop(next => {
          f.get(o).get(end2).i32GeS().brIf(done)
          f.get(x).get(o).i32Add().v128Load64Zero().f64x2PromoteLowF32x4().set(l.v)
          if (withDy) f.get(dy).get(o).i32Add().v128Load64Zero().f64x2PromoteLowF32x4().set(l.d)
          f.get(out).get(o).i32Add()
          body(f, fn, l, withDy)
          f.f32x4DemoteF64x2Zero().v128Store64Lane0()
          f.get(o).i32Const(8).i32Add().set(o)
          f.br(next)
        })
      })
      f.get(o).get(i1).i32LtS()
      f.if(() => {
        f.get(x).get(o).i32Add().f32Load().f32x4Splat().f64x2PromoteLowF32x4().set(l.v)
        if (withDy) f.get(dy).get(o).i32Add().f32Load().f32x4Splat().f64x2PromoteLowF32x4().set(l.d)
        f.get(out).get(o).i32Add()
        body(f, fn, l, withDy)
        f.f32x4DemoteF64x2Zero().f32x4ExtractLane(0).f32Store()
      })
    }
    if (fn === 'geluGrad' || fn === 'geluTanhGrad')
      f.get(dy).if(
        () => loop(true),
        () => loop(false),
      )
    else loop(false)
  }
}
