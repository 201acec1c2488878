import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, dispose, trackTensors, type Tensor, positiveInt } from '@heed/tensor'
import { borrow, describeItem, lend, retainTree } from '@heed/tensor/stream'
import { treeTensorsOf } from './treeTensorsOf.js'
import { optionKeys, requireFlag, requireOptions } from './internal.js'

const OPTIONS = optionKeys<PreferenceBatchesOptions<unknown, unknown>>({ size: true, collate: true, dropLast: true })

export interface PreferenceBatchesOptions<T, B> {
  /** Examples per batch. */
  readonly size: number
  /** Build a batch from `size` examples (the last batch may be shorter unless `dropLast`). */
  readonly collate: (examples: readonly T[]) => B
  /** Drop a final short batch instead of emitting it. Default false. */
  readonly dropLast?: boolean
}

/**
 * Group a stream of preference examples into batches. Ownership follows `@heed/tensor/stream`: the examples are
 * borrowed (the buffer holds views of their tensors, so a `share()`d stream can feed other pipelines too);
 * `collate` receives those views, and the views it does not put into the batch are freed after it. The batch
 * (its new tensors and the views it reuses) is freed by the operator once the operators downstream are done with
 * it, and is yours when it reaches only your code; tensors `collate` takes from elsewhere (a constant it closes
 * over) stay their owner's. Views still buffered when the subscription ends (error, unsubscribe, or `dropLast`)
 * are disposed in teardown. A `null` or `undefined` example is an error on the error channel.
 */
export function preferenceBatches<T, B>(opts: PreferenceBatchesOptions<T, B>): OperatorFunction<T, B> {
  const op = 'preferenceBatches'
  if (opts === undefined) throw new ArgumentError({ op, arg: 'opts', expected: '{ size, collate, dropLast? }', actual: 'undefined' })
  requireOptions(op, opts, OPTIONS)
  const { size, collate } = opts
  positiveInt(op, 'size', size)
  if (typeof collate !== 'function') throw new ArgumentError({ op, arg: 'collate', expected: 'a function', actual: typeof collate })
  const dropLast = requireFlag(op, 'dropLast', opts.dropLast) ?? false
  return source =>
    new Observable<B>(subscriber => {
      let buffer: T[] = []
      const flush = (): boolean => {
        const items = buffer
        buffer = []
        let batch: B
        const made = trackTensors()
        let created: Set<Tensor>
        try {
          batch = collate(items)
        } catch (err) {
          made.stop()
          dispose(items)
          subscriber.error(err)
          return false
        } finally {
          created = new Set(made.stop())
        }
        const reused = treeTensorsOf(batch)
        const views = treeTensorsOf(items)
        for (const t of views) if (!reused.has(t)) t.dispose()
        lend(subscriber, batch, [...reused].filter(t => views.has(t) || created.has(t)))
        return true
      }
      const sub = source.subscribe({
        next: x => {
          if (subscriber.closed) return
          if (x === null || x === undefined) {
            subscriber.error(new ArgumentError({ op, arg: 'example', expected: 'a preference example', actual: describeItem(x) }))
            return
          }
          // Held until its batch is full: a view of its own on every tensor of the example.
          buffer.push(retainTree(borrow(x)))
          if (buffer.length === size) flush()
        },
        error: err => subscriber.error(err),
        complete: () => {
          if (buffer.length > 0 && !dropLast && !flush()) return
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        dispose(buffer)
        buffer = []
      }
    })
}
