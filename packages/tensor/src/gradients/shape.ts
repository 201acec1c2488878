import { full } from '../creation/fill.js'
import { fromValues } from '../engine.js'
import { Kernel, type SliceAttrs } from '../kernelContract.js'
import { runOp, runOp1 } from '../op.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { pad } from '../ops/pad.js'
import { reshape } from '../ops/reshape.js'
import { scatterAdd } from '../ops/scatterAdd.js'
import { slice } from '../ops/slice.js'
import { permute } from '../ops/transpose.js'
import type { GradientTable } from './gradientTable.js'

const zerosOf = (like: Tensor, shape: Shape): Tensor => full(shape, 0, { dtype: like.dtype, backend: like.backend })

/**
 * The adjoint of a strided slice: dy placed back at the sliced positions of zeros of `shape`. Unit-stride axes
 * are one pad; strided axes scatter along that axis, since pad cannot interleave zeros.
 */
function unslice(dy: Tensor, shape: Shape, p: SliceAttrs): Tensor {
  if (p.size.some(s => s === 0)) return zerosOf(dy, shape)
  let g: Tensor = reshape(dy, p.size)
  const strided = (d: number): boolean => p.step[d] !== 1 && p.size[d]! > 1
  const before = shape.map((_, d) => (strided(d) ? 0 : p.begin[d]!))
  const after = shape.map((n, d) => (strided(d) ? 0 : n - p.begin[d]! - p.size[d]!))
  if (before.some(v => v > 0) || after.some(v => v > 0)) g = pad(g, before.map((b, d) => [b, after[d]!] as const))
  for (let d = 0; d < shape.length; d++) {
    if (!strided(d)) continue
    const idx = Int32Array.from({ length: p.size[d]! }, (_, i) => p.begin[d]! + i * p.step[d]!)
    const ix = fromValues(idx, [idx.length], 'int32', dy.backend)
    const z = zerosOf(g, g.shape.map((v, k) => (k === d ? shape[d]! : v)))
    g = scatterAdd(z, ix, g, d)
  }
  return g
}

const inverse = (perm: readonly number[]): number[] => {
  const inv = new Array<number>(perm.length)
  perm.forEach((p, i) => (inv[p] = i))
  return inv
}

export const shapeGradients = {
  // The inverse permutation, so the tape never needs to know which public name (transpose, permute) was called.
  Transpose: (dys, { attrs: { perm } }) => [permute(dys[0]!, inverse(perm))],
  Slice: (dys, { inputs, attrs }) => [unslice(dys[0]!, inputs[0]!.shape, attrs)],
  Pad: (dys, { inputs, attrs: { before } }) => [slice(dys[0]!, before, inputs[0]!.shape)],
  // Split is Concat's adjoint and the other way round, for concat/split and for stack/unstack (inputs of rank one
  // less than the joined shape) alike: the pieces' shapes are the inputs' shapes.
  Concat: (dys, { inputs, attrs: { axis } }) =>
    runOp('split', Kernel.Split, [dys[0]!], { axis, shapes: inputs.map(t => t.shape) }, true),
  Split: (dys, { inputs, attrs: { axis } }) => [runOp1('concat', Kernel.Concat, dys, { axis, shape: inputs[0]!.shape }, true)],
  // The op is linear and its own mask, so the gradient is the same op on dy.
  Triangle: (dys, { attrs }) => [runOp1(attrs.upper ? 'triu' : 'tril', Kernel.Triangle, [dys[0]!], attrs, true)],
} satisfies GradientTable
