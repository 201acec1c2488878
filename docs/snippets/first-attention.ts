// #region recipe
import { random, scope } from '@heed/tensor'
import { scaledDotProductAttention, mask } from '@heed/attention'

// Shapes are [batch, heads, tokens, headDim].
const rng = random.rng(0)
const q = random.normal([1, 2, 8, 16], { rng })
const k = random.normal([1, 2, 8, 16], { rng })
const v = random.normal([1, 2, 8, 16], { rng })

const { out, lse } = scaledDotProductAttention(q, k, v, { causal: true })
console.log(out.shape, lse.shape) // => [[1, 2, 8, 16], [1, 2, 8]]

// Masks compose as values: a causal sliding window of 4 keys is a mask, not a new flag.
const windowed = scope(() => scaledDotProductAttention(q, k, v, { causal: true, mask: mask.window(4) }).out)
// The first 4 queries see at most 4 keys, so the window changes nothing for them (head 0, rows 0–3).
const a = out.dataSync().subarray(0, 4 * 16)
const b = windowed.dataSync().subarray(0, 4 * 16)
const firstRowsEqual = a.every((x, i) => Math.abs(x - b[i]!) < 1e-6)
console.log(firstRowsEqual) // => true
// #endregion recipe
