import { Kernel } from '../kernelContract.js'
import { runOp1 } from '../op.js'
import type { Tensor } from '../Tensor.js'
import { reshape } from '../ops/reshape.js'
import type { GradientTable } from './gradientTable.js'
import { unbroadcast } from './unbroadcast.js'

/** A product of validated operands, itself differentiable (its rule is MatMul's again, so higher orders work). */
const mm = (a: Tensor, b: Tensor, transposeA: boolean, transposeB: boolean): Tensor =>
  runOp1('matmul', Kernel.MatMul, [a, b], { transposeA, transposeB }, a.dtype !== 'int32')

export const linalgGradients = {
  /**
   * VJP of y = op(A)·op(B) (op = optional transpose), written on the promoted matrices: a 1-D `a` is [1, k], a 1-D
   * `b` is [k, 1], and the cotangent gets those dims back. Each product below is the usual dA = dY·Bᵀ, dB = Aᵀ·dY
   * rearranged so that no transposed copy is made outside the kernel; unbroadcast sums over broadcast batch dims.
   */
  MatMul: (dys, { inputs, attrs, needs }) => {
    const a = inputs[0]!
    const b = inputs[1]!
    const dy = dys[0]!
    const a1 = a.rank === 1
    const b1 = b.rank === 1
    const tA = attrs.transposeA && !a1
    const tB = attrs.transposeB && !b1
    const a2 = a1 ? reshape(a, [1, a.shape[0]!]) : a
    const b2 = b1 ? reshape(b, [b.shape[0]!, 1]) : b
    const batch = dy.shape.slice(0, dy.rank - (a1 ? 0 : 1) - (b1 ? 0 : 1))
    const m = a1 ? 1 : dy.shape[batch.length]!
    const n = b1 ? 1 : dy.shape[dy.rank - 1]!
    const g = a1 || b1 ? reshape(dy, [...batch, m, n]) : dy
    // a product per operand, and each is as large as the forward one: skip the operand nothing differentiates
    const wantA = needs?.[0] ?? true
    const wantB = needs?.[1] ?? true
    let ga: Tensor | null = null
    let gb: Tensor | null = null
    // one weight for every batch (x·W on [B, T, d]): dW sums Aᵀ·dY over the batches, which is one product over
    // K = B·T rows instead of B products of [k, n] and a sum over them
    const shared = wantB && !tA && b2.rank === 2 && a2.rank > 2
    if (shared) {
      const a2d = reshape(a2, [-1, a2.shape[a2.rank - 1]!])
      const g2d = reshape(g, [-1, n])
      gb = tB ? mm(g2d, a2d, true, false) : mm(a2d, g2d, true, false)
    }
    if (!tA && !tB) {
      if (wantA) ga = mm(g, b2, false, true)
      if (wantB && !shared) gb = mm(a2, g, true, false)
    } else if (!tA && tB) {
      if (wantA) ga = mm(g, b2, false, false)
      if (wantB && !shared) gb = mm(g, a2, true, false)
    } else if (tA && !tB) {
      if (wantA) ga = mm(b2, g, false, true)
      if (wantB) gb = mm(a2, g, false, false)
    } else {
      if (wantA) ga = mm(b2, g, true, true)
      if (wantB) gb = mm(g, a2, true, true)
    }
    if (ga) ga = unbroadcast(ga, a2.shape)
    if (gb) gb = unbroadcast(gb, b2.shape)
    return [ga && (a1 ? reshape(ga, a.shape) : ga), gb && (b1 ? reshape(gb, b.shape) : gb)]
  },
} satisfies GradientTable
