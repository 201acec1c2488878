import { isFloat, type DType } from '../dtype.js'
import { ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

export type PadWidths = readonly (readonly [before: number, after: number])[]

const padImpl = (x: Tensor, pads: PadWidths, value = 0): Tensor => {
  if (pads.length !== x.rank)
    throw new ShapeError({ op: 'pad', arg: 'pads', expected: `${x.rank} [before, after] pairs for shape [${x.shape.join(',')}]`, actual: pads.length })
  const before: number[] = []
  const after: number[] = []
  pads.forEach((pair, d) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every(v => Number.isInteger(v) && v >= 0))
      throw new ValueError({ op: 'pad', arg: `pads[${d}]`, expected: 'a [before, after] pair of non-negative integers', actual: JSON.stringify(pair) })
    before.push(pair[0])
    after.push(pair[1])
  })
  if (!isFloat(x.dtype) && !Number.isFinite(value))
    throw new ValueError({ op: 'pad', arg: 'value', expected: `a finite number for ${x.dtype}`, actual: value })
  return runOp1('pad', Kernel.Pad, [x], { before, after, value }, true)
}

/** Pad every axis with `value` (default 0): `pads[d] = [before, after]`, non-negative. The gradient slices. */
export const pad: <D extends DType>(x: Tensor<D>, pads: PadWidths, value?: number) => Tensor<D> = guard('pad', {
  'Tensor, Array': (x: Tensor, pads: PadWidths) => padImpl(x, pads),
  'Tensor, Array, number': padImpl,
})
