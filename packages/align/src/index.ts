/**
 * @heed/align: DPO and its family of preference losses, trainable end to end through @heed/tensor autodiff.
 */
// Re-exported so code written against this package types its tensors without a second import.
export type { Tensor, DType, Shape } from '@heed/tensor'

export { logpsFromTokens, type LogpsFromTokensOptions, type LogpReduce } from './logpsFromTokens.js'
export { tokenLogps } from './tokenLogps.js'
export type { PreferenceLogps } from './preferenceLogps.js'
export { dpoLoss, preferenceMetrics, DPO_LOSS_TYPES, type DpoLossType, type DpoLossOptions, type DpoLossOutput, type DpoMetrics, type FDivergence } from './dpoLoss.js'
export { readMetrics, readMetricsSync } from './readMetrics.js'
