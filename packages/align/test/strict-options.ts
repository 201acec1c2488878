/**
 * Strict options of the align functions beyond the DPO losses (issue 19): for each, a generated unknown key, a
 * misspelt key with its suggestion, a wrong-typed option, null and array options and a bad argument are typed heed
 * errors naming the op and the argument; every key of its `…Options` interface is known; the valid call still works.
 */
import t from 'tap'
import { firstValueFrom, of } from 'rxjs'
import { ArgumentError, ValueError, mul, sgd, sum, tensor, zeros, type Tensor } from '@heed/tensor'
import {
  collatePreferences,
  completionBatch,
  ddimInversionNoise,
  diffusionDpoLoss,
  gaussianNoise,
  kjvPreferencePairs,
  maskImage,
  noisePredictionErrors,
  opaDpoLoss,
  preferenceDataset,
  selectRejected,
} from '@heed/align'
import { preferenceBatches, trainStep } from '@heed/align/stream'
import { strictCases, type StrictCase } from '../../../test/helpers/strictOptions.js'

const f64 = (v: number[], shape = [v.length]) => tensor(v, shape, 'float64')
const batch = () => ({ chosenLogps: f64([-1, -2]), rejectedLogps: f64([-1.5, -2.5]), refChosenLogps: f64([-1.1, -2.1]), refRejectedLogps: f64([-1.4, -2.4]) })
const errors = () => ({ modelErrChosen: f64([0.1, 0.2]), modelErrRejected: f64([0.3, 0.1]), refErrChosen: f64([0.2, 0.2]), refErrRejected: f64([0.2, 0.2]) })
const schedule = [0.9, 0.7, 0.5]
const latent = () => ({ chosen: f64([1, 2, 3, 4], [1, 4]), rejected: f64([4, 3, 2, 1], [1, 4]) })
const id = (x: Tensor): Tensor => x
const verses = Array.from({ length: 6 }, (_, i) => ({ book: 'Genesis', chapter: 1, verse: i + 1, text: Array.from({ length: 12 }, (_, j) => `v${i}w${j}`).join(' ') })) as never
const example = () => ({ prompt: Int32Array.of(1), chosen: Int32Array.of(2), rejected: Int32Array.of(3), refChosen: Float32Array.of(-1), refRejected: Float32Array.of(-1) })
const trainBase = () => ({ params: { w: f64([1]) }, optimizer: sgd({ lr: 0.1 }), loss: (p: { w: Tensor }) => ({ loss: sum(p.w), metrics: {} }) })

