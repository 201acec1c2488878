import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError } from '../errors.js'
import { knownOptions } from '../validate.js'
import { dispose } from '../memory.js'
import { borrow } from './ownership.js'
import type { Optimizer, OptState } from '../optim/index.js'
import { checkTrainerOptions, makeTrainer, nonFiniteLoss, type NonFiniteLoss, type StepScalars, type Trainer, type TrainerOptions, type TrainLoss } from '../optim/trainer.js'
import type { Tensor } from '../Tensor.js'

export type { NonFiniteLoss, TrainLoss }

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

export interface TrainStepOptions<P, B> {
  /** Initial parameters (a pytree of float tensors). Copied per subscription; the caller keeps the originals. */
  readonly params: P
  /** The update rule (`sgd`, `adam`, `adamw`, or any `Optimizer`). */
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

// Every key of TrainStepOptions, as an object so that the compiler flags one added to the interface and not here
// (a misspelt `onNonFinte` would otherwise leave the default 'continue' silently in force).
const OPTION_SET: { readonly [K in keyof Required<TrainStepOptions<unknown, unknown>>]: true } = {
  params: true, optimizer: true, state: true, loss: true, clipNorm: true, onComplete: true, inspect: true, disposeBatch: true, onNonFinite: true,
}
const OPTIONS = Object.keys(OPTION_SET)

/**
 * The one training-step operator of heed (the LM trainer, `@heed/align` use it): batches → loss → `valueAndGrad`
 * → optional global-norm clipping → optimizer step, the step of `trainer` (the main entry's synchronous core, which
 * `@heed/fairness` loops over) as an RxJS operator. Per subscription it holds a `trainer` (a copy of the
 * parameters and the optimizer state), emits a `StepResult` (loss and metrics read back as numbers) for every
 * batch, and frees parameters, state and any batch in flight on teardown, so `retry` and re-subscription start
 * again from the same initial parameters. A failing loss or step goes to the error channel. On the CPU each result
 * is emitted synchronously within its batch's `next`; on a device backend (WebGPU) the scalars are read back with
 * `data()` and emitted in step order as they arrive, and completion waits for the last one.
 */
export function trainStep<P, B>(opts: TrainStepOptions<P, B>): OperatorFunction<B, StepResult> {
  const op = 'trainStep'
  if (Array.isArray(opts)) throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: 'an array' })
  checkTrainerOptions(op, opts)
  knownOptions(op, opts, OPTIONS)
  for (const k of ['onComplete', 'inspect'] as const)
    if (opts[k] !== undefined && typeof opts[k] !== 'function') throw new ArgumentError({ op, arg: k, expected: 'a function', actual: opts[k] === null ? 'null' : typeof opts[k] })
  if (opts.disposeBatch !== undefined && typeof opts.disposeBatch !== 'boolean') throw new ArgumentError({ op, arg: 'disposeBatch', expected: 'a boolean', actual: typeof opts.disposeBatch })
  const disposeBatch = opts.disposeBatch ?? false
  const onNonFinite = opts.onNonFinite ?? 'continue'
  // the trainer's options only: the operator's own (inspect, onComplete, disposeBatch) stay here
  const core: TrainerOptions<P, B> = {
    params: opts.params, optimizer: opts.optimizer, loss: opts.loss, onNonFinite,
    ...(opts.state !== undefined ? { state: opts.state } : {}),
    ...(opts.clipNorm !== undefined ? { clipNorm: opts.clipNorm } : {}),
  }
  const release = (s: StepScalars): void => dispose([s.loss, s.metrics, s.gradNorm])
  return source =>
    new Observable<StepResult>(subscriber => {
      let tr: Trainer<P, B> | undefined = makeTrainer(op, core)
      // On a device backend (WebGPU) the step's scalars are read back asynchronously; results are emitted in
      // step order from this chain, and completion waits for it. On the CPU everything stays synchronous.
      let reads: Promise<void> | undefined
      let closed = false
      // step scalars waiting for their read-back (device backends), freed on teardown at the latest
      const inflight = new Set<StepScalars>()
      const finish = (): void => {
        if (opts.onComplete !== undefined && tr !== undefined) {
          const p = tr.release()
          tr = undefined
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
          let s: StepScalars | undefined
          try {
            s = tr!.step(batch)
            opts.inspect?.(tr!.params, tr!.state.count, tr!.state)
          } catch (err) {
            if (s) release(s)
            subscriber.error(err)
            return
          } finally {
            if (disposeBatch) dispose(batch)
          }
          const read = (t: Tensor): number | undefined => t.storage.backend.readSync(t.storage.dataId, t.dtype, 1)?.[0]
          const sync = reads === undefined ? read(s.loss) : undefined
          if (sync !== undefined) {
            const metrics: Record<string, number> = {}
            for (const [k, v] of Object.entries(s.metrics)) metrics[k] = read(v)!
            const gradNorm = s.gradNorm !== undefined ? read(s.gradNorm) : undefined
            release(s)
            subscriber.next({ step: s.step, loss: sync, metrics, ...(gradNorm !== undefined ? { gradNorm } : {}), ...(s.skipped ? { skipped: true } : {}) })
            return
          }
          // Every link runs, also after an earlier one failed, so that each step's scalars are freed.
          const pending = s
          inflight.add(pending)
          reads = (reads ?? Promise.resolve()).catch(() => {}).then(async () => {
            try {
              // torn down meanwhile: the teardown freed the scalars
              if (closed) return
              const metrics: Record<string, number> = {}
              for (const [k, v] of Object.entries(pending.metrics)) metrics[k] = (await v.data())[0]!
              const loss = (await pending.loss.data())[0]!
              // the trainer could not check a loss that was not on the host: 'error' is decided here
              if (onNonFinite === 'error' && !Number.isFinite(loss)) throw nonFiniteLoss(op, loss)
              const skipped = onNonFinite === 'skip' && !Number.isFinite(loss)
              const gradNorm = pending.gradNorm !== undefined ? (await pending.gradNorm.data())[0]! : undefined
              if (!closed) subscriber.next({ step: pending.step, loss, metrics, ...(gradNorm !== undefined ? { gradNorm } : {}), ...(skipped ? { skipped: true } : {}) })
            } finally {
              inflight.delete(pending)
              release(pending)
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
        for (const s of inflight) release(s)
        inflight.clear()
        tr?.dispose()
        tr = undefined
      }
    })
}
