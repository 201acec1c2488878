import t from 'tap'
import { ArgumentError, DisposedError, add, dispose, exp, keep, memory, mul, reshape, scope, tensor, type Tensor } from '@heed/tensor'

t.test('dispose is idempotent; use after dispose is a DisposedError', async t => {
  const base = memory()
  const x = tensor([1, 2, 3], [3], 'float64')
  t.equal(memory().tensors, base.tensors + 1)
  t.equal(memory().bytes, base.bytes + 24, '3 float64 = 24 bytes')
  x.dispose()
  x.dispose()
  t.equal(x.isDisposed, true)
  t.equal(memory().tensors, base.tensors, 'counted once')
  t.equal(memory().bytes, base.bytes)
  t.throws(() => x.dataSync(), DisposedError)
  await t.rejects(x.data(), DisposedError)
  t.throws(() => add(x, 1), DisposedError)
  t.throws(() => exp(x), { name: 'DisposedError', op: 'exp' })
})

t.test('memory() counts tensors and bytes per backend', async t => {
  const base = memory()
  const a = tensor([1, 2], [2], 'float32')
  const b = tensor([1, 2], [2], 'float16')
  const c = tensor([true, false, true])
  const d = tensor([1], [1], 'int32')
  const m = memory()
  t.equal(m.tensors - base.tensors, 4)
  t.equal(m.bytes - base.bytes, 8 + 4 + 3 + 4, 'float32 4, float16 2, bool 1, int32 4 bytes per element')
  t.equal(m.backends['cpu']!.tensors - base.backends['cpu']!.tensors, 4)
  t.equal(m.backends['cpu']!.bytes - base.backends['cpu']!.bytes, 19)
  t.equal(m.storages - base.storages, 4)
  t.equal(m.leaked, base.leaked)
  dispose({ a, rest: [b, c, d] })
  t.same(memory().tensors, base.tensors, 'dispose walks pytrees')
})

t.test('views share storage; bytes go with the last view', async t => {
  const base = memory()
  const x = tensor([1, 2, 3, 4, 5, 6], [6], 'float64')
  const v = reshape(x, [2, 3])
  const w = reshape(v, [3, 2])
  t.equal(v.storage, x.storage)
  t.equal(memory().tensors - base.tensors, 3)
  t.equal(memory().storages - base.storages, 1, 'one storage')
  t.equal(memory().bytes - base.bytes, 48)
  x.dispose()
  t.same(Array.from(v.dataSync()), [1, 2, 3, 4, 5, 6], 'the view still reads after its source is disposed')
  t.equal(memory().bytes - base.bytes, 48, 'bytes stay while a view lives')
  v.dispose()
  t.equal(memory().bytes - base.bytes, 48)
  w.dispose()
  t.equal(memory().bytes, base.bytes, 'freed with the last view')
  t.equal(memory().storages, base.storages)
})

t.test('scope frees intermediates, keeps returned pytrees, nests', async t => {
  const base = memory().tensors
  const x = tensor([1, 2], [2], 'float64')
  let inner: Tensor | undefined
  const out = scope(() => {
    const a = exp(x)
    const b = mul(a, 2)
    inner = a
    return { b, list: [add(b, 1), 'tag'], n: 3 }
  })
  t.equal(inner!.isDisposed, true, 'intermediate disposed')
  t.equal(out.b.isDisposed, false)
  t.equal((out.list[0] as Tensor).isDisposed, false, 'tensors nested in the result survive')
  t.equal(out.n, 3)
  t.equal(x.isDisposed, false, 'inputs from outside are untouched')
  t.equal(memory().tensors, base + 3)

  let mid: Tensor | undefined
  let innerTmp: Tensor | undefined
  const outer = scope(() => {
    const r = scope(() => {
      innerTmp = mul(x, 3)
      return add(innerTmp, 1)
    })
    t.equal(innerTmp!.isDisposed, true, 'inner scope disposes at its end')
    t.equal(r.isDisposed, false, 'inner result moves to the outer scope')
    mid = r
    return mul(r, 2)
  })
  t.equal(mid!.isDisposed, true, 'the outer scope then disposes the moved survivor')
  t.same(Array.from(outer.dataSync()), [8, 14])

  let kept: Tensor | undefined
  scope(() => {
    scope(() => {
      kept = keep(mul(x, 5))
    })
  })
  t.equal(kept!.isDisposed, false, 'keep() exempts from every enclosing scope')

  let thrownTmp: Tensor | undefined
  t.throws(() =>
    scope(() => {
      thrownTmp = exp(x)
      throw new Error('boom')
    }),
  )
  t.equal(thrownTmp!.isDisposed, true, 'a throwing scope still cleans up')

  let asyncTmp: Tensor | undefined
  t.throws(
    () =>
      scope(async () => {
        asyncTmp = exp(x)
        return asyncTmp
      }),
    ArgumentError,
  )
  t.equal(asyncTmp!.isDisposed, true, 'an async fn is rejected and its synchronous tensors freed')

  dispose([x, out, outer, kept])
  t.equal(memory().tensors, base)
})

t.test('using declarations dispose at block end', async t => {
  const base = memory().tensors
  let seen: Tensor | undefined
  {
    using x = tensor([1, 2], [2], 'float64')
    seen = x
    t.equal(memory().tensors, base + 1)
  }
  t.equal(seen.isDisposed, true)
  t.equal(memory().tensors, base)
})
