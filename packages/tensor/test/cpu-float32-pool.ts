import t from 'tap'
import { add, kernelOp, memory, neg, registerKernel, tensor } from '@heed/tensor'
import { adoptValues, releaseValues, takeFloat32 } from '../src/backends/cpu/float32Pool.js'
import type { CpuTensor } from '../src/backends/cpu/types.js'

const N = 8192

t.test('an array comes back only once no storage sees its buffer', async t => {
  const a = new Float32Array(N)
  adoptValues(a)
  releaseValues(a)
  t.equal(takeFloat32(N), a, 'released array is handed out again')
  t.not(takeFloat32(N), a, 'and only once')

  const b = new Float32Array(N)
  const view = new Float32Array(b.buffer)
  adoptValues(b)
  adoptValues(view)
  releaseValues(b)
  t.not(takeFloat32(N), b, 'not while another storage holds a view of the buffer')
  releaseValues(view)
  t.equal(takeFloat32(N), view, 'the last holder brings the buffer back')

  const whole = new Float32Array(2 * N)
  const part = whole.subarray(N)
  adoptValues(part)
  releaseValues(part)
  t.not(takeFloat32(N), part, 'a view over part of a buffer is never reused')

  const small = new Float32Array(16)
  adoptValues(small)
  releaseValues(small)
  t.not(takeFloat32(16), small, 'small arrays stay with the garbage collector')

  const ints = new Int32Array(N)
  adoptValues(ints)
  releaseValues(ints)
  t.type(takeFloat32(N), Float32Array, 'other element types are not pooled')
})

t.test('a kernel output that views an input buffer survives the input being freed and reused', async t => {
  const base = memory().tensors
  // an extension kernel that returns a same-buffer view of its input: a new storage over the input's memory
  registerKernel('cpu', 'TestAliasView', ([x]: readonly CpuTensor[]) => ({ values: new Float32Array((x!.values as Float32Array).buffer), shape: x!.shape, dtype: x!.dtype }))
  const values = Float32Array.from({ length: N }, (_, i) => i * 0.5 - 7)
  const src = tensor(values, [N])
  const x = neg(src)
  const [alias] = kernelOp('aliasView', 'TestAliasView', [x])
  x.dispose()
  // same-sized float32 results: with the view alive, none of them may land in x's old buffer
  const others = [neg(alias!), add(alias!, alias!), neg(src)]
  const got = await alias!.data()
  t.same(Array.from(got), Array.from(values, v => -v), 'the view still reads the values x had')
  for (const o of [...others, src]) o.dispose()
  alias!.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('recycled arrays are fully overwritten by the kernels that take them', async t => {
  const base = memory().tensors
  // fill the pool with garbage-holding arrays, then check results computed into them
  const nan = tensor(new Float32Array(N).fill(NaN), [N])
  const junk = Array.from({ length: 4 }, () => neg(nan))
  for (const j of [...junk, nan]) j.dispose()
  const a = tensor(Float32Array.from({ length: N }, (_, i) => i), [N])
  const b = neg(a)
  const c = add(a, b)
  t.same(Array.from(await b.data()).slice(0, 3), [-0, -1, -2])
  t.ok((await c.data()).every(v => v === 0), 'a + (−a) is 0 everywhere, no NaN left from a reused array')
  for (const x of [a, b, c]) x.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})
