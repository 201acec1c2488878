import type { DType } from '../dtype.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { scope } from '../memory.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { normAxis } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'
import { reshape } from './reshape.js'

/**
 * @internal index tensors are int32 or uint32 with every value in [0, n). Values are checked before dispatch where
 * the backend can read them synchronously (cpu) or still holds their host upload (WebGPU indices made on the host),
 * so the same call raises the same error on every backend. Indices computed on a device are not read back (that
 * would stall its queue): the WebGPU kernels never read out of bounds for them (a gather gives zeros there) and
 * flag the first bad position, so the next read of any tensor raises this op's ValueError.
 */
export function checkIndices(op: string, arg: string, idx: Tensor, n: number, what: string): void {
  if (idx.dtype !== 'int32' && idx.dtype !== 'uint32')
    throw new DTypeError({ op, arg, expected: 'int32 or uint32 indices', actual: idx.dtype }, 'cast float indices explicitly')
  idx.assertLive(op)
  const b = idx.storage.backend
  const v = b.readSync(idx.storage.dataId, idx.dtype, idx.size) ?? b.hostIntegers?.(idx.storage.dataId)
  if (v === undefined) return
  for (let i = 0; i < v.length; i++) {
    const k = v[i]!
    if (k < 0 || k >= n) throw new ValueError({ op, arg, expected: `indices in [0, ${n}) (${what})`, actual: k }, `${arg} at flat position ${i} is out of range`)
  }
}

/** @internal the axis an indexing op works along; rank 0 has none. */
export function indexAxis(op: string, x: Tensor, axis: number): number {
  if (x.rank === 0) throw new ShapeError({ op, arg: 'x', expected: 'rank ≥ 1', actual: x.shape })
  return normAxis(op, axis, x.rank)
}

const gatherImpl = (x: Tensor, indices: Tensor, axis = 0): Tensor => {
  const a = indexAxis('gather', x, axis)
  checkIndices('gather', 'indices', indices, x.shape[a]!, `dim ${a} of [${x.shape.join(',')}]`)
  return runOp1('gather', Kernel.Gather, [x, indices], { axis: a }, true)
}

/**
 * numpy's `take` along `axis` (default 0): the result has shape x.shape[:axis] + indices.shape +
 * x.shape[axis+1:]. `indices` is an int32/uint32 tensor of any rank with values in [0, x.shape[axis]).
 * The gradient scatter-adds into zeros, so repeated indices accumulate.
 */
export const gather: <D extends DType>(x: Tensor<D>, indices: Tensor, axis?: number) => Tensor<D> = guard('gather', {
  'Tensor, Tensor': (x: Tensor, i: Tensor) => gatherImpl(x, i),
  'Tensor, Tensor, number': gatherImpl,
})

/**
 * numpy's `take`: with `axis`, the same as `gather`; without, `x` is read flat (`indices` in [0, x.size)) and the
 * result has the shape of `indices`.
 */
export const take: <D extends DType>(x: Tensor<D>, indices: Tensor, axis?: number) => Tensor<D> = guard('take', {
  'Tensor, Tensor': (x: Tensor, i: Tensor) => scope(() => gatherFlat(x, i)),
  'Tensor, Tensor, number': gatherImpl,
})

function gatherFlat(x: Tensor, indices: Tensor): Tensor {
  checkIndices('take', 'indices', indices, x.size, `x has ${x.size} elements`)
  return gatherImpl(reshape(x, [x.size]), indices, 0)
}
