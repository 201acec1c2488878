import { nonNegativeNumber, positiveNumber as finitePositive, type Rng } from '@heed/tensor'

/** @internal a fresh random permutation of 0 … n−1 cut into batches (the last one may be short). */
export function shuffledBatches(n: number, batchSize: number, rng: Rng): Int32Array[] {
  const perm = Int32Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1)
    const t = perm[i]!
    perm[i] = perm[j]!
    perm[j] = t
  }
  const out: Int32Array[] = []
  for (let s = 0; s < n; s += batchSize) out.push(perm.subarray(s, Math.min(n, s + batchSize)))
  return out
}

export { positiveInt } from '@heed/tensor'

/** @internal a finite number > 0, or ≥ 0 with `allowZero`. */
export const positiveNumber = (op: string, arg: string, v: unknown, allowZero = false): number =>
  allowZero ? nonNegativeNumber(op, arg, v) : finitePositive(op, arg, v)

/** @internal `lr · γ^⌊(step−1)/(stepsPerEpoch·every)⌋`: PyTorch's ExponentialLR stepped every `every` epochs. */
export const decayed = (lr: number, gamma: number, every: number, stepsPerEpoch: number) => (step: number): number =>
  lr * gamma ** Math.floor((step - 1) / Math.max(1, stepsPerEpoch * every))
