/**
 * `@heed/tensor/stream`: token streams as RxJS observables. A separate entry point so that the main package
 * never imports rxjs (an optional peer dependency).
 *
 * Ownership (the rule of every heed stream operator, in every package): operators borrow what they receive and
 * whoever made a tensor frees it. An operator never disposes its input; what it makes and emits it frees once the
 * operators downstream are done with it (`lend`), and an emission that reached no operator is the subscriber's.
 * Your source's tensors stay yours. So `share()`, `shareReplay` over a source you own, several subscribers,
 * `retry` and early unsubscribes all work; see `ownership.ts`. Whatever an operator still holds when its
 * subscription ends (complete, error or unsubscribe) is disposed in its teardown. Each subscription has its own
 * state, so the operators are cold and re-subscribable. Every item is validated: a bad one (null, a chunk without
 * a tensor) is a typed error on the error channel, never an exception thrown out of `next`. All operators are
 * synchronous and buffer at most one output's worth of input (no unbounded queues).
 */
import { Observable, type OperatorFunction } from 'rxjs'
import { fromValues } from '../engine.js'
import { isDType, type DType } from '../dtype.js'
import { ArgumentError, DTypeError, ShapeError, ValueError } from '../errors.js'
import { positiveInt } from '../validate.js'
import { dispose, keep, scope, treeTensors } from '../memory.js'
import { concat } from '../ops/concat.js'
import { reshape } from '../ops/reshape.js'
import { slice } from '../ops/slice.js'
import { isTensor, type Tensor } from '../Tensor.js'
import { borrow, lend, retainTree } from './ownership.js'

export { borrow, isBorrowed, lend, retainTree } from './ownership.js'

/** A run of consecutive tokens of one sequence. */
export interface TokenChunk<D extends DType = DType> {
  /** `[T]` token ids or `[T, ...]` embeddings (one row per token). */
  readonly tokens: Tensor<D>
  /**
   * Absolute positions of the rows in their sequence: a number is the position of row 0 of a contiguous run
   * (`start, start+1, …`); an int32 `[T]` tensor lists them one by one (after eviction or reordering).
   */
  readonly positions: number | Tensor<'int32'>
  /** int32 `[T]` token ids when `tokens` holds embeddings. */
  readonly ids?: Tensor<'int32'>
  /** Which sequence the chunk belongs to, when a stream interleaves several. */
  readonly sequence?: string | number
}

/** Rows (tokens) in a chunk. */
export function chunkLength(c: TokenChunk): number {
  checkChunk('chunkLength', c)
  return c.tokens.shape[0] ?? 1
}

/** The chunk's positions as an int32 `[T]` tensor on the chunk's backend (a new handle the caller owns). */
export function positionsOf(c: TokenChunk): Tensor<'int32'> {
  checkChunk('positionsOf', c)
  if (isTensor(c.positions)) return reshape(c.positions, c.positions.shape)
  const n = c.tokens.shape[0] ?? 1
  return fromValues(Int32Array.from({ length: n }, (_, i) => (c.positions as number) + i), [n], 'int32', c.tokens.backend) as Tensor<'int32'>
}

/** Dispose every tensor a chunk holds (a chunk you made, or one an operator emitted to you); a second call does nothing. */
export function disposeChunk(c: TokenChunk): void {
  // Not checkChunk: disposing a chunk whose tensors are already disposed is allowed, as `dispose` allows it.
  if (c === null || typeof c !== 'object' || Array.isArray(c) || isTensor(c) || !isTensor((c as { tokens?: unknown }).tokens))
    throw new ArgumentError({ op: 'disposeChunk', arg: 'chunk', expected: 'a TokenChunk { tokens, positions }', actual: describeItem(c) })
  dispose([c.tokens, c.ids, c.positions])
}

export interface ChunkTokensOptions {
  /** Rows per chunk; the last chunk of a stream may be shorter. */
  readonly size: number
  /** Absolute position of the first token of the stream (default 0). */
  readonly start?: number
  /** Copied onto every chunk. */
  readonly sequence?: string | number
  /** dtype of chunks made from plain numbers (default int32). Tensor inputs keep theirs. */
  readonly dtype?: DType
  /** Backend for chunks made from plain numbers (default: the current backend). */
  readonly backend?: string
}

