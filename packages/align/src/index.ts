/**
 * @heed/align: DPO and its family of preference losses, trainable end to end through @heed/tensor autodiff.
 */
// Re-exported so code written against this package types its tensors without a second import.
export type { Tensor, DType, Shape } from '@heed/tensor'

export { logpsFromTokens, type LogpsFromTokensOptions, type LogpReduce } from './logpsFromTokens.js'
export { tokenLogps } from './tokenLogps.js'
export type { PreferenceLogps } from './preferenceLogps.js'
export { dpoLoss, preferenceMetrics, DPO_LOSS_TYPES, type DpoLossType, type DpoLossOptions, type DpoLossOutput, type DpoMetrics, type FDivergence } from './dpoLoss.js'
export { flexDpoLoss, type FlexDpoLossOptions } from './flexDpoLoss.js'
export { ktoLoss, type KtoBatch, type KtoLossOptions, type KtoLossOutput } from './ktoLoss.js'
export { cpoLoss, type CpoLossType, type CpoLossOptions, type CpoLossOutput } from './cpoLoss.js'
export { orpoLoss, log1mexp, type OrpoLossOptions, type OrpoLossOutput } from './orpoLoss.js'
export { anchorLoss, type AnchorLossOptions } from './anchorLoss.js'
export { opaDpoLoss, SEVERITY_WEIGHTS, IMAGE_RELATION_WEIGHTS, type OpaDpoPairs, type OpaDpoLossOptions, type OpaDpoLossOutput } from './opaDpoLoss.js'
export { maskImage, type MaskImageOptions } from './maskImage.js'
export { attentionRatio, miaDpoThreshold, type MiaLayout } from './attentionRatio.js'
export { selectRejected, greedyPerplexity, type SelectRejectedOptions } from './selectRejected.js'
export { diffusionDpoLoss, squaredError, type DiffusionErrors, type DiffusionDpoLossOptions, type DiffusionDpoLossOutput } from './diffusionDpoLoss.js'
export {
  noisePredictionErrors,
  gaussianNoise,
  ddimInversionNoise,
  alphasCumprod,
  type EpsModel,
  type Noised,
  type NoiseSource,
  type DdimInversionOptions,
  type GaussianNoiseOptions,
  type NoisePredictionErrorsInput,
} from './noisePredictionErrors.js'
export { readMetrics, readMetricsSync } from './readMetrics.js'
export { imageAttentionShares } from './imageAttentionShares.js'
export { kjvPreferencePairs, type TextPreferencePair, type KjvPreferencePairsOptions } from './kjvPreferencePairs.js'
export { completionBatch, type CompletionBatch, type CompletionBatchOptions } from './completionBatch.js'
export { completionLogps } from './completionLogps.js'
export { preferenceDataset, requireSameArchitecture, type LanguageModel, type TextPair, type PreferenceExample, type PreferenceDatasetOptions } from './preferenceDataset.js'
export { collatePreferences, type LmPreferenceBatch, type CollatePreferencesOptions } from './collatePreferences.js'
export { lmPreferenceLogps } from './lmPreferenceLogps.js'
export { lmKtoBatch } from './lmKtoBatch.js'
