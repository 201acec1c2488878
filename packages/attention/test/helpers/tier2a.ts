/**
 * Shared pieces of the Tier 2 (part 1) operator tests: seeded host arrays, float64 index helpers, and running a
 * tensor function on a backend and dtype with the result read back and every tensor disposed.
 */
import { scope, tensor, withBackend, type Tensor } from '@heed/tensor'
import { liveAfter } from '../../../tensor/test/helpers/leaks.js'
import { prng, randomArray } from '../../../tensor/test/helpers/numeric.js'

export type Shape4 = [number, number, number, number]
export interface Host {
  values: number[]
  shape: Shape4
}

export const seeded = (seed: number) => {
  const rand = prng(seed)
  return { rand, host: (shape: Shape4, amp = 1): Host => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), -amp, amp), shape }) }
}

/** x[b, h, t, :] as a fresh array. */
export const row = (x: Host, b: number, h: number, t: number): number[] => {
  const D = x.shape[3]
  const o = ((b * x.shape[1] + h) * x.shape[2] + t) * D
  return x.values.slice(o, o + D)
}
export const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0)

/** Softmax-weighted sum of `vals` by `scores` (−∞ entries excluded); zeros and −∞ when every entry is −∞. */
export function softmaxMix(scores: readonly number[], vals: readonly (readonly number[])[], Dv: number): { o: number[]; lse: number; p: number[] } {
  const m = Math.max(...scores)
  if (m === -Infinity) return { o: new Array<number>(Dv).fill(0), lse: -Infinity, p: scores.map(() => 0) }
  const e = scores.map(s => Math.exp(s - m))
  const l = e.reduce((a, b) => a + b, 0)
  const p = e.map(x => x / l)
  const o = new Array<number>(Dv).fill(0)
  p.forEach((w, j) => vals[j]!.forEach((x, d) => (o[d]! += w * x)))
  return { o, lse: m + Math.log(l), p }
}

/** Build an output array [B, H, T, Dv] from a per-(b, h, t) function. */
export function build(shape: Shape4, f: (b: number, h: number, t: number) => readonly number[]): number[] {
  const [B, H, T, Dv] = shape
  const out: number[] = []
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) out.push(...f(b, h, t).slice(0, Dv))
  return out
}

/**
 * Run `f` on tensors made from `inputs` on `backend` in `dtype`; returns every result tensor's values and counts
 * how many of the tensors it made were left undisposed (for the caller's `t.equal(leaked, 0)`).
 */
export async function runOn<R extends Record<string, Tensor>>(
  backend: string,
  dtype: 'float32' | 'float64',
  inputs: readonly Host[],
  f: (...xs: Tensor[]) => R,
): Promise<{ values: Record<keyof R, number[]>; leaked: number }> {
  // Counts only the tensors made here, so another test's forgotten tensor cannot move the count.
  const { result: values, leaked } = await liveAfter(async () => {
    const made = withBackend(backend, () => scope(() => f(...inputs.map(x => tensor(x.values, x.shape, dtype)))))
    const values = {} as Record<keyof R, number[]>
    for (const key of Object.keys(made) as (keyof R)[]) {
      const x = made[key] as unknown
      if (!(typeof x === 'object' && x !== null && 'data' in x)) continue
      values[key] = Array.from(await made[key]!.data(), Number)
      made[key]!.dispose()
    }
    return values
  })
  return { values, leaked: leaked.length }
}

/** float32 tolerance against a float64 golden path. */
export const tolFor = (dtype: 'float32' | 'float64') => (dtype === 'float64' ? { atol: 1e-11, rtol: 1e-11 } : { atol: 3e-5, rtol: 3e-4 })
export const dtypesFor = (backend: string): ('float32' | 'float64')[] => (backend === 'cpu' ? ['float64', 'float32'] : ['float32'])
