import { adam, add, dispose, sigmoid, reshape, rng as makeRng, tensor, trainer, ShapeError, type Tensor } from '@heed/tensor'
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

/** The unconstrained baseline: an MLP trained on (optionally weighted) cross-entropy. */
export function trainMlp(data: TabularData, opts: MlpOptions = {}): Classifier {
  const op = 'trainMlp'
  const hidden = opts.hidden ?? [64, 32]
  const epochs = positiveInt(op, 'epochs', opts.epochs ?? 10)
  const batchSize = positiveInt(op, 'batchSize', opts.batchSize ?? 100)
  const lr = positiveNumber(op, 'lr', opts.lr ?? 1e-3)
  const rate = opts.dropout ?? 0.2
  const sw = opts.sampleWeight
  if (sw !== undefined && sw.length !== data.n) throw new ShapeError({ op, arg: 'sampleWeight', expected: `length ${data.n}`, actual: `length ${sw.length}` })
  const eta = positiveNumber(op, 'dpEta', opts.dpEta ?? 0, true)
  const rng = makeRng(opts.seed ?? 0)
  const layers = initDense([data.d, ...hidden, 1], rng)
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
  const { eta, ...rest } = opts
  return trainMlp(data, { ...rest, dpEta: positiveNumber('trainLagrangian', 'eta', eta, true) })
}
