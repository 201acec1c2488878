import type { DType } from '../dtype.js'
import type { Shape } from '../shape.js'

/**
 * Type-level shape arithmetic. Every utility falls back to `readonly number[]` when a shape is not a literal
 * tuple, so code with runtime shapes type-checks without casts and is checked at run time instead. When both
 * shapes are literal and incompatible the result is a `ShapeMismatch` brand that no tensor type accepts,
 * which turns the call into a compile error.
 */

/** Marker for a statically detected shape error; the message shows up in the compiler's error text. */
export interface ShapeMismatch<Msg extends string> {
  readonly __shapeError: Msg
}

/** True when S is a literal tuple (its length is a literal). */
export type IsLiteral<S extends Shape> = number extends S['length'] ? false : true

/** Shape of nested array literals: `[[1,2],[3,4]]` → `readonly [2, 2]`. */
export type ShapeOf<T> = T extends number | boolean
  ? readonly []
  : T extends readonly []
    ? readonly [0]
    : T extends readonly [infer H, ...infer _R]
      ? ShapeOf<H> extends infer Inner extends Shape
        ? IsLiteral<Inner> extends true
          ? readonly [T['length'], ...Inner]
          : Shape
        : Shape
      : Shape

/** dtype inferred from host data: typed arrays carry theirs, booleans are bool, everything else float32. */
export type DTypeOf<T> = T extends Float64Array
  ? 'float64'
  : T extends Int32Array
    ? 'int32'
    : T extends Uint32Array
      ? 'uint32'
      : T extends Uint8Array
        ? 'bool'
        : T extends boolean | readonly boolean[] | readonly (readonly boolean[])[] | readonly (readonly (readonly boolean[])[])[]
          ? 'bool'
          : 'float32'

type BroadcastDim<A extends number, B extends number> = number extends A
  ? number
  : number extends B
    ? number
    : A extends B
      ? A
      : A extends 1
        ? B
        : B extends 1
          ? A
          : never

type BroadcastRev<A extends Shape, B extends Shape> = A extends readonly [...infer AR extends number[], infer AL extends number]
  ? B extends readonly [...infer BR extends number[], infer BL extends number]
    ? readonly [...BroadcastRev<AR, BR>, BroadcastDim<AL, BL>]
    : A
  : B

type HasNever<T extends Shape> = T extends readonly [infer H, ...infer R extends Shape] ? ([H] extends [never] ? true : HasNever<R>) : false

/** Numpy broadcast of two shapes; `ShapeMismatch` when two literal dims differ and neither is 1. */
export type Broadcast<A extends Shape, B extends Shape> = IsLiteral<A> extends false
  ? Shape
  : IsLiteral<B> extends false
    ? Shape
    : BroadcastRev<A, B> extends infer R extends Shape
      ? HasNever<R> extends true
        ? ShapeMismatch<'shapes are not broadcastable'>
        : R
      : Shape

/** Rest-parameter guard: `[]` when `Ok` holds, else one impossible extra argument carrying the message. */
export type Check<R> = R extends ShapeMismatch<infer M> ? [shapeError: M] : []

/** Shapes usable as a tensor shape (a mismatch brand is not). */
export type Valid<S> = S extends ShapeMismatch<string> ? Shape : S extends Shape ? S : Shape

export type { DType }
