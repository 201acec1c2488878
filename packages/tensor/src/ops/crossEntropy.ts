import { isFloat, type DType } from '../dtype.js'
import { DTypeError, ShapeError, ValueError } from '../errors.js'
import { Kernel, type CrossEntropyAttrs } from '../kernelContract.js'
import { runOp } from '../op.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

export interface CrossEntropyOptions {
  /** 'mean' (default) over the rows that count, 'sum', or 'none' (one loss per target, shape of `targets`). */
  readonly reduction?: 'mean' | 'sum' | 'none'
  /** A target value whose rows add no loss and no gradient and are left out of the mean (none by default). */
  readonly ignoreIndex?: number
}

const crossEntropyImpl = (logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor => {
  const op = 'crossEntropy'
  if (!isFloat(logits.dtype)) throw new DTypeError({ op, arg: 'logits', expected: 'a float dtype', actual: logits.dtype })
  if (targets.dtype !== 'int32') throw new DTypeError({ op, arg: 'targets', expected: 'int32 class indices', actual: targets.dtype }, 'targets are class indices, not one-hot or probabilities')
  if (logits.rank < 1) throw new ShapeError({ op, arg: 'logits', expected: 'rank ≥ 1 ([..., classes])', actual: logits.shape })
  const lead = logits.shape.slice(0, -1)
  if (targets.rank !== lead.length || targets.shape.some((d, i) => d !== lead[i]))
    throw new ShapeError({ op, arg: 'targets', expected: lead, actual: targets.shape }, 'targets have the shape of logits without its last (class) axis')
  const v = logits.shape[logits.rank - 1]!
  const reduction = opts.reduction ?? 'mean'
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new ValueError({ op, arg: 'reduction', expected: "'mean', 'sum' or 'none'", actual: String(reduction) })
  const ignoreIndex = opts.ignoreIndex ?? null
  if (ignoreIndex !== null && !Number.isInteger(ignoreIndex)) throw new ValueError({ op, arg: 'ignoreIndex', expected: 'an integer', actual: ignoreIndex })
  if (v === 0 && targets.size > 0) throw new ShapeError({ op, arg: 'logits', expected: 'at least one class', actual: logits.shape })
  // range check before dispatch where the values are on the host (cpu, or WebGPU targets uploaded from the host);
  // targets computed on a device give that row NaN and the next read raises this same error (ctx.indexCheck)
  targets.assertLive(op)
  const b = targets.storage.backend
  const tv = b.readSync(targets.storage.dataId, targets.dtype, targets.size) ?? b.hostIntegers?.(targets.storage.dataId)
  if (tv)
    for (let i = 0; i < tv.length; i++) {
      const t = tv[i]!
      if ((t < 0 || t >= v) && t !== ignoreIndex)
        throw new ValueError({ op, arg: 'targets', expected: `class indices in [0, ${v})${ignoreIndex !== null ? ` or ${ignoreIndex}` : ''}`, actual: t }, `target at flat position ${i} is out of range`)
    }
  const attrs: CrossEntropyAttrs = { reduction, ignoreIndex }
  const [loss, lse] = runOp(op, Kernel.CrossEntropy, [logits, targets], attrs, true)
  lse!.dispose()
  return loss!
}

/**
 * Softmax cross-entropy from logits [..., classes] and int32 class indices [...] — no one-hot: per row
 * logSumExp(x) − x[target], the log-sum-exp max-shifted and accumulated in float64, so logits of ±1e4 are exact.
 * The gradient is one fused kernel, (softmax(x) − onehot(target)) · g. As PyTorch's `cross_entropy` with integer
 * targets (reduction 'mean' divides by the rows not ignored; all rows ignored gives NaN).
 */
export const crossEntropy: <D extends DType>(logits: Tensor<D>, targets: Tensor, opts?: CrossEntropyOptions) => Tensor<D> = guard('crossEntropy', {
  'Tensor, Tensor': (x: Tensor, t: Tensor) => crossEntropyImpl(x, t),
  'Tensor, Tensor, undefined': (x: Tensor, t: Tensor) => crossEntropyImpl(x, t),
  'Tensor, Tensor, Object': crossEntropyImpl,
})
