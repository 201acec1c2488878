import t from 'tap'
import * as h from '@heed/tensor'
import { eachBackend } from './helpers/backends.js'
import { runParity, type ParityCase } from './helpers/parity.js'

const A = { shape: [2, 3, 4] }
const M = { shape: [3, 4, 5] }
const ints = (values: readonly number[]) => ({ shape: [values.length], kind: 'int32' as const, values })
// ties, signed zeros and NaN in both lanes
const tied = { shape: [2, 6], values: [1, 3, NaN, 1, -0, 0, 0, -1, 0, NaN, 5, -1] }
// lanes longer than one workgroup tile, full of ties
const long = { shape: [2, 300], values: Array.from({ length: 600 }, (_, i) => ((i * 37) % 11) - 5) }

const cases: ParityCase[] = [
  { name: 'transpose', inputs: [A], f: x => h.transpose(x), grad: true },
  { name: 'permute', inputs: [A], f: x => h.permute(x, [1, 0, 2]), grad: true },
  { name: 'slice spec, negative and strided steps', inputs: [M], f: x => h.slice(x, [[null, null, -1], [3, 0, -2], [1, null, 2]]), grad: true },
  { name: 'slice integer index and range', inputs: [M], f: x => h.slice(x, [1, [1, 3]]), grad: true },
  { name: 'slice begin/size', inputs: [M], f: x => h.slice(x, [1, 0, 1], [2, -1, 3]), grad: true },
  { name: 'slice empty', inputs: [M], f: x => h.slice(x, [[2, 1]]) },
  { name: 'concat of three', inputs: [{ shape: [2, 3] }, { shape: [2, 1] }, { shape: [2, 4] }], f: (a, b, c) => h.concat([a!, b!, c!], 1), grad: true },
  { name: 'concat axis 0', inputs: [{ shape: [1, 3] }, { shape: [2, 3] }], f: (a, b) => h.concat([a!, b!]), grad: true },
  { name: 'stack', inputs: [{ shape: [2, 3] }, { shape: [2, 3] }, { shape: [2, 3] }], f: (a, b, c) => h.stack([a!, b!, c!], 1), grad: true },
  { name: 'unstack', inputs: [A], f: x => h.unstack(x, 1), grad: true },
  { name: 'split into sizes', inputs: [A], f: x => h.split(x, [1, 0, 3], 2), grad: true },
  { name: 'split into count', inputs: [A], f: x => h.split(x, 3, 1), grad: true },
  { name: 'pad', inputs: [{ shape: [2, 3] }], f: x => h.pad(x, [[1, 0], [2, 1]], 0.5), grad: true },
  { name: 'pad int32', inputs: [{ shape: [2, 3], kind: 'int32' }], f: x => h.pad(x, [[0, 2], [1, 1]], -3) },
  { name: 'tril/triu batched', inputs: [{ shape: [2, 4, 5] }], f: x => [h.tril(x, 1), h.triu(x, -1), h.tril(x, -2), h.triu(x)] },
  { name: 'tril grad', inputs: [{ shape: [2, 4, 5] }], f: x => h.tril(x, 1), grad: true },
  { name: 'triu grad', inputs: [{ shape: [2, 4, 5] }], f: x => h.triu(x, -1), grad: true },
  { name: 'gather axis 1, repeated indices', inputs: [A, ints([2, 0, 2, 1])], f: (x, i) => h.gather(x, i!, 1), grad: true },
  { name: 'gather 2-D indices', inputs: [{ shape: [5, 3] }, { shape: [2, 3], kind: 'int32', lo: 0, hi: 5 }], f: (x, i) => h.gather(x, i!), grad: true },
  { name: 'gather uint32 indices', inputs: [A, ints([3, 3, 0])], f: (x, i) => h.gather(x, h.cast(i!, 'uint32'), 2) },
  { name: 'take flat', inputs: [A, { shape: [2, 2], kind: 'int32', values: [23, 0, 5, 5] }], f: (x, i) => h.take(x, i!), grad: true },
  { name: 'scatterAdd repeated indices', inputs: [{ shape: [5, 3] }, ints([1, 3, 1, 1]), { shape: [4, 3] }], f: (x, i, u) => h.scatterAdd(x, i!, u!), grad: true },
  { name: 'scatterAdd axis 1', inputs: [A, ints([0, 0, 2]), { shape: [2, 3, 3] }], f: (x, i, u) => h.scatterAdd(x, i!, u!, 2), grad: true },
  { name: 'scatterAdd int32', inputs: [{ shape: [4], kind: 'int32' }, ints([3, 3, 0]), { shape: [3], kind: 'int32' }], f: (x, i, u) => h.scatterAdd(x, i!, u!) },
  {
    name: 'oneHot',
    inputs: [{ shape: [2, 3], kind: 'int32', values: [0, 2, 1, 3, 3, 0] }],
    f: i => [h.oneHot(i, 4), h.oneHot(i, 4, { dtype: 'int32' }), h.oneHot(i, 4, { dtype: 'float16' }), h.oneHot(i, 5, { dtype: 'bool' }), h.oneHot(h.cast(i, 'uint32'), 4, { dtype: 'uint32' })],
  },
  { name: 'sort/argsort with ties and NaN', inputs: [tied], f: x => [h.sort(x), h.sort(x, { descending: true }), h.argsort(x), h.argsort(x, { descending: true })] },
  { name: 'topk with ties and NaN', inputs: [tied], f: x => [h.topk(x, 3), h.topk(x, 6, { largest: false }), h.topk(x, 0)] },
  { name: 'sort axis 0', inputs: [{ shape: [5, 3, 2] }], f: x => [h.sort(x, { axis: 0 }), h.argsort(x, { axis: 0, descending: true })] },
  { name: 'sort long lanes', inputs: [long], f: x => [h.sort(x), h.argsort(x, { descending: true }), h.topk(x, 7)] },
  { name: 'sort grad', inputs: [{ shape: [3, 5] }], f: x => h.sort(x, { descending: true }), grad: true },
  { name: 'topk grad', inputs: [{ shape: [4, 3] }], f: x => h.topk(x, 2, { axis: 0 }), grad: true },
  { name: 'expandDims/squeeze', inputs: [A], f: x => h.squeeze(h.transpose(h.expandDims(x, 1)), 2), grad: true },
  { name: 'squeeze all', inputs: [{ shape: [1, 3, 1, 2] }], f: x => h.squeeze(x), grad: true },
  {
    name: 'int32, uint32 and bool through shape kernels',
    inputs: [{ shape: [3, 4], kind: 'int32' }],
    f: x => {
      const u = h.cast(x, 'uint32')
      const b = h.cast(x, 'bool')
      return [
        h.transpose(u),
        h.slice(b, [[null, null, -1], [1, null, 2]]),
        h.concat([b, h.logicalNot(b), b], 0),
        h.split(u, [1, 3], 1),
        h.pad(b, [[1, 1], [0, 2]], 1),
        h.tril(u, 1),
        h.sort(x, { descending: true }),
        h.argsort(b),
        h.topk(u, 2),
        h.gather(b, h.tensor([2, 0], [2], 'int32'), 1),
      ]
    },
  },
  {
    name: 'float16 through shape kernels',
    inputs: [{ shape: [3, 4] }],
    f: x => {
      const y = h.cast(x, 'float16')
      return [h.transpose(y), h.slice(y, [[2, null, -2]]), h.pad(y, [[0, 1], [1, 0]], 0.1), h.triu(y), h.stack([y, y], 2), h.split(y, 2, 1), h.sort(y), h.argsort(y, { descending: true }), h.gather(y, h.tensor([1, 1, 0], [3], 'int32')), h.scatterAdd(y, h.tensor([2, 0, 2], [3], 'int32'), h.slice(y, [[0, 3]]))]
    },
  },
]

