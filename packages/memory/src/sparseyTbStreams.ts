/**
 * RxJS operators for Sparsey and the Tensor Brain over @heed/tensor token chunks: chunks are stored as they
 * stream, `{ query }` items are answered from what has been stored so far (the same recall convention as the
 * package's other memories). Each subscription builds its own model and frees it when it ends (complete, error
 * or unsubscribe). Ownership follows `@heed/tensor/stream`: input tensors are borrowed (the operator holds views
 * of them while an item waits or is in flight, and frees those), emitted events are freed by the operator once the
 * operators downstream are done with them, and are yours when they reach only your code.
 *
 * Reading a chunk is asynchronous (a WebGPU tensor has no synchronous readback), so items are processed one at a
 * time in arrival order (`concatMap`): items that arrive while one is in flight wait in rxjs's queue, unbounded.
 */
import { defer, Observable, type OperatorFunction } from 'rxjs'
import { concatMap, finalize, map } from 'rxjs/operators'
import { ArgumentError, DTypeError, ShapeError, dispose, isTensor, tensor, type Tensor } from '@heed/tensor'
import { borrow, checkChunk, describeItem, lend, retainTree, type TokenChunk } from '@heed/tensor/stream'
import { SparseyMac, resolveConfig, type SparseyConfig } from './sparsey.js'
import { TB_CONFIG, TensorBrain, tensorBrainFor, type TensorBrainConfig, type Triple } from './tensorBrain.js'
import { config as checkConfig } from './internal.js'

/** A recall request: what to look up, as rows of a tensor. */
export interface MemoryQuery {
  readonly query: Tensor
}

const isQuery = (x: unknown): x is MemoryQuery => typeof x === 'object' && x !== null && 'query' in x && isTensor((x as MemoryQuery).query)
const isChunk = (x: unknown): x is TokenChunk => typeof x === 'object' && x !== null && 'tokens' in x && isTensor((x as TokenChunk).tokens)

/** A typed error unless `x` is a chunk or a `{ query }` (checked on arrival, so a bad item fails at once). */
function checkItem(op: string, x: unknown): void {
  if (isQuery(x)) x.query.assertLive(op)
  else if (typeof x === 'object' && x !== null && 'tokens' in x) checkChunk(op, x)
  else throw new ArgumentError({ op, arg: 'value', expected: 'a TokenChunk or a { query }', actual: describeItem(x) })
}

/** Per subscription: build the model, run items in order, free whatever is left when the subscription ends. */
function perSubscription<M, I, O>(op: string, make: () => M, run: (m: M, item: I) => Promise<O>, free: (m: M) => void): OperatorFunction<I, O> {
  return (source: Observable<I>) =>
    defer(() => {
      const model = make()
      let closed = false
      // Views of the items waiting in concatMap's queue or in flight: ours, freed when done or on teardown.
      const held = new Set<I>()
      return source.pipe(
        map(item => {
          checkItem(op, item)
          const own = retainTree(borrow(item))
          held.add(own)
          return own
        }),
        concatMap(item => {
          if (closed) {
            held.delete(item)
            dispose(item)
            return []
          }
          // Each result is lent: freed after downstream's next when an operator there borrowed it.
          return new Observable<O>(sub => {
            run(model, item)
              .finally(() => {
                held.delete(item)
                dispose(item)
              })
              .then(
                out => {
                  if (sub.closed) return dispose(out)
                  lend(sub, out)
                  sub.complete()
                },
                err => sub.error(err),
              )
          })
        }),
        finalize(() => {
          closed = true
          held.forEach(dispose)
          held.clear()
          free(model)
        }),
      )
    })
}

export interface SparseyEvent {
  readonly kind: 'store' | 'recall'
  /** `[T, Q]` int32 winners, a row of −1 where the frame fell outside the active band. */
  readonly codes: Tensor<'int32'>
  /** `[T]` float32 familiarity G of each frame. */
  readonly familiarity: Tensor<'float32'>
  /** Position of the chunk's first row, when the chunk gave a contiguous start (stores only). */
  readonly positions?: number
}

/**
 * Sparsey as an operator: each chunk's `[T, inputSize]` rows (nonzero = active bit) are learned single-trial in
 * order; a `{ query }` of `[T, inputSize]` rows is recalled (max-V) without learning. Chunking does not matter:
 * storing T rows in one chunk or in T chunks gives the same codes.
 */
