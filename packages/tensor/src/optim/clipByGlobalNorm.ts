import { mapTree } from '../mapTree.js'
import { noGrad } from '../autodiff/tape.js'
import { isFloat } from '../dtype.js'
import { ValueError } from '../errors.js'
import { scope, treeTensors } from '../memory.js'
import { add, div, maximum, mul, sqrt, sum } from '../ops/index.js'
import type { Tensor } from '../Tensor.js'

export interface ClippedGrads<G> {
  /** The gradients scaled by `min(1, maxNorm / (norm + 1e-6))` (new tensors; the input is not disposed). */
  readonly grads: G
  /** The global L2 norm of the input gradients, a float32 scalar tensor (before clipping). */
  readonly norm: Tensor
}

/**
 * Global-norm gradient clipping (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent
 * neural networks", §3.2), with PyTorch's `clip_grad_norm_` constants: the norm is taken over every float leaf
 * of the tree together, and every leaf is multiplied by `min(1, maxNorm / (norm + 1e-6))`.
 *
 * The factor stays a tensor, so the call never reads back from the device: a WebGPU training loop does not stall
 * on it. Non-tensor and non-float leaves pass through unchanged.
 */
export function clipByGlobalNorm<G>(grads: G, maxNorm: number): ClippedGrads<G> {
  if (!(typeof maxNorm === 'number' && maxNorm > 0)) throw new ValueError({ op: 'clipByGlobalNorm', arg: 'maxNorm', expected: 'a positive number', actual: maxNorm })
  return noGrad(() =>
    scope(() => {
      const leaves = [...treeTensors(grads)].filter(t => isFloat(t.dtype))
      if (leaves.length === 0) throw new ValueError({ op: 'clipByGlobalNorm', arg: 'grads', expected: 'a pytree with at least one float tensor', actual: 'none' })
      let sq: Tensor | undefined
      for (const g of leaves) {
        const s = sum(mul(g, g))
        sq = sq === undefined ? s : add(sq, s)
      }
      const norm = sqrt(sq!)
      // 1 / max(1, (norm + 1e-6) / maxNorm) = min(1, maxNorm / (norm + 1e-6)), without a division by a zero norm
      const factor = div(1, maximum(div(add(norm, 1e-6), maxNorm), 1))
      const scaled = mapTree(grads, g => (isFloat(g.dtype) ? mul(g, factor) : g))
      return { grads: scaled as G, norm }
    }),
  )
}

