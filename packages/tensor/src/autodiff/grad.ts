import { isFloat } from '../dtype.js'
import { DTypeError, ValueError } from '../errors.js'
import { onesShapedLike, zerosShapedLike } from '../creation/fill.js'
import { closeScope, openScope } from '../engine.js'
import { treeTensors } from '../memory.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import { gradientOf } from '../gradients/index.js'
import { add } from '../ops/binary.js'
import { isTensor, type Tensor } from '../Tensor.js'
import { popTape, pushTape, Tape } from './tape.js'
import { knownOptions, requireFunction, requireTensor } from '../validate.js'

/** The gradient structure of an argument: every tensor leaf becomes its gradient, other leaves become null. */
export type GradTree<T> = T extends Tensor<infer D, infer S>
  ? Tensor<D, S>
  : T extends readonly unknown[]
    ? { -readonly [K in keyof T]: GradTree<T[K]> }
    : T extends object
      ? { -readonly [K in keyof T]: GradTree<T[K]> }
      : null

export interface GradOptions<N extends number | readonly number[]> {
  /** Which arguments to differentiate: an index (gradient of that argument) or a list (a tuple of gradients). Default 0. */
  readonly argnums?: N
}

type Grads<Args extends readonly unknown[], N> = N extends number
  ? GradTree<Args[N]>
  : N extends readonly number[]
    ? { -readonly [K in keyof N]: N[K] extends number ? GradTree<Args[N[K]]> : never }
    : never

function mapTree(tree: unknown, f: (t: Tensor) => unknown): unknown {
  if (isTensor(tree)) return f(tree)
  if (Array.isArray(tree)) return tree.map(x => mapTree(x, f))
  if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype)
    return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, mapTree(v, f)]))
  return null
}

/** Reverse sweep over a tape: cotangents for `sources`, seeded with ones at `y`. */
function backward(tape: Tape, y: Tensor, sources: readonly Tensor[]): Map<Tensor, Tensor> {
  const cot = new Map<Tensor, Tensor>([[y, onesShapedLike('valueAndGrad', y)]])
  for (let i = tape.nodes.length - 1; i >= 0; i--) {
    const node = tape.nodes[i]!
    if (!node.outputs.some(o => cot.has(o))) continue
    const dys = node.outputs.map(o => cot.get(o) ?? zerosShapedLike('valueAndGrad', o))
    const needs = node.inputs.map(x => tape.watched.has(x))
    const rule = node.grad ?? gradientOf(node.kernel, node.op)
    const dxs = rule(dys, { inputs: node.savedInputs, outputs: node.savedOutputs, attrs: node.attrs, needs })
    node.inputs.forEach((x, j) => {
      const dx = dxs[j]
      if (!dx || !tape.watched.has(x)) return
      if (dx.shape.length !== x.shape.length || dx.shape.some((d, k) => d !== x.shape[k]))
        throw new Error(`internal: gradient of ${node.op} input ${j} has shape [${dx.shape.join(',')}], expected [${x.shape.join(',')}]`)
      const prev = cot.get(x)
      cot.set(x, prev ? add(prev, dx) : dx)
    })
  }
  return cot
}

/**
 * `f`'s value and its gradient with respect to the chosen arguments (JAX's `value_and_grad`). Arguments may be
 * pytrees (plain objects and arrays) of tensors; the gradient has the same structure. `f` must return a
 * scalar float tensor. Intermediates are disposed; the value and the gradients are the caller's.
 */
export function valueAndGrad<Args extends readonly unknown[], const N extends number | readonly number[] = 0>(
  f: (...args: Args) => Tensor,
  opts: GradOptions<N> = {},
): (...args: Args) => [Tensor, Grads<Args, N>] {
  requireFunction('valueAndGrad', 'f', f)
  knownOptions('valueAndGrad', opts ?? {}, ['argnums'])
  const argnums = opts?.argnums ?? 0
  const list: readonly number[] = typeof argnums === 'number' ? [argnums] : argnums
  return (...args: Args) => {
    for (const i of list)
      if (!Number.isInteger(i) || i < 0 || i >= args.length)
        throw new ValueError({ op: 'valueAndGrad', arg: 'argnums', expected: `indices in [0, ${args.length})`, actual: i })
    const sources = list.map(i => [...treeTensors(args[i])])
    for (const t of sources.flat())
      if (!isFloat(t.dtype)) throw new DTypeError({ op: 'valueAndGrad', arg: 'args', expected: 'float tensors to differentiate', actual: t.dtype })
    const tape = new Tape()
    for (const t of sources.flat()) tape.watched.add(t)
    const s = openScope()
    let value: Tensor
    let result: unknown
    try {
      pushTape(tape)
      try {
        value = f(...args)
      } finally {
        popTape(tape)
      }
      if (!isTensor(value) || value.size !== 1 || !isFloat(value.dtype))
        throw new ValueError({ op: 'valueAndGrad', arg: 'f', expected: 'f to return a scalar float tensor', actual: isTensor(value) ? value : typeof value })
      const cot = backward(tape, value, sources.flat())
      // Hand out only tensors this call made: a cotangent or value may be an argument or a tape handle. The
      // copy is an identity on the tape, so an enclosing grad still differentiates through it.
      const owned = (t: Tensor): Tensor => (s.has(t) ? t : runOp1('valueAndGrad', Kernel.Identity, [t], {}, true))
      value = owned(value)
      const gradOf = (t: Tensor): Tensor => owned(cot.get(t) ?? zerosShapedLike('valueAndGrad', t))
      const perArg = list.map(i => mapTree(args[i], gradOf))
      result = typeof argnums === 'number' ? perArg[0] : perArg
    } catch (err) {
      closeScope(s, new Set())
      tape.release()
      throw err
    }
    const keepSet = treeTensors([value, result])
    closeScope(s, keepSet)
    tape.release()
    return [value, result as Grads<Args, N>]
  }
}

/** The gradient of a scalar function (JAX's `grad`); see valueAndGrad. */
export function grad<Args extends readonly unknown[], const N extends number | readonly number[] = 0>(
  f: (...args: Args) => Tensor,
  opts: GradOptions<N> = {},
): (...args: Args) => Grads<Args, N> {
  requireFunction('grad', 'f', f)
  knownOptions('grad', opts ?? {}, ['argnums'])
  const vg = valueAndGrad(f, opts)
  return (...args: Args) => {
    const [value, g] = vg(...args)
    value.dispose()
    return g
  }
}

/** The same values with no gradient flowing back (shares storage). */
export function stopGradient<T extends Tensor>(x: T): T {
  requireTensor('stopGradient', 'x', x)
  return runOp1('stopGradient', Kernel.Identity, [x], {}) as T
}
