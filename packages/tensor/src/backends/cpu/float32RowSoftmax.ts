import { takeFloat32 } from './float32Pool.js'

export type RowSoftmaxOp = 'softmax' | 'logSoftmax' | 'logSumExp'

/**
 * softmax / logSoftmax of each contiguous row of `cols` float32 values, or logSumExp per row, for inputs below the
 * WebAssembly kernel's size threshold (a classifier's [batch, classes] logits). The general kernel walks an offset
 * table and finds the max through a shared closure; these loops read the row directly. The arithmetic is the
 * general kernel's, step for step in float64 (NaN-propagating max, max-shifted exp sum, one rounding per
 * output), so results are bit-identical to it, ±Infinity and NaN rows included.
 */
export function float32RowSoftmax(v: Float32Array, rows: number, cols: number, op: RowSoftmaxOp): Float32Array {
  const out = takeFloat32(op === 'logSumExp' ? rows : rows * cols)
  for (let r = 0, b = 0; r < rows; r++, b += cols) {
    const e = b + cols
    let m = cols === 0 ? NaN : v[b]!
    for (let i = b + 1; i < e && m === m; i++) {
      const x = v[i]!
      if (x !== x || x > m) m = x
    }
    if (op === 'logSumExp') {
      // an empty or all −Infinity row has log Σ exp = −Infinity; a NaN or +Infinity max is the answer itself
      if (cols === 0 || m === -Infinity) out[r] = -Infinity
      else if (m !== m || m === Infinity) out[r] = m
      else {
        let s = 0
        for (let i = b; i < e; i++) s += Math.exp(v[i]! - m)
        out[r] = m + Math.log(s)
      }
      continue
    }
    let s = 0
    for (let i = b; i < e; i++) s += Math.exp(v[i]! - m)
    if (op === 'softmax') for (let i = b; i < e; i++) out[i] = Math.exp(v[i]! - m) / s
    else {
      const ls = Math.log(s)
      for (let i = b; i < e; i++) out[i] = v[i]! - m - ls
    }
  }
  return out
}
