/**
 * @heed/memory: memory models: Sparsey SDR, the Tensor Brain, Titans neural memory, HCAM.
 */
// Re-exported so code written against this package types its tensors without a second import.
export type { Tensor, DType, Shape } from '@heed/tensor'

export { SparseyMac, SparseyHierarchy, sparseyMac, expansivity, activeIndices, codeOverlap, codeCells, gridReceptiveFields, resolveSparseyConfig, type SparseyConfig, type ResolvedSparseyConfig, type SdrInput, type SelectionMode, type SparseyStepOptions, type SparseyStep, type SparseyCounters, type SparseySnapshot, type SparseyLevelConfig, type SparseyHierarchyConfig, type SparseyHierarchyStep } from './sparsey.js'
export * from './titans.js'
export { isRecall, type Recall } from './recall.js'
export { TensorBrain, TB_ROLES, type TensorBrainConfig, type TbGroup, type TbRole, type PerRole, type Triple, type MeasureMode, type PerceiveOptions, type Perception } from './tensorBrain.js'
export * from './hcam.js'
export * from './titansLayer.js'
export * from './titansLayerStep.js'
export { memoryOperators, type TitansOperatorOptions, type HcamOperatorOptions } from './lmOperators.js'
