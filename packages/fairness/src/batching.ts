import { ValueError, type Rng } from '@heed/tensor'

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

/** @internal */
export function positiveInt(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ValueError({ op, arg, expected: 'a positive integer', actual: v === undefined ? 'undefined' : String(v) })
  return v
}

/** @internal */
export function positiveNumber(op: string, arg: string, v: unknown, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0))
    throw new ValueError({ op, arg, expected: allowZero ? 'a finite number ≥ 0' : 'a finite number > 0', actual: String(v) })
  return v
}

/** @internal `lr · γ^⌊(step−1)/(stepsPerEpoch·every)⌋`: PyTorch's ExponentialLR stepped every `every` epochs. */
export const decayed = (lr: number, gamma: number, every: number, stepsPerEpoch: number) => (step: number): number =>
  lr * gamma ** Math.floor((step - 1) / Math.max(1, stepsPerEpoch * every))
