import t from 'tap'
import { tensor, type DType } from '@heed/tensor'
import * as memory from '@heed/memory'
import type { Tensor } from '@heed/memory'

t.test('the entry point loads its models and no longer exports a development stage', async t => {
  for (const name of ['sparseyMac', 'hcamMemory', 'TensorBrain'] as const) t.equal(typeof memory[name], 'function', name)
  t.notOk('stage' in memory)
})

t.test('its re-exported Tensor type is @heed/tensor\'s', async t => {
  const x: Tensor = tensor([1, 2])
  const dtype: DType = x.dtype
  t.same(Array.from(await x.data()), [1, 2])
  t.equal(typeof dtype, 'string')
  x.dispose()
})
