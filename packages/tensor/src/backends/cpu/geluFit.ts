/**
 * The numbers of float32 GELU's erfc fit and of the tanh form (see float32Gelu.ts for the fit itself), apart from
 * the loops so that the WebAssembly kernel, built from the same values, does not import the kernels that call it.
 */

/** The erfc polynomial's coefficients (constant first): erfc(z) = t · e^{−z²} · P(t), t = 1 / (1 + 0.45·z). */
export const ERFC_POLY: readonly number[] = [
  0.2538913286300381, 0.25370657489368387, 0.230481094044011, 0.15983795454338087, 0.18627647115599738, -0.20666165361951558, 0.4786283113794976,
  -0.7000516052797339, 0.4878940219272369, -0.16699264277813702, 0.022990142514391528,
]
export const ERFC_T_SCALE = 0.45
export const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI)
export const GELU_C = Math.sqrt(2 / Math.PI)
export const GELU_K = 0.044715
