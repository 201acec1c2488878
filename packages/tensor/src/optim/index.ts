import type { GradTree } from '../autodiff/grad.js'
import { noGrad } from '../autodiff/tape.js'
import { zerosShapedLike } from '../creation/fill.js'
import { isFloat } from '../dtype.js'
import { ArgumentError, DisposedError, DTypeError, ShapeError, ValueError } from '../errors.js'
import { inRange, nonNegativeNumber } from '../validate.js'
import { scope, treeTensors } from '../memory.js'
import { add, div, mul, sub } from '../ops/binary.js'
import { sqrt } from '../ops/unary.js'
import { Kernel, type AdamUpdateAttrs } from '../kernelContract.js'
import { runOp } from '../op.js'
import { isTensor, type Tensor } from '../Tensor.js'

/**
 * Optimizers as pure update functions over pytrees (plain objects and arrays of tensors), in the style of optax:
 *
 *     const opt = adam({ lr: 1e-3 })
 *     let state = opt.init(params)
 *     const [newParams, newState] = opt.update(grads, state, params)
 *
 * Ownership: `update` never disposes or mutates its arguments. It returns new parameter tensors and new state
 * tensors; the old params, the old state and the grads stay the caller's to dispose. `step` is the training-loop
 * form of the same call: it disposes the old params and old state (never the grads) and returns the new ones.
 * Non-tensor leaves of `params` (numbers, strings, null) pass through unchanged; non-float tensors are frozen.
 * Updates run without recording on any gradient tape, and every intermediate is freed.
 */

/** Optimizer state: the step count and per-parameter slot trees (momentum buffers, Adam moments). */
export interface OptState<P> {
  /** Updates applied so far. */
  readonly count: number
  /** Slot trees with the structure of the params (`momentum` for sgd, `mu`/`nu` for adam). */
  readonly slots: { readonly [name: string]: P }
}

/** A learning rate, or a schedule from the step number (1 on the first update) to a learning rate. */
export type LearningRate = number | ((step: number) => number)

export interface Optimizer {
  /** Zero state for `params` (fresh tensors owned by the caller). */
  init<P>(params: P): OptState<P>
  /** New params and state from `grads` (a pytree matching `params`, e.g. from valueAndGrad). Disposes nothing. */
  update<P>(grads: GradTree<P> | P, state: OptState<P>, params: P): [P, OptState<P>]
  /** `update`, then dispose the old params and old state (not the grads). For `[params, state] = opt.step(…)` loops. */
  step<P>(grads: GradTree<P> | P, state: OptState<P>, params: P): [P, OptState<P>]
}

export interface SgdOptions {
  /** Learning rate: a number, or a schedule `step ↦ rate` (step counts from 0). */
  readonly lr: LearningRate
  /** Heavy-ball momentum μ (PyTorch semantics: b ← μ·b + g, first b = g). Default 0. */
  readonly momentum?: number
  /** Nesterov momentum (uses g + μ·b). Needs momentum > 0. */
  readonly nesterov?: boolean
  /** L2 penalty added to the gradient (g ← g + wd·p), as in PyTorch's SGD. Default 0. */
  readonly weightDecay?: number
}

export interface AdamOptions {
  /** Learning rate: a number, or a schedule `step ↦ rate` (step counts from 0). */
  readonly lr: LearningRate
  /** Decay of the first-moment (mean) estimate, in [0, 1) (default 0.9). */
  readonly beta1?: number
  /** Decay of the second-moment (uncentred variance) estimate, in [0, 1) (default 0.999). */
  readonly beta2?: number
  /** Added to √v̂ in the denominator, for stability (default 1e-8, as PyTorch). */
  readonly eps?: number
  /**
   * For `adam`, an L2 penalty added to the gradient (PyTorch's Adam `weight_decay`, default 0); for `adamw`,
   * decoupled decay p ← p − lr·wd·p applied alongside the Adam step (PyTorch's AdamW, default 0.01).
   */
  readonly weightDecay?: number
}

// ---- pytrees ---------------------------------------------------------------------------------------------

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  u !== null && typeof u === 'object' && Object.getPrototypeOf(u) === Object.prototype

/** Rebuild `tree` with each tensor leaf replaced by `f(leaf, ...the leaves at the same path in others)`. */
function mapLeaves(op: string, tree: unknown, others: readonly { name: string; tree: unknown }[], f: (p: Tensor, o: unknown[]) => unknown, path = 'params'): unknown {
  if (isTensor(tree)) {
    const o = others.map(x => x.tree)
    others.forEach((x, i) => {
      const leaf = o[i]
      if (leaf === null || leaf === undefined) return
      if (!isTensor(leaf)) throw new ArgumentError({ op, arg: `${x.name} at ${path}`, expected: 'a tensor like params', actual: typeof leaf })
      if (leaf.shape.length !== tree.shape.length || leaf.shape.some((d, k) => d !== tree.shape[k]))
        throw new ShapeError({ op, arg: `${x.name} at ${path}`, expected: tree.shape, actual: leaf.shape }, 'shape differs from the parameter')
      if (leaf.dtype !== tree.dtype)
        throw new DTypeError({ op, arg: `${x.name} at ${path}`, expected: tree.dtype, actual: leaf.dtype }, 'dtype differs from the parameter')
    })
    return f(tree, o)
  }
  const child = (key: string | number, sub: unknown, p: string) =>
    mapLeaves(op, sub, others.map(x => ({ name: x.name, tree: structured(op, x, key, path) })), f, p)
  if (Array.isArray(tree)) return tree.map((x, i) => child(i, x, `${path}[${i}]`))
  if (isPlainObject(tree)) return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, child(k, v, `${path}.${k}`)]))
  return tree
}

