import t from 'tap'
import { add, dispose, memory, reshape, scope, tensor, trackTensors, type Tensor } from '@heed/tensor'
import { liveAfter, noLeaks } from './helpers/leaks.js'

t.test('trackTensors records the tensors made while open and not disposed', async t => {
  const before = tensor([1, 2, 3], [3], 'float64')
  const made = trackTensors()
  const x = tensor([1, 2, 3], [3], 'float64')
  const y = scope(() => add(add(x, 1), before))
  const v = reshape(y, [3, 1])
  t.same(made.live(), [x, y, v], 'what is live, oldest first; scope temporaries are gone; a view counts')
  x.dispose()
  t.same(made.live(), [y, v], 'a disposed tensor leaves the record')
  const left = made.stop()
  t.same(left, [y, v])
  const z = tensor([0], [1], 'float64')
  t.same(made.stop(), [y, v], 'stop is idempotent and records nothing after')
  t.same(made.live(), [y, v])
  dispose([before, y, v, z])
})

t.test('tensors made before the record do not count, even when they go meanwhile', async t => {
  const earlier = tensor([1, 2, 3], [3], 'float64')
  const made = trackTensors()
  const mine = tensor([4], [1], 'float64')
  // What the GC safety net does to another test's forgotten tensor: it goes away between two readings.
  const count = memory().tensors
  earlier.dispose()
  t.equal(memory().tensors, count - 1, 'the global count moved')
  t.same(made.live(), [mine], 'the record did not')
  mine.dispose()
  t.same(made.stop(), [], 'nothing of its own left: the check passes')
})

t.test('records nest and span awaits', async t => {
  const outer = trackTensors()
  const a = tensor([1], [1], 'float64')
  const inner = trackTensors()
  await new Promise(resolve => setTimeout(resolve, 1))
  const b = tensor([2], [1], 'float64')
  t.same(inner.stop(), [b])
  t.same(outer.stop(), [a, b])
  dispose([a, b])
})

t.test('noLeaks fails on a planted leak and passes on clean code', async t => {
  const failures: unknown[] = []
  const recorder = { same: (found: unknown, wanted: unknown) => (JSON.stringify(found) === JSON.stringify(wanted) ? true : (failures.push(found), false)) }
  let planted: Tensor | undefined
  await noLeaks(recorder, 'planted', () => {
    const x = tensor([1, 2], [2], 'float32')
    planted = add(x, 1) // forgotten
    x.dispose()
  })
  t.equal(failures.length, 1, 'the planted leak is reported')
  t.match(String((failures[0] as string[])[0]), /float32\[2\]@cpu/, 'named by dtype, shape and backend')
  planted!.dispose()
  failures.length = 0
  let returned: Tensor | undefined
  await noLeaks(recorder, 'a scope result read but not disposed', async () => {
    const x = tensor([1, 2], [2], 'float32')
    returned = scope(() => add(x, 1))
    await returned.data()
    x.dispose()
  })
  t.equal(failures.length, 1, 'a scope result left undisposed is a leak too')
  returned!.dispose()
  failures.length = 0
  const r = await noLeaks(recorder, 'clean', async () => {
    const x = tensor([1, 2], [2], 'float32')
    const y = scope(() => add(x, 1))
    const v = Array.from(await y.data())
    dispose([x, y])
    return v
  })
  t.same(failures, [], 'clean code passes')
  t.same(r, [2, 3], 'and returns its result')
})

t.test('liveAfter returns what a block left, and stops on a throw', async t => {
  const { result, leaked } = await liveAfter(() => tensor([1], [1], 'float64'))
  t.same(leaked, [result])
  result.dispose()
  await t.rejects(
    liveAfter(() => {
      tensor([1], [1], 'float64')
      throw new Error('boom')
    }),
    /boom/,
  )
  const after = trackTensors()
  const x = tensor([2], [1], 'float64')
  t.same(after.stop(), [x], 'a later record sees only its own tensors')
  x.dispose()
})
