import type { DType } from './dtype.js'
import type { Shape } from './shape.js'

/**
 * The kernel contract of @heed/tensor: every kernel name, and the attrs each one takes. Ops call kernels through
 * `Kernel.X` with `KernelAttrs<'X'>`, the CPU and WebGPU kernel tables are typed by the same map (a table that
 * misses a kernel, or a kernel that reads an attr not declared here, is a compile error), and gradient rules read
 * their attrs with these types.
 *
 * To add a kernel: (1) declare its attrs type below (a `type` alias, not an `interface`: an alias of plain data is
 * assignable to the backend-level `Attrs` record, an interface is not); (2) add `Name: NameAttrs` to
 * `KernelAttrMap`; (3) add `Name: 'Name'` to `Kernel` (the compiler asks for it); then implement it in the CPU and
 * WebGPU kernel tables (the compiler asks for those too). Kernels of other packages (@heed/attention) are not
 * listed here: they keep their own names and attrs and run through `kernelOp`.
 *
 * Attrs are plain data (numbers, strings, booleans and arrays of them), never tensors: the WebGPU backend keys
 * its shader cache on them and the tape keeps them for the backward pass.
 */

/** A kernel with no attrs. */
export type NoAttrs = Readonly<Record<never, never>>

// ---- elementwise ------------------------------------------------------------------------------------------

/** The scalar functions of the `Unary` kernel (the op layer decides which are public and their gradients). */
export type UnaryFn =
  | 'neg'
  | 'abs'
  | 'sign'
  | 'square'
  | 'reciprocal'
  | 'exp'
  | 'log'
  | 'log1p'
  | 'expm1'
  | 'sqrt'
  | 'rsqrt'
  | 'sin'
  | 'cos'
  | 'tanh'
  | 'erf'
  | 'floor'
  | 'ceil'
  | 'round'
  | 'sigmoid'
  | 'relu'
  | 'step'
  | 'gelu'
  | 'geluGrad'
  | 'geluTanh'
  | 'geluTanhGrad'
  | 'silu'
  | 'siluGrad'
  | 'softplus'
  | 'logSigmoid'
  | 'logicalNot'
  | 'isNaN'
  | 'isFinite'

/** The scalar functions of the `Binary` kernel. Integer `div` truncates toward zero, as C and WGSL do. */
export type BinaryFn =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'maximum'
  | 'minimum'
  | 'mod'
  | 'atan2'
  | 'equal'
  | 'notEqual'
  | 'less'
  | 'lessEqual'
  | 'greater'
  | 'greaterEqual'
  | 'logicalAnd'
  | 'logicalOr'
  | 'logicalXor'
  /** (dy, x) ↦ dy where x > 0, else 0: ReLU's backward in one pass. */
  | 'reluGrad'
  /** (dy, x) ↦ dy · gelu′(x), exact and tanh forms: GELU's backward in one pass. */
  | 'geluBackward'
  | 'geluTanhBackward'

export type UnaryAttrs = {
  readonly fn: UnaryFn
  /** Output dtype; the input's when omitted. */
  readonly dtype?: DType
}

export type BinaryAttrs = {
  readonly fn: BinaryFn
  /** The broadcast output shape. */
  readonly shape: Shape
  /** Output dtype (bool for comparisons). */
  readonly dtype: DType
}

/** `Where` (cond, a, b) and `Clamp` (x, lo, hi): three operands broadcast to `shape`. */
export type TernaryAttrs = { readonly shape: Shape }

export type CastAttrs = { readonly dtype: DType }

/** `BroadcastTo` and `Reshape`: the output shape. */
export type ShapeAttrs = { readonly shape: Shape }

// ---- reductions -------------------------------------------------------------------------------------------

export type ReduceAttrs = {
  /** Sorted, normalised, distinct axes. */
  readonly axes: readonly number[]
  readonly keepDims: boolean
}

export type SumAttrs = ReduceAttrs & {
  /** Output dtype; the input's when omitted. */
  readonly dtype?: DType
}

