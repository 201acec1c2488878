import { adam, add, dispose, sigmoid, reshape, rng as makeRng, tensor, trainer, ArgumentError, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import { finite, kindOf, options, tabular, trainerOptions } from './validate.js'
import { positiveInt, positiveNumber, shuffledBatches } from './batching.js'
import { probaInChunks, type Classifier } from './classifier.js'
import { denseForward, initDense, type DenseLayer } from './dense.js'
import { bceWithLogits } from './distraction.js'
import { dpPenalty } from './dpPenalty.js'
import type { Progress } from '@heed/tensor'
import { takeRows, type TabularData } from './tabularData.js'

export interface MlpOptions {
  /** Hidden widths (default [64, 32], the Distraction paper's classifier body). */
  readonly hidden?: readonly number[]
  /** Dropout rate of the hidden layers (default 0.2). */
  readonly dropout?: number
  /** Adam learning rate (default 1e-3). */
  readonly lr?: number
  /** Rows per batch (default 100). */
  readonly batchSize?: number
  /** Training epochs (default 10). */
  readonly epochs?: number
  /** Seed of initialisation, dropout and batch order (default 0). */
  readonly seed?: number
  /** Per-row weights of the cross-entropy (e.g. from `reweighing`). */
  readonly sampleWeight?: ArrayLike<number>
  /**
   * η of the Lagrangian baseline (FairBiNN's `mode='reg'`): one network, one optimizer, on BCE + η·dpPenalty
   * over the batch's probabilities. 0 (default) is the plain MLP.
   */
  readonly dpEta?: number
  /** Called after every epoch with the current model (e.g. to evaluate on validation). */
  readonly onEpoch?: (epoch: number, model: Classifier) => void
  /** Progress reporting (see `Progress`; default none). */
  readonly progress?: Progress
}

/** @internal */
export function mlpClassifier(layers: readonly DenseLayer[]): Classifier {
  return { predictProba: data => probaInChunks(data, x => reshape(denseForward(layers, x, { linearLast: true }), [x.shape[0]!])), dispose: () => dispose(layers) }
}

const MLP_KEYS: Record<keyof MlpOptions, true> = { hidden: true, dropout: true, lr: true, batchSize: true, epochs: true, seed: true, sampleWeight: true, dpEta: true, onEpoch: true, progress: true }
const MLP_OPTIONS = Object.keys(MLP_KEYS)

/** @internal hidden widths: a non-empty array of positive integers (default [64, 32]). */
export function hiddenWidths(op: string, hidden: unknown): readonly number[] {
  if (hidden === undefined) return [64, 32]
  if (!Array.isArray(hidden) || hidden.length === 0) throw new ArgumentError({ op, arg: 'hidden', expected: 'a non-empty array of hidden widths', actual: kindOf(hidden) })
  hidden.forEach((h, i) => positiveInt(op, `hidden[${i}]`, h))
  return hidden as readonly number[]
}

/** The unconstrained baseline: an MLP trained on (optionally weighted) cross-entropy. */
export function trainMlp(data: TabularData, opts: MlpOptions = {}): Classifier {
  return mlp('trainMlp', data, options('trainMlp', opts, MLP_OPTIONS))
}

/** `trainMlp` in the name of the function the user called, options already checked for unknown keys. */
function mlp(op: string, data: TabularData, opts: MlpOptions): Classifier {
  tabular(op, data)
  trainerOptions(op, opts)
  const hidden = hiddenWidths(op, opts.hidden)
  const epochs = positiveInt(op, 'epochs', opts.epochs ?? 10)
  const batchSize = positiveInt(op, 'batchSize', opts.batchSize ?? 100)
  const lr = positiveNumber(op, 'lr', opts.lr ?? 1e-3)
  const rate = opts.dropout ?? 0.2
  const sw = opts.sampleWeight
  if (sw !== undefined) {
    if (!Array.isArray(sw) && !ArrayBuffer.isView(sw)) throw new ArgumentError({ op, arg: 'sampleWeight', expected: 'an array or typed array of weights', actual: kindOf(sw) })
    finite(op, 'sampleWeight', sw)
  }
  if (sw !== undefined && sw.length !== data.n) throw new ShapeError({ op, arg: 'sampleWeight', expected: `length ${data.n}`, actual: `length ${sw.length}` })
  const eta = positiveNumber(op, 'dpEta', opts.dpEta ?? 0, true)
  const rng = makeRng(opts.seed ?? 0)
  const layers = initDense([data.d, ...hidden, 1], rng, op)
  type Batch = { readonly x: Tensor; readonly y: Tensor; readonly w: Tensor | undefined; readonly groups: Int32Array }
  // The trainer copies the initial layers (bit for bit) and owns its copies; the originals are freed here.
  const tr = trainer({
    params: layers,
    optimizer: adam({ lr }),
    // dropout draws from rng inside the loss, after shuffledBatches drew the batch: the order of the old loop
    loss: (ls: DenseLayer[], b: Batch) => {
      const z = reshape(denseForward(ls, b.x, { dropout: rate, rng, linearLast: true }), [b.x.shape[0]!])
      const bce = bceWithLogits(z, b.y, b.w)
      return eta === 0 ? bce : add(bce, dpPenalty(sigmoid(z), b.groups, { eta }))
    },
  })
  dispose(layers)
  try {
    for (let e = 0; e < epochs; e++) {
      for (const rows of shuffledBatches(data.n, batchSize, rng)) {
        const { values, d } = takeRows(data.x, data.d, rows)
        const batch: Batch = {
          x: tensor(values, [rows.length, d], 'float32'),
          y: tensor(Float32Array.from(rows, i => data.y[i]!), [rows.length], 'float32'),
          w: sw === undefined ? undefined : tensor(Float32Array.from(rows, i => sw[i]!), [rows.length], 'float32'),
          groups: Int32Array.from(rows, i => data.groups[i]!),
        }
        try {
          const s = tr.step(batch)
          opts.progress?.tick(1, `epoch ${e + 1} bce ${s.loss.dataSync()[0]!.toFixed(3)}`)
          dispose(s)
        } finally {
          dispose(batch)
        }
      }
      // a view of the trainer's current layers, valid until the next step (as before: not the caller's to free)
      opts.onEpoch?.(e, mlpClassifier(tr.params))
    }
    return mlpClassifier(tr.release())
  } finally {
    tr.dispose()
  }
}

/**
 * The Lagrangian baseline FairBiNN compares against: a single MLP trained on BCE + η·DP penalty (the same
 * penalty the Distraction module step uses), both terms moving every parameter.
 */
export function trainLagrangian(data: TabularData, opts: MlpOptions & { readonly eta: number }): Classifier {
  const op = 'trainLagrangian'
  if (opts === undefined) throw new ArgumentError({ op, arg: 'opts', expected: '{ eta, … }', actual: 'undefined' })
  // dpEta is this function's to set, from eta: passed in, it would be overridden silently
  const { eta, ...rest } = options(op, opts, [...MLP_OPTIONS.filter(k => k !== 'dpEta'), 'eta'])
  return mlp(op, data, { ...rest, dpEta: positiveNumber(op, 'eta', eta, true) })
}
