import { ArgumentError, ValueError, mean, random, scope, where, type Rng, type Tensor } from '@heed/tensor'
import { optionKeys, requireFloat, requireNumber, requireOptions, requireRank } from './internal.js'

export interface MaskImageOptions {
  /** Fraction of pixels replaced, default 0.3 (OPA-DPO's `CoPO_mask_ratio`). */
  readonly ratio?: number
  /** Random generator (wins over `seed`). */
  readonly rng?: Rng
  /** Seed of a fresh generator (default 0). */
  readonly seed?: number
}

const OPTIONS = optionKeys<MaskImageOptions>({ ratio: true, rng: true, seed: true })

/**
 * The "masked image" of mDPO/OPA-DPO's conditional pair: each pixel position (all channels together) of a
 * `[C, H, W]` image is replaced by the image mean with probability `ratio`. The same response scored under the
 * image and under its masked copy forms the image-focus pair.
 */
export function maskImage(image: Tensor, opts: MaskImageOptions = {}): Tensor {
  const op = 'maskImage'
  const x = requireFloat(op, 'image', image)
  requireRank(op, 'image', x, [3])
  const o = requireOptions(op, opts, OPTIONS)
  if (o['seed'] !== undefined) requireNumber(op, 'seed', o['seed'], Number.isInteger, 'an integer seed')
  if (o['rng'] !== undefined && (o['rng'] === null || typeof (o['rng'] as Rng).next !== 'function'))
    throw new ArgumentError({ op, arg: 'rng', expected: 'a random generator (random.rng)', actual: o['rng'] === null ? 'null' : typeof o['rng'] })
  const ratio = requireNumber(op, 'ratio', o['ratio'] ?? 0.3, v => v >= 0 && v <= 1, 'a fraction in [0, 1]')
  if (o['rng'] !== undefined && o['seed'] !== undefined) throw new ValueError({ op, arg: 'seed', expected: 'either seed or rng', actual: 'both' })
  const src = o['rng'] !== undefined ? { rng: o['rng'] as Rng } : o['seed'] !== undefined ? { seed: o['seed'] as number } : {}
  return scope(() => {
    const m = random.bernoulli([1, x.shape[1]!, x.shape[2]!], { ...src, p: ratio })
    return where(m, mean(x), x)
  })
}