export function sparsey(config: SparseyConfig): OperatorFunction<TokenChunk | MemoryQuery, SparseyEvent> {
  resolveConfig(config, 'sparsey')
  return perSubscription<SparseyMac, TokenChunk | MemoryQuery, SparseyEvent>(
    'sparsey',
    () => new SparseyMac(config),
    async (mac, item) => {
      if (isQuery(item)) return { kind: 'recall', ...(await mac.recallBatch(item.query)) }
      if (!isChunk(item)) throw new ArgumentError({ op: 'sparsey', arg: 'value', expected: 'a TokenChunk or a { query }', actual: typeof item })
      if (item.tokens.rank !== 2) throw new ShapeError({ op: 'sparsey', arg: 'tokens', expected: `[T, ${mac.config.inputSize}] binary rows`, actual: item.tokens.shape })
      const out = await mac.storeBatch(item.tokens)
      return { kind: 'store', ...out, ...(typeof item.positions === 'number' ? { positions: item.positions } : {}) }
    },
    () => {},
  )
}

export interface TensorBrainEvent {
  readonly kind: 'store' | 'recall'
  /** `[T]` int32 time indices of the stored episodes (stores), or the recalled ones. */
  readonly times: Tensor<'int32'>
  /** `[T, 3]` int32 (subject, predicate, object): what was stored (decoded, for scenes) or recalled. */
  readonly triples: Tensor<'int32'>
}

const tripleRows = (ts: readonly Triple[], backend: string): Tensor<'int32'> =>
  tensor(Int32Array.from(ts.flatMap(t => [t.subject, t.predicate, t.object])), [ts.length, 3], 'int32', { backend })

/**
 * The Tensor Brain as an operator. A chunk of int32 `[T, 3]` triples is imprinted as T episodes; a chunk of float
 * `[T, dim]` scenes is perceived and what it decodes is imprinted. A `{ query }` of int32 `[T]` time indices
 * recalls the stored triples. The model's tensors are disposed when the subscription ends.
 */
export function tensorBrainMemory(config: TensorBrainConfig): OperatorFunction<TokenChunk | MemoryQuery, TensorBrainEvent> {
  // the keys under this factory's name first: the constructor below would blame TensorBrain for a typo made here
  checkConfig('tensorBrainMemory', config, TB_CONFIG)
  tensorBrainFor(config, 'tensorBrainMemory').dispose()
  return perSubscription<TensorBrain, TokenChunk | MemoryQuery, TensorBrainEvent>(
    'tensorBrainMemory',
    () => new TensorBrain(config),
    async (tb, item) => {
      const op = 'tensorBrainMemory'
      if (isQuery(item)) {
        const q = item.query
        if (q.dtype !== 'int32' || q.rank !== 1) throw new ShapeError({ op, arg: 'query', expected: 'int32 [T] time indices', actual: `${q.dtype} [${q.shape.join(',')}]` })
        const times = Array.from(await q.data())
        const triples = await tb.recall(times)
        return { kind: 'recall', times: tensor(Int32Array.from(times), [times.length], 'int32', { backend: q.backend }), triples: tripleRows(triples, q.backend) }
      }
      if (!isChunk(item)) throw new ArgumentError({ op, arg: 'value', expected: 'a TokenChunk or a { query }', actual: typeof item })
      const x = item.tokens
      let stored: { times: number[]; triples: Triple[] }
      if (x.dtype === 'int32') {
        if (x.rank !== 2 || x.shape[1] !== 3) throw new ShapeError({ op, arg: 'tokens', expected: 'int32 [T, 3] triples', actual: x.shape })
        const v = await x.data()
        const triples = Array.from({ length: x.shape[0]! }, (_, i) => ({ subject: v[3 * i]!, predicate: v[3 * i + 1]!, object: v[3 * i + 2]! }))
        stored = { times: tb.storeEpisodes(triples), triples }
      } else if (x.dtype === 'float32' || x.dtype === 'float64') {
        if (x.rank !== 2 || x.shape[1] !== tb.dim) throw new ShapeError({ op, arg: 'tokens', expected: `[T, ${tb.dim}] scenes`, actual: x.shape })
        stored = await tb.storeScenes(x)
      } else throw new DTypeError({ op, arg: 'tokens', expected: 'int32 triples or float scenes', actual: x.dtype })
      return { kind: 'store', times: tensor(Int32Array.from(stored.times), [stored.times.length], 'int32', { backend: x.backend }), triples: tripleRows(stored.triples, x.backend) }
    },
    tb => tb.dispose(),
  )
}

/** Dispose every tensor of an event (a convenience for consumers that only read host values). */
export function disposeEvent(e: SparseyEvent | TensorBrainEvent): void {
  if (e === null || typeof e !== 'object' || Array.isArray(e) || isTensor(e) || (e.kind !== 'store' && e.kind !== 'recall'))
    throw new ArgumentError({ op: 'disposeEvent', arg: 'event', expected: "an event of sparseyStream or tensorBrainStream ({ kind: 'store' | 'recall', … })", actual: e === null ? 'null' : Array.isArray(e) ? 'an array' : isTensor(e) ? 'a Tensor' : typeof e === 'object' ? `an object of kind ${String((e as { kind?: unknown }).kind)}` : typeof e })
  dispose(Object.values(e).filter(isTensor))
}