t.test('shape and indexing ops match the float64 oracle on every backend', async t => {
  await eachBackend(t, 'shape parity', async (t, backend) => {
    if (backend === 'cpu') {
      // the CPU is the oracle itself; its own semantics are tested op by op in shape-ops.ts and indexing.ts
      t.pass('cpu is the oracle')
      return
    }
    await runParity(t, backend, cases)
  })
})

t.test('out-of-range indices on webgpu neither crash nor touch other memory, and the next read raises the op error', async t => {
  await eachBackend(
    t,
    'unchecked indices',
    async t => {
      const x = h.tensor([1, 2, 3, 4, 5, 6], [3, 2])
      // host-made indices are checked before dispatch, as on the CPU
      const host = h.tensor([5, -1, 1], [3], 'int32')
      t.throws(() => h.gather(x, host), h.ValueError, 'host-made out-of-range indices are a ValueError before dispatch')
      // indices computed on the device are not known before dispatch: the kernels stay in bounds and flag the first
      // bad position, and the next read raises the op's ValueError (as the CPU does before dispatch)
      const [a, b] = [h.tensor([4, -2, 0], [3], 'int32'), h.tensor([1, 1, 1], [3], 'int32')]
      const bad = h.add(a, b) // [5, -1, 1]
      const good = h.tensor([0, 1, 2], [3], 'int32')
      const raises = async (what: string, op: string, pos: number, read: () => Promise<unknown>): Promise<void> => {
        const err = await read().then(() => undefined, (e: unknown) => e)
        t.ok(err instanceof h.ValueError, `${what}: the next read raises a ValueError`)
        const msg = String((err as Error | undefined)?.message)
        t.match(msg, new RegExp(`^${op}: `), `${what}: it names ${op}`)
        t.match(msg, new RegExp(`indices at flat position ${pos} is out of range|targets at flat position ${pos} is out of range`), `${what}: the first bad position, ${pos}`)
        // the flags were cleared: the device is usable and the next read of the same tensor succeeds
        t.same(Array.from(await good.data()), [0, 1, 2], `${what}: the device is usable afterwards`)
      }
      const g = h.gather(x, bad)
      await raises('gather', 'gather', 0, () => g.data())
      t.same(Array.from(await g.data()), [0, 0, 0, 0, 3, 4], 'gather read zeros at out-of-range indices')
      const s = h.scatterAdd(x, bad, h.ones([3, 2]))
      await raises('scatterAdd', 'scatterAdd', 0, () => s.data())
      t.same(Array.from(await s.data()), [1, 2, 4, 5, 5, 6], 'scatterAdd dropped updates at out-of-range indices')
      const o = h.oneHot(bad, 3)
      await raises('oneHot', 'oneHot', 0, () => o.data())
      t.same(Array.from(await o.data()), [0, 0, 0, 0, 0, 0, 0, 1, 0], 'oneHot left out-of-range rows zero')
      // the error surfaces at the next read of any tensor, and a later op than the bad one does not hide it
      const late = h.sub(h.tensor([0, 7, 1], [3], 'int32'), h.tensor([0, 0, 0], [3], 'int32')) // 7 at position 1
      const g2 = h.mul(h.gather(x, late), 2)
      await raises('a later read', 'gather', 1, () => good.data())
      const ce = h.crossEntropy(h.ones([3, 4]), h.add(late, 0), { reduction: 'none' })
      await raises('crossEntropy', 'crossEntropy', 1, () => ce.data())
      t.throws(() => h.crossEntropy(h.ones([3, 4]), host), h.ValueError, 'host-made crossEntropy targets are checked before dispatch')
      // in range, nothing is raised and nothing is slowed by a readback of the indices
      const fine = h.gather(x, h.add(good, 0))
      t.same(Array.from(await fine.data()), [1, 2, 3, 4, 5, 6])
      for (const v of [x, host, a, b, bad, good, g, s, o, late, g2, ce, fine]) v.dispose()
    },
    ['webgpu'],
  )
})
