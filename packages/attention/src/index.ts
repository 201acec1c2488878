/**
 * @heed/attention: softmax attention with a mask/score-mod algebra, the (o, lse) state merge,
 * KV caches and streaming decode, and efficient attention operators (Lightning, Flow, Agent, DuoAttention,
 * Landmark, S2, MoH, ACT, HiLo, Combiner, Routing, HiP).
 *
 * The package is being built. Until its first operators land, this entry point exposes only what is true
 * today: the tensor types its API will take and return, and its development stage.
 */
// Re-exported so code written against this package types its tensors without a second import.
export type { Tensor, DType, Shape } from '@heed/tensor'

/** Development stage of @heed/attention; removed once the package ships its first operator. */
export const stage = 'in development' as const
