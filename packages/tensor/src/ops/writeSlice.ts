import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { normAxis } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

export interface WriteSliceOptions {
  /** The axis along which `src` is placed (default 0). */
  readonly axis?: number
  /** Where along `axis` the first slice of `src` lands (default 0). */
  readonly offset?: number
}

const writeSliceImpl = (dst: Tensor, src: Tensor, opts: WriteSliceOptions = {}): void => {
  const op = 'writeSlice'
  if (dst.dtype !== src.dtype) throw new DTypeError({ op, arg: 'src', expected: `${dst.dtype} like dst`, actual: src.dtype })
  if (dst.rank !== src.rank) throw new ShapeError({ op, arg: 'src', expected: `rank ${dst.rank} like dst [${dst.shape.join(',')}]`, actual: src.shape })
  const axis = normAxis(op, opts.axis ?? 0, dst.rank)
  const offset = opts.offset ?? 0
  dst.shape.forEach((d, i) => {
    if (i !== axis && d !== src.shape[i])
      throw new ShapeError({ op }, `src [${src.shape.join(',')}] and dst [${dst.shape.join(',')}] differ outside axis ${axis}`)
  })
  if (!Number.isInteger(offset) || offset < 0 || offset + src.shape[axis]! > dst.shape[axis]!)
    throw new ValueError({ op, arg: 'offset', expected: `an integer in [0, ${dst.shape[axis]! - src.shape[axis]!}]`, actual: offset })
  runOp1(op, Kernel.WriteSlice, [dst, src], { axis, offset }).dispose()
}

/**
 * Copy `src` into `dst` in place, along `axis` from `offset`. The single mutating op of heed: it exists for
 * preallocated buffers (KV caches) that would otherwise be re-created at every decode step. Not differentiable;
 * every view sharing `dst`'s storage sees the write.
 */
export const writeSlice: (dst: Tensor, src: Tensor, opts?: WriteSliceOptions) => void = guard('writeSlice', {
  'Tensor, Tensor': (d: Tensor, s: Tensor) => writeSliceImpl(d, s),
  'Tensor, Tensor, Object': writeSliceImpl,
})
