import t from 'tap'
import * as h from '@heed/tensor'
import { grad, memory, mul, sum, take, tensor, type Tensor } from '@heed/tensor'
import { prng, randomArray } from './helpers/numeric.js'
import { eachBackend } from './helpers/backends.js'
import { runParity } from './helpers/parity.js'

// take(table [V, D], ids [B, T]) copies rows (block copies from D = 16 up); its gradient adds rows back in order.
for (const d of [3, 16, 40]) {
  t.test(`embedding gather and its scatter-add gradient, D = ${d}, float32 and float64`, async t => {
    const before = memory().tensors
    const rand = prng(d)
    const v = 11
    const tv = randomArray(rand, v * d, -3, 3)
    const ids = Array.from({ length: 4 * 9 }, (_, i) => (i * 5 + (i % 3)) % v)
    const dyv = randomArray(rand, ids.length * d, -2, 2)
    for (const dtype of ['float32', 'float64'] as const) {
      const round = dtype === 'float32' ? Math.fround : (x: number) => x
      const table = tensor(tv, [v, d], dtype)
      const idx = tensor(ids, [4, 9], 'int32')
      const dy = tensor(dyv, [4, 9, d], dtype)
      const y = take(table, idx, 0)
      t.same(y.shape, [4, 9, d])
      t.same(Array.from(y.dataSync()), ids.flatMap(k => tv.slice(k * d, k * d + d).map(round)), `${dtype} gather is exact`)
      const g = grad((a: Tensor) => sum(mul(take(a, idx, 0), dy)))(table)
      // the same order of additions as the kernel: rows by increasing position, each into the zero table
      const ref = new Array<number>(v * d).fill(0)
      ids.forEach((k, j) => {
        for (let i = 0; i < d; i++) ref[k * d + i] = round(ref[k * d + i]! + round(dyv[j * d + i]!))
      })
      t.same(Array.from(g.dataSync()), ref, `${dtype} gradient is the in-order scatter-add`)
      h.dispose([table, idx, dy, y, g])
    }
    t.equal(memory().tensors, before, 'no tensors left behind')
  })
}

t.test('embedding gather on every backend', async t => {
  await eachBackend(t, 'take parity', async (tt, backend) => {
    await runParity(tt, backend, [
      { name: 'take rows, grad', inputs: [{ shape: [7, 24] }, { shape: [3, 5], kind: 'int32', lo: 0, hi: 7 }], f: (a, i) => take(a!, i!, 0), grad: true },
    ])
  })
})
