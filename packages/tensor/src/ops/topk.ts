import type { DType } from '../dtype.js'
import { ValueError } from '../errors.js'
import { runOp } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { knownOptions } from '../validate.js'
import { indexAxis } from './gather.js'

export interface TopKOptions {
  /** Axis to select along, default -1. */
  readonly axis?: number
  /** The k largest (default) or the k smallest. */
  readonly largest?: boolean
}

const topkImpl = (x: Tensor, k: number, opts: TopKOptions = {}): { values: Tensor; indices: Tensor } => {
  knownOptions('topk', opts, ['axis', 'largest'])
  const axis = indexAxis('topk', x, opts.axis ?? -1)
  const n = x.shape[axis]!
  if (!Number.isInteger(k) || k < 0 || k > n)
    throw new ValueError({ op: 'topk', arg: 'k', expected: `an integer in [0, ${n}] (dim ${axis} of [${x.shape.join(',')}])`, actual: k })
  const largest = opts.largest ?? true
  const [values, indices] = runOp('topk', Kernel.TopK, [x], { k, axis, largest }, true) as [Tensor, Tensor]
  return { values, indices }
}

/**
 * The k largest (or smallest) entries along `axis` (default -1), sorted, with their int32 positions. Ties keep
 * the lower index first; NaN ranks as the largest value, as in PyTorch (first with `largest`, last otherwise). The
 * gradient flows to `values` and is scattered back through `indices`.
 */
export const topk: <D extends DType>(x: Tensor<D>, k: number, opts?: TopKOptions) => { values: Tensor<D>; indices: Tensor<'int32'> } = guard('topk', {
  'Tensor, number': (x: Tensor, k: number) => topkImpl(x, k),
  'Tensor, number, Object': topkImpl,
})
