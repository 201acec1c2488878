/**
 * `@heed/memory/stream`: the memories as RxJS operators over `@heed/tensor/stream` token chunks, behind their own
 * entry so that the main entry never imports rxjs (an optional peer dependency).
 */
export { neuralMemoryStream, type NeuralMemoryStreamOptions } from './neuralMemoryStream.js'
export { hcamStream, type HcamStreamOptions } from './hcamStream.js'
export { sparsey, tensorBrainMemory, disposeEvent, type MemoryQuery, type SparseyEvent, type TensorBrainEvent } from './sparseyTbStreams.js'
