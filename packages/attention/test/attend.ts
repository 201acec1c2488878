import t from 'tap'
import { defer, from, Subject, take, toArray, lastValueFrom } from 'rxjs'
import { memory, ShapeError, tensor, ValueError, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import { CacheOverflowError, multiHeadAttention, transformerBlock, type KvCache } from '@heed/attention'
import { attend } from '@heed/attention/stream'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(23)

/**
 * A prefill chunk of `prefill` rows, then single rows, from one host array `[N, dModel]`. attend borrows its
 * chunks (the stream ownership rule), so the generator, their maker, frees each once the pipeline is done with it.
 */
function* chunksOf(xs: Float32Array, dModel: number, prefill: number): Generator<TokenChunk> {
  const N = xs.length / dModel
  let c: TokenChunk = { tokens: tensor(xs.subarray(0, prefill * dModel), [prefill, dModel], 'float32'), positions: 0 }
  try {
    yield c
  } finally {
    c.tokens.dispose()
  }
  for (let p = prefill; p < N; p++) {
    c = { tokens: tensor(xs.subarray(p * dModel, (p + 1) * dModel), [1, dModel], 'float32'), positions: p }
    try {
      yield c
    } finally {
      c.tokens.dispose()
    }
  }
}

t.test('a 4,000-token prefill then 2,000 decode steps equal one-shot causal attention over all 6,000 tokens', async t => {
  const base = memory()
  const dModel = 16
  const layer = multiHeadAttention({ dModel, heads: 2, kvHeads: 1, headDim: 8, rope: true })
  const params = layer.init({ seed: 4 })
  const N = 6000
  const xs = Float32Array.from(randomArray(rand, N * dModel))
  const got = new Float32Array(N * dModel)
  let row = 0
  let emissions = 0
  const t0 = performance.now()
  await new Promise<void>((resolve, reject) =>
    from(chunksOf(xs, dModel, 4000))
      .pipe(attend(layer, () => layer.cache({ batch: 1, capacity: N }), params))
      .subscribe({
        next: y => {
          got.set(y.dataSync() as Float32Array, row * dModel)
          row += y.shape[0]!
          emissions++
          y.dispose()
        },
        error: reject,
        complete: resolve,
      }),
  )
  const streamMs = performance.now() - t0
  t.equal(emissions, 2001, 'one emission per chunk')
  t.equal(row, N)
  const t1 = performance.now()
  const x = tensor(xs, [N, dModel], 'float32')
  const oneShot = layer.forward(params, x)
  const want = oneShot.dataSync()
  const oneShotMs = performance.now() - t1
  let worst = 0
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!))
  assertClose(t, got, want, { atol: 2e-5, rtol: 1e-4, msg: 'stream = one-shot' })
  t.comment(`stream ${streamMs.toFixed(0)} ms (prefill + 2000 steps), one-shot ${oneShotMs.toFixed(0)} ms, max |Δ| ${worst.toExponential(2)}`)
  for (const w of [x, oneShot, params.Wq, params.Wk, params.Wv, params.Wo]) w.dispose()
  t.equal(memory().tensors, base.tensors, 'no tensors left behind')
  t.equal(memory().bytes, base.bytes, 'no bytes left behind (the cache was freed on complete)')
})

t.test('unsubscribing frees the cache: memory() is back at its baseline', async t => {
  const layer = multiHeadAttention({ dModel: 8, heads: 2 })
  const params = layer.init({ seed: 1 })
  const base = memory()
  const input = new Subject<TokenChunk>()
  let cache: KvCache | undefined
  const outs: Tensor[] = []
  const sub = input.pipe(attend(layer, () => (cache = layer.cache({ batch: 1, capacity: 1024 })), params)).subscribe(y => outs.push(y))
  const fed = [tensor(randomArray(rand, 10 * 8), [10, 8], 'float32'), tensor(randomArray(rand, 8), [1, 8], 'float32')]
  input.next({ tokens: fed[0]!, positions: 0 })
  input.next({ tokens: fed[1]!, positions: 10 })
  t.ok(fed.every(x => !x.isDisposed), 'attend borrows its chunks')
  for (const x of fed) x.dispose()
  t.equal(outs.length, 2)
  for (const y of outs) y.dispose()
  t.ok(memory().bytes >= base.bytes + cache!.bytes(), `the cache holds ${cache!.bytes()} bytes while subscribed`)
  sub.unsubscribe()
  t.ok(cache!.isDisposed, 'disposed on unsubscribe')
  t.equal(memory().tensors, base.tensors, 'tensors back to baseline')
  t.equal(memory().bytes, base.bytes, 'bytes back to baseline')
  // a chunk pushed after unsubscribing never reaches the layer; take(n) completes and frees too
  const done = await lastValueFrom(from(chunksOf(Float32Array.from(randomArray(rand, 12 * 8)), 8, 4)).pipe(attend(layer, () => layer.cache({ batch: 1, capacity: 64 }), params), take(2), toArray()))
  for (const y of done) y.dispose()
  t.equal(memory().tensors, base.tensors, 'take(2): the rest of the source and the cache are freed')
  for (const w of Object.values(params)) w.dispose()
})

