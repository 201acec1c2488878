import typedFunction from 'typed-function'
import { ArgumentError } from './errors.js'
import { isTensor } from './Tensor.js'

/**
 * heed's own typed-function instance (the shared default instance is left untouched). It guards the public op
 * boundary: a call whose argument kinds match no signature fails with an ArgumentError naming the op, the
 * argument position, the kinds accepted and the kind received.
 */
const typed = typedFunction.create()
typed.addTypes(
  [
    { name: 'Tensor', test: isTensor },
    { name: 'TypedArray', test: (u: unknown) => ArrayBuffer.isView(u) && !(u instanceof DataView) },
  ],
  'Object',
)

typed.onMismatch = (name, args, signatures) => {
  const err = typed.createError(name, args, signatures)
  const d = err.data
  const arg = d.index !== undefined ? `argument ${d.index}` : 'arguments'
  throw new ArgumentError(
    {
      op: name,
      arg,
      expected: d.expected?.join(' or ') ?? signatures.map(s => `(${s.signature})`).join(' or '),
      actual: d.actual ?? `${args.length} argument(s)`,
    },
    d.category === 'tooFewArgs' ? 'too few arguments' : d.category === 'tooManyArgs' ? 'too many arguments' : 'wrong kind of argument',
  )
}

/** Define a guarded public function from typed-function signatures; `F` is the TypeScript face users see. */
export const guard = <F>(name: string, signatures: Record<string, (...args: any[]) => unknown>): F =>
  typed(name, signatures) as F
