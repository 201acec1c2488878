import t from 'tap'
import { Subject, from, map, take, toArray, firstValueFrom, type Observable } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { DTypeError, ShapeError, ValueError, ArgumentError, add, memory, mul, tensor, type Tensor } from '@heed/tensor'
import { batchChunks, chunkLength, chunkTokens, disposeChunk, mapTensor, positionsOf, type TokenChunk } from '@heed/tensor/stream'

const vals = (x: Tensor): number[] => Array.from(x.dataSync())

/** A chunk as plain data (and disposed): what marble tests compare. */
const plain = (c: TokenChunk) => {
  const out = { tokens: vals(c.tokens), shape: [...c.tokens.shape], at: c.positions as number, ...(c.sequence !== undefined ? { seq: c.sequence } : {}) }
  disposeChunk(c)
  return out
}

const collect = <T>(o: Observable<T>): Promise<T[]> => firstValueFrom(o.pipe(toArray()))

t.test('chunkTokens re-cuts id streams (marbles)', async t => {
  const base = memory().tensors
  const ts = new TestScheduler((a, e) => t.same(a, e))
  ts.run(({ cold, expectObservable, expectSubscriptions }) => {
    const src = cold<number | number[]>('-a-b-c-d-|', { a: 1, b: [2, 3, 4], c: 5, d: [] })
    expectObservable(src.pipe(chunkTokens({ size: 2, start: 10, sequence: 's' }), map(plain))).toBe('---(xy)--(z|)', {
      x: { tokens: [1, 2], shape: [2], at: 10, seq: 's' },
      y: { tokens: [3, 4], shape: [2], at: 12, seq: 's' },
      z: { tokens: [5], shape: [1], at: 14, seq: 's' },
    })
    expectSubscriptions(src.subscriptions).toBe('^--------!')
  })
  // Each subscription has its own positions (a fresh scheduler: virtual time does not rewind).
  new TestScheduler((a, e) => t.same(a, e)).run(({ cold, expectObservable }) => {
    const chunked = cold<number>('ab|', { a: 7, b: 8 }).pipe(chunkTokens({ size: 1 }), map(plain))
    const expected = { x: { tokens: [7], shape: [1], at: 0 }, y: { tokens: [8], shape: [1], at: 1 } }
    expectObservable(chunked).toBe('xy|', expected)
    expectObservable(chunked).toBe('xy|', expected)
  })
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('chunkTokens over [T, D] tensors: slices, concatenates, passes whole chunks through', async t => {
  const base = memory().tensors
  const d = 3
  const rows = (from: number, n: number) => tensor(Array.from({ length: n * d }, (_, i) => from * d + i), [n, d], 'float64')
  const whole = rows(0, 4)
  const inputs = [whole, rows(4, 3), rows(7, 2), rows(9, 6), rows(15, 1)]
  const chunks = await collect(from(inputs).pipe(chunkTokens({ size: 4 })))
  t.same(chunks.map(chunkLength), [4, 4, 4, 4])
  t.same(chunks.map(c => c.positions), [0, 4, 8, 12])
  t.equal(chunks[0]!.tokens.storage, whole.storage, 'an input that is exactly one chunk is passed on as a view, without a copy')
  t.same(chunks.flatMap(c => vals(c.tokens)), Array.from({ length: 16 * d }, (_, i) => i), 'rows in order, none lost')
  t.ok(chunks.every(c => c.tokens.dtype === 'float64' && c.tokens.shape[1] === d))
  t.ok(inputs.every(x => !x.isDisposed), 'inputs are borrowed, never disposed')
  const p = positionsOf(chunks[2]!)
  t.same([p.dtype, vals(p)], ['int32', [8, 9, 10, 11]])
  p.dispose()
  const explicit: TokenChunk = { tokens: tensor([1, 2], [2], 'int32'), positions: tensor([7, 3], [2], 'int32') }
  const q = positionsOf(explicit)
  t.same(vals(q), [7, 3], 'explicit positions tensor')
  q.dispose()
  disposeChunk(explicit)
  chunks.forEach(disposeChunk)
  inputs.forEach(x => x.dispose())
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('teardown disposes buffered tensors on unsubscribe', async t => {
  const base = memory().tensors
  const src = new Subject<Tensor>()
  const got: TokenChunk[] = []
  const sub = src.pipe(chunkTokens({ size: 4 })).subscribe(c => got.push(c))
  const a = tensor([1, 2, 3], [3], 'int32')
  const b = tensor([4, 5, 6], [3], 'int32')
  src.next(a)
  t.notOk(a.isDisposed, 'buffered input is alive while subscribed')
  src.next(b) // emits [1..4]; [5, 6] stays buffered as a slice of b
  t.equal(got.length, 1)
  t.same(vals(got[0]!.tokens), [1, 2, 3, 4])
  t.equal(memory().tensors, base + 4, 'the two inputs, one emitted chunk, one buffered remainder')
  sub.unsubscribe()
  t.equal(memory().tensors, base + 3, 'the buffered remainder is disposed on unsubscribe')
  t.notOk(a.isDisposed || b.isDisposed, 'inputs are borrowed')
  got.forEach(disposeChunk)
  a.dispose()
  b.dispose()

  // batchChunks: buffered chunks are disposed on unsubscribe, emitted batches are not.
  const chunks = new Subject<TokenChunk>()
  const batches: TokenChunk[][] = []
  const sub2 = chunks.pipe(batchChunks({ size: 2 })).subscribe(bt => batches.push(bt))
  const mk = (i: number): TokenChunk => ({ tokens: tensor([i], [1], 'int32'), positions: i })
  const cs = [mk(0), mk(1), mk(2)]
  cs.forEach(c => chunks.next(c))
  t.equal(batches.length, 1)
  const before = memory().tensors
  sub2.unsubscribe()
  t.equal(memory().tensors, before - 1, 'the view of the buffered chunk is disposed')
  t.notOk(cs.some(c => c.tokens.isDisposed), 'the chunks themselves are borrowed')
  t.same(batches[0]!.map(c => vals(c.tokens)), [[0], [1]], 'an emitted batch (views of the chunks) is the subscriber\'s')
  batches.flat().forEach(disposeChunk)
  cs.forEach(disposeChunk)

  // take(1) downstream closes the subscription mid-way: the rest is freed.
  const many = [tensor([1, 2, 3, 4, 5, 6], [6], 'int32'), tensor([7], [1], 'int32')]
  const first = await firstValueFrom(from(many).pipe(chunkTokens({ size: 2 }), take(1)))
  t.same(vals(first.tokens), [1, 2])
  disposeChunk(first)
  t.ok(many.every(x => !x.isDisposed), 'inputs borrowed when downstream stops early')
  many.forEach(x => x.dispose())
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('batchChunks groups and flushes (marbles)', async t => {
  const base = memory().tensors
  const ts = new TestScheduler((a, e) => t.same(a, e))
  ts.run(({ cold, expectObservable, expectSubscriptions }) => {
    const src = cold<number>('-a-b-c-d-e|', { a: 1, b: 2, c: 3, d: 4, e: 5 })
    const out = src.pipe(
      chunkTokens({ size: 1 }),
      batchChunks({ size: 2 }),
      map(bt => bt.map(c => plain(c).tokens[0])),
    )
    expectObservable(out).toBe('---x---y--(z|)', { x: [1, 2], y: [3, 4], z: [5] })
    expectSubscriptions(src.subscriptions).toBe('^---------!')
  })
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('errors go to the error channel, and buffers are freed', async t => {
  const base = memory().tensors
  // Row-shape mismatch inside chunkTokens.
  const a = tensor([[1, 2]], [1, 2])
  const b = tensor([[1, 2, 3]], [1, 3])
  await t.rejects(collect(from([a, b]).pipe(chunkTokens({ size: 4 }))), ShapeError)
  t.ok(!a.isDisposed && !b.isDisposed, 'inputs borrowed, the buffer\'s views freed')
  const c = tensor([1], [1], 'int32')
  const dd = tensor([1], [1], 'float32')
  await t.rejects(collect(from([c, dd]).pipe(chunkTokens({ size: 4 }))), DTypeError)
  const scalar = tensor(1)
  await t.rejects(collect(from([scalar]).pipe(chunkTokens({ size: 4 }))), ShapeError, 'scalar tensors rejected')
  ;[a, b, c, dd, scalar].forEach(x => x.dispose())
  await t.rejects(collect(from(['x' as unknown as number]).pipe(chunkTokens({ size: 4 }))), ArgumentError)

  // A user callback that throws.
  const seen: unknown[] = []
  const inputs = [tensor([1], [1]), tensor([2], [1])]
  await new Promise<void>(resolve =>
    from(inputs)
      .pipe(
        mapTensor((x, i) => {
          if (i === 1) throw new Error('boom at 1')
          return mul(x, 2)
        }),
      )
      .subscribe({
        next: y => {
          seen.push(vals(y))
          y.dispose()
        },
        error: err => {
          seen.push((err as Error).message)
          resolve()
        },
        complete: () => {
          seen.push('complete')
          resolve()
        },
      }),
  )
  t.same(seen, [[2], 'boom at 1'], 'value, then the error on the error channel (no complete)')
  t.ok(inputs.every(x => !x.isDisposed), 'inputs borrowed, including the one whose callback threw')
  inputs.forEach(x => x.dispose())

  // Source errors pass through and free buffers.
  const src = new Subject<number>()
  let err: unknown
  src.pipe(chunkTokens({ size: 4 })).subscribe({ error: e => (err = e) })
  src.next(1)
  src.error(new Error('upstream'))
  t.match((err as Error).message, 'upstream')

  // Option validation throws at the factory call.
  t.throws(() => chunkTokens({ size: 0 }), ValueError)
  t.throws(() => chunkTokens({ size: 2, start: -1 }), ValueError)
  t.throws(() => chunkTokens({ size: 2, dtype: 'int8' as 'int32' }), DTypeError)
  t.throws(() => batchChunks({ size: 1.5 }), ValueError)
  t.throws(() => mapTensor(3 as never), ArgumentError)
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('mapTensor frees temporaries and borrows its inputs', async t => {
  const base = memory().tensors
  const xs = [tensor([1, 2], [2]), tensor([3, 4], [2])]
  const ys = await collect(from(xs).pipe(mapTensor(x => add(mul(x, x), 1))))
  t.same(ys.map(vals), [[2, 5], [10, 17]])
  t.ok(xs.every(x => !x.isDisposed), 'inputs borrowed')
  ys.forEach(y => y.dispose())
  xs.forEach(x => x.dispose())
  const kept = [tensor([1], [1])]
  const same = await collect(from(kept).pipe(mapTensor(x => ({ x, twice: add(x, x) }), { keepInput: true })))
  t.notOk(kept[0]!.isDisposed, 'keepInput leaves the input alive')
  t.equal(same[0]!.x, kept[0], 'returning the input keeps it')
  same[0]!.twice.dispose()
  const identity = [tensor([5], [1])]
  const out = await collect(from(identity).pipe(mapTensor(x => x)))
  t.notOk(out[0]!.isDisposed, 'a returned input is not disposed')
  out[0]!.dispose()
  kept[0]!.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('the chunk helpers, lend, stepInfo and showProgress check their arguments in their own name', async t => {
  const { lend, showProgress, stepInfo } = await import('@heed/tensor/stream')
  // t.throws takes a function as an error class, so match on the fields instead.
  const named = (op: string) => ({ name: 'ArgumentError', op })
  for (const bad of [null, undefined, 3, [1, 2], { tokens: 1, positions: 0 }]) {
    t.throws(() => chunkLength(bad as never), named('chunkLength'), `chunkLength(${JSON.stringify(bad)})`)
    t.throws(() => positionsOf(bad as never), named('positionsOf'), `positionsOf(${JSON.stringify(bad)})`)
    t.throws(() => disposeChunk(bad as never), named('disposeChunk'), `disposeChunk(${JSON.stringify(bad)})`)
  }
  const c = { tokens: tensor([1, 2, 3], [3], 'int32'), positions: 4 }
  t.equal(chunkLength(c), 3, 'a valid chunk still works')
  const p = positionsOf(c)
  t.same(Array.from(p.dataSync()), [4, 5, 6])
  disposeChunk({ ...c, positions: p })
  t.doesNotThrow(() => disposeChunk(c), 'disposing a chunk a second time is allowed, as dispose allows it')
  t.throws(() => chunkLength(c), { name: 'DisposedError', op: 'chunkLength' }, 'a disposed chunk is not measured')
  t.throws(() => lend(null as never, 1), named('lend'), 'lend needs a subscriber')
  const step = { step: 1, loss: 0.5, metrics: { 'rewards/margins': 0.25 } }
  t.equal(stepInfo(step, ['rewards/margins']), 'loss 0.5000 margins 0.250')
  t.throws(() => stepInfo(null as never, []), named('stepInfo'))
  t.throws(() => stepInfo(step, 'rewards/margins' as never), named('stepInfo'), 'show must be an array')
  t.throws(() => showProgress(null as never), named('showProgress'))
  t.throws(() => showProgress({ total: 3, totl: 4 } as never), { name: 'ArgumentError', op: 'showProgress', message: /totl/ }, 'an unknown key')
  t.throws(() => showProgress({ total: 0 }), { name: 'ValueError', op: 'showProgress', arg: 'total' }, 'the bar’s own checks name showProgress')
  t.throws(() => showProgress({ total: 2, show: [1] as never }), named('showProgress'))
})
