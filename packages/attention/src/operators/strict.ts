import { ArgumentError, isTensor, knownOptions, requireTensor, type Tensor, kindOf } from '@heed/tensor'

/**
 * The sdpa option names, for operators whose options extend `SdpaOptions` and hand the rest on to sdpa. Checked
 * at the operator, so a misspelt key is blamed on the function the user called rather than on sdpa inside it.
 */
export { SDPA_OPTIONS } from '../sdpa.js'

/**
 * An operator's options: an object (not null, not an array) holding only the keys the operator reads. Layer-only
 * keys (`headOffset`, `input`, `params`) are not among them: the `AttentionFn` wrappers strip them (`sdpaOf`)
 * before calling an operator.
 */
export function operatorOptions<T>(op: string, opts: T, allowed: readonly string[], expected = 'an options object'): T {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new ArgumentError({ op, arg: 'opts', expected, actual: kindOf(opts) })
  return knownOptions(op, opts, allowed)
}

/** An optional boolean option: `causal: 'yes'` or `1` would otherwise read as truthy and pick a mode silently. */
export function flag(op: string, arg: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new ArgumentError({ op, arg, expected: 'a boolean', actual: kindOf(v) })
  return v
}

/**
 * A live tensor argument, blamed on the public op: not a tensor (null, a plain array, a string) is an
 * ArgumentError, a disposed one a DisposedError, both naming `op`. (The same check as @heed/tensor's internal
 * `requireTensor`, which its index does not export.)
 */
export function tensorArg<T extends Tensor>(op: string, arg: string, v: T, expected = 'a Tensor'): T {
  return requireTensor(op, arg, v, expected)
}

/** An options object (or undefined, for the defaults) holding only the keys the function reads. */
export function optionalOptions<T>(op: string, opts: T | undefined, allowed: readonly string[]): T | undefined {
  return opts === undefined ? opts : operatorOptions(op, opts, allowed)
}

/** A plain object argument (a parameter tree, a model, a config): not null, not an array, not a primitive. */
export function objectArg<T>(op: string, arg: string, v: T, expected: string): T {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ArgumentError({ op, arg, expected, actual: kindOf(v) })
  return v
}
