/**
 * `@heed/attention/stream`: the package's RxJS pipelines, behind their own entry so that the main entry never
 * imports rxjs (an optional peer dependency).
 */
export { attend, type CachedLayer, type CacheSource } from './attend.js'
export { trainLM, lmRecipe, checkpointStep, type TrainLMOptions, type TrainLMEvent, type LMRecipe } from './lm/trainLM.js'
export { generate, generateText, type GenerateOptions, type GenerateTextOptions } from './lm/generate.js'
