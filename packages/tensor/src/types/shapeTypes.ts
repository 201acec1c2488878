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

declare const shapeError: unique symbol

/**
 * What an argument must also be when literal shapes do not fit: no value is, so the call fails, and tsc's message
 * names this type with its arguments: what differs and the two shapes (or the shape and the axes), e.g.
 * `… is not assignable to … ShapeError<"matmul: inner dims differ", readonly [2, 3], readonly [4, 5]>`.
 */
export interface ShapeError<Msg extends string, A, B> {
  readonly [shapeError]: { readonly message: Msg; readonly a: A; readonly b: B }
}

/**
 * Intersected with the argument that carries the mismatch (b of a binary op, the axes of a shape op): `unknown`
 * (no constraint) when `R` is a shape, a `ShapeError` when it is a `ShapeMismatch`. Wrapped in `NoInfer` at the
 * use site, so the argument's type parameters are inferred from the argument alone. A missing-argument guard (an
 * impossible rest parameter) would fail too, but tsc reports it as "Expected 3 arguments, but got 2" and never
 * shows the message.
 */
export type ShapeGuard<R, A, B> = R extends ShapeMismatch<infer M> ? ShapeError<M, A, B> : unknown

/** Shapes usable as a tensor shape (a mismatch brand is not). */
export type Valid<S> = S extends ShapeMismatch<string> ? Shape : S extends Shape ? S : Shape

export type { DType }

// ---- shape-manipulation ops (transpose, permute, expandDims, squeeze) ----------------------------------------
// Only non-negative literal axes are resolved at the type level; negative or runtime axes fall back to `Shape`
// and are checked at run time, which keeps these types shallow enough to stay fast.

type ReverseTuple<S extends Shape> = S extends readonly [infer H extends number, ...infer R extends Shape] ? readonly [...ReverseTuple<R>, H] : readonly []

/** Shape of `transpose(x)`: the dims reversed. */
export type Transposed<S extends Shape> = IsLiteral<S> extends true ? ReverseTuple<S> : Shape

type DimAt<S extends Shape, I extends number> = `${I}` extends keyof S ? (S[`${I}` & keyof S] extends infer V extends number ? V : number) : number

type AllAxesIn<S extends Shape, P extends readonly number[]> = P extends readonly [infer H extends number, ...infer R extends readonly number[]]
  ? number extends H
    ? true
    : `${H}` extends `-${string}`
      ? true
      : `${H}` extends keyof S
        ? AllAxesIn<S, R>
        : false
  : true

/** Shape of `permute(x, axes)`: `ShapeMismatch` when a literal axis list has the wrong length or an axis past the rank. */
export type Permuted<S extends Shape, P extends readonly number[]> = IsLiteral<S> extends false
  ? Shape
  : IsLiteral<P> extends false
    ? Shape
    : P['length'] extends S['length']
      ? AllAxesIn<S, P> extends true
        ? { readonly [K in keyof P]: P[K] extends number ? DimAt<S, P[K]> : never }
        : ShapeMismatch<'permute: an axis is out of range for the shape'>
      : ShapeMismatch<'permute: axes must list every axis of the shape exactly once'>

type InsertOne<S extends Shape, A extends number, Acc extends readonly number[] = readonly []> = Acc['length'] extends A
  ? readonly [...Acc, 1, ...S]
  : S extends readonly [infer H extends number, ...infer R extends Shape]
    ? InsertOne<R, A, readonly [...Acc, H]>
    : ShapeMismatch<'expandDims: axis is out of range for the shape'>

/** Shape of `expandDims(x, axis)`: a 1 inserted before position `axis` (-1 appends). */
export type ExpandedDims<S extends Shape, A extends number> = IsLiteral<S> extends false
  ? Shape
  : number extends A
    ? Shape
    : A extends -1
      ? readonly [...S, 1]
      : `${A}` extends `-${string}`
        ? Shape
        : InsertOne<S, A>

