import { takeFloat32 } from './float32Pool.js'
import { positiveMask } from './positiveMask.js'
import type { CpuTensor } from './types.js'

/**
 * float32 → float32 for the unary functions a training loop runs on every activation (ReLU and its step mask,
 * negation, exp/log, ...), each in its own loop over Float32Arrays. The general `mapUnary` path calls the scalar
 * function through one call site shared by every unary op, which V8 cannot inline: ~10 ns per element, against
 * ~1 ns here. The expressions are those of `unaryFns`, evaluated in float64 and rounded once, so the results are
 * bit-identical to the general path.
 */

const asInt32 = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length)

const ONE_BITS = 0x3f800000
const FNS = ['relu', 'step', 'neg', 'abs', 'square', 'exp', 'log', 'sqrt', 'reciprocal', 'tanh', 'sigmoid'] as const

/** f(x) for each element, or undefined when `fn` is not one of the specialised functions. */
export function float32Unary(fn: string, x: CpuTensor): CpuTensor | undefined {
  if (x.dtype !== 'float32' || !(FNS as readonly string[]).includes(fn)) return undefined
  const v = x.values as Float32Array
  const n = v.length
  const out = takeFloat32(n)
  switch (fn as (typeof FNS)[number]) {
    case 'relu': {
      const bits = asInt32(v)
      const o = asInt32(out)
      for (let i = 0; i < n; i++) {
        const b = bits[i]!
        o[i] = b & positiveMask(b)
      }
      break
    }
    case 'step': {
      const bits = asInt32(v)
      const o = asInt32(out)
      for (let i = 0; i < n; i++) o[i] = ONE_BITS & positiveMask(bits[i]!)
      break
    }
    case 'neg':
      for (let i = 0; i < n; i++) out[i] = -v[i]!
      break
    case 'abs':
      for (let i = 0; i < n; i++) out[i] = Math.abs(v[i]!)
      break
    case 'square':
      for (let i = 0; i < n; i++) {
        const e = v[i]!
        out[i] = e * e
      }
      break
    case 'exp':
      for (let i = 0; i < n; i++) out[i] = Math.exp(v[i]!)
      break
    case 'log':
      for (let i = 0; i < n; i++) out[i] = Math.log(v[i]!)
      break
    case 'sqrt':
      for (let i = 0; i < n; i++) out[i] = Math.sqrt(v[i]!)
      break
    case 'reciprocal':
      for (let i = 0; i < n; i++) out[i] = 1 / v[i]!
      break
    case 'tanh':
      for (let i = 0; i < n; i++) out[i] = Math.tanh(v[i]!)
      break
    case 'sigmoid':
      // the two branches of unaryFns.sigmoid: neither exp overflows to make ∞/∞
      for (let i = 0; i < n; i++) {
        const e = v[i]!
        out[i] = e >= 0 ? 1 / (1 + Math.exp(-e)) : Math.exp(e) / (1 + Math.exp(e))
      }
      break
  }
  return { values: out, shape: x.shape, dtype: 'float32' }
}
