/**
 * erf to about 1e-15 absolute: Maclaurin series below |x| = 3 (the largest term is ~1e3, so ~13 digits survive),
 * the Laplace continued fraction for erfc above. Math has no erf; GELU and the normal CDF need one that is good
 * enough to serve as the float64 reference.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN
  const ax = Math.abs(x)
  if (ax < 3) {
    const x2 = x * x
    let term = x
    let sum = x
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n
      const add = term / (2 * n + 1)
      sum += add
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break
    }
    return (2 / Math.sqrt(Math.PI)) * sum
  }
  return Math.sign(x) * (1 - erfcLarge(ax))
}

/** erfc for x ≥ 3 by the continued fraction erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))). */
function erfcLarge(x: number): number {
  let f = x
  for (let k = 60; k >= 1; k--) f = x + k / 2 / f
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f
}

/** erfc without cancellation for large positive x. */
export const erfc = (x: number): number => (x >= 3 ? erfcLarge(x) : 1 - erf(x))
