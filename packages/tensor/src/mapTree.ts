import { isTensor, type Tensor } from './Tensor.js'

/** @internal rebuild a pytree (plain objects and arrays) with each tensor leaf replaced by `f(leaf)`. */
export function mapTree(tree: unknown, f: (t: Tensor) => Tensor): unknown {
  if (isTensor(tree)) return f(tree)
  if (Array.isArray(tree)) return tree.map(x => mapTree(x, f))
  if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype)
    return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, mapTree(v, f)]))
  return tree
}
