import { colSetMass, type ObserveOptions } from '@heed/attention'
import { div, mean, reshape, scope, sum, ValueError, type Tensor } from '@heed/tensor'

/**
 * MIA-DPO's attention shares straight from a model's attention: for each image (a set of key positions holding its
 * tokens) the fraction of the generated tokens' attention that lands on it, averaged over batch, heads and the
 * generated query rows. Computed exactly from the saved logsumexp with the attention core's lazy observation
 * (`colSetMass`), so no T×T attention map is ever materialised. Feed the result to `miaDpoThreshold` /
 * `selectRejected`, or compare `shares[target]` with the threshold directly.
 *
 * q `[B, H, Tq, D]` are the generated tokens' queries, k `[B, Hkv, Tk, D]` the keys, lse `[B, H, Tq]` from
 * `scaledDotProductAttention`; `images[i]` lists image i's key positions. Returns `[nImages]`, summing to 1.
 */
export function imageAttentionShares(q: Tensor, k: Tensor, lse: Tensor, images: readonly (readonly number[])[], opts: Omit<ObserveOptions, 'rows' | 'cols'> = {}): Tensor {
  if (!Array.isArray(images) || images.length === 0)
    throw new ValueError({ op: 'imageAttentionShares', arg: 'images', expected: 'one or more lists of image key positions', actual: Array.isArray(images) ? 0 : typeof images })
  return scope(() => {
    const mass = colSetMass(q, k, lse, images, opts) // [B, H, Tq, nImages]
    const n = images.length
    const perImage = mean(reshape(mass, [-1, n]), { axis: 0 })
    return div(perImage, sum(perImage))
  })
}
