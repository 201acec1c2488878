import { valueAndGrad } from '../autodiff/grad.js'
import { ArgumentError, DisposedError, ValueError } from '../errors.js'
import { mapTree } from '../mapTree.js'
import { dispose, keep, scope, treeTensors } from '../memory.js'
import { abs, add, less, where } from '../ops/index.js'
import { knownOptions } from '../validate.js'
import { clipByGlobalNorm } from './clipByGlobalNorm.js'
import type { Optimizer, OptState } from './index.js'
import { isTensor, type Tensor } from '../Tensor.js'

/** What a training loss returns: the scalar to minimise and scalar metric tensors to log. */
export interface TrainLoss {
  readonly loss: Tensor
  /** Scalar metric tensors by name (`DpoMetrics` and the like); non-tensor entries are ignored. */
  readonly metrics?: object
}

/**
 * What a step does when its loss is NaN or ±Infinity: `'continue'` applies it as any other (the default),
 * `'error'` throws a `ValueError` (Keras' `TerminateOnNaN`), `'skip'` leaves parameters and optimizer state as
 * they were and marks the step `skipped`.
 */
export type NonFiniteLoss = 'continue' | 'error' | 'skip'

export interface TrainerOptions<P, B> {
  /** Initial parameters (a pytree of float tensors). Copied; the caller keeps (and frees) the originals. */
  readonly params: P
  /** The update rule (`sgd`, `adam`, `adamw`, or any `Optimizer`). */
  readonly optimizer: Optimizer
  /**
   * Optimizer state to start from (a resumed run: the state saved with the parameters). Copied; default
   * `optimizer.init(params)`. Step numbers continue from its `count`.
   */
  readonly state?: OptState<P>
  /**
   * The loss of a batch under the current parameters, either a scalar tensor or `{ loss, metrics }`; runs under
   * the gradient tape. Randomness it draws (dropout) is drawn inside `step`, after whatever made the batch.
   */
  readonly loss: (params: P, batch: B) => TrainLoss | Tensor
  /** Clip the gradients to this global L2 norm before the update (`clipByGlobalNorm`). Default: no clipping. */
  readonly clipNorm?: number
  /**
   * A step whose loss is not finite: `'continue'` (default), `'error'` or `'skip'`. On the CPU the loss is checked
   * before the update. On a device backend (WebGPU) the loss is not on the host during the step: `'skip'` selects
   * the old parameters and moments on the device (the step counter, and with it a schedule, still advances), and
   * `'error'` is left to whoever reads the loss back (`trainStep` fails the stream then).
   */
  readonly onNonFinite?: NonFiniteLoss
}

/** The scalars of one step, as tensors (nothing is read back): the caller owns them, `dispose(result)` frees them. */
export interface StepScalars {
  /** Optimizer updates applied so far: 1 after the first step of a fresh run. */
  readonly step: number
  readonly loss: Tensor
  /** The loss function's scalar metric tensors by name. */
  readonly metrics: Readonly<Record<string, Tensor>>
  /** The global gradient norm before clipping, when `clipNorm` is set. */
  readonly gradNorm?: Tensor
  /** The loss was not finite, read on the host, and `onNonFinite: 'skip'` left parameters and state unchanged. */
  readonly skipped: boolean
}

/** A synchronous training loop's state: the current parameters and optimizer state, and the step that moves them. */
export interface Trainer<P, B> {
  /** The current parameters, borrowed: valid until the next `step`, `release` or `dispose`. */
  readonly params: P
  /** The current optimizer state, borrowed as `params` is. */
  readonly state: OptState<P>
  /** loss → `valueAndGrad` → optional `clipByGlobalNorm` → optimizer step. Never disposes `batch`. */
  step(batch: B): StepScalars
  /** Hand the current parameters to the caller (who frees them) and free the optimizer state; the trainer is done. */
  release(): P
  /** Free the parameters and the optimizer state (also after `release`, then a no-op). */
  dispose(): void
}

const copyTree = <T>(tree: T): T => scope(() => mapTree(tree, t => add(t, 0)) as T)

const OPTION_NAMES = ['params', 'optimizer', 'state', 'loss', 'clipNorm', 'onNonFinite']

/** @internal The option checks of `trainer`, under the name of the public function that was called. */
export function checkTrainerOptions<P, B>(op: string, opts: TrainerOptions<P, B>): void {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  if (typeof opts.loss !== 'function') throw new ArgumentError({ op, arg: 'loss', expected: 'a function (params, batch) => { loss, metrics }', actual: typeof opts.loss })
  const optimizer = opts.optimizer
  if (optimizer === null || typeof optimizer !== 'object' || typeof optimizer.step !== 'function')
    throw new ArgumentError({ op, arg: 'optimizer', expected: 'an Optimizer (sgd, adam, adamw)', actual: typeof optimizer })
  if (treeTensors(opts.params).size === 0) throw new ArgumentError({ op, arg: 'params', expected: 'a pytree with at least one tensor', actual: 'none' })
  if (opts.clipNorm !== undefined && !(opts.clipNorm > 0)) throw new ValueError({ op, arg: 'clipNorm', expected: 'a positive number', actual: opts.clipNorm })
  if (opts.state !== undefined && !(opts.state !== null && typeof opts.state === 'object' && Number.isInteger(opts.state.count) && opts.state.count >= 0))
    throw new ArgumentError({ op, arg: 'state', expected: 'an optimizer state { count, slots }', actual: String(opts.state) })
  const onNonFinite = opts.onNonFinite ?? 'continue'
  if (onNonFinite !== 'continue' && onNonFinite !== 'error' && onNonFinite !== 'skip')
    throw new ValueError({ op, arg: 'onNonFinite', expected: "'continue', 'error' or 'skip'", actual: String(onNonFinite) })
}