export type MomentAttrs = ReduceAttrs & {
  /** Subtracted from the element count in the denominator (numpy's ddof). */
  readonly correction: number
}

export type SoftmaxAttrs = { readonly axes: readonly number[] }

export type CumsumAttrs = {
  /** One axis. */
  readonly axes: readonly number[]
  readonly reverse: boolean
  readonly exclusive: boolean
}

// ---- linear algebra, convolution --------------------------------------------------------------------------

export type MatMulAttrs = {
  readonly transposeA: boolean
  readonly transposeB: boolean
}

/** `Conv`, `ConvBackpropInput`, `ConvBackpropFilter` (1-D convs have rows fixed at 1). */
export type ConvAttrs = {
  readonly stride: readonly [number, number]
  readonly dilation: readonly [number, number]
  /** Leading padding of rows and columns. */
  readonly pad: readonly [number, number]
  readonly groups: number
  /** The output shape. */
  readonly shape: Shape
}

/** `AvgPool` and `AvgPoolBackprop`. */
export type PoolAttrs = {
  readonly kernel: readonly [number, number]
  readonly stride: readonly [number, number]
  readonly pad: readonly [number, number]
  /** The output shape. */
  readonly shape: Shape
}

// ---- shape ------------------------------------------------------------------------------------------------

export type TransposeAttrs = { readonly perm: readonly number[] }

/** A strided slice: per axis the first index, the step and the count; `shape` drops integer-indexed axes. */
export type SliceAttrs = {
  readonly begin: readonly number[]
  readonly step: readonly number[]
  readonly size: readonly number[]
  readonly shape: Shape
}

/** `Concat` joins along `axis` into `shape`; inputs of rank one less than `shape` are stacked along a new axis. */
export type ConcatAttrs = {
  readonly axis: number
  readonly shape: Shape
}

/** `Split` cuts along `axis` into `shapes`; shapes of rank one less than the input unstack that axis. */
export type SplitAttrs = {
  readonly axis: number
  readonly shapes: readonly Shape[]
}

export type PadAttrs = {
  readonly before: readonly number[]
  readonly after: readonly number[]
  readonly value: number
}

/** `tril` (upper false) or `triu` (upper true) of the last two dims, diagonal offset `k`. */
export type TriangleAttrs = {
  readonly k: number
  readonly upper: boolean
}

/** In-place copy of src into dst along `axis` from `offset`. */
export type WriteSliceAttrs = {
  readonly axis: number
  readonly offset: number
}

// ---- indexing ---------------------------------------------------------------------------------------------

/** `Gather` and `ScatterAdd`: the indexed axis. */
export type AxisAttrs = { readonly axis: number }

export type OneHotAttrs = {
  readonly depth: number
  readonly dtype: DType
}

export type TopKAttrs = {
  readonly k: number
  readonly axis: number
  readonly largest: boolean
}

export type SortAttrs = {
  readonly axis: number
  readonly descending: boolean
}

// ---- fused training-step kernels --------------------------------------------------------------------------

/** `RmsNorm` (x, gain) → [y, 1/rms per row] and `RmsNormGrad` (dy, x, gain, 1/rms) → [dx, dgain]. */
export type RmsNormAttrs = { readonly eps: number }

/** `CrossEntropy` (logits, int32 targets) → [loss, lse per row] and `CrossEntropyGrad` (g, logits, targets, lse). */
export type CrossEntropyAttrs = {
  readonly reduction: 'mean' | 'sum' | 'none'
  /** A target whose rows add nothing (and do not count toward the mean); null for none. */
  readonly ignoreIndex: number | null
}

/** `AdamUpdate` (p, g, m, v) → [p′, m′, v′]: one Adam/AdamW step; c1, c2 are the bias corrections 1/(1 − βᵗ). */
export type AdamUpdateAttrs = {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
  /** AdamW's decoupled decay (true) or Adam's L2 term on the gradient (false). */
  readonly decoupled: boolean
  readonly c1: number
  readonly c2: number
}

// ---- the map ----------------------------------------------------------------------------------------------