function structured(op: string, x: { name: string; tree: unknown }, key: string | number, path: string): unknown {
  if (x.tree === null || x.tree === undefined) return undefined
  if (typeof key === 'number' ? !Array.isArray(x.tree) : !isPlainObject(x.tree))
    throw new ShapeError({ op, arg: `${x.name} at ${path}`, expected: 'the same tree structure as params', actual: Array.isArray(x.tree) ? 'an array' : typeof x.tree })
  const v = (x.tree as Record<string | number, unknown>)[key]
  if (v === undefined && !(key in (x.tree as object)))
    throw new ShapeError({ op, arg: `${x.name} at ${path}`, expected: `an entry ${typeof key === 'number' ? `[${key}]` : `.${key}`} like params`, actual: 'none' })
  return v
}

// ---- optimizers ------------------------------------------------------------------------------------------

function lrAt(op: string, lr: LearningRate, step: number): number {
  const v = typeof lr === 'function' ? lr(step) : lr
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ValueError({ op, arg: 'lr', expected: 'a finite number ≥ 0', actual: v })
  return v
}

function checkLr(op: string, lr: unknown): LearningRate {
  if (typeof lr === 'function') return lr as (step: number) => number
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0)
    throw new ValueError({ op, arg: 'lr', expected: 'a finite number ≥ 0 or a schedule (step) => number', actual: lr === undefined ? 'undefined' : lr })
  return lr
}

const trainable = (t: Tensor): boolean => isFloat(t.dtype)

/** A disposed parameter at `init` is named by the optimizer (the slots are made without reading it, so nothing else would). */
const disposedParam = (op: string, p: Tensor): never => {
  throw new DisposedError({ op, arg: 'params', actual: `tensor #${p.id} [${p.shape.join(',')}]` }, 'a parameter was disposed')
}

/**
 * Build an Optimizer from a per-leaf rule. `rule(p, g, slots, hyper)` returns the new param and new slot
 * values for one leaf; it runs inside a scope, so its temporaries are freed.
 */
function makeOptimizer(
  op: string,
  slotNames: readonly string[],
  rule: (p: Tensor, g: Tensor, slots: readonly Tensor[], lr: number, count: number) => [Tensor, Tensor[]],
  lr: LearningRate,
): Optimizer {
  const init = <P>(params: P): OptState<P> => {
    const slots: Record<string, P> = {}
    for (const name of slotNames) slots[name] = mapLeaves(op, params, [], p => (p.isDisposed ? disposedParam(op, p) : trainable(p) ? zerosShapedLike(op, p) : null)) as P
    return { count: 0, slots }
  }
  const update = <P>(grads: GradTree<P> | P, state: OptState<P>, params: P): [P, OptState<P>] => {
    if (state === null || typeof state !== 'object' || !Number.isInteger(state.count) || !isPlainObject(state.slots))
      throw new ArgumentError({ op, arg: 'state', expected: `state from ${op}(…).init(params)`, actual: typeof state })
    for (const name of slotNames)
      if (!(name in state.slots)) throw new ArgumentError({ op, arg: 'state', expected: `a slot named ${name} (state of ${op})`, actual: Object.keys(state.slots).join(',') || 'no slots' })
    const count = state.count + 1
    const rate = lrAt(op, lr, count)
    return noGrad(() =>
      scope(() => {
        const newSlots: Record<string, unknown[]> = Object.fromEntries(slotNames.map(n => [n, []]))
        // First pass: the new params, collecting new slot leaves in leaf order.
        const newParams = mapLeaves(
          op,
          params,
          [{ name: 'grads', tree: grads }, ...slotNames.map(n => ({ name: `state.slots.${n}`, tree: state.slots[n] }))],
          (p, [g, ...slots]) => {
            if (!trainable(p) || !isTensor(g)) {
              for (const n of slotNames) newSlots[n]!.push(slots[slotNames.indexOf(n)] ?? null)
              return p
            }
            const ss = slots.map((s, i) => {
              if (!isTensor(s)) throw new ArgumentError({ op, arg: `state.slots.${slotNames[i]}`, expected: 'a tensor for each trainable parameter', actual: String(s) })
              return s
            })
            const [np, ns] = rule(p, g, ss, rate, count)
            slotNames.forEach((n, i) => newSlots[n]!.push(ns[i]!))
            return np
          },
        ) as P
        // Second pass: put the slot leaves back into the param structure.
        const slots: Record<string, P> = {}
        for (const n of slotNames) {
          let i = 0
          const leaves = newSlots[n]!
          slots[n] = mapLeaves(op, params, [], () => leaves[i++]) as P
        }
        return [newParams, { count, slots }] as [P, OptState<P>]
      }),
    )
  }
  const step = <P>(grads: GradTree<P> | P, state: OptState<P>, params: P): [P, OptState<P>] => {
    const out = update(grads, state, params)
    // Frozen leaves come back as the same tensors: dispose only what was replaced.
    const survivors = treeTensors(out)
    for (const t of treeTensors([params, state.slots])) if (!survivors.has(t)) t.dispose()
    return out
  }
  return { init, update, step }
}

