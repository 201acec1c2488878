import { ArgumentError, AxisError, ShapeError, ValueError, kindOf } from './errors.js'

/** A shape: a literal tuple such as `readonly [2, 3]` when known statically, else `readonly number[]`. */
export type Shape = readonly number[]

export const sizeOf = (shape: Shape): number => {
  let n = 1
  for (const d of shape) n *= d
  return n
}

/**
 * The public `sizeOf`: the element count of a shape, which must be an array of non-negative integers (a string's
 * characters or nested arrays would otherwise multiply to NaN). The internal `sizeOf` above stays unchecked: it
 * is called on every tensor made, with shapes already validated.
 */
export function checkedSizeOf(shape: Shape): number {
  assertShape('sizeOf', 'shape', shape)
  return sizeOf(shape)
}

export const stridesOf = (shape: Shape): number[] => {
  const s = new Array<number>(shape.length)
  let acc = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc
    acc *= shape[i]!
  }
  return s
}

export const shapesEqual = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i])

export function assertShape(op: string, arg: string, shape: unknown): asserts shape is Shape {
  if (!Array.isArray(shape) || !shape.every(d => Number.isInteger(d) && d >= 0))
    throw new ValueError({ op, arg, expected: 'an array of non-negative integers', actual: JSON.stringify(shape) })
}

/** Numpy broadcasting of two shapes; throws a ShapeError naming both. */
export function broadcastShapes(op: string, a: Shape, b: Shape, names: readonly [string, string] = ['a', 'b']): number[] {
  // O(1) checks of the arguments themselves, in this function's name (the shapes of a binary op are valid already)
  if (typeof op !== 'string' || !Array.isArray(a) || !Array.isArray(b)) badBroadcastArgs(op, a, b)
  const n = Math.max(a.length, b.length)
  const out = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1
    const db = b[b.length - n + i] ?? 1
    if (da !== db && da !== 1 && db !== 1)
      throw new ShapeError(
        { op },
        `shapes are not broadcastable, ${names[0]} is [${a.join(',')}], ${names[1]} is [${b.join(',')}] (dim ${i - n} is ${da} vs ${db})`,
      )
    out[i] = da === 1 ? db : da
  }
  return out
}

function badBroadcastArgs(op: unknown, a: unknown, b: unknown): never {
  const fn = 'broadcastShapes'
  if (typeof op !== 'string') throw new ArgumentError({ op: fn, arg: 'op', expected: 'the name of the calling op (a string)', actual: kindOf(op) })
  const [arg, v] = Array.isArray(a) ? ['b', b] : ['a', a]
  throw new ArgumentError({ op: fn, arg, expected: 'a shape (an array of dims)', actual: kindOf(v) })
}

/** Normalise a possibly negative axis; rejects non-integers and out-of-range values. */
export function normAxis(op: string, axis: number, rank: number, arg = 'axis'): number {
  if (!Number.isInteger(axis)) throw new AxisError({ op, arg, expected: 'an integer', actual: axis })
  if (axis < -rank || axis >= Math.max(rank, 1) || (rank === 0 && axis !== 0 && axis !== -1))
    throw new AxisError({ op, arg, expected: `an axis in [${-rank}, ${rank})`, actual: axis })
  return axis < 0 ? axis + rank : axis
}

/** Normalise an axis list (or all axes when undefined); rejects duplicates. */
export function normAxes(op: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i)
  const list = typeof axis === 'number' ? [axis] : [...axis]
  const out = list.map(a => normAxis(op, a, rank))
  if (new Set(out).size !== out.length) throw new AxisError({ op, arg: 'axis', expected: 'distinct axes', actual: list })
  return out.sort((x, y) => x - y)
}

/** Shape after reducing `axes` (sorted, normalised). */
export const reducedShape = (shape: Shape, axes: readonly number[], keepDims: boolean): number[] =>
  keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i))

/**
 * Strides of `inShape` read as if broadcast to `outShape`: broadcast dims get stride 0. Kernels walk output indices and add
 * these strides, so no broadcast copy is ever made (CPU and WebGPU alike).
 */
export function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const s = stridesOf(inShape)
  const off = outShape.length - inShape.length
  return outShape.map((_, i) => {
    const j = i - off
    return j < 0 || inShape[j] === 1 ? 0 : s[j]!
  })
}