t.test('errors go to the error channel and still free everything', async t => {
  const layer = multiHeadAttention({ dModel: 8, heads: 2 })
  const params = layer.init({ seed: 2 })
  const base = memory()
  const run = (chunks: TokenChunk[], cache: () => KvCache, l = layer) =>
    new Promise<unknown>(resolve => {
      from(chunks)
        .pipe(attend(l, cache, params))
        .subscribe({ next: y => y.dispose(), error: resolve, complete: () => resolve(undefined) })
    })
  const made: Tensor[] = []
  const row = (n: number, d = 8): Tensor => {
    const x = tensor(randomArray(rand, n * d), [n, d], 'float32')
    made.push(x)
    return x
  }

  const shape = await run([{ tokens: row(3), positions: 0 }, { tokens: row(1, 7), positions: 3 }], () => layer.cache({ batch: 1, capacity: 8 }))
  t.type(shape, ShapeError, 'a chunk of the wrong width')
  t.match(String(shape), /expected \[B, T, 8\] or \[T, 8\]/)

  const overflow = await run([{ tokens: row(6), positions: 0 }, { tokens: row(1), positions: 6 }, { tokens: row(1), positions: 7 }, { tokens: row(1), positions: 8 }], () => layer.cache({ batch: 1, capacity: 8 }))
  t.type(overflow, CacheOverflowError, 'cache overflow')
  t.match(overflow, { capacity: 8, used: 8, requested: 1 })

  const boom = new Error('kernel failed')
  const thrower = { forward: () => { throw boom } }
  t.equal(await run([{ tokens: row(2), positions: 0 }], () => layer.cache({ batch: 1, capacity: 8 }), thrower as never), boom, 'a throwing layer')

  t.type(await run([{ tokens: row(2), positions: 0 }], () => { throw new ValueError({ op: 'factory' }) }), ValueError, 'a throwing cache factory')
  // that source was never subscribed: its chunk is still the producer's
  t.equal(made.filter(x => !x.isDisposed).length, made.length, 'no chunk was disposed by the operator (it borrows them)')
  for (const x of made) x.dispose()
  t.equal(memory().tensors, base.tensors, 'every chunk and cache was freed')
  t.throws(() => attend(layer, 5 as never, params), /a KvCache or a factory/)
  for (const w of Object.values(params)) w.dispose()
})

t.test('per-subscription state: two subscriptions never share a cache', async t => {
  const block = transformerBlock({ dModel: 8, heads: 2, kvHeads: 1, rope: true, hidden: 16 })
  const params = block.init({ seed: 6 })
  const base = memory().tensors
  const xs = Float32Array.from(randomArray(rand, 9 * 8))
  const pipeline = defer(() => from(chunksOf(xs, 8, 5))).pipe(attend(block, () => block.cache({ batch: 1, capacity: 16 }), params))
  const [a, b] = await Promise.all([lastValueFrom(pipeline.pipe(toArray())), lastValueFrom(pipeline.pipe(toArray()))])
  const flat = (ys: Tensor[]) => ys.flatMap(y => Array.from(y.dataSync()))
  assertClose(t, flat(a), flat(b), { atol: 0, rtol: 0, msg: 'two runs, same outputs' })
  const x = tensor(xs, [9, 8], 'float32')
  const oneShot = block.forward(params, x)
  assertClose(t, flat(a), oneShot.dataSync(), { atol: 2e-6, rtol: 1e-5, msg: 'a transformer block streams too' })
  for (const y of [...a, ...b, x, oneShot]) y.dispose()

  // one cache instance: the first subscription owns it, a concurrent second one is refused
  const shared = block.cache({ batch: 1, capacity: 16 })
  const input = new Subject<TokenChunk>()
  const op = attend(block, shared, params)
  const first = input.pipe(op).subscribe(y => y.dispose())
  let refused: unknown
  input.pipe(op).subscribe({ error: e => (refused = e) })
  t.type(refused, ValueError)
  t.match(String(refused), /owned by another subscription/)
  first.unsubscribe()
  t.ok(shared.isDisposed, 'the owner disposed it')
  t.equal(memory().tensors, base, 'nothing left')
  for (const w of [params.norm1, params.norm2, params.W1, params.b1, params.W2, params.b2, ...Object.values(params.attn)]) w.dispose()
})
