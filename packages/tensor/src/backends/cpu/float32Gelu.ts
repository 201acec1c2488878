import { takeFloat32 } from './float32Pool.js'
import { ERFC_POLY, ERFC_T_SCALE, GELU_C, GELU_K, INV_SQRT_2PI } from './geluFit.js'
import type { CpuTensor } from './types.js'
import { wasmGelu } from './wasm/gelu.js'

/**
 * GELU and its derivative on float32 tensors in tight specialised loops. The float64 reference (unaryFns.gelu)
 * evaluates erfc by a series / continued fraction of up to 200 terms, ~100 ns per element; float32 needs far
 * less. Here the normal CDF comes from one exp and a polynomial:
 *
 *   erfc(z) = t · e^{−z²} · P(t),  t = 1 / (1 + 0.45·z),  z = |x|/√2 ≥ 0,
 *
 * the form of the Chebyshev fit in Numerical Recipes §6.2 (erfcc), but with e^{−z²} factored out so the same
 * exponential also gives φ(x) = e^{−x²/2}/√(2π) for the derivative. P is degree 10, fitted here (minimax by
 * iteratively reweighted Chebyshev least squares in t ∈ [0.15, 1], z ∈ [0, 12.5], against scipy's erfcx);
 * its relative error in erfc is below 2.7e-9 over that range, which is also where float32 GELU is non-zero
 * (x ≥ −17.7). Evaluated in float64 and rounded once, gelu(x) is within 0.55 float32 ulp of the float64
 * reference, and gelu′(x) = Φ(x) + xφ(x) within 1.01 ulp of the larger of its two terms (it crosses zero at
 * x ≈ −0.75, where no relative bound exists); measured over 2^20 float32 inputs evenly spaced in [−18, 18]. Past
 * z = 12.5, erfc is < 1e-69 and the results round to ±0 in float32, as the reference does.
 *
 * Both sides of zero use erfc of |x| without cancellation: Φ(x) = ½erfc(|x|/√2) for x < 0, 1 − ½erfc(x/√2) else.
 *
 * Large tensors run the same arithmetic in WebAssembly (wasm/geluModule.ts, split over the worker pool), bit-equal
 * to these loops, which stay the fallback and the reference.
 */

const [P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10] = ERFC_POLY as [number, number, number, number, number, number, number, number, number, number, number]
const SQRT1_2 = Math.SQRT1_2

export { ERFC_POLY, ERFC_T_SCALE }

/** ½·erfc(|x|/√2) · e^{x²/2}: the tail factor, so that Φ(−|x|) = half · e^{−x²/2}. */
const halfErfcScaled = (ax: number): number => {
  const t = 1 / (1 + ERFC_T_SCALE * SQRT1_2 * ax)
  return 0.5 * t * (P0 + t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * (P5 + t * (P6 + t * (P7 + t * (P8 + t * (P9 + t * P10))))))))))
}

/** Φ(x) by the fit above, in float64 (exported for tests and the reference of the other backends). */
export function fastNormalCdf(x: number): number {
  const e = halfErfcScaled(Math.abs(x)) * Math.exp(-0.5 * x * x)
  return x < 0 ? e : 1 - e
}

export type GeluFn = 'gelu' | 'geluGrad' | 'geluTanh' | 'geluTanhGrad'
const UNARY: readonly string[] = ['gelu', 'geluGrad', 'geluTanh', 'geluTanhGrad']

/** The fused backward kernels (dy, x) ↦ dy · gelu′(x), one pass instead of gelu′ then a multiply. */
export type GeluBackwardFn = 'geluBackward' | 'geluTanhBackward'
const BINARY: readonly string[] = ['geluBackward', 'geluTanhBackward']

function geluLoop(fn: GeluFn, x: Float32Array, dy: Float32Array | undefined, out: Float32Array): void {
  const n = x.length
  switch (fn) {
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!
        const h = halfErfcScaled(Math.abs(v)) * Math.exp(-0.5 * v * v)
        out[i] = v * (v < 0 ? h : 1 - h)
      }
      return
    case 'geluGrad':
      for (let i = 0; i < n; i++) {
        const v = x[i]!
        const e = Math.exp(-0.5 * v * v)
        const h = halfErfcScaled(Math.abs(v)) * e
        const g = (v < 0 ? h : 1 - h) + v * INV_SQRT_2PI * e
        out[i] = dy ? dy[i]! * g : g
      }
      return
    case 'geluTanh':
      // x·σ(2u) as unaryFns.geluTanh, each branch free of overflow
      for (let i = 0; i < n; i++) {
        const v = x[i]!
        const u = 2 * GELU_C * (v + GELU_K * v * v * v)
        out[i] = v * (u >= 0 ? 1 / (1 + Math.exp(-u)) : Math.exp(u) / (1 + Math.exp(u)))
      }
      return
    case 'geluTanhGrad':
      for (let i = 0; i < n; i++) {
        const v = x[i]!
        const u = 2 * GELU_C * (v + GELU_K * v * v * v)
        const s = u >= 0 ? 1 / (1 + Math.exp(-u)) : Math.exp(u) / (1 + Math.exp(u))
        const g = s + 2 * v * s * (1 - s) * GELU_C * (1 + 3 * GELU_K * v * v)
        out[i] = dy ? dy[i]! * g : g
      }
      return
  }
}

/** gelu / gelu′ (exact or tanh form) of a float32 tensor; undefined for other functions or dtypes. */
export function float32Gelu(fn: string, x: CpuTensor): CpuTensor | undefined {
  if (x.dtype !== 'float32' || !UNARY.includes(fn)) return undefined
  const out = takeFloat32(x.values.length)
  if (!wasmGelu(fn as GeluFn, x.values as Float32Array, undefined, out)) geluLoop(fn as GeluFn, x.values as Float32Array, undefined, out)
  return { values: out, shape: x.shape, dtype: 'float32' }
}

/** dy · gelu′(x) for same-shape float32 operands; undefined otherwise. */
export function float32GeluBackward(fn: string, dy: CpuTensor, x: CpuTensor): CpuTensor | undefined {
  if (!BINARY.includes(fn) || dy.dtype !== 'float32' || x.dtype !== 'float32' || dy.values.length !== x.values.length) return undefined
  const out = takeFloat32(x.values.length)
  const grad = fn === 'geluBackward' ? 'geluGrad' : 'geluTanhGrad'
  if (!wasmGelu(grad, x.values as Float32Array, dy.values as Float32Array, out)) geluLoop(grad, x.values as Float32Array, dy.values as Float32Array, out)
  return { values: out, shape: x.shape, dtype: 'float32' }
}
