/**
 * @heed/fairness: the Distraction module, fairness metrics and the UCI Adult benchmark.
 *
 * The package is being built. Until its first operators land, this entry point exposes only what is true
 * today: the tensor types its API will take and return, and its development stage.
 */
// Re-exported so code written against this package types its tensors without a second import.
export type { Tensor, DType, Shape } from '@heed/tensor'

/** Development stage of @heed/fairness; removed once the package ships its first operator. */
export const stage = 'in development' as const
