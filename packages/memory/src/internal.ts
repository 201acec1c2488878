/**
 * Option objects of the memories, checked where the user passes them: an options object holding only the keys the
 * function documents, so a misspelt `chunksize` is an `ArgumentError` naming the function rather than a default
 * silently in force. Not exported from the package.
 */
import { ArgumentError, ValueError, isTensor, knownOptions, requireTensor, type Tensor, kindOf } from '@heed/tensor'

/**
 * The option names of an `…Options` interface, written as an object with every key of `T`: the compiler rejects a
 * key `T` lacks (excess property) and a key of `T` left out (missing property), so the allowed list cannot drift
 * from the documented options.
 */
export const optionKeys = <T>(keys: { readonly [K in keyof Required<T>]: true }): readonly string[] => Object.keys(keys)

export { kindOf }

/** `opts` (`undefined` reads as `{}`) must be a plain options object with only `allowed` keys. */
export function options<T>(op: string, opts: T | undefined, allowed: readonly string[], arg = 'opts'): T {
  if (opts === undefined) return {} as T
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new ArgumentError({ op, arg, expected: 'an options object', actual: kindOf(opts) })
  return knownOptions(op, opts, allowed)
}

/** A required config object (no default): `undefined` is an error too. */
export function config<T>(op: string, cfg: T, allowed: readonly string[], arg = 'config'): T {
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new ArgumentError({ op, arg, expected: 'a config object', actual: kindOf(cfg) })
  return knownOptions(op, cfg, allowed)
}

/**
 * The keys of `opts` that an inner function documents: an outer function checks its own (wider) set, then hands on
 * only these, so the inner check never blames the inner function for a key the outer one owns.
 */
export function pick<T extends object>(opts: T, keys: readonly string[]): T {
  const out: Record<string, unknown> = {}
  for (const k of keys) if ((opts as Record<string, unknown>)[k] !== undefined) out[k] = (opts as Record<string, unknown>)[k]
  return out as T
}

/** An optional boolean option: `'yes'` or `1` would otherwise read as truthy and pick a mode silently. */
export function flag(op: string, arg: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new ArgumentError({ op, arg, expected: 'a boolean', actual: kindOf(v) })
  return v
}

/** An optional finite number option. */
export function finite(op: string, arg: string, v: unknown): number | undefined {
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw new ValueError({ op, arg, expected: 'a finite number', actual: typeof v === 'number' ? v : kindOf(v) })
  return v
}

/** An optional option taking one of a few names (a mode). */
export function oneOf<const V extends string>(op: string, arg: string, v: unknown, values: readonly V[]): V | undefined {
  if (v !== undefined && !values.includes(v as V)) throw new ValueError({ op, arg, expected: values.map(x => `'${x}'`).join(', '), actual: typeof v === 'string' ? `'${v}'` : kindOf(v) })
  return v as V | undefined
}

/** A live tensor argument: a plain array, null or a disposed tensor is named in the caller's op. */
export function liveTensor(op: string, arg: string, v: unknown): Tensor {
  return requireTensor(op, arg, v as Tensor)
}
