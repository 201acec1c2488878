/**
 * @heed/memory: memory models: Sparsey SDR, the Tensor Brain, Titans neural memory, HCAM.
 *
 * The package is being built. Until its first operators land, this entry point exposes only what is true
 * today: the tensor types its API will take and return, and its development stage.
 */
// Re-exported so code written against this package types its tensors without a second import.
export type { Tensor, DType, Shape } from '@heed/tensor'

/** Development stage of @heed/memory; removed once the package ships its first operator. */
export const stage = 'in development' as const
export { SparseyMac, SparseyHierarchy, sparseyMac, expansivity, activeIndices, codeOverlap, codeCells, gridReceptiveFields, resolveSparseyConfig, type SparseyConfig, type ResolvedSparseyConfig, type SdrInput, type SelectionMode, type SparseyStepOptions, type SparseyStep, type SparseyCounters, type SparseySnapshot, type SparseyLevelConfig, type SparseyHierarchyConfig, type SparseyHierarchyStep } from './sparsey.js'
export * from './titans.js'
export { isRecall, type Recall } from './recall.js'
export { TensorBrain, TB_ROLES, type TensorBrainConfig, type TbGroup, type TbRole, type Triple, type MeasureMode, type PerceiveOptions, type Perception } from './tensorBrain.js'
export * from './hcam.js'
export * from './titansLayer.js'