/** @internal The error of `onNonFinite: 'error'`, shared with `trainStep`'s device read-back. */
export const nonFiniteLoss = (op: string, loss: number): ValueError =>
  new ValueError({ op, arg: 'loss', expected: 'a finite loss', actual: loss }, "stopped by onNonFinite: 'error'")

/**
 * The one training step of heed, synchronous and without RxJS: `trainStep` (`@heed/tensor/stream`, the LM
 * trainer, `@heed/align`) wraps it, and `@heed/fairness`'s trainers loop over it. Ownership: it copies the initial
 * parameters and state, so the caller keeps and frees the originals; it owns its copies and every later version of
 * them, and frees them on `dispose` (or hands the parameters over with `release`); it never disposes a batch; each
 * `step` returns its scalars as tensors the caller frees, so on a device backend reading them back stays the
 * caller's choice (sync or `await data()`).
 *
 *     const tr = trainer({ params, optimizer: adam({ lr: 1e-3 }), loss: (p, b) => mse(p, b) })
 *     for (const b of batches) dispose(tr.step(b))
 *     const trained = tr.release()
 */
export function trainer<P, B>(opts: TrainerOptions<P, B>): Trainer<P, B> {
  knownOptions('trainer', opts, OPTION_NAMES)
  return makeTrainer('trainer', opts)
}

/** @internal `trainer` with errors under `op` (`trainStep` makes one per subscription). */
export function makeTrainer<P, B>(op: string, opts: TrainerOptions<P, B>): Trainer<P, B> {
  checkTrainerOptions(op, opts)
  const { optimizer, clipNorm } = opts
  const onNonFinite = opts.onNonFinite ?? 'continue'
  let params: P | undefined = copyTree(opts.params)
  let state: OptState<P> | undefined = opts.state !== undefined ? { count: opts.state.count, slots: copyTree(opts.state.slots) } : optimizer.init(params)
  let metricTensors: Record<string, Tensor> = {}
  const vg = valueAndGrad((p: P, batch: B) => {
    const out = opts.loss(p, batch)
    if (isTensor(out)) return out
    // Metrics are computed under the tape but must outlive valueAndGrad's scope; keep() hands them to us.
    metricTensors = keep(Object.fromEntries(Object.entries(out.metrics ?? {}).filter(([, v]) => isTensor(v))) as Record<string, Tensor>)
    return out.loss
  })
  const live = (what: string): void => {
    if (params === undefined) throw new DisposedError({ op, arg: 'trainer', expected: `a live trainer (${what})`, actual: 'released or disposed' })
  }
  return {
    get params() {
      live('params')
      return params!
    },
    get state() {
      live('state')
      return state!
    },
    step(batch: B): StepScalars {
      live('step')
      if (batch === null || batch === undefined) throw new ArgumentError({ op, arg: 'batch', expected: 'a batch for the loss function', actual: String(batch) })
      let scalars: StepScalars | undefined
      const [value, rawGrads] = vg(params!, batch)
      let grads: unknown = rawGrads
      let norm: Tensor | undefined
      try {
        // On the CPU the loss is on the host already: a non-finite one is caught before the update.
        const host = onNonFinite !== 'continue' ? value.storage.backend.readSync(value.storage.dataId, value.dtype, 1)?.[0] : undefined
        if (host !== undefined && !Number.isFinite(host)) {
          if (onNonFinite === 'error') throw nonFiniteLoss(op, host)
          scalars = { step: state!.count, loss: value, metrics: metricTensors, skipped: true }
        } else {
          if (clipNorm !== undefined) {
            const clipped = clipByGlobalNorm(rawGrads, clipNorm)
            grads = clipped.grads
            norm = clipped.norm
          }
          if (onNonFinite === 'skip' && host === undefined) {
            // A device backend: the loss is not on the host yet, so the old values are selected on the device.
            const [p1, s1] = optimizer.update(grads as P, state!, params!)
            ;[params, state] = keepIfFinite(value, params!, state!, p1, s1)
          } else [params, state] = optimizer.step(grads as P, state!, params!)
          scalars = { step: state.count, loss: value, metrics: metricTensors, ...(norm !== undefined ? { gradNorm: norm } : {}), skipped: false }
        }
        metricTensors = {}
        return scalars
      } finally {
        dispose([rawGrads, grads === rawGrads ? undefined : grads])
        // a failed update: the step's scalars have no result to go to
        if (scalars === undefined) {
          dispose([value, norm, metricTensors])
          metricTensors = {}
        }
      }
    },
    release(): P {
      live('release')
      const p = params!
      dispose([state, metricTensors])
      params = undefined
      state = undefined
      metricTensors = {}
      return p
    },
    dispose(): void {
      dispose([params, state, metricTensors])
      params = undefined
      state = undefined
      metricTensors = {}
    },
  }
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
