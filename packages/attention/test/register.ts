import t from 'tap'
import { hasKernel, memory, tensor } from '@heed/tensor'
import { scaledDotProductAttention } from '@heed/attention'
import { ensureAttentionKernels } from '../src/kernels/register.js'

t.test('attention kernels are registered on first use, once, for cpu and webgpu alike', async t => {
  ensureAttentionKernels()
  ensureAttentionKernels()
  for (const k of ['Attention', 'AttentionBackward']) {
    t.ok(hasKernel('cpu', k), `cpu ${k}`)
    // held by the engine for the webgpu backend whether or not one is instantiated yet
    t.ok(hasKernel('webgpu', k), `webgpu ${k}`)
  }
  const before = memory().tensors
  const q = tensor([1, 0, 0, 1], [1, 1, 2, 2])
  const { out, lse } = scaledDotProductAttention(q, q, q)
  t.same(out.shape, [1, 1, 2, 2])
  for (const x of [q, out, lse]) x.dispose()
  t.equal(memory().tensors, before, 'no tensors left behind')
})