/** What `chunkTokens` accepts: a token id, an array of ids, or a tensor of `[T]` ids / `[T, ...]` rows. */
export type TokenInput = number | readonly number[] | Tensor

type Piece = { readonly host: number[] } | { tensor: Tensor }

/**
 * Re-cut a stream of tokens into chunks of exactly `size` rows (the remainder is flushed on complete), each
 * carrying its absolute start position. Input tensors are borrowed: the operator holds its own view of each (no
 * copy) while it waits for more rows, slices and concatenates views as needed, and emits chunks it made (freed by
 * it once the operators downstream are done, yours otherwise). Every input must have the same row shape and dtype
 * as the first; a mismatch is an error on the error channel.
 */
export function chunkTokens(opts: ChunkTokensOptions): OperatorFunction<TokenInput, TokenChunk> {
  const op = 'chunkTokens'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ size, start?, sequence?, dtype?, backend? }', actual: String(opts) })
  const size = positiveInt(op, 'size', opts.size)
  const start0 = opts.start ?? 0
  if (!Number.isSafeInteger(start0) || start0 < 0) throw new ValueError({ op, arg: 'start', expected: 'a non-negative integer', actual: start0 })
  const numberDType = opts.dtype ?? 'int32'
  if (!isDType(numberDType)) throw new DTypeError({ op, arg: 'dtype', expected: 'a dtype', actual: String(numberDType) })
  const extra = opts.sequence !== undefined ? { sequence: opts.sequence } : {}

  return source =>
    new Observable<TokenChunk>(subscriber => {
      const pending: Piece[] = []
      let rows = 0
      let position = start0
      let rowShape: readonly number[] | undefined
      let dtype: DType | undefined

      const admit = (x: TokenInput): Piece => {
        let shape: readonly number[]
        let dt: DType
        let piece: Piece
        if (isTensor(x)) {
          if (x.rank === 0)
            throw new ShapeError({ op, arg: 'value', expected: 'a tensor of rank ≥ 1 ([T] or [T, ...])', actual: 'a scalar tensor' })
          x.assertLive(op)
          shape = x.shape.slice(1)
          dt = x.dtype
          // Borrowed: the rows may wait for the next input, so the buffer holds a handle of its own.
          piece = { tensor: retainTree(borrow(x)) }
        } else {
          const list = typeof x === 'number' ? [x] : x
          if (!Array.isArray(list) || !list.every(v => typeof v === 'number'))
            throw new ArgumentError({ op, arg: 'value', expected: 'a number, an array of numbers or a Tensor', actual: describeItem(x) })
          shape = []
          dt = numberDType
          piece = { host: [...list] }
        }
        if (rowShape === undefined) {
          rowShape = shape
          dtype = dt
        } else if (shape.length !== rowShape.length || shape.some((d, i) => d !== rowShape![i])) {
          if ('tensor' in piece) piece.tensor.dispose()
          throw new ShapeError({ op, arg: 'value', expected: `rows of shape [${rowShape.join(',')}]`, actual: `rows of shape [${shape.join(',')}]` })
        } else if (dt !== dtype) {
          if ('tensor' in piece) piece.tensor.dispose()
          throw new DTypeError({ op, arg: 'value', expected: dtype, actual: dt }, 'every input must have the dtype of the first')
        }
        return piece
      }

      const lengthOf = (p: Piece): number => ('host' in p ? p.host.length : p.tensor.shape[0]!)

      /** Remove `n` rows from the front of the buffer and return them as one tensor. */
      const take = (n: number): Tensor => {
        const parts: Tensor[] = []
        try {
          return scope(() => {
            let need = n
            while (need > 0) {
              const p = pending[0]!
              const len = lengthOf(p)
              const k = Math.min(len, need)
              if ('host' in p) {
                const vals = p.host.splice(0, k)
                parts.push(fromValues(allocFor(dtype!, vals), [k], dtype!, opts.backend))
              } else if (k === len) {
                parts.push(p.tensor)
              } else {
                parts.push(slice(p.tensor, [[0, k]]))
                const rest = slice(p.tensor, [[k, len]])
                p.tensor.dispose()
                // The remainder outlives this scope: it stays in the buffer.
                p.tensor = keep(rest)
              }
              if (k === len) pending.shift()
              need -= k
            }
            rows -= n
            if (parts.length === 1) return parts[0]!
            const out = concat(parts, 0)
            for (const t of parts) t.dispose()
            return out
          })
        } catch (err) {
          // Inputs already taken off the buffer are ours to free; the scope frees what it made.
          for (const t of parts) t.dispose()
          throw err
        }
      }

      const emit = (n: number): void => {
        const tokens = take(n)
        const chunk: TokenChunk = { tokens, positions: position, ...extra }
        position += n
        lend(subscriber, chunk)
      }

      const sub = source.subscribe({
        next: x => {
          // A synchronous source keeps pushing after downstream has closed (take(1)); the input is not ours.
          if (subscriber.closed) return
          try {
            const piece = admit(x)
            const n = lengthOf(piece)
            if (n === 0) {
              if ('tensor' in piece) piece.tensor.dispose()
              return
            }
            pending.push(piece)
            rows += n
            while (rows >= size && !subscriber.closed) emit(size)
          } catch (err) {
            subscriber.error(err)
          }
        },
        error: err => subscriber.error(err),
        complete: () => {
          if (subscriber.closed) return
          try {
            if (rows > 0) emit(rows)
          } catch (err) {
            subscriber.error(err)
            return
          }
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        for (const p of pending.splice(0)) if ('tensor' in p) p.tensor.dispose()
        rows = 0
      }
    })
}

function allocFor(dtype: DType, values: readonly number[]) {
  switch (dtype) {
    case 'float64':
      return Float64Array.from(values)
    case 'int32':
      return Int32Array.from(values)
    case 'uint32':
      return Uint32Array.from(values)
    case 'bool':
      return Uint8Array.from(values, v => (v !== 0 ? 1 : 0))
    default:
      return Float32Array.from(values)
  }
}

export interface BatchChunksOptions {
  /** Chunks per batch; the last batch of a stream may be smaller. */
  readonly size: number
}

/**
 * Group chunks into arrays of `size` (like rxjs `bufferCount`), flushing the remainder on complete. Chunks are
 * borrowed: the buffer holds views of them (no copy), and each batch holds those views, freed by the operator once
 * the operators downstream are done with it (yours when it reaches only your code). Views still buffered when the
 * subscription ends early (error or unsubscribe) are disposed. An item that is not a `TokenChunk` is an error.
 */
export function batchChunks<C extends TokenChunk>(opts: BatchChunksOptions): OperatorFunction<C, C[]> {
  const op = 'batchChunks'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ size }', actual: String(opts) })
  const size = positiveInt(op, 'size', opts.size)
  return source =>
    new Observable<C[]>(subscriber => {
      let buffer: C[] = []
      const sub = source.subscribe({
        next: c => {
          if (subscriber.closed) return
          try {
            checkChunk(op, c)
            buffer.push(retainTree(borrow(c)))
          } catch (err) {
            subscriber.error(err)
            return
          }
          if (buffer.length >= size) {
            const out = buffer
            buffer = []
            lend(subscriber, out)
          }
        },
        error: err => subscriber.error(err),
        complete: () => {
          if (buffer.length > 0) {
            const out = buffer
            buffer = []
            lend(subscriber, out)
          }
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        for (const c of buffer) disposeChunk(c)
        buffer = []
      }
    })
}

export interface MapTensorOptions {
  /** @deprecated inputs are never disposed now (operators borrow their inputs); the option has no effect. */
  readonly keepInput?: boolean
}

/**
 * Apply `f` to each tensor inside a `scope`, so its temporaries are freed and only its result (any pytree of
 * tensors) survives. The input is borrowed (never disposed); the tensors `f` made are freed by the operator once
 * the operators downstream are done with them (yours when they reach only your code); a tensor `f` returns
 * unchanged is passed on as it is. A throw from `f`, or an item that is not a tensor, goes to the error channel.
 */
export function mapTensor<T extends Tensor, R>(f: (x: T, index: number) => R, opts: MapTensorOptions = {}): OperatorFunction<T, R> {
  if (typeof f !== 'function') throw new ArgumentError({ op: 'mapTensor', arg: 'f', expected: 'a function', actual: typeof f })
  void opts
  return source =>
    new Observable<R>(subscriber => {
      let index = 0
      const sub = source.subscribe({
        next: x => {
          if (subscriber.closed) return
          let y: R
          try {
            if (!isTensor(x)) throw new ArgumentError({ op: 'mapTensor', arg: 'value', expected: 'a Tensor', actual: describeItem(x) })
            y = scope(() => f(x, index++))
          } catch (err) {
            subscriber.error(err)
            return
          }
          const out = treeTensors(y)
          // An input passed on unchanged is still its maker's: only what f made is ours to lend.
          if (!out.has(x)) borrow(x)
          lend(subscriber, y, [...out].filter(t => t !== x))
        },
        error: err => subscriber.error(err),
        complete: () => subscriber.complete(),
      })
      return () => sub.unsubscribe()
    })
}

/** What a bad stream item was, for an error message: `null`, `undefined`, `a number`, `an object without tokens`. */
export function describeItem(x: unknown): string {
  if (x === null) return 'null'
  if (x === undefined) return 'undefined'
  if (isTensor(x)) return `a ${x.dtype} tensor [${x.shape.join(',')}]`
  if (Array.isArray(x)) return 'an array'
  if (typeof x === 'object') return `an object with keys ${JSON.stringify(Object.keys(x))}`
  return `a ${typeof x} (${String(x)})`
}

/**
 * Check that a stream item is a `TokenChunk` (`tokens` a live tensor, `positions` a non-negative integer or an
 * int32 tensor, `ids` a tensor when present) and throw a typed error naming `op` otherwise. Operators call it on
 * every item, inside their `try`, so a bad item reaches the error channel.
 */
export function checkChunk(op: string, c: unknown): asserts c is TokenChunk {
  if (c === null || typeof c !== 'object' || Array.isArray(c) || isTensor(c))
    throw new ArgumentError({ op, arg: 'chunk', expected: 'a TokenChunk { tokens, positions }', actual: describeItem(c) })
  const { tokens, positions, ids } = c as Record<string, unknown>
  if (!isTensor(tokens)) throw new ArgumentError({ op, arg: 'chunk.tokens', expected: 'a Tensor', actual: describeItem(tokens) })
  tokens.assertLive(op)
  if (tokens.rank === 0) throw new ShapeError({ op, arg: 'chunk.tokens', expected: 'a tensor of rank ≥ 1 ([T] or [T, ...])', actual: 'a scalar tensor' })
  if (isTensor(positions)) {
    positions.assertLive(op)
    if (positions.dtype !== 'int32' || positions.rank !== 1)
      throw new DTypeError({ op, arg: 'chunk.positions', expected: 'an int32 [T] tensor', actual: `${positions.dtype} [${positions.shape.join(',')}]` })
  } else if (typeof positions !== 'number' || !Number.isSafeInteger(positions) || positions < 0)
    throw new ArgumentError({ op, arg: 'chunk.positions', expected: 'a non-negative integer or an int32 tensor', actual: describeItem(positions) })
  if (ids !== undefined && !isTensor(ids)) throw new ArgumentError({ op, arg: 'chunk.ids', expected: 'an int32 tensor or undefined', actual: describeItem(ids) })
}

export { trainStep, type TrainStepOptions, type TrainLoss, type StepResult } from './trainStep.js'
export { showProgress, stepInfo, type ShowProgressOptions } from './showProgress.js'
