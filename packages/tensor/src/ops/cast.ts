import { isDType, isFloat, type DType } from '../dtype.js'
import { DTypeError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

const castImpl = (x: Tensor, dtype: DType): Tensor => {
  if (!isDType(dtype)) throw new DTypeError({ op: 'cast', arg: 'dtype', expected: 'float32, float16, float64, int32, uint32 or bool', actual: String(dtype) })
  if (dtype === x.dtype) return runOp1('cast', Kernel.Identity, [x], {}, true)
  // Float → float casts carry gradients (cast back); anything through an integer or bool cuts the tape.
  const differentiable = isFloat(x.dtype) && isFloat(dtype)
  return runOp1('cast', Kernel.Cast, [x], { dtype }, differentiable)
}

/** Convert to `dtype`. Float → int truncates toward zero; → bool is `x != 0`. */
export const cast: <D extends DType, S extends Shape>(x: Tensor<DType, S>, dtype: D) => Tensor<D, S> = guard('cast', {
  'Tensor, string': castImpl,
})
