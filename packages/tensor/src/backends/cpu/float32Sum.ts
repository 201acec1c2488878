import { takeFloat32 } from './float32Pool.js'
import type { CpuTensor } from './types.js'

/**
 * Sum of float32 values over one run of consecutive axes (all of them, the leading batch axis of a bias
 * gradient, the trailing feature axes), as [outer, reduced, inner] loops over the Float32Array. The general
 * reduction walks an offset table through closures; here the inner axis is read contiguously. Each output
 * accumulates in float64 in the same order as the general path (reduced index ascending), so the result is
 * bit-identical to it. Undefined for axes that are not one consecutive run.
 */
export function float32Sum(x: CpuTensor, axes: readonly number[]): Float32Array | undefined {
  if (x.dtype !== 'float32' || axes.length === 0) return undefined
  const lo = axes[0]!
  const hi = axes[axes.length - 1]!
  if (hi - lo + 1 !== axes.length) return undefined
  let outer = 1
  let red = 1
  let inner = 1
  x.shape.forEach((d, i) => {
    if (i < lo) outer *= d
    else if (i <= hi) red *= d
    else inner *= d
  })
  const v = x.values as Float32Array
  const out = takeFloat32(outer * inner)
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      let s = 0
      for (let i = o * red, e = i + red; i < e; i++) s += v[i]!
      out[o] = s
    }
    return out
  }
  const acc = new Float64Array(inner)
  for (let o = 0; o < outer; o++) {
    acc.fill(0)
    let r = 0
    // four rows per pass over acc: the additions stay left to right ((((acc + x0) + x1) + x2) + x3), so the
    // order per output is unchanged, and acc is loaded and stored a quarter as often
    for (; r + 4 <= red; r += 4) {
      const b0 = (o * red + r) * inner
      const b1 = b0 + inner
      const b2 = b1 + inner
      const b3 = b2 + inner
      for (let j = 0; j < inner; j++) acc[j] = acc[j]! + v[b0 + j]! + v[b1 + j]! + v[b2 + j]! + v[b3 + j]!
    }
    for (; r < red; r++) {
      const base = (o * red + r) * inner
      for (let j = 0; j < inner; j++) acc[j]! += v[base + j]!
    }
    out.set(acc, o * inner)
  }
  return out
}
