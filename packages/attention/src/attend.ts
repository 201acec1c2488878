import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, dispose, isTensor, scope, ValueError, type Tensor } from '@heed/tensor'
import { borrow, checkChunk, lend, retainTree, type TokenChunk } from '@heed/tensor/stream'
import { KvCache } from './kvCache.js'

/** What `attend` drives: a layer with a cached forward (`multiHeadAttention`, `transformerBlock`, or your own). */
export interface CachedLayer<P> {
  forward(params: P, x: Tensor, opts: { readonly cache: KvCache; readonly positions: number }): Tensor
}

/**
 * Where each subscription's cache comes from: a factory (a fresh cache per subscription: the pipeline is cold and
 * re-subscribable) or one cache instance, which exactly one subscription may own: a second concurrent one gets an
 * error, and since the owner disposes it on teardown, so does any later one.
 */
export type CacheSource = KvCache | (() => KvCache)

/**
 * Run a layer over a token stream with a KV cache: a prefill chunk of any length, then decode chunks (usually one
 * token each). Each chunk's `tokens` hold hidden states `[B, T, dModel]` or `[T, dModel]` at absolute `positions`
 * (consecutive within the chunk, increasing across chunks); each emission is the layer's output for that chunk,
 * with the chunk's shape. The concatenated emissions equal the layer over the whole sequence at once (causal).
 *
 * Synchronous, one output per input, nothing buffered between chunks. Ownership follows `@heed/tensor/stream`:
 * the operator borrows every chunk (never disposes it, so a `share()`d stream feeds several pipelines) and frees
 * each output once the operators downstream are done with it; an output that reaches only your code is yours to
 * dispose. `params` stay the caller's. The cache is disposed when the subscription ends (complete, error or
 * unsubscribe). Every failure (an item that is not a chunk, shapes, dtypes, cache overflow, kernels) goes to the
 * error channel.
 */
export function attend<P>(layer: CachedLayer<P>, cache: CacheSource, ...params: undefined extends P ? [params?: P] : [params: P]): OperatorFunction<TokenChunk, Tensor> {
  const op = 'attend'
  if (layer === null || typeof layer !== 'object' || typeof layer.forward !== 'function')
    throw new ArgumentError({ op, arg: 'layer', expected: 'a layer with forward(params, x, { cache, positions })', actual: layer === null ? 'null' : typeof layer })
  if (!(cache instanceof KvCache) && typeof cache !== 'function')
    throw new ArgumentError({ op, arg: 'cache', expected: 'a KvCache or a factory () => KvCache', actual: typeof cache })
  const p = params[0] as P

  return source =>
    new Observable<Tensor>(subscriber => {
      const me = {}
      let owned: KvCache | undefined
      try {
        const c = cache instanceof KvCache ? cache : cache()
        if (!(c instanceof KvCache)) throw new ArgumentError({ op, arg: 'cache', expected: 'a factory returning a KvCache', actual: typeof c })
        if (c.owner !== undefined || c.isDisposed)
          throw new ValueError(
            { op, arg: 'cache', expected: 'a cache no other subscription owns (pass a factory () => layer.cache(…) to subscribe more than once)', actual: c.isDisposed ? 'a disposed cache' : 'a cache owned by another subscription' },
          )
        c.owner = me
        owned = c
      } catch (err) {
        subscriber.error(err)
      }

      // Chunks waiting for an asynchronous read of their `positions` tensor (a device backend has no synchronous
      // readback), and those that arrived behind them: held as views, processed in order, freed on teardown.
      const queue: TokenChunk[] = []
      let completed = false
      const run = (chunk: TokenChunk, pos: ArrayLike<number> | undefined): boolean => {
        let y: Tensor
        try {
          const start = startOf(chunk, pos)
          y = scope(() => layer.forward(p, chunk.tokens, { cache: owned!, positions: start }))
        } catch (err) {
          subscriber.error(err)
          return false
        }
        lend(subscriber, y)
        return true
      }
      const pump = async (): Promise<void> => {
        while (queue.length > 0 && !subscriber.closed) {
          const c = queue[0]!
          let ok = false
          try {
            const pos = isTensor(c.positions) ? await c.positions.data() : undefined
            ok = !subscriber.closed && run(c, pos)
          } catch (err) {
            subscriber.error(err)
          } finally {
            queue.shift()
            dispose(c)
          }
          if (!ok) return
        }
        if (completed && !subscriber.closed) subscriber.complete()
      }
      const sub = owned
        ? source.subscribe({
            next: chunk => {
              if (subscriber.closed) return
              try {
                checkChunk(op, chunk)
              } catch (err) {
                subscriber.error(err)
                return
              }
              borrow(chunk)
              const pos = isTensor(chunk.positions) ? chunk.positions.storage.backend.readSync(chunk.positions.storage.dataId, 'int32', chunk.positions.size) : undefined
              if (queue.length === 0 && (pos !== undefined || !isTensor(chunk.positions))) {
                run(chunk, pos)
                return
              }
              queue.push(retainTree(chunk))
              if (queue.length === 1) void pump()
            },
            error: err => subscriber.error(err),
            complete: () => {
              completed = true
              if (queue.length === 0) subscriber.complete()
            },
          })
        : undefined
      return () => {
        sub?.unsubscribe()
        for (const c of queue.splice(0)) dispose(c)
        if (owned && owned.owner === me) owned.dispose()
      }
    })
}

/** The chunk's first position (`pos`: its `positions` tensor's values), checking that the rest follow it one by one. */
function startOf(chunk: TokenChunk, pos: ArrayLike<number> | undefined): number {
  const op = 'attend'
  if (typeof chunk.positions === 'number') return chunk.positions
  if (pos === undefined) throw new ArgumentError({ op, arg: 'chunk.positions', expected: 'a number or an int32 tensor', actual: typeof chunk.positions })
  for (let i = 1; i < pos.length; i++)
    if (pos[i] !== pos[0]! + i) throw new ValueError({ op, arg: 'chunk.positions', expected: 'consecutive positions within a chunk', actual: [pos[i - 1]!, pos[i]!] })
  return pos.length > 0 ? pos[0]! : 0
}
