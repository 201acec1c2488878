import { backendSync } from './engine.js'
import { fromValues } from './engine.js'
import type { DType } from './dtype.js'
import type { Shape } from './shape.js'
import type { Tensor } from './Tensor.js'
import { requireTensor } from './validate.js'

/**
 * Copy a tensor to another backend (the one explicit way to cross devices; ops never do it implicitly).
 * Async because reading a GPU buffer is. Returns a new tensor; the source stays valid.
 */
export async function toBackend<D extends DType, S extends Shape>(t: Tensor<D, S>, backend: string): Promise<Tensor<D, S>> {
  requireTensor('toBackend', 't', t)
  backendSync(backend, 'toBackend')
  const values = await t.data()
  return fromValues(values, t.shape, t.dtype, backend) as Tensor<D, S>
}
