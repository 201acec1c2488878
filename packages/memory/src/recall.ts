import { isTensor, type Tensor } from '@heed/tensor'

/** Ask the memory for `query` rows. */
export interface Recall {
  readonly query: Tensor
}

export const isRecall = (x: unknown): x is Recall => typeof x === 'object' && x !== null && 'query' in x && isTensor((x as Recall).query)