/** Every kernel of @heed/tensor and its attrs. */
export interface KernelAttrMap {
  Unary: UnaryAttrs
  Binary: BinaryAttrs
  Where: TernaryAttrs
  Clamp: TernaryAttrs
  Cast: CastAttrs
  /** Shares the input's storage (casts to the same dtype, stopGradient). */
  Identity: NoAttrs
  BroadcastTo: ShapeAttrs
  /** Shares storage under a new shape of the same size. */
  Reshape: ShapeAttrs

  Sum: SumAttrs
  Mean: ReduceAttrs
  Prod: ReduceAttrs
  Max: ReduceAttrs
  Min: ReduceAttrs
  ArgMax: ReduceAttrs
  ArgMin: ReduceAttrs
  Variance: MomentAttrs
  Std: MomentAttrs
  LogSumExp: ReduceAttrs
  Softmax: SoftmaxAttrs
  LogSoftmax: SoftmaxAttrs
  Cumsum: CumsumAttrs

  MatMul: MatMulAttrs
  Conv: ConvAttrs
  ConvBackpropInput: ConvAttrs
  ConvBackpropFilter: ConvAttrs
  AvgPool: PoolAttrs
  AvgPoolBackprop: PoolAttrs

  Transpose: TransposeAttrs
  Slice: SliceAttrs
  Concat: ConcatAttrs
  Split: SplitAttrs
  Pad: PadAttrs
  Triangle: TriangleAttrs
  WriteSlice: WriteSliceAttrs

  Gather: AxisAttrs
  ScatterAdd: AxisAttrs
  OneHot: OneHotAttrs
  TopK: TopKAttrs
  Sort: SortAttrs

  RmsNorm: RmsNormAttrs
  RmsNormGrad: RmsNormAttrs
  CrossEntropy: CrossEntropyAttrs
  CrossEntropyGrad: CrossEntropyAttrs
  AdamUpdate: AdamUpdateAttrs
}

/** The name of a kernel of @heed/tensor. */
export type KernelName = keyof KernelAttrMap

/** The attrs of kernel `K`. */
export type KernelAttrs<K extends KernelName> = KernelAttrMap[K]

/** Every kernel name as a constant, so that call sites hold no string literals (and a typo is a compile error). */
export const Kernel: { readonly [K in KernelName]: K } = {
  Unary: 'Unary',
  Binary: 'Binary',
  Where: 'Where',
  Clamp: 'Clamp',
  Cast: 'Cast',
  Identity: 'Identity',
  BroadcastTo: 'BroadcastTo',
  Reshape: 'Reshape',

  Sum: 'Sum',
  Mean: 'Mean',
  Prod: 'Prod',
  Max: 'Max',
  Min: 'Min',
  ArgMax: 'ArgMax',
  ArgMin: 'ArgMin',
  Variance: 'Variance',
  Std: 'Std',
  LogSumExp: 'LogSumExp',
  Softmax: 'Softmax',
  LogSoftmax: 'LogSoftmax',
  Cumsum: 'Cumsum',

  MatMul: 'MatMul',
  Conv: 'Conv',
  ConvBackpropInput: 'ConvBackpropInput',
  ConvBackpropFilter: 'ConvBackpropFilter',
  AvgPool: 'AvgPool',
  AvgPoolBackprop: 'AvgPoolBackprop',

  Transpose: 'Transpose',
  Slice: 'Slice',
  Concat: 'Concat',
  Split: 'Split',
  Pad: 'Pad',
  Triangle: 'Triangle',
  WriteSlice: 'WriteSlice',

  Gather: 'Gather',
  ScatterAdd: 'ScatterAdd',
  OneHot: 'OneHot',
  TopK: 'TopK',
  Sort: 'Sort',

  RmsNorm: 'RmsNorm',
  RmsNormGrad: 'RmsNormGrad',
  CrossEntropy: 'CrossEntropy',
  CrossEntropyGrad: 'CrossEntropyGrad',
  AdamUpdate: 'AdamUpdate',
}
