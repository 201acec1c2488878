import t from 'tap'
import { tensor, type DType } from '@heed/tensor'
import { stage, type Tensor } from '@heed/attention'

t.test('the entry point loads and states its stage', async t => {
  t.equal(stage, 'in development')
})

t.test('its re-exported Tensor type is @heed/tensor\'s', async t => {
  const x: Tensor = tensor([1, 2])
  const dtype: DType = x.dtype
  t.same(Array.from(await x.data()), [1, 2])
  t.equal(typeof dtype, 'string')
  x.dispose()
})
