import { fromValues } from '../engine.js'
import { allocArray, castValue, type DType } from '../dtype.js'
import type { Tensor } from '../Tensor.js'

/** @internal a rank-0 constant of `like`'s dtype and backend (weak typing: scalars adopt the tensor's dtype). */
export function constantLike(value: number | boolean, like: Tensor, dtype: DType = like.dtype): Tensor {
  const v = allocArray(dtype, 1)
  // castValue rounds once from float64 (a float16 constant would otherwise be rounded via float32 first).
  v[0] = castValue(dtype, typeof value === 'boolean' ? (value ? 1 : 0) : value)
  return fromValues(v, [], dtype, like.backend)
}

/** @internal run `f` with a temporary scalar that is disposed afterwards (the tape keeps its own handle). */
export function withConstant<T>(value: number | boolean, like: Tensor, f: (c: Tensor) => T, dtype?: DType): T {
  const c = constantLike(value, like, dtype)
  try {
    return f(c)
  } finally {
    c.dispose()
  }
}
