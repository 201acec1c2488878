import type { GradFn } from '../autodiff/tape.js'
import type { KernelAttrs, KernelName } from '../kernelContract.js'

/**
 * The shape of the gradient rules: per kernel of the contract, its VJP, reading the kernel's attrs with their
 * declared type. A kernel without an entry is not differentiable. Rule files write `{ … } satisfies GradientTable`.
 *
 * Rules are written with public ops (so every backend gets them, and grad of grad is right too); a rule may run a
 * kernel directly with `runOp1(…, true)`, whose own rule then comes from this table again.
 */
export type GradientTable = { readonly [K in KernelName]?: GradFn<KernelAttrs<K>> }
