import { isDType, type DType, type TypedArrayFor } from './dtype.js'
import { ArgumentError, BackendError, DisposedError, kindOf } from './errors.js'
import { sizeOf, type Shape } from './shape.js'
import { countersFor, Storage } from './storage.js'

/** Nested JS arrays of a tensor's values (`array()`); booleans come back as 0/1. */
export type NestedArray = number | NestedArray[]

/** Tensors dropped without `dispose()`: the safety net frees them and counts them here. */
export const leakStats = { collected: 0 }

// The safety net: storage of a tensor that was garbage-collected without dispose() is released, so a
// forgotten tensor costs memory only until the next GC. `memory().leaked` counts these, so tests see them.
// The tensor itself stays in `memory().tensors` (it was never disposed): were the count to drop when the GC runs,
// any two readings could differ by whatever forgotten tensor of someone else's the GC happened to collect in
// between, and a leak check comparing them could fail by a neighbour's leak or pass by hiding its own.
const finalizer = new FinalizationRegistry<{ storage: Storage; backend: string }>(held => {
  leakStats.collected++
  held.storage.release()
})

let nextId = 0

const HINT = 'tensors are made by tensor(), zeros() and the ops, not with new Tensor(...)'

function badConstruction(storage: unknown, shape: unknown, dtype: unknown): never {
  const op = 'Tensor'
  if (!(storage instanceof Storage)) throw new ArgumentError({ op, arg: 'storage', expected: "a backend's Storage", actual: isTensor(storage) ? 'a Tensor' : kindOf(storage) }, HINT)
  if (!Array.isArray(shape)) throw new ArgumentError({ op, arg: 'shape', expected: 'an array of non-negative integers', actual: kindOf(shape) }, HINT)
  throw new ArgumentError({ op, arg: 'dtype', expected: 'float32, float16, float64, int32, uint32 or bool', actual: String(dtype) }, HINT)
}

/**
 * @internal the open `trackTensors()` records. Every tensor made while one is open joins each of them and leaves on
 * dispose(); the strong references keep a forgotten tensor away from the safety net until the record stops.
 */
export const trackers = new Set<Set<Tensor>>()

/**
 * An n-dimensional array on one backend. `D` is the dtype and `S` the shape: a literal tuple when the shape is
 * known statically (`Tensor<'float32', readonly [2, 3]>`), `readonly number[]` otherwise. Ops never mutate
 * tensors and never consume their inputs; free memory with `dispose()`, `using`, or `scope()`.
 */
export class Tensor<D extends DType = DType, S extends Shape = Shape> {
  readonly id: number
  readonly shape: S
  readonly dtype: D
  readonly size: number
  /** @internal storage shared with views of this tensor. */
  readonly storage: Storage
  #disposed = false
  readonly #netted: boolean

  /**
   * @internal tensors are made by ops and creation functions, never with `new`. `netted: false` leaves the handle
   * out of the garbage-collection safety net: only for handles the library itself always disposes (a gradient
   * tape's saved values), where registering one per recorded op showed up in training-step profiles.
   */
  constructor(storage: Storage, shape: S, dtype: D, netted = true) {
    // O(1): `new Tensor()` by hand otherwise dies reading `shape` or `storage.retain` from deep inside
    if (!(storage instanceof Storage) || !Array.isArray(shape) || !isDType(dtype)) badConstruction(storage, shape, dtype)
    this.id = nextId++
    this.storage = storage
    // a frozen shape (another tensor's) is immutable already and can be shared
    this.shape = (Object.isFrozen(shape) ? shape : Object.freeze([...shape])) as S
    this.dtype = dtype
    this.size = sizeOf(shape)
    this.#netted = netted
    storage.retain()
    countersFor(storage.backend.name).tensors++
    if (netted) finalizer.register(this, { storage, backend: storage.backend.name }, this)
    if (trackers.size > 0) for (const s of trackers) s.add(this)
  }

  get rank(): number {
    return this.shape.length
  }
  /** Name of the backend holding this tensor's storage. */
  get backend(): string {
    return this.storage.backend.name
  }
  get isDisposed(): boolean {
    return this.#disposed
  }

  /** @internal throws DisposedError when used after dispose(). */
  assertLive(op: string): void {
    if (this.#disposed)
      throw new DisposedError({ op, actual: `tensor #${this.id} [${this.shape.join(',')}]` }, 'tensor was disposed')
  }

  /** Copy the values to the host. Resolves to a fresh typed array the caller owns. */
  async data(): Promise<TypedArrayFor<D>> {
    this.assertLive('data')
    return (await this.storage.backend.read(this.storage.dataId, this.dtype, this.size)) as TypedArrayFor<D>
  }

  /** Synchronous copy; only for host-resident backends (cpu). */
  dataSync(): TypedArrayFor<D> {
    this.assertLive('dataSync')
    const v = this.storage.backend.readSync(this.storage.dataId, this.dtype, this.size)
    if (v === undefined)
      throw new BackendError({ op: 'dataSync', expected: 'a host-resident backend such as cpu', actual: this.backend }, 'use await t.data()')
    return v as TypedArrayFor<D>
  }

  /** The values as nested arrays following the shape (a number for rank 0). */
  async array(): Promise<NestedArray> {
    return nest(Array.from(await this.data()), this.shape)
  }

  /** Release this handle; device memory goes when no other view shares it. Idempotent. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    if (this.#netted) finalizer.unregister(this)
    countersFor(this.storage.backend.name).tensors--
    if (trackers.size > 0) for (const s of trackers) s.delete(this)
    this.storage.release()
  }

  [Symbol.dispose](): void {
    this.dispose()
  }

  toString(): string {
    return `Tensor<${this.dtype}>[${this.shape.join(',')}]@${this.backend}`
  }
}

export const isTensor = (u: unknown): u is Tensor => u instanceof Tensor

function nest(flat: number[], shape: Shape): NestedArray {
  if (shape.length === 0) return flat[0]!
  const [head, ...rest] = shape
  const step = sizeOf(rest)
  return Array.from({ length: head! }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), rest))
}
