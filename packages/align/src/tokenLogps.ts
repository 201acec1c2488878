import { ShapeError, DTypeError, logSoftmax, oneHot, scope, sum, where, type Tensor } from '@heed/tensor'
import { requireFloat, requireTensor } from './internal.js'

/**
 * Log-probability of each label under `logits` (TRL's `selective_log_softmax`): `logits [..., V]`, `labels`
 * int32 `[...]` → `[...]`. The label's entry is selected out of the log-softmax (not multiplied by a one-hot),
 * so a `-inf` logit elsewhere in the row cannot turn the result into NaN.
 */
export function tokenLogps(logits: Tensor, labels: Tensor): Tensor {
  const op = 'tokenLogps'
  const x = requireFloat(op, 'logits', logits)
  const y = requireTensor(op, 'labels', labels)
  if (y.dtype !== 'int32' && y.dtype !== 'uint32') throw new DTypeError({ op, arg: 'labels', expected: 'int32 or uint32', actual: y.dtype })
  if (x.rank < 1 || y.rank !== x.rank - 1 || y.shape.some((d, i) => d !== x.shape[i]))
    throw new ShapeError({ op, arg: 'labels', expected: `logits' shape without its last dim: [${x.shape.slice(0, -1).join(',')}]`, actual: y.shape })
  const vocab = x.shape[x.rank - 1]!
  return scope(() => sum(where(oneHot(y, vocab, { dtype: 'bool' }), logSoftmax(x, { axis: -1 }), 0), { axis: -1 }))
}
