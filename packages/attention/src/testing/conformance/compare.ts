/** The comparisons of the conformance harness. */
import type { ConformanceTest, Tolerance } from './types.js'

export function close(t: ConformanceTest, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, msg: string): boolean {
  if (actual.length !== expected.length) return !!t.ok(false, `${msg}: length ${actual.length}, expected ${expected.length}`)
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!
    const e = expected[i]!
    const bad = Number.isFinite(e) ? !(Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e)) : a !== e
    if (bad) return !!t.ok(false, msg, { index: i, actual: a, expected: e, ...tol })
  }
  return !!t.ok(true, msg)
}

/** CAB's criterion: Σ|x − z| ≤ bound. */
export function sumAbs(t: ConformanceTest, a: ArrayLike<number>, b: ArrayLike<number>, bound: number, msg: string): void {
  let s = 0
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!)
  t.ok(a.length === b.length && s <= bound, msg, { sumAbsDiff: s, bound })
}

/** ‖a − e‖ / ‖e‖ (FLA's sanity bound for low precision). */
export function relRmse(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let num = 0
  let den = 0
  for (let i = 0; i < e.length; i++) {
    if (!Number.isFinite(e[i]!)) continue
    num += (a[i]! - e[i]!) ** 2
    den += e[i]! ** 2
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den)
}
