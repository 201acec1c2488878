import { isTensor, type Tensor } from '@heed/tensor'

/** The tensors in a pytree of plain objects and arrays (what `dispose` and `scope` walk). */
export function treeTensorsOf(tree: unknown, out = new Set<Tensor>()): Set<Tensor> {
  if (isTensor(tree)) out.add(tree)
  else if (Array.isArray(tree)) for (const x of tree) treeTensorsOf(x, out)
  else if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype) for (const x of Object.values(tree)) treeTensorsOf(x, out)
  return out
}
