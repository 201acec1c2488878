/**
 * @heed/fairness: fairness metrics (fairlearn and AIF360 definitions, any number of groups), the Distraction
 * module (a frozen protected-attribute encoder whose embedding queries an attention layer before the output),
 * baselines (unconstrained MLP, reweighing, adversarial debiasing) and the UCI Adult benchmark.
 * The RxJS training pipeline lives in `@heed/fairness/stream`.
 */
export type { Tensor, DType, Shape } from '@heed/tensor'
export type { Labels, Group, Groups } from './validate.js'

// Metrics
export type { RateOptions } from './confusion.js'
export { selectionRate } from './selectionRate.js'
export { truePositiveRate } from './truePositiveRate.js'
export { falsePositiveRate } from './falsePositiveRate.js'
export { trueNegativeRate } from './trueNegativeRate.js'
export { falseNegativeRate } from './falseNegativeRate.js'
export { accuracy } from './accuracy.js'
export { metricFrame, type MetricFrame, type MetricFrameOptions, type Metric, type AggregationMethod } from './metricFrame.js'
export type { DisparityOptions } from './disparity.js'
export { demographicParityDifference, demographicParityRatio } from './demographicParity.js'
export { equalizedOddsDifference, equalizedOddsRatio, type EqualizedOddsOptions } from './equalizedOdds.js'
export { equalOpportunityDifference, equalOpportunityRatio } from './equalOpportunity.js'
export type { PrivilegedOptions } from './privileged.js'
export { statisticalParityDifference } from './statisticalParityDifference.js'
export { disparateImpact } from './disparateImpact.js'
export { averageOddsDifference, averageAbsOddsDifference } from './averageOddsDifference.js'
export { truePositiveRateDifference } from './truePositiveRateDifference.js'
export { theilIndex } from './theilIndex.js'
export { softDemographicParity } from './softDemographicParity.js'
export { dpPenalty, type DpPenaltyOptions } from './dpPenalty.js'
export { paretoFront, type TradeoffPoint } from './paretoFront.js'

// Data
export { tabularData, type TabularData, type TabularDataOptions } from './tabularData.js'
export { parseAdult, encodeAdult, loadAdult, ADULT_COLUMNS, type AdultRecord, type AdultSplits, type EncodeAdultOptions, type LoadAdultOptions } from './loadAdult.js'

// Models
export type { DenseLayer } from './dense.js'
export type { Classifier } from './classifier.js'
export { trainProtectedAttributeEncoder, makeEncoder, ENCODER_DEFAULTS, type ProtectedAttributeEncoder, type EncoderOptions } from './protectedAttributeEncoder.js'
export { distractionAttention, initDistractionAttention, type DistractionAttentionParams, type DistractionAttentionOptions } from './distractionAttention.js'
export {
  DISTRACTION_DEFAULTS, initDistraction, distractionLogits, distractionTrainer, distractionModel, bceWithLogits,
  type DistractionConfig, type DistractionParams, type DistractionBatch, type DistractionStepResult, type DistractionTrainer, type DistractionModel,
} from './distraction.js'
export { trainDistraction, type TrainDistractionOptions } from './trainDistraction.js'
export { trainMlp, trainLagrangian, type MlpOptions } from './trainMlp.js'
export { reweighing } from './reweighing.js'
export { trainAdversarialDebiasing, type AdversarialDebiasingOptions } from './trainAdversarialDebiasing.js'

// Benchmark
export { adultBenchmark, PAPER_ADULT, TARGET_GAP, type AdultBenchmarkOptions, type AdultBenchmarkResult, type BenchmarkRow, type SplitScores } from './adultBenchmark.js'
