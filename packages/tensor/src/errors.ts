/**
 * Typed errors. Every error names the op, the argument, what was expected and what came, so that a message
 * alone is enough to fix the call: `matmul: inner dims differ, a is [2,3], b is [4,5]`.
 */
export interface ErrorDetails {
  /** The public op or function that rejected its input. */
  readonly op: string
  /** The argument (or option) at fault. */
  readonly arg?: string
  /** What the op expected, in words or as a value. */
  readonly expected?: unknown
  /** What it received. */
  readonly actual?: unknown
}

const fmt = (u: unknown): string => {
  if (Array.isArray(u)) return `[${u.map(fmt).join(',')}]`
  if (typeof u === 'string') return u
  if (typeof u === 'object' && u !== null && 'shape' in u && 'dtype' in u) {
    const t = u as { shape: readonly number[]; dtype: string }
    return `Tensor<${t.dtype}>[${t.shape.join(',')}]`
  }
  return String(u)
}

/** What a wrong argument is, for an error's `actual`: `null`, `an array`, or its `typeof`. */
export const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v)

/**
 * The details object of an error's constructor: without the check `new ValueError()` dies reading `expected` of
 * undefined, and `new ValueError('x')` makes an error whose op is undefined. O(1): a few typeof tests.
 */
function checkDetails(cls: string, details: unknown, message: unknown): void {
  const bad = (arg: string, expected: string, actual: string): never => {
    throw new ArgumentError({ op: cls, arg, expected, actual })
  }
  if (details === null || typeof details !== 'object' || Array.isArray(details)) bad('details', '{ op, arg?, expected?, actual? }', kindOf(details))
  const { op, arg } = details as { op?: unknown; arg?: unknown }
  if (typeof op !== 'string' || op === '') bad('details.op', 'the name of the op (a non-empty string)', op === '' ? 'an empty string' : kindOf(op))
  if (arg !== undefined && typeof arg !== 'string') bad('details.arg', 'a string or undefined', kindOf(arg))
  if (message !== undefined && typeof message !== 'string') bad('message', 'a string or undefined', kindOf(message))
}

export class HeedError extends Error {
  readonly op: string
  readonly arg: string | undefined
  readonly expected: unknown
  readonly actual: unknown
  constructor(details: ErrorDetails, message?: string) {
    checkDetails(new.target.name, details, message)
    const parts = [
      message,
      details.expected !== undefined ? `expected ${fmt(details.expected)}` : undefined,
      details.actual !== undefined ? `got ${fmt(details.actual)}` : undefined,
    ].filter((p): p is string => p !== undefined)
    const where = details.arg !== undefined ? `${details.op}: ${details.arg}: ` : `${details.op}: `
    super(where + parts.join(', '))
    this.name = new.target.name
    this.op = details.op
    this.arg = details.arg
    this.expected = details.expected
    this.actual = details.actual
  }
}

/** Wrong rank, mismatched or non-broadcastable dims, a reshape whose sizes differ. */
export class ShapeError extends HeedError {}
/** A dtype the op cannot take (integer input to `exp`, float indices, mixed dtypes where forbidden). */
export class DTypeError extends HeedError {}
/** An axis that is not an integer or falls outside `[-rank, rank)`. */
export class AxisError extends HeedError {}
/** A value out of its domain: negative size, NaN option, k larger than the axis, an empty reduction. */
export class ValueError extends HeedError {}
/** A JavaScript value of the wrong kind where a tensor, number or option object was expected. */
export class ArgumentError extends HeedError {}
/** Backend problems: unknown backend, missing kernel, tensors of two backends in one op, device loss. */
export class BackendError extends HeedError {}
/** The device behind a backend was lost (driver reset, `destroy()`, out of memory); its tensors are gone. */
export class DeviceLostError extends BackendError {}
/** Use of a tensor after `dispose()`. */
export class DisposedError extends HeedError {}
/** Malformed external data (safetensors headers, untrusted arrays). */
export class ParseError extends HeedError {}
