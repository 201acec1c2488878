import t from 'tap'
import {
  add,
  BackendError,
  getBackend,
  listBackends,
  memory,
  registerBackend,
  setBackend,
  tensor,
  toBackend,
  withBackend,
  zeros,
} from '@heed/tensor'
import { CpuBackend } from '@heed/tensor/cpu'

registerBackend('host2', () => new CpuBackend({ name: 'host2' }))

t.test('cpu is the default and is always there', async t => {
  t.equal(getBackend(), 'cpu')
  t.ok(listBackends().includes('cpu'))
  t.equal(tensor([1]).backend, 'cpu')
})

t.test('unknown backends are a BackendError naming the choices', async t => {
  await t.rejects(setBackend('nope'), BackendError)
  await t.rejects(setBackend('nope'), { message: /setBackend: name: expected one of cpu/ })
  t.throws(() => zeros([2], { backend: 'nope' }), BackendError)
  t.throws(() => withBackend('nope', () => 1), BackendError)
})

t.test('a registered backend must be initialised before synchronous use', async t => {
  registerBackend('lazy', () => new CpuBackend({ name: 'lazy' }))
  t.throws(() => zeros([1], { backend: 'lazy' }), { message: /not initialised/ })
  await setBackend('lazy')
  t.equal(getBackend(), 'lazy')
  const z = zeros([3])
  t.equal(z.backend, 'lazy')
  z.dispose()
  await setBackend('cpu')
})

t.test('per-call choice: creation option and withBackend', async t => {
  await setBackend('host2')
  await setBackend('cpu')
  const a = zeros([2], { backend: 'host2' })
  t.equal(a.backend, 'host2')
  const b = withBackend('host2', () => tensor([1, 2]))
  t.equal(b.backend, 'host2')
  t.equal(getBackend(), 'cpu', 'withBackend restores the default')
  const c = add(a, b)
  t.equal(c.backend, 'host2', 'ops run where their inputs live')
  t.same(Array.from(await c.data()), [1, 2])
  for (const x of [a, b, c]) x.dispose()
})

t.test('mixing backends in one op is an error, never a silent copy', async t => {
  const a = tensor([1, 2])
  const b = tensor([3, 4], undefined, 'float32', { backend: 'host2' })
  t.throws(() => add(a, b), BackendError)
  t.throws(() => add(a, b), { message: /different backends.*toBackend/ })
  const moved = await toBackend(b, 'cpu')
  t.equal(moved.backend, 'cpu')
  const s = add(a, moved)
  t.same(Array.from(await s.data()), [4, 6])
  t.equal(b.isDisposed, false, 'the source stays valid')
  for (const x of [a, b, moved, s]) x.dispose()
})

t.test('memory is reported per backend', async t => {
  const before = memory()
  const a = zeros([4], { backend: 'host2' })
  const after = memory()
  t.equal(after.backends['host2']!.tensors, before.backends['host2']!.tensors + 1)
  t.equal(after.backends['host2']!.bytes, before.backends['host2']!.bytes + 16)
  t.equal(after.backends['cpu']!.tensors, before.backends['cpu']!.tensors)
  a.dispose()
  t.equal(memory().backends['host2']!.bytes, before.backends['host2']!.bytes)
})

t.test('dataSync works on host backends', async t => {
  const a = tensor([1, 2, 3], undefined, 'int32')
  t.same(Array.from(a.dataSync()), [1, 2, 3])
  t.ok(a.dataSync() instanceof Int32Array)
  a.dispose()
})

t.test('device-level counters return to zero for every dtype', async t => {
  const cpu = new CpuBackend({ name: 'counted' })
  const before = cpu.memory()
  const ids = (['float16', 'float32', 'float64', 'int32', 'uint32', 'bool'] as const).map(d => cpu.allocate(d, 5))
  t.equal(cpu.memory().bytes - before.bytes, 5 * (2 + 4 + 8 + 4 + 4 + 1))
  for (const id of ids) cpu.free(id)
  t.same(cpu.memory(), before)
})
