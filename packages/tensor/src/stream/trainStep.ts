import { mapTree } from '../mapTree.js'
import { Observable, type OperatorFunction } from 'rxjs'
import { valueAndGrad } from '../autodiff/grad.js'
import { ArgumentError, ValueError } from '../errors.js'
import { dispose, keep, scope, treeTensors } from '../memory.js'
import { abs, add, less, where } from '../ops/index.js'
import { borrow } from './ownership.js'
import { clipByGlobalNorm } from '../optim/clipByGlobalNorm.js'
import type { Optimizer, OptState } from '../optim/index.js'
import { isTensor, type Tensor } from '../Tensor.js'

/** What a training loss returns: the scalar to minimise and scalar metric tensors to log. */
export interface TrainLoss {
  readonly loss: Tensor
  /** Scalar metric tensors by name (`DpoMetrics` and the like); non-tensor entries are ignored. */
  readonly metrics?: object
}

/** One emission per optimizer step: host numbers, safe to keep. */
export interface StepResult {
  /** Optimizer updates applied so far: 1 on the first step of a fresh run, `state.count + 1` on a resumed one. */
  readonly step: number
  readonly loss: number
  readonly metrics: Readonly<Record<string, number>>
  /** The global gradient norm before clipping, when `clipNorm` is set. */
  readonly gradNorm?: number
  /** The step's loss was not finite and `onNonFinite: 'skip'` left parameters and optimizer state unchanged. */
  readonly skipped?: boolean
}

/**
 * What `trainStep` does with a step whose loss is NaN or ±Infinity: `'continue'` applies it as any other (the
 * default), `'error'` stops the stream with a `ValueError` on the error channel (Keras' `TerminateOnNaN`),
 * `'skip'` leaves parameters and optimizer state as they were and emits the step with `skipped: true`.
 */
export type NonFiniteLoss = 'continue' | 'error' | 'skip'

export interface TrainStepOptions<P, B> {
  /** Initial parameters (a pytree of float tensors). Copied per subscription; the caller keeps the originals. */
  readonly params: P
  readonly optimizer: Optimizer
  /**
   * Optimizer state to start from (a resumed run: the state saved with the parameters). Copied per subscription;
   * default `optimizer.init(params)`. Step numbers continue from its `count`.
   */
  readonly state?: OptState<P>
  /** The loss of a batch under the current parameters; runs under the gradient tape. */
  readonly loss: (params: P, batch: B) => TrainLoss
  /** Clip the gradients to this global L2 norm before the update (`clipByGlobalNorm`). Default: no clipping. */
  readonly clipNorm?: number
  /** Receives the final parameters on completion; ownership passes to it (otherwise they are disposed). */
  readonly onComplete?: (params: P) => void
  /**
   * Called after every step with the current parameters and optimizer state (borrowed: valid only during the
   * call), e.g. to evaluate or to write a checkpoint. It runs before the step's result is emitted.
   */
  readonly inspect?: (params: P, step: number, state: OptState<P>) => void
  /**
   * @deprecated operators borrow their inputs (see `@heed/tensor/stream`): a batch is freed by whoever made it.
   * `true` still disposes each batch after its step, for a source you own that nothing else reads. Default false.
   */
  readonly disposeBatch?: boolean
  /**
   * A step whose loss is not finite: `'continue'` (default), `'error'` (stop, as Keras' `TerminateOnNaN`) or
   * `'skip'` (no update). On the CPU the loss is checked before the update; on a device backend `'skip'` selects
   * the old parameters and moments on the device (the step counter, and with it a schedule, still advances) and
   * `'error'` fails the stream when the loss is read back, after that step's update.
   */
  readonly onNonFinite?: NonFiniteLoss
}

const copyTree = <T>(tree: T): T => scope(() => mapTree(tree, t => add(t, 0)) as T)

/**
 * The one training-step operator of heed (the LM trainer, `@heed/align`, `@heed/fairness` use it): batches →
 * loss → `valueAndGrad` → optional global-norm clipping → optimizer step. Per subscription it holds a copy of the
 * parameters and the optimizer state, emits a `StepResult` (loss and metrics read back as numbers) for every
 * batch, and frees parameters, state and any batch in flight on teardown, so `retry` and re-subscription start
 * again from the same initial parameters. A failing loss or step goes to the error channel. On the CPU each result
 * is emitted synchronously within its batch's `next`; on a device backend (WebGPU) the scalars are read back with
 * `data()` and emitted in step order as they arrive, and completion waits for the last one.
 */
