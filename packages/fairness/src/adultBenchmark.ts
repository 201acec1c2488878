import { either as E } from 'fp-ts'
import { accuracy } from './accuracy.js'
import type { Classifier } from './classifier.js'
import { demographicParityDifference } from './demographicParity.js'
import { equalizedOddsDifference } from './equalizedOdds.js'
import { loadAdult } from './loadAdult.js'
import { paretoFront } from './paretoFront.js'
import { progressBar } from './progressBar.js'
import { trainProtectedAttributeEncoder } from './protectedAttributeEncoder.js'
import { reweighing } from './reweighing.js'
import { softDemographicParity } from './softDemographicParity.js'
import type { TabularData } from './tabularData.js'
import { trainAdversarialDebiasing } from './trainAdversarialDebiasing.js'
import { trainDistraction } from './trainDistraction.js'
import { trainMlp } from './trainMlp.js'

/** The Adult (sex) figures the Distraction paper reports (test split, soft ΔDP), from the authors' figure. */
export const PAPER_ADULT = [
  { method: 'Distraction (paper)', accuracy: 0.8309, softDp: 0.0 },
  { method: 'Distraction (paper)', accuracy: 0.8361, softDp: 0.01 },
  { method: 'Unfair MLP (paper)', accuracy: 0.8485, softDp: 0.1882 },
] as const

/** One evaluated model on the test split. */
export interface BenchmarkRow {
  readonly method: string
  readonly eta?: number
  /** 1-based epoch at which it was evaluated (the last one for the final model). */
  readonly epoch: number
  readonly accuracy: number
  /** Demographic-parity difference of the thresholded (0.5) predictions. */
  readonly dpGap: number
  /** The paper's soft ΔDP on probabilities. */
  readonly softDp: number
  readonly eoGap: number
}

export interface AdultBenchmarkOptions {
  readonly etas?: readonly number[]
  readonly epochs?: number
  readonly warmupEpochs?: number
  readonly encoderEpochs?: number
  readonly baselineEpochs?: number
  readonly batchSize?: number
  readonly lrModule?: number
  /** Use only the first rows of each split (for quick checks). */
  readonly maxTrainRows?: number
  readonly maxTestRows?: number
  readonly progress?: boolean
  readonly seed?: number
}

export interface AdultBenchmarkResult {
  /** Final model of every method (and η). */
  readonly rows: readonly BenchmarkRow[]
  /** Every per-epoch evaluation of the Distraction runs. */
  readonly distractionEpochs: readonly BenchmarkRow[]
  /** Pareto front of accuracy against the hard DP gap over the Distraction (η, epoch) points, as the paper plots. */
  readonly front: readonly BenchmarkRow[]
  readonly seconds: number
}

const head = (d: TabularData, n: number | undefined): TabularData =>
  n === undefined || n >= d.n ? d : { ...d, n, x: d.x.subarray(0, n * d.d), y: d.y.subarray(0, n), groups: d.groups.subarray(0, n) }

/** @internal */
export function evaluate(method: string, m: Classifier, test: TabularData, epoch: number, eta?: number): BenchmarkRow {
  const p = m.predictProba(test)
  const yp = Array.from(p, v => (v > 0.5 ? 1 : 0))
  const sf = { sensitiveFeatures: test.groups }
  return {
    method, ...(eta === undefined ? {} : { eta }), epoch,
    accuracy: accuracy(test.y, yp), dpGap: demographicParityDifference(test.y, yp, sf), softDp: softDemographicParity(p, test.groups), eoGap: equalizedOddsDifference(test.y, yp, sf),
  }
}

/** Train every method on the Adult train split (sensitive attribute: sex) and evaluate on the test split. */
export async function adultBenchmark(opts: AdultBenchmarkOptions = {}): Promise<AdultBenchmarkResult> {
  const t0 = Date.now()
  const loaded = await loadAdult()
  if (E.isLeft(loaded)) throw loaded.left
  const train = head(loaded.right.train, opts.maxTrainRows)
  const test = head(loaded.right.test, opts.maxTestRows)
  const batchSize = opts.batchSize ?? 256
  const epochs = opts.epochs ?? 3
  const warmupEpochs = opts.warmupEpochs ?? 2
  const baselineEpochs = opts.baselineEpochs ?? 4
  const etas = opts.etas ?? [0, 1000, 10000]
  const seed = opts.seed ?? 0
  const steps = Math.ceil(train.n / batchSize)
  const bar = (label: string, total: number) => (opts.progress === false ? undefined : progressBar({ label: label.padEnd(24), total }))
  const rows: BenchmarkRow[] = []
  const finish = (label: string, m: Classifier, epoch: number, eta?: number): void => {
    rows.push(evaluate(label, m, test, epoch, eta))
    m.dispose()
  }

  let pb = bar('MLP (unconstrained)', baselineEpochs * steps)
  finish('MLP (unconstrained)', trainMlp(train, { epochs: baselineEpochs, batchSize, seed, ...(pb ? { progress: pb } : {}) }), baselineEpochs)
  pb?.done()
  pb = bar('Reweighing', baselineEpochs * steps)
  finish('Reweighing + MLP', trainMlp(train, { epochs: baselineEpochs, batchSize, seed, sampleWeight: reweighing(train), ...(pb ? { progress: pb } : {}) }), baselineEpochs)
  pb?.done()
  pb = bar('Adversarial debiasing', baselineEpochs * steps)
  finish('Adversarial debiasing (α = 0.3)', trainAdversarialDebiasing(train, { epochs: baselineEpochs, batchSize, seed, alpha: 0.3, adversaryLr: 1e-2, ...(pb ? { progress: pb } : {}) }), baselineEpochs)
  pb?.done()

  const encEpochs = opts.encoderEpochs ?? 2
  pb = bar('Protected-attr encoder', encEpochs * steps)
  const encoder = trainProtectedAttributeEncoder(train, { epochs: encEpochs, batchSize, seed, ...(pb ? { progress: pb } : {}) })
  pb?.done(`group accuracy ${encoder.accuracy(test).toFixed(3)}`)
  const distractionEpochs: BenchmarkRow[] = []
  try {
    for (const eta of etas) {
      pb = bar(`Distraction η=${eta}`, (warmupEpochs + epochs) * steps)
      const m = trainDistraction(train, {
        encoder, eta, epochs, warmupEpochs, batchSize, seed, lrModule: opts.lrModule ?? 1e-4, moduleOptimizer: 'sgd', moduleBiases: 'accuracy', decayEvery: 1, decayGamma: 0.9,
        ...(pb ? { progress: pb } : {}),
        onEpoch: (e, model) => {
          if (e >= warmupEpochs) distractionEpochs.push(evaluate('Distraction', model, test, e + 1 - warmupEpochs, eta))
        },
      })
      pb?.done()
      finish('Distraction', m, epochs, eta)
    }
  } finally {
    encoder.dispose()
  }
  const front = paretoFront(distractionEpochs.map(r => ({ ...r, gap: r.dpGap })))
  return { rows, distractionEpochs, front, seconds: (Date.now() - t0) / 1000 }
}
