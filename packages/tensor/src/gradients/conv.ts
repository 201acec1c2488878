import { Kernel, type ConvAttrs, type PoolAttrs } from '../kernelContract.js'
import { runOp1 } from '../op.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import type { GradientTable } from './gradientTable.js'

// Conv, its input-gradient and its filter-gradient are bilinear and adjoint to one another, so the VJP of each
// is two of the three again: <g, conv(x, w)> = <bpInput(g, w), x> = <bpFilter(x, g), w>. Each runs as a
// differentiable kernel, so its own rule (below) gives the next order.
const conv = (x: Tensor, w: Tensor, a: ConvAttrs, yShape: Shape): Tensor => runOp1('conv', Kernel.Conv, [x, w], { ...a, shape: yShape }, true)
const bpInput = (dy: Tensor, w: Tensor, a: ConvAttrs, xShape: Shape): Tensor =>
  runOp1('conv', Kernel.ConvBackpropInput, [dy, w], { ...a, shape: xShape }, true)
const bpFilter = (x: Tensor, dy: Tensor, a: ConvAttrs, wShape: Shape): Tensor =>
  runOp1('conv', Kernel.ConvBackpropFilter, [x, dy], { ...a, shape: wShape }, true)

// AvgPool is linear and AvgPoolBackprop is its adjoint, so each one's VJP is the other.
const pool = (x: Tensor, a: PoolAttrs, yShape: Shape): Tensor => runOp1('avgPool', Kernel.AvgPool, [x], { ...a, shape: yShape }, true)
const poolBack = (dy: Tensor, a: PoolAttrs, xShape: Shape): Tensor => runOp1('avgPool', Kernel.AvgPoolBackprop, [dy], { ...a, shape: xShape }, true)

export const convGradients = {
  Conv: (dys, { inputs, attrs }) => {
    const [x, w] = inputs as [Tensor, Tensor]
    return [bpInput(dys[0]!, w, attrs, x.shape), bpFilter(x, dys[0]!, attrs, w.shape)]
  },
  ConvBackpropInput: (dys, { inputs, attrs }) => {
    const [dy, w] = inputs as [Tensor, Tensor]
    return [conv(dys[0]!, w, attrs, dy.shape), bpFilter(dys[0]!, dy, attrs, w.shape)]
  },
  ConvBackpropFilter: (dys, { inputs, attrs }) => {
    const [x, dy] = inputs as [Tensor, Tensor]
    return [bpInput(dy, dys[0]!, attrs, x.shape), conv(x, dys[0]!, attrs, dy.shape)]
  },
  AvgPool: (dys, { inputs, attrs }) => [poolBack(dys[0]!, attrs, inputs[0]!.shape)],
  AvgPoolBackprop: (dys, { inputs, attrs }) => [pool(dys[0]!, attrs, inputs[0]!.shape)],
} satisfies GradientTable
