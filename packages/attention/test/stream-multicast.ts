/**
 * The stream ownership rule under multicasting (#19): operators borrow what they receive and whoever made a tensor
 * frees it, so one token stream feeds several pipelines through `share()` / `shareReplay`, late subscribers,
 * `retry` and early unsubscribes, with every tensor the test made disposed afterwards (counted with
 * `trackTensors()`). And nothing a stream receives crashes the process: bad items are typed errors on the error
 * channel.
 */
import t from 'tap'
import { connectable, defer, from, lastValueFrom, map, merge, Observable, retry, share, shareReplay, Subject, take, toArray } from 'rxjs'
import { ArgumentError, DTypeError, HeedError, sgd, sum, tensor, type Tensor } from '@heed/tensor'
import { batchChunks, borrow, chunkTokens, disposeChunk, mapTensor, showProgress, trainStep, type TokenChunk } from '@heed/tensor/stream'
import { multiHeadAttention } from '@heed/attention'
import { attend } from '@heed/attention/stream'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'
import { prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const dModel = 8
const N = 12
const rand = prng(19)
const xs = Float32Array.from(randomArray(rand, N * dModel))
const layerA = multiHeadAttention({ dModel, heads: 2, rope: true })
const layerB = multiHeadAttention({ dModel, heads: 2, kvHeads: 1, rope: true })
const pA = layerA.init({ seed: 1 })
const pB = layerB.init({ seed: 2 })
t.teardown(() => {
  for (const w of [...Object.values(pA), ...Object.values(pB)]) if (w !== undefined && typeof (w as Tensor).dispose === 'function') (w as Tensor).dispose()
})

const cacheA = () => layerA.cache({ batch: 1, capacity: 64 })
const cacheB = () => layerB.cache({ batch: 1, capacity: 64 })
/** The emissions' values (read during `next`, so this also works for lent outputs), then disposed if still alive. */
const valuesOf = map((y: Tensor) => {
  const v = Array.from(y.dataSync())
  y.dispose()
  return v
})
/** Rows 0..N of `xs` as [1, dModel] tensors: the user's own source, re-cut by chunkTokens into chunks it makes. */
const rows = (): Observable<Tensor> =>
  new Observable<Tensor>(sub => {
    const made: Tensor[] = []
    for (let i = 0; i < N && !sub.closed; i++) {
      const r = tensor(xs.subarray(i * dModel, (i + 1) * dModel), [1, dModel], 'float32')
      made.push(r)
      sub.next(r)
    }
    sub.complete()
    // the source made these rows: it frees them in its teardown (operators only borrow them)
    return () => made.forEach(r => r.dispose())
  })
const chunked = () => rows().pipe(chunkTokens({ size: 3 }))

/** One pipeline alone: the reference the multicast runs must reproduce. */
async function alone(layer: typeof layerA, params: typeof pA, cache: typeof cacheA): Promise<number[][]> {
  return lastValueFrom(chunked().pipe(attend(layer, cache, params), valuesOf, toArray()))
}

t.test('share(): one chunk stream into two attend pipelines and a plain subscriber', async t => {
  const wantA = await alone(layerA, pA, cacheA)
  const wantB = await alone(layerB, pB, cacheB)
  await noLeaks(t, 'every chunk, output and cache freed', async () => {
    // the source is synchronous: connectable() starts it once all three have subscribed (share() would run it
    // for the first subscriber alone, then again for each later one)
    const shared = connectable(chunked())
    const seen: number[] = []
    const a = lastValueFrom(shared.pipe(attend(layerA, cacheA, pA), valuesOf, toArray()))
    const b = lastValueFrom(shared.pipe(attend(layerB, cacheB, pB), valuesOf, toArray()))
    // your own subscriber that only reads declares it with borrow(): the chunk's maker frees it afterwards
    const c = lastValueFrom(shared.pipe(map(ch => (borrow(ch), seen.push(ch.tokens.shape[0]!), ch.positions)), toArray()))
    shared.connect()
    const [ya, yb, pos] = await Promise.all([a, b, c])
    t.same(ya, wantA, 'pipeline A equals A alone')
    t.same(yb, wantB, 'pipeline B equals B alone')
    t.same(pos, [0, 3, 6, 9])
    t.same(seen, [3, 3, 3, 3])
  })
  await noLeaks(t, 'share() of a synchronous stream: each subscriber runs it, borrowing what it reads', async () => {
    const shared = chunked().pipe(share())
    const runs = await Promise.all([0, 1].map(() => lastValueFrom(shared.pipe(attend(layerA, cacheA, pA), valuesOf, toArray()))))
    t.same(runs, [wantA, wantA])
  })
  await noLeaks(t, 'multicast after attend: two subscribers read the same outputs', async () => {
    const ys = connectable(chunked().pipe(attend(layerA, cacheA, pA)))
    // the outputs reach only our code, so they are ours: read them, dispose them once (the second read sees them too)
    const first: number[][] = []
    const second: number[][] = []
    await new Promise<void>((resolve, reject) => {
      ys.subscribe({ next: y => void first.push(Array.from(y.dataSync())), error: reject })
      ys.subscribe({ next: y => (second.push(Array.from(y.dataSync())), y.dispose()), error: reject, complete: resolve })
      ys.connect()
    })
    t.same(first, wantA)
    t.same(second, wantA)
  })
})

t.test('late subscribers: share() hands them what comes next, shareReplay over a source you own replays', async t => {
  const wantA = await alone(layerA, pA, cacheA)
  await noLeaks(t, 'a late subscriber of share()', async () => {
    const input = new Subject<TokenChunk>()
    const shared = input.pipe(share())
    const early: number[][] = []
    const late: number[][] = []
    shared.pipe(attend(layerA, cacheA, pA), valuesOf).subscribe(v => early.push(v))
    const mine: Tensor[] = []
    const push = (i: number) => {
      const x = tensor(xs.subarray(i * 3 * dModel, (i + 1) * 3 * dModel), [3, dModel], 'float32')
      mine.push(x)
      input.next({ tokens: x, positions: i * 3 })
    }
    push(0)
    push(1)
    // joins before the chunk at position 6
    shared.pipe(map(c => c.positions as number), toArray()).subscribe(p => late.push(p))
    push(2)
    push(3)
    input.complete()
    t.same(early, wantA, 'the early subscriber saw everything')
    t.same(late, [[6, 9]], 'the late one the chunks after it joined')
    t.ok(mine.every(x => !x.isDisposed), 'no operator disposed the chunks')
    mine.forEach(x => x.dispose())
  })
  await noLeaks(t, 'shareReplay over chunks the test owns', async () => {
    const mine: TokenChunk[] = Array.from({ length: 4 }, (_, i) => ({ tokens: tensor(xs.subarray(i * 3 * dModel, (i + 1) * 3 * dModel), [3, dModel], 'float32'), positions: i * 3 }))
    const replayed = from(mine).pipe(shareReplay())
    const first = await lastValueFrom(replayed.pipe(attend(layerA, cacheA, pA), valuesOf, toArray()))
    // subscribes after the source completed: the replayed chunks are still alive, since attend only borrowed them
    const second = await lastValueFrom(replayed.pipe(attend(layerA, cacheA, pA), valuesOf, toArray()))
    t.same(first, wantA)
    t.same(second, wantA, 'a late subscriber gets the whole replay')
    mine.forEach(disposeChunk)
  })
})

t.test('retry after an error re-runs from a fresh cache; early unsubscribe frees everything', async t => {
  const wantA = await alone(layerA, pA, cacheA)
  await noLeaks(t, 'retry', async () => {
    let attempts = 0
    // the first attempt fails after two chunks, the second runs through
    const flaky = defer(() => {
      attempts++
      return attempts === 1 ? merge(chunked().pipe(take(2)), new Observable<never>(s => s.error(new Error('network')))) : chunked()
    })
    const got = await lastValueFrom(flaky.pipe(attend(layerA, cacheA, pA), valuesOf, toArray(), retry(1)))
    t.equal(attempts, 2)
    t.same(got, wantA, 'the retried run equals a clean one')
  })
  await noLeaks(t, 'take(2) downstream of share() into two pipelines', async () => {
    const shared = connectable(chunked())
    const both = Promise.all([
      lastValueFrom(shared.pipe(attend(layerA, cacheA, pA), take(2), valuesOf, toArray())),
      lastValueFrom(shared.pipe(attend(layerB, cacheB, pB), valuesOf, toArray())),
    ])
    shared.connect()
    const [a, b] = await both
    t.same(a, wantA.slice(0, 2), 'the early leaver got its two')
    t.equal(b.length, 4, 'the other pipeline ran on')
  })
  await noLeaks(t, 'unsubscribe mid-stream, chunks buffered in batchChunks', async () => {
    const input = new Subject<Tensor>()
    const got: TokenChunk[][] = []
    const sub = input.pipe(chunkTokens({ size: 2 }), batchChunks({ size: 2 })).subscribe(b => got.push(b))
    const mine = Array.from({ length: 3 }, (_, i) => tensor(xs.subarray(i * 2 * dModel, (i + 1) * 2 * dModel), [2, dModel], 'float32'))
    mine.forEach(x => input.next(x))
    sub.unsubscribe()
    t.equal(got.length, 1, 'one batch emitted, one chunk left in the buffer (freed by the teardown)')
    got.flat().forEach(disposeChunk)
    mine.forEach(x => x.dispose())
  })
})

/** Run `items` through `op` and resolve with what reached the error channel (or 'complete'). */
function errorOf<I, O>(items: readonly unknown[], op: (s: Observable<I>) => Observable<O>): Promise<unknown> {
  return new Promise(resolve => {
    from(items as I[])
      .pipe(op)
      .subscribe({ next: v => void (v as { dispose?: () => void })?.dispose?.(), error: resolve, complete: () => resolve('complete') })
  })
}

t.test('bad items are typed errors on the error channel, never a crash', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const attendA = attend(layerA, cacheA, pA)
    for (const bad of [null, undefined, 5, 'x', {}, { tokens: 3, positions: 0 }, { tokens: tensor([1], [1]), positions: -1 }, { tokens: tensor([1], [1]), positions: tensor([0], [1], 'float32') }]) {
      const what = bad === null ? 'null' : typeof bad === 'object' ? JSON.stringify(Object.keys(bad)) : String(bad)
      const e1 = await errorOf([bad], attendA)
      t.ok(e1 instanceof HeedError, `attend: ${what} → ${(e1 as Error)?.constructor?.name}`)
      t.match(String(e1), /attend/)
      const e2 = await errorOf([bad], batchChunks({ size: 2 }))
      t.ok(e2 instanceof ArgumentError || e2 instanceof DTypeError, `batchChunks: ${what}`)
      if (bad !== null && typeof bad === 'object') for (const v of Object.values(bad)) (v as Tensor)?.dispose?.()
    }
    t.type(await errorOf([null], chunkTokens({ size: 2 })), ArgumentError, 'chunkTokens: null')
    t.type(await errorOf([null], mapTensor(x => x)), ArgumentError, 'mapTensor: null')
    const w = tensor([0])
    t.type(await errorOf([undefined], trainStep({ params: { w }, optimizer: sgd({ lr: 1 }), loss: (p: { w: Tensor }) => ({ loss: sum(p.w) }) })), ArgumentError, 'trainStep: undefined')
    w.dispose()
    t.type(await errorOf([null], showProgress({ total: 1, stream: { write: () => {}, isTTY: false } })), ArgumentError, 'showProgress: null')
  })
})
