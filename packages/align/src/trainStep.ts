/**
 * The training-step operator lives in `@heed/tensor/stream` (one operator for the LM trainer, align and
 * fairness); align re-exports it so that a DPO pipeline needs one import.
 */
export { trainStep, type TrainStepOptions, type TrainLoss, type StepResult } from '@heed/tensor/stream'