/** Stochastic gradient descent with optional momentum (PyTorch's update rule) and L2 weight decay. */
export function sgd(opts: SgdOptions): Optimizer {
  const op = 'sgd'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ lr, momentum?, weightDecay? }', actual: String(opts) })
  const lr = checkLr(op, opts.lr)
  const mu = inRange(op, 'momentum', opts.momentum ?? 0, 0, 1, { upper: 'open' })
  const wd = nonNegativeNumber(op, 'weightDecay', opts.weightDecay ?? 0)
  const nesterov = opts.nesterov ?? false
  if (nesterov && mu === 0) throw new ValueError({ op, arg: 'nesterov', expected: 'momentum > 0 with nesterov', actual: mu })
  return makeOptimizer(op, mu > 0 ? ['momentum'] : [], (p, g, slots, rate) => {
    const gd = wd > 0 ? add(g, mul(p, wd)) : g
    if (mu === 0) return [sub(p, mul(gd, rate)), []]
    // With a zero initial buffer, μ·0 + g equals PyTorch's first-step b = g.
    const b = add(mul(slots[0]!, mu), gd)
    const dir = nesterov ? add(gd, mul(b, mu)) : b
    return [sub(p, mul(dir, rate)), [b]]
  }, lr)
}

function adamFamily(op: string, opts: AdamOptions, decoupled: boolean): Optimizer {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ lr, beta1?, beta2?, eps?, weightDecay? }', actual: String(opts) })
  const lr = checkLr(op, opts.lr)
  const b1 = inRange(op, 'beta1', opts.beta1 ?? 0.9, 0, 1, { upper: 'open' })
  const b2 = inRange(op, 'beta2', opts.beta2 ?? 0.999, 0, 1, { upper: 'open' })
  const eps = nonNegativeNumber(op, 'eps', opts.eps ?? 1e-8)
  const wd = nonNegativeNumber(op, 'weightDecay', opts.weightDecay ?? (decoupled ? 0.01 : 0))
  return makeOptimizer(op, ['mu', 'nu'], (p, g, [m0, v0], rate, t) => {
    // float32: the whole step in one kernel pass per parameter (m, v and p together, float64 arithmetic rounded
    // once per output) instead of ~12 elementwise kernels; the composed form below stays for other dtypes
    if (p.dtype === 'float32' && g.dtype === 'float32' && m0!.dtype === 'float32' && v0!.dtype === 'float32') {
      const attrs: AdamUpdateAttrs = { lr: rate, beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled, c1: 1 / (1 - b1 ** t), c2: 1 / (1 - b2 ** t) }
      const [np, m, v] = runOp(op, Kernel.AdamUpdate, [p, g, m0!, v0!], attrs)
      return [np!, [m!, v!]]
    }
    const gd = !decoupled && wd > 0 ? add(g, mul(p, wd)) : g
    const m = add(mul(m0!, b1), mul(gd, 1 - b1))
    const v = add(mul(v0!, b2), mul(mul(gd, gd), 1 - b2))
    // Bias correction as in Kingma & Ba (2015), Algorithm 1: m̂ = m/(1−β1^t), v̂ = v/(1−β2^t).
    const mHat = div(m, 1 - b1 ** t)
    const vHat = div(v, 1 - b2 ** t)
    const stepDir = div(mHat, add(sqrt(vHat), eps))
    // AdamW (Loshchilov & Hutter; PyTorch): p ← p − lr·wd·p, then the Adam step from the same gradient.
    const decayed = decoupled && wd > 0 ? mul(p, 1 - rate * wd) : p
    return [sub(decayed, mul(stepDir, rate)), [m, v]]
  }, lr)
}

/** Adam (Kingma & Ba, 2015) with bias correction; `weightDecay` is an L2 term on the gradient (default 0). */
export const adam = (opts: AdamOptions): Optimizer => adamFamily('adam', opts, false)

/** AdamW: Adam with decoupled weight decay as in PyTorch's `torch.optim.AdamW` (default weightDecay 0.01). */
export const adamw = (opts: AdamOptions): Optimizer => adamFamily('adamw', opts, true)
