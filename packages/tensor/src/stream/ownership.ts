/**
 * The one ownership rule of heed's stream operators: **operators borrow what they receive; whoever made a tensor
 * frees it.**
 *
 * - An operator never disposes a tensor it receives. The tensor stays valid at least until the `next` call that
 *   delivered it returns; an operator that needs it longer (a buffer, asynchronous work) takes a handle of its own
 *   (`retainTree`: a view sharing the storage) and frees that handle itself.
 * - An operator frees what it made and emitted once the operators that received it are done with it: it emits
 *   through `lend`, which disposes, after `next` returns, the tensors an operator downstream read (`borrow`). An
 *   emission that reached no operator (your `subscribe`, `toArray`, `lastValueFrom`) is yours to dispose.
 * - Tensors your own source emits are yours: dispose them when the stream is done (or emit them with `lend`).
 * - Your own subscriber that only reads an emission which operators read too (a `share()` into `attend` and into
 *   your `map`) calls `borrow` on it, or just does not dispose it; one that keeps an emission makes a view of it
 *   (`retainTree`) and disposes that.
 *
 * This survives multicasting: `share()` hands one tensor to several subscribers within one `next`, none of them
 * disposes it, and its maker frees it after the last one returns. Teardown (complete, error, unsubscribe) frees
 * what an operator still holds: its buffers, its caches, its handles.
 */
import type { Subscriber } from 'rxjs'
import { ArgumentError } from '../errors.js'
import { treeTensors } from '../memory.js'
import { isTensor, Tensor } from '../Tensor.js'

/** Tensors an operator has read; their makers free them once the emission that carried them returns. */
const borrowed = new WeakSet<Tensor>()

/**
 * Mark the tensors of a received item (any pytree) as read by an operator. Call it in every operator that
 * consumes its input (not in one that passes it on unchanged); returns its argument.
 */
export function borrow<T>(item: T): T {
  for (const t of treeTensors(item)) borrowed.add(t)
  return item
}

/** Whether an operator has read `t` (see `borrow`). */
export const isBorrowed = (t: Tensor): boolean => borrowed.has(t)

/**
 * Emit `item` and then dispose those tensors of `made` (default: the item's own tensors) that an operator
 * downstream borrowed; the others pass to the subscriber. `made` lists only what the emitting operator created:
 * a tensor it merely passes on belongs to its own maker. Subscribers that keep an emission past their `next`
 * while also feeding it to an operator (a `share()` into `attend` and `toArray`) take a view with `retainTree`.
 */
export function lend<T>(subscriber: Subscriber<T>, item: T, made: unknown = item): void {
  if (typeof (subscriber as { next?: unknown } | null | undefined)?.next !== 'function')
    throw new ArgumentError({ op: 'lend', arg: 'subscriber', expected: 'an RxJS Subscriber (the argument of new Observable(subscriber => …))', actual: subscriber === null ? 'null' : typeof subscriber })
  try {
    subscriber.next(item)
  } finally {
    for (const t of treeTensors(made)) if (borrowed.has(t)) t.dispose()
  }
}

/**
 * A copy of a pytree (plain objects and arrays) in which every tensor is a new handle on the same storage (no data
 * is copied), for an operator that holds a received item beyond its `next`: the caller owns the handles.
 */
export function retainTree<T>(tree: T): T {
  if (isTensor(tree)) {
    tree.assertLive('retainTree')
    // A handle made here is no scope's and not on any tape: only the operator that asked for it frees it.
    return new Tensor(tree.storage, tree.shape, tree.dtype) as T
  }
  if (Array.isArray(tree)) return tree.map(retainTree) as T
  if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(tree)) out[k] = retainTree(v)
    return out as T
  }
  return tree
}
