/** Progress of a training stream: `@heed/tensor/stream`'s `showProgress`, re-exported for DPO pipelines. */
export { showProgress, stepInfo, type ShowProgressOptions } from '@heed/tensor/stream'
