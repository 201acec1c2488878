/**
 * Shared numeric test utilities: float64 references, tolerance checks and central finite differences.
 * Tolerances: compare against a float64 oracle and scale the allowed error with the dtype's precision.
 */
import type { Test } from 'tap'
import { tensor, valueAndGrad, type DType, type Tensor } from '@heed/tensor'
import { noLeaks } from './leaks.js'

/** Seeded PRNG (mulberry32) for test data, independent of the library's own `random`. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` uniform numbers in [lo, hi). */
export const randomArray = (rand: () => number, n: number, lo = -1, hi = 1): number[] => Array.from({ length: n }, () => lo + (hi - lo) * rand())

export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1)

/** A random tensor and its float64 host values. */
export function randomTensor(rand: () => number, shape: readonly number[], dtype: DType = 'float64', lo = -1, hi = 1): { t: Tensor; v: number[] } {
  const v = randomArray(rand, sizeOf(shape), lo, hi)
  return { t: tensor(v, shape, dtype), v }
}

/** Default absolute+relative tolerance per dtype for single-op results. */
export const tol = (dtype: DType): { atol: number; rtol: number } =>
  dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : dtype === 'float16' ? { atol: 2e-3, rtol: 2e-3 } : { atol: 1e-6, rtol: 1e-5 }

/** Assert `actual` ≈ `expected` elementwise (NaN matches NaN, ±Infinity must match exactly). */
export function assertClose(
  t: Test,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { atol?: number; rtol?: number; msg?: string } = {},
): void {
  const atol = opts.atol ?? 1e-6
  const rtol = opts.rtol ?? 1e-5
  if (actual.length !== expected.length) {
    t.fail(`${opts.msg ?? 'values'}: length ${actual.length} vs expected ${expected.length}`)
    return
  }
  let worst = -1
  let worstErr = 0
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!
    const e = expected[i]!
    if (Number.isNaN(e) && Number.isNaN(a)) continue
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e) {
        worst = i
        worstErr = Infinity
        break
      }
      continue
    }
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e))
    if (err > 0 && err > worstErr) {
      worst = i
      worstErr = err
    }
  }
  t.ok(worst < 0, opts.msg ?? 'values close', worst < 0 ? {} : { index: worst, actual: actual[worst], expected: expected[worst], atol, rtol })
}

/**
 * Check every gradient of `f` against central finite differences in float64. `inputs` are host arrays with
 * shapes; `f` receives float64 tensors and must return a scalar tensor.
 */
export async function checkGrad(
  t: Test,
  f: (...xs: Tensor[]) => Tensor,
  inputs: readonly { readonly v: readonly number[]; readonly shape: readonly number[] }[],
  opts: { eps?: number; atol?: number; rtol?: number; msg?: string } = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-6
  // counts only the tensors this check makes: another test's forgotten tensor cannot move it
  await noLeaks(t, `${opts.msg ?? 'grad'}: no leaked tensors`, async () => {
    const xs = inputs.map(i => tensor([...i.v], i.shape, 'float64'))
    const vg = valueAndGrad((...a: Tensor[]) => f(...a), { argnums: inputs.map((_, i) => i) })
    const [value, grads] = vg(...xs)
    const analytic = await Promise.all((grads as Tensor[]).map(g => g.data()))
    value.dispose()
    for (const g of grads as Tensor[]) g.dispose()
    const evalAt = (k: number, j: number, delta: number): number => {
      const vals = inputs.map((inp, i) => {
        const v = [...inp.v]
        if (i === k) v[j] = v[j]! + delta
        return tensor(v, inp.shape, 'float64')
      })
      const y = f(...vals)
      const out = y.dataSync()[0]!
      y.dispose()
      for (const x of vals) x.dispose()
      return out
    }
    inputs.forEach((inp, k) => {
      const numeric = inp.v.map((_, j) => (evalAt(k, j, eps) - evalAt(k, j, -eps)) / (2 * eps))
      assertClose(t, analytic[k]!, numeric, { atol: opts.atol ?? 1e-6, rtol: opts.rtol ?? 1e-5, msg: `${opts.msg ?? 'grad'} d/d input ${k}` })
    })
    for (const x of xs) x.dispose()
  })
}

/** Backends the op suite runs on. WebGPU joins when its backend lands (issue 3). */
export const suiteBackends = (): string[] => ['cpu']
