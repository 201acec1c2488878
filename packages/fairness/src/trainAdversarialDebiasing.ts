import { abs, adam, add, dispose, logSoftmax, mean, mul, neg, oneHot, reshape, rng as makeRng, scope, sigmoid, sub, sum, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { positiveInt, positiveNumber, shuffledBatches } from './batching.js'
import type { Classifier } from './classifier.js'
import { denseForward, initDense, type DenseLayer } from './dense.js'
import { bceWithLogits } from './distraction.js'
import type { Progress } from '@heed/tensor'
import { takeRows, type TabularData } from './tabularData.js'
import { hiddenWidths, mlpClassifier } from './trainMlp.js'
import { options, tabular, trainerOptions } from './validate.js'

export interface AdversarialDebiasingOptions {
  /** Hidden widths of the predictor (default [64, 32]). */
  readonly hidden?: readonly number[]
  /** Dropout rate of the hidden layers (default 0.2). */
  readonly dropout?: number
  /** Weight α of the adversary's loss in the predictor update (AIF360 default 0.1; fairlearn's `alpha` 1). */
  readonly alpha?: number
  /** Adam learning rate of the predictor (default 1e-3). */
  readonly lr?: number
  /** Adversary learning rate (default `lr`). */
  readonly adversaryLr?: number
  /** Rows per batch (default 128). */
  readonly batchSize?: number
  /** Training epochs (default 10). */
  readonly epochs?: number
  /** Seed of initialisation, dropout and batch order (default 0). */
  readonly seed?: number
  /** Called after every epoch with the current predictor (e.g. to evaluate on validation). */
  readonly onEpoch?: (epoch: number, model: Classifier) => void
  /** Progress reporting (see `Progress`; default none). */
  readonly progress?: Progress
}

interface Adversary {
  /** AIF360's learnable sharpness c in σ((1+|c|)·z). */
  readonly c: Tensor
  readonly w: Tensor
  readonly b: Tensor
}

/**
 * Adversarial debiasing (Zhang, Lemoine & Mitchell 2018; AIF360 `AdversarialDebiasing` for demographic parity):
 * an adversary predicts the group from `σ((1+|c|)·z)` of the predictor's logit z; the predictor descends
 * `∇L_P − proj_{∇L_A}∇L_P − α∇L_A` (per parameter tensor), the adversary descends `∇L_A`.
 */
const KEYS: Record<keyof AdversarialDebiasingOptions, true> = { hidden: true, dropout: true, alpha: true, lr: true, adversaryLr: true, batchSize: true, epochs: true, seed: true, onEpoch: true, progress: true }

export function trainAdversarialDebiasing(data: TabularData, opts: AdversarialDebiasingOptions = {}): Classifier {
  const op = 'trainAdversarialDebiasing'
  opts = options(op, opts, Object.keys(KEYS))
  tabular(op, data)
  trainerOptions(op, opts)
  const hidden = hiddenWidths(op, opts.hidden)
  const epochs = positiveInt(op, 'epochs', opts.epochs ?? 10)
  const batchSize = positiveInt(op, 'batchSize', opts.batchSize ?? 128)
  const lr = positiveNumber(op, 'lr', opts.lr ?? 1e-3)
  const advLr = positiveNumber(op, 'adversaryLr', opts.adversaryLr ?? lr)
  const alpha = positiveNumber(op, 'alpha', opts.alpha ?? 0.1, true)
  const rate = opts.dropout ?? 0.2
  const G = data.numGroups
  const rng = makeRng(opts.seed ?? 0)
  let pred = initDense([data.d, ...hidden, 1], rng, op)
  const [al] = initDense([1, G], rng)
  let adv: Adversary = { c: tensor(1, [], 'float32'), w: al!.w, b: al!.b }
  const optP = adam({ lr })
  const optA = adam({ lr: advLr })
  let sP = optP.init(pred)
  let sA = optA.init(adv)
  const logit = (ls: DenseLayer[], x: Tensor): Tensor => reshape(denseForward(ls, x, { dropout: rate, rng, linearLast: true }), [x.shape[0]!, 1])
  const advLoss = (a: Adversary, z: Tensor, target: Tensor): Tensor => {
    const s = sigmoid(mul(add(1, abs(a.c)), z))
    return neg(mean(sum(mul(target, logSoftmax(add(mul(s, a.w), a.b), { axis: -1 })), { axis: -1 })))
  }
  const vgP = valueAndGrad((ls: DenseLayer[], x: Tensor, y: Tensor) => bceWithLogits(reshape(logit(ls, x), [x.shape[0]!]), y))
  const vgA = valueAndGrad((ls: DenseLayer[], a: Adversary, x: Tensor, t: Tensor) => advLoss(a, logit(ls, x), t), { argnums: [0, 1] })
  for (let e = 0; e < epochs; e++) {
    for (const rows of shuffledBatches(data.n, batchSize, rng)) {
      const { values, d } = takeRows(data.x, data.d, rows)
      const x = tensor(values, [rows.length, d], 'float32')
      const y = tensor(Float32Array.from(rows, i => data.y[i]!), [rows.length], 'float32')
      // The int32 ids are a temporary of the one-hot: left outside a scope they outlived every step.
      const t = scope(() => oneHot(tensor(Int32Array.from(rows, i => data.groups[i]!), [rows.length], 'int32'), G))
      const [lp, gp] = vgP(pred, x, y)
      const [la, [gpa, ga]] = vgA(pred, adv, x, t)
      const combined = scope(() =>
        gp.map((layer, i) => {
          const fix = (gP: Tensor, gA: Tensor): Tensor => {
            const unit = mul(gA, 1 / (Math.sqrt(sum(mul(gA, gA)).dataSync()[0]!) + 1e-8))
            return sub(sub(gP, mul(unit, sum(mul(gP, unit)))), mul(gA, alpha))
          }
          return { w: fix(layer.w, gpa[i]!.w), b: fix(layer.b, gpa[i]!.b) }
        }),
      )
      ;[pred, sP] = optP.step(combined, sP, pred)
      ;[adv, sA] = optA.step(ga, sA, adv)
      opts.progress?.tick(1, `epoch ${e + 1} bce ${lp.dataSync()[0]!.toFixed(3)} adv ${la.dataSync()[0]!.toFixed(3)}`)
      dispose([x, y, t, lp, gp, la, gpa, ga, combined])
    }
    opts.onEpoch?.(e, mlpClassifier(pred))
  }
  dispose([sP.slots, sA.slots, adv])
  return mlpClassifier(pred)
}

