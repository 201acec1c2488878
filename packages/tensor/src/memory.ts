import { closeScope, listBackends, openScope, untrack } from './engine.js'
import { ArgumentError } from './errors.js'
import { liveCounters } from './storage.js'
import { isTensor, leakStats, trackers, type Tensor } from './Tensor.js'
import { requireFunction } from './validate.js'

/** Collect the tensors in a pytree (plain objects, arrays, Maps' values are not walked). */
export function treeTensors(tree: unknown, out = new Set<Tensor>()): Set<Tensor> {
  if (isTensor(tree)) out.add(tree)
  else if (Array.isArray(tree)) for (const x of tree) treeTensors(x, out)
  else if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype)
    for (const x of Object.values(tree)) treeTensors(x, out)
  return out
}

/**
 * Run `fn` and dispose every tensor it created except those in its result (any pytree of tensors) and those
 * passed to `keep`. Scopes nest; what survives moves to the enclosing scope. `fn` must be synchronous: a
 * scope cannot follow an `await`, so an async function is rejected rather than silently leaking.
 */
export function scope<T>(fn: () => T): T {
  requireFunction('scope', 'fn', fn)
  const s = openScope()
  let result: T
  try {
    result = fn()
  } catch (err) {
    closeScope(s, new Set())
    throw err
  }
  if (result instanceof Promise) {
    closeScope(s, new Set())
    throw new ArgumentError({ op: 'scope', arg: 'fn', expected: 'a synchronous function', actual: 'a Promise' }, 'scopes cannot span an await; dispose explicitly in async code')
  }
  closeScope(s, treeTensors(result))
  return result
}

/** Exempt tensors from disposal by every enclosing scope. Returns its argument. */
export function keep<T>(tree: T): T {
  for (const t of treeTensors(tree)) untrack(t)
  return tree
}

/** Dispose every tensor in a pytree. */
export function dispose(tree: unknown): void {
  for (const t of treeTensors(tree)) t.dispose()
}

export interface BackendMemory {
  /**
   * Tensor handles made and not yet disposed (views count once each). One dropped without `dispose()` stays
   * counted after the garbage-collection safety net frees its storage (see `leaked`), so two readings differ
   * only by the tensors made and disposed in between: a leak check that compares them is deterministic.
   */
  readonly tensors: number
  /** Bytes of live storage. */
  readonly bytes: number
  /** Live storages (a storage is shared by views). */
  readonly storages: number
}

export interface MemoryInfo extends BackendMemory {
  readonly backends: Readonly<Record<string, BackendMemory>>
  /** Tensors that were garbage-collected without dispose() and whose storage the safety net freed. */
  readonly leaked: number
}

/** Live tensors and bytes, in total and per backend. */
export function memory(): MemoryInfo {
  const backends: Record<string, BackendMemory> = {}
  let tensors = 0
  let bytes = 0
  let storages = 0
  for (const name of new Set([...listBackends(), ...liveCounters.keys()])) {
    const c = liveCounters.get(name) ?? { tensors: 0, bytes: 0, storages: 0 }
    backends[name] = { ...c }
    tensors += c.tensors
    bytes += c.bytes
    storages += c.storages
  }
  return { tensors, bytes, storages, backends, leaked: leakStats.collected }
}

/** A record of the tensors made since it opened (`trackTensors()`). */
export interface TensorTracker {
  /** The tensors made since the record opened and not yet disposed, oldest first. */
  live(): Tensor[]
  /** Stop recording (idempotent) and return what `live()` returned at that moment. */
  stop(): Tensor[]
}

/**
 * Start recording the tensors made from now on, on every backend, so that a leak check counts only what the code
 * under test made, and can name them: a difference of two `memory().tensors` readings is deterministic too (a
 * forgotten tensor stays counted after the garbage-collection safety net frees it) but includes whatever else ran
 * in between, on any backend. A tensor left undisposed cannot be hidden: the record holds it until `stop()`.
 * Records nest and may span an `await`; stop every one you open (try/finally).
 *
 * ```ts
 * const made = trackTensors()
 * try { await step() } finally { const left = made.stop(); if (left.length) throw new Error(`${left.length} leaked`) }
 * ```
 */
export function trackTensors(): TensorTracker {
  const made = new Set<Tensor>()
  trackers.add(made)
  let stopped: Tensor[] | undefined
  const live = (): Tensor[] => stopped ?? [...made].filter(t => !t.isDisposed)
  return {
    live,
    stop: () => {
      if (stopped === undefined) {
        stopped = live()
        trackers.delete(made)
        made.clear()
      }
      return stopped
    },
  }
}
