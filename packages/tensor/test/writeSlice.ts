import t from 'tap'
import { DTypeError, kernelOp, memory, registerKernel, reshape, scope, ShapeError, tensor, ValueError, writeSlice, zeros } from '@heed/tensor'
import type { CpuKernel } from '@heed/tensor/cpu'
import { eachBackend } from './helpers/backends.js'

t.test('writeSlice writes in place along an axis, visible through views', async t => {
  await eachBackend(t, 'writeSlice', async t => {
    const base = memory().tensors
    const dst = zeros([2, 5, 3])
    const view = reshape(dst, [30])
    const src = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 2, 3])
    writeSlice(dst, src, { axis: 1, offset: 2 })
    const got = Array.from(await view.data())
    const want = new Array(30).fill(0)
    for (let b = 0; b < 2; b++) for (let i = 0; i < 2; i++) for (let c = 0; c < 3; c++) want[b * 15 + (2 + i) * 3 + c] = b * 6 + i * 3 + c + 1
    t.same(got, want)
    scope(() => writeSlice(dst, tensor([[[9, 9, 9]], [[8, 8, 8]]]), { axis: 1, offset: 4 }))
    const row = Array.from(await dst.data()).slice(12, 15)
    t.same(row, [9, 9, 9])
    const ints = zeros([4], { dtype: 'int32' })
    scope(() => writeSlice(ints, tensor(new Int32Array([7, -3])), { offset: 1 }))
    t.same(Array.from(await ints.data()), [0, 7, -3, 0])
    t.throws(() => scope(() => writeSlice(dst, tensor([[[1, 2]]]), { axis: 1 })), ShapeError)
    t.throws(() => writeSlice(dst, src, { axis: 1, offset: 4 }), ValueError)
    t.throws(() => scope(() => writeSlice(ints, tensor([1]))), DTypeError)
    for (const x of [dst, view, src, ints]) x.dispose()
    t.equal(memory().tensors, base, 'no tensors left behind')
  })
})

t.test('registerKernel + kernelOp: a package brings its own kernel and gradient', async t => {
  const twice: CpuKernel = ([x]) => ({ values: x!.values.map(v => 2 * v), shape: x!.shape, dtype: x!.dtype })
  registerKernel('cpu', 'Twice', twice)
  const x = tensor([1, 2, 3])
  const [y] = kernelOp('twice', 'Twice', [x], {}, dys => [kernelOp('twice', 'Twice', [dys[0]!])[0]!])
  t.same(Array.from(await y!.data()), [2, 4, 6])
  x.dispose()
  y!.dispose()
})
