import t from 'tap'
import { add, exp, memory, mul, scope, sum, tensor, valueAndGrad } from '@heed/tensor'

t.test('add and grad', async t => {
  const base = memory().tensors
  const x = tensor([[1, 2], [3, 4]])
  const y = tensor([10, 20])
  const z = add(x, y)
  t.same(Array.from(await z.data()), [11, 22, 13, 24])
  const [v, g] = valueAndGrad((a: typeof x, b: typeof y) => sum(mul(exp(a), b)), { argnums: [0, 1] })(x, y)
  t.ok(Math.abs((await v.data())[0]! - (10 * Math.E + 20 * Math.exp(2) + 10 * Math.exp(3) + 20 * Math.exp(4))) < 1e-2)
  t.same(g[1].shape, [2])
  const gy = await g[1].data()
  t.ok(Math.abs(gy[0]! - (Math.E + Math.exp(3))) < 1e-4)
  scope(() => {
    add(x, 1)
  })
  for (const d of [x, y, z, v, ...g]) d.dispose()
  t.equal(memory().tensors, base)
})
