import { isDType, type DType } from '../dtype.js'
import { DTypeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { knownOptions } from '../validate.js'
import { checkIndices } from './gather.js'

export interface OneHotOptions<D extends DType> {
  /** Output dtype, default float32. */
  readonly dtype?: D
}

const oneHotImpl = (indices: Tensor, depth: number, opts: OneHotOptions<DType> = {}): Tensor => {
  knownOptions('oneHot', opts, ['dtype'])
  if (!Number.isInteger(depth) || depth < 0) throw new ValueError({ op: 'oneHot', arg: 'depth', expected: 'a non-negative integer', actual: depth })
  const dtype = opts.dtype ?? 'float32'
  if (!isDType(dtype)) throw new DTypeError({ op: 'oneHot', arg: 'dtype', expected: 'float32, float16, float64, int32, uint32 or bool', actual: String(dtype) })
  checkIndices('oneHot', 'indices', indices, depth, 'depth')
  return runOp1('oneHot', Kernel.OneHot, [indices], { depth, dtype })
}

/** indices.shape + [depth]: 1 at each index, 0 elsewhere. Indices are int32/uint32 in [0, depth). Not differentiable. */
export const oneHot: <D extends DType = 'float32'>(indices: Tensor, depth: number, opts?: OneHotOptions<D>) => Tensor<D> = guard('oneHot', {
  'Tensor, number': (i: Tensor, d: number) => oneHotImpl(i, d),
  'Tensor, number, Object': oneHotImpl,
})