export function trainStep<P, B>(opts: TrainStepOptions<P, B>): OperatorFunction<B, StepResult> {
  const op = 'trainStep'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  if (typeof opts.loss !== 'function') throw new ArgumentError({ op, arg: 'loss', expected: 'a function (params, batch) => { loss, metrics }', actual: typeof opts.loss })
  const optimizer = opts.optimizer
  if (optimizer === null || typeof optimizer !== 'object' || typeof optimizer.step !== 'function')
    throw new ArgumentError({ op, arg: 'optimizer', expected: 'an Optimizer (sgd, adam, adamw)', actual: typeof optimizer })
  if (treeTensors(opts.params).size === 0) throw new ArgumentError({ op, arg: 'params', expected: 'a pytree with at least one tensor', actual: 'none' })
  if (opts.clipNorm !== undefined && !(opts.clipNorm > 0)) throw new ValueError({ op, arg: 'clipNorm', expected: 'a positive number', actual: opts.clipNorm })
  if (opts.state !== undefined && !(opts.state !== null && typeof opts.state === 'object' && Number.isInteger(opts.state.count) && opts.state.count >= 0))
    throw new ArgumentError({ op, arg: 'state', expected: 'an optimizer state { count, slots }', actual: String(opts.state) })
  const disposeBatch = opts.disposeBatch ?? false
  const onNonFinite = opts.onNonFinite ?? 'continue'
  if (onNonFinite !== 'continue' && onNonFinite !== 'error' && onNonFinite !== 'skip')
    throw new ValueError({ op, arg: 'onNonFinite', expected: "'continue', 'error' or 'skip'", actual: String(onNonFinite) })
  const nonFinite = (loss: number): ValueError =>
    new ValueError({ op, arg: 'loss', expected: 'a finite loss', actual: loss }, "stopped by onNonFinite: 'error'")
  return source =>
    new Observable<StepResult>(subscriber => {
      let params: P | undefined = copyTree(opts.params)
      let state: OptState<P> | undefined = opts.state !== undefined ? { count: opts.state.count, slots: copyTree(opts.state.slots) } : optimizer.init(params)
      let metricTensors: Record<string, Tensor> = {}
      const vg = valueAndGrad((p: P, batch: B) => {
        const out = opts.loss(p, batch)
        // Metrics are computed under the tape but must outlive valueAndGrad's scope; keep() hands them to us.
        metricTensors = keep(Object.fromEntries(Object.entries(out.metrics ?? {}).filter(([, v]) => isTensor(v))) as Record<string, Tensor>)
        return out.loss
      })
      // On a device backend (WebGPU) the step's scalars are read back asynchronously; results are emitted in
      // step order from this chain, and completion waits for it. On the CPU everything stays synchronous.
      let reads: Promise<void> | undefined
      let closed = false
      // step scalars waiting for their read-back (device backends), freed on teardown at the latest
      const inflight = new Set<{ value: Tensor; metrics: Record<string, Tensor>; norm: Tensor | undefined }>()
      const finish = (): void => {
        if (opts.onComplete !== undefined && params !== undefined) {
          const p = params
          params = undefined
          try {
            opts.onComplete(p)
          } catch (err) {
            subscriber.error(err)
            return
          }
        }
        subscriber.complete()
      }
      const sub = source.subscribe({
        next: batch => {
          if (subscriber.closed) return
          if (batch === null || batch === undefined) {
            subscriber.error(new ArgumentError({ op, arg: 'batch', expected: 'a batch for the loss function', actual: String(batch) }))
            return
          }
          borrow(batch)
          let scalars: { value: Tensor; metrics: Record<string, Tensor>; norm: Tensor | undefined; step: number; skipped: boolean } | undefined
          try {
            const [value, rawGrads] = vg(params!, batch)
            let grads: unknown = rawGrads
            let norm: Tensor | undefined
            try {
              // On the CPU the loss is on the host already: a non-finite one is caught before the update.
              const host = onNonFinite !== 'continue' ? value.storage.backend.readSync(value.storage.dataId, value.dtype, 1)?.[0] : undefined
              if (host !== undefined && !Number.isFinite(host)) {
                if (onNonFinite === 'error') throw nonFinite(host)
                scalars = { value, metrics: metricTensors, norm: undefined, step: state!.count, skipped: true }
                metricTensors = {}
              } else {
                if (opts.clipNorm !== undefined) {
                  const clipped = clipByGlobalNorm(rawGrads, opts.clipNorm)
                  grads = clipped.grads
                  norm = clipped.norm
                }
                if (onNonFinite === 'skip' && host === undefined) {
                  // A device backend: the loss is not on the host yet, so the old values are selected on the device.
                  const [p1, s1] = optimizer.update(grads as P, state!, params!)
                  ;[params, state] = keepIfFinite(value, params!, state!, p1, s1)
                } else [params, state] = optimizer.step(grads as P, state!, params!)
                scalars = { value, metrics: metricTensors, norm, step: state.count, skipped: false }
                metricTensors = {}
              }
              opts.inspect?.(params!, state!.count, state!)
            } finally {
              dispose([rawGrads, grads === rawGrads ? undefined : grads])
              // a failed update: the step's scalars have no result to go to
              if (scalars === undefined) {
                dispose([value, norm, metricTensors])
                metricTensors = {}
              }
            }
          } catch (err) {
            if (scalars) dispose([scalars.value, scalars.metrics, scalars.norm])
            subscriber.error(err)
            return
          } finally {
            if (disposeBatch) dispose(batch)
          }
          const s = scalars
          const read = (t: Tensor): number | undefined => t.storage.backend.readSync(t.storage.dataId, t.dtype, 1)?.[0]
          const sync = reads === undefined ? read(s.value) : undefined
          if (sync !== undefined) {
            const metrics: Record<string, number> = {}
            for (const [k, v] of Object.entries(s.metrics)) metrics[k] = read(v)!
            const gradNorm = s.norm !== undefined ? read(s.norm) : undefined
            dispose([s.value, s.metrics, s.norm])
            subscriber.next({ step: s.step, loss: sync, metrics, ...(gradNorm !== undefined ? { gradNorm } : {}), ...(s.skipped ? { skipped: true } : {}) })
            return
          }
          // Every link runs, also after an earlier one failed, so that each step's scalars are freed.
          inflight.add(s)
          reads = (reads ?? Promise.resolve()).catch(() => {}).then(async () => {
            try {
              // torn down meanwhile: the teardown freed the scalars
              if (closed) return
              const metrics: Record<string, number> = {}
              for (const [k, v] of Object.entries(s.metrics)) metrics[k] = (await v.data())[0]!
              const loss = (await s.value.data())[0]!
              if (onNonFinite === 'error' && !Number.isFinite(loss)) throw nonFinite(loss)
              const skipped = onNonFinite === 'skip' && !Number.isFinite(loss)
              const gradNorm = s.norm !== undefined ? (await s.norm.data())[0]! : undefined
              if (!closed) subscriber.next({ step: s.step, loss, metrics, ...(gradNorm !== undefined ? { gradNorm } : {}), ...(skipped ? { skipped: true } : {}) })
            } finally {
              inflight.delete(s)
              dispose([s.value, s.metrics, s.norm])
            }
          })
          reads.catch(err => subscriber.error(err))
        },
        error: err => subscriber.error(err),
        complete: () => {
          if (reads === undefined) finish()
          else void reads.then(finish, () => {})
        },
      })
      return () => {
        closed = true
        sub.unsubscribe()
        for (const s of inflight) dispose([s.value, s.metrics, s.norm])
        inflight.clear()
        dispose([params, state, metricTensors])
        params = undefined
        state = undefined
      }
    })
}

/**
 * The parameters and optimizer slots after a step where its loss is finite, those before it where it is not,
 * selected on the device (no readback); the four trees are consumed and the selection returned.
 */
function keepIfFinite<P>(loss: Tensor, oldP: P, oldS: OptState<P>, newP: P, newS: OptState<P>): [P, OptState<P>] {
  const out = scope(() => {
    const ok = less(abs(loss), Infinity)
    // mapTree and treeTensors walk a tree in the same order, so the i-th leaves correspond
    const pick = (a: unknown, b: unknown): unknown => {
      const old = [...treeTensors(b)]
      let i = 0
      return mapTree(a, x => where(ok, x, old[i++]!))
    }
    return [pick(newP, oldP), { count: newS.count, slots: pick(newS.slots, oldS.slots) }] as [P, OptState<P>]
  })
  dispose([oldP, oldS, newP, newS])
  return out
}
