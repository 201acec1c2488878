import { sizeOf, type Shape } from '../../shape.js'

/**
 * How an operand of `shape` is read over `out`: the whole output ('full'), one value ('scalar'), a block of
 * `period` values repeated along the leading dims ('inner': a bias over [..., n]), or each value held for `period`
 * consecutive outputs ('outer': a [m, 1] column). `null` for any other broadcast.
 */
export type Pattern =
  | { readonly kind: 'full' }
  | { readonly kind: 'scalar' }
  | { readonly kind: 'inner'; readonly period: number }
  | { readonly kind: 'outer'; readonly period: number }

export function broadcastPattern(shape: Shape, out: Shape): Pattern | null {
  const n = sizeOf(out)
  const size = sizeOf(shape)
  if (size === n) return { kind: 'full' }
  if (size === 1) return { kind: 'scalar' }
  const lead = out.length - shape.length
  const dim = (i: number): number => (i < lead ? 1 : shape[i - lead]!)
  // the operand's dims equal out's on a suffix and are 1 before it → 'inner'; on a prefix and 1 after → 'outer'
  let i = out.length
  while (i > 0 && dim(i - 1) === out[i - 1]) i--
  let j = i
  while (j > 0 && dim(j - 1) === 1) j--
  if (j === 0) return { kind: 'inner', period: sizeOf(out.slice(i)) }
  let k = 0
  while (k < out.length && dim(k) === out[k]) k++
  let l = k
  while (l < out.length && dim(l) === 1) l++
  if (l === out.length) return { kind: 'outer', period: sizeOf(out.slice(k)) }
  return null
}
