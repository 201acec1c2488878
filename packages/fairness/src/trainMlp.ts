import { adam, dispose, reshape, rng as makeRng, scope, tensor, valueAndGrad, ShapeError, type Tensor } from '@heed/tensor'
import { positiveInt, positiveNumber, shuffledBatches } from './batching.js'
import { probaInChunks, type Classifier } from './classifier.js'
import { denseForward, initDense, type DenseLayer } from './dense.js'
import { bceWithLogits } from './distraction.js'
import type { Progress } from './progressBar.js'
import { takeRows, type TabularData } from './tabularData.js'

export interface MlpOptions {
  /** Hidden widths (default [64, 32], the Distraction paper's classifier body). */
  readonly hidden?: readonly number[]
  readonly dropout?: number
  readonly lr?: number
  readonly batchSize?: number
  readonly epochs?: number
  readonly seed?: number
  /** Per-row weights of the cross-entropy (e.g. from `reweighing`). */
  readonly sampleWeight?: ArrayLike<number>
  readonly onEpoch?: (epoch: number, model: Classifier) => void
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
  const rng = makeRng(opts.seed ?? 0)
  let layers = initDense([data.d, ...hidden, 1], rng)
  const opt = adam({ lr })
  let state = opt.init(layers)
  const vg = valueAndGrad((ls: DenseLayer[], x: Tensor, y: Tensor, w: Tensor | undefined) =>
    bceWithLogits(reshape(denseForward(ls, x, { dropout: rate, rng, linearLast: true }), [x.shape[0]!]), y, w),
  )
  for (let e = 0; e < epochs; e++) {
    for (const rows of shuffledBatches(data.n, batchSize, rng)) {
      const [l, g] = scope(() => {
        const { values, d } = takeRows(data.x, data.d, rows)
        const x = tensor(values, [rows.length, d], 'float32')
        const y = tensor(Float32Array.from(rows, i => data.y[i]!), [rows.length], 'float32')
        const w = sw === undefined ? undefined : tensor(Float32Array.from(rows, i => sw[i]!), [rows.length], 'float32')
        return vg(layers, x, y, w)
      })
      ;[layers, state] = opt.step(g, state, layers)
      opts.progress?.tick(1, `epoch ${e + 1} bce ${l.dataSync()[0]!.toFixed(3)}`)
      dispose([l, g])
    }
    opts.onEpoch?.(e, mlpClassifier(layers))
  }
  dispose(state.slots)
  return mlpClassifier(layers)
}
