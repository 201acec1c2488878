/**
 * `@heed/align/stream`: training as an RxJS pipeline (preference batches → training steps → progress → metrics),
 * behind its own entry so that the main entry never imports rxjs (an optional peer dependency).
 */
export { preferenceBatches, type PreferenceBatchesOptions } from './preferenceBatches.js'
export { trainStep, type TrainStepOptions, type TrainLoss, type StepResult } from './trainStep.js'
export { showProgress, stepInfo, type ShowProgressOptions } from './progressBar.js'
export { collectMetrics, type MetricsHistory } from './collectMetrics.js'