const cases: StrictCase[] = [
  {
    op: 'diffusionDpoLoss', call: o => diffusionDpoLoss(errors(), o as never), keys: { iface: 'DiffusionDpoLossOptions' },
    misspelt: ['betta', 'beta'], wrong: [{ beta: 'big' }, ValueError, 'beta'], badArg: [() => diffusionDpoLoss({ ...errors(), modelErrChosen: [0.1, 0.2] } as never), ArgumentError, 'modelErrChosen'],
  },
  {
    op: 'opaDpoLoss', call: o => opaDpoLoss({ standard: batch(), revised: batch() }, o as never), keys: { iface: 'OpaDpoLossOptions' },
    misspelt: ['imagecoef', 'imageCoef'], wrong: [{ anchorCoef: '1' }, ValueError, 'anchorCoef'], badArg: [() => opaDpoLoss(null as never), ArgumentError, 'pairs'],
  },
  {
    op: 'maskImage', call: o => maskImage(zeros([1, 2, 2], { dtype: 'float64' }), o as never), keys: { iface: 'MaskImageOptions' },
    misspelt: ['ration', 'ratio'], wrong: [{ seed: 'one' }, ValueError, 'seed'], badArg: [() => maskImage([[[1]]] as never), ArgumentError, 'image'],
  },
  {
    op: 'selectRejected', base: { threshold: 0.5 }, keys: { iface: 'SelectRejectedOptions' },
    call: o => selectRejected({ ratios: f64([0.1, 0.9]), perplexities: f64([2, 2]), differs: tensor([1, 1], [2], 'bool') }, o as never),
    misspelt: ['minPerplexty', 'minPerplexity'], wrong: [{ inclusive: 'yes' }, ArgumentError, 'inclusive'], badArg: [() => selectRejected({ ratios: [0.1], perplexities: f64([2]), differs: tensor([1], [1], 'bool') } as never, { threshold: 0.5 }), ArgumentError, 'ratios'],
  },
  {
    op: 'gaussianNoise', base: { alphasCumprod: schedule, seed: 1 }, keys: { iface: 'GaussianNoiseOptions' },
    call: o => {
      const src = gaussianNoise(o as never)
      const r = src(latent(), 1)
      return [r.chosen.xt, r.chosen.eps, r.rejected.xt, r.rejected.eps]
    },
    misspelt: ['alphaCumprod', 'alphasCumprod'], wrong: [{ seed: 1.5 }, ValueError, 'seed'], badArg: [() => gaussianNoise({ alphasCumprod: schedule })(null as never, 1), ArgumentError, 'pair'],
  },
  {
    op: 'ddimInversionNoise', base: { model: id, alphasCumprod: schedule, steps: 2 }, keys: { iface: 'DdimInversionOptions' },
    call: o => {
      const r = ddimInversionNoise(o as never)(latent(), 2)
      return [r.chosen.xt, r.chosen.eps, r.rejected.xt, r.rejected.eps]
    },
    misspelt: ['step', 'steps'], wrong: [{ eta: 'some' }, ValueError, 'eta'], badArg: [() => ddimInversionNoise({ model: id, alphasCumprod: schedule })({ chosen: [1, 2], rejected: [1, 2] } as never, 1), ArgumentError, 'pair.chosen'],
  },
  {
    // the input object is its options: an unknown key there is as silent as in any other
    op: 'noisePredictionErrors', optsArg: 'input', keys: { iface: 'NoisePredictionErrorsInput' },
    base: { model: id, reference: id, ...latent(), t: 1, noise: gaussianNoise({ alphasCumprod: schedule, seed: 0 }) },
    call: o => noisePredictionErrors(o as never),
    misspelt: ['refrence', 'reference'], wrong: [{ model: 3 }, ArgumentError, 'model'], badArg: [() => noisePredictionErrors({ model: id, reference: id, chosen: [1], rejected: [1], t: 1, noise: id } as never), ArgumentError, 'chosen'],
  },
  {
    op: 'kjvPreferencePairs', // every key in base: with a null (default) length these short verses share one window, and the pair loop never ends
    base: { count: 2, promptLength: 8, completionLength: 8, styleFraction: 0, targetWord: 'god', seed: 0 }, keys: { iface: 'KjvPreferencePairsOptions' },
    call: o => kjvPreferencePairs(verses, o as never),
    misspelt: ['promptLen', 'promptLength'], wrong: [{ seed: 'x' }, ValueError, 'seed'], badArg: [() => kjvPreferencePairs(null as never, { count: 1 }), ValueError, 'verses'],
  },
  {
    // options are checked before the reference model is read: no model is built here (lm.ts runs the valid call)
    op: 'preferenceDataset', keys: { iface: 'PreferenceDatasetOptions' }, runs: false,
    call: o => preferenceDataset([{ prompt: 'a', chosen: 'b', rejected: 'c' }], o as never),
    misspelt: ['tokeniser', 'tokenizer'], wrong: [{ reference: 3 }, ValueError, 'reference'], badArg: [() => preferenceDataset([], { reference: [] } as never), ValueError, 'reference'],
  },
  {
    op: 'completionBatch', keys: { iface: 'CompletionBatchOptions' }, call: o => completionBatch([[1]], [[2, 3]], o as never),
    misspelt: ['maxLen', 'maxLength'], wrong: [{ maxLength: '8' }, ValueError, 'maxLength'], badArg: [() => completionBatch(null as never, [[1]]), ValueError, 'prompts'],
  },
  {
    op: 'collatePreferences', keys: { iface: 'CollatePreferencesOptions' }, call: o => collatePreferences([example()], o as never),
    misspelt: ['backed', 'backend'], wrong: [{ backend: 3 }, ArgumentError, 'backend'], badArg: [() => collatePreferences(null as never), ValueError, 'examples'],
  },
  {
    op: 'preferenceBatches', base: { size: 2, collate: (x: unknown) => x }, keys: { iface: 'PreferenceBatchesOptions' },
    call: o => preferenceBatches(o as never),
    misspelt: ['droplast', 'dropLast'], wrong: [{ dropLast: 'yes' }, ArgumentError, 'dropLast'], badArg: [() => firstValueFrom(of(null).pipe(preferenceBatches({ size: 1, collate: x => x }))), ArgumentError, 'example'],
  },
  {
    // the options of the re-exported @heed/tensor/stream operator, whose onNonFinite ('skip', 'error') stays as it was
    op: 'trainStep', base: trainBase(), keys: { iface: 'TrainStepOptions' }, call: o => trainStep(o as never),
    misspelt: ['onNonFinte', 'onNonFinite'], wrong: [{ onNonFinite: 'stop' }, ValueError, 'onNonFinite'], badArg: [() => trainStep({ ...trainBase(), params: null as never }), ArgumentError, 'params'],
  },
]

void strictCases(t, ['align', 'tensor'], cases).then(() =>
  t.test("trainStep: onNonFinite 'skip' still skips the step", async t => {
    const nan = (p: { w: Tensor }) => ({ loss: mul(sum(p.w), NaN), metrics: {} })
    const r = await firstValueFrom(of(1).pipe(trainStep({ ...trainBase(), loss: nan, onNonFinite: 'skip' })))
    t.equal(r.skipped, true, 'the non-finite step is skipped')
  }),
)