type DropOnes<S extends Shape> = S extends readonly [infer H extends number, ...infer R extends Shape]
  ? number extends H
    ? Shape
    : DropOnes<R> extends infer T extends Shape
      ? IsLiteral<T> extends false
        ? Shape
        : H extends 1
          ? T
          : readonly [H, ...T]
      : Shape
  : readonly []

type DropAt<S extends Shape, A extends number, Acc extends readonly number[] = readonly []> = S extends readonly [
  infer H extends number,
  ...infer R extends Shape,
]
  ? Acc['length'] extends A
    ? number extends H
      ? readonly [...Acc, ...R]
      : H extends 1
        ? readonly [...Acc, ...R]
        : ShapeMismatch<'squeeze: the squeezed dim is not 1'>
    : DropAt<R, A, readonly [...Acc, H]>
  : ShapeMismatch<'squeeze: axis is out of range for the shape'>

/** Shape of `squeeze(x)` (every size-1 dim dropped; `Shape` when a dim is not literal) or `squeeze(x, axis)`. */
export type Squeezed<S extends Shape, A extends number | undefined = undefined> = IsLiteral<S> extends false
  ? Shape
  : A extends undefined
    ? DropOnes<S>
    : A extends number
      ? number extends A
        ? Shape
        : `${A}` extends `-${string}`
          ? Shape
          : DropAt<S, A>
      : Shape

// ---- matmul ----------------------------------------------------------------------------------------------

/** Swap the last two dims of a literal shape (a transposed matmul operand); rank < 2 and runtime shapes stay. */
export type SwapLast<S extends Shape> = S extends readonly [...infer B extends number[], infer R extends number, infer C extends number]
  ? readonly [...B, C, R]
  : S

/** Two dims that are both literal and different (a runtime `number` dim is checked at run time instead). */
type DimsDiffer<A extends number, B extends number> = number extends A ? false : number extends B ? false : A extends B ? false : true

type InnerMismatch = ShapeMismatch<'matmul: inner dims differ'>

type MatMulBatched<BA extends Shape, M extends number, BB extends Shape, N extends number> =
  Broadcast<BA, BB> extends infer R
    ? R extends ShapeMismatch<string>
      ? ShapeMismatch<'matmul: batch dims are not broadcastable'>
      : R extends Shape
        ? readonly [...R, M, N]
        : Shape
    : Shape

/**
 * Result shape of `matmul(a, b)` with numpy semantics: `[..., m, k] × [..., k, n] → [broadcast(...), m, n]`; a
 * 1-D operand is promoted to a matrix and its inserted dim dropped. Literal inner dims that differ, batch dims
 * that cannot broadcast and rank-0 operands give a `ShapeMismatch`.
 */
export type MatMulShape<A extends Shape, B extends Shape> = IsLiteral<A> extends false
  ? Shape
  : IsLiteral<B> extends false
    ? Shape
    : A extends readonly []
      ? ShapeMismatch<'matmul: operands need rank >= 1'>
      : B extends readonly []
        ? ShapeMismatch<'matmul: operands need rank >= 1'>
        : A extends readonly [infer KA extends number]
          ? B extends readonly [infer KB extends number]
            ? DimsDiffer<KA, KB> extends true
              ? InnerMismatch
              : readonly []
            : B extends readonly [...infer BB extends number[], infer KB extends number, infer N extends number]
              ? DimsDiffer<KA, KB> extends true
                ? InnerMismatch
                : readonly [...BB, N]
              : Shape
          : A extends readonly [...infer BA extends number[], infer M extends number, infer KA extends number]
            ? B extends readonly [infer KB extends number]
              ? DimsDiffer<KA, KB> extends true
                ? InnerMismatch
                : readonly [...BA, M]
              : B extends readonly [...infer BB extends number[], infer KB extends number, infer N extends number]
                ? DimsDiffer<KA, KB> extends true
                  ? InnerMismatch
                  : MatMulBatched<BA, M, BB, N>
                : Shape
            : Shape
