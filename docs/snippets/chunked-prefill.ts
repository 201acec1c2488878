// #region recipe
import { random, scope, slice } from '@heed/tensor'
import { attnState, chunkedPrefill, scaledDotProductAttention } from '@heed/attention'

const rng = random.rng(3)
const q = random.normal([1, 2, 12, 8], { rng })
const k = random.normal([1, 2, 12, 8], { rng })
const v = random.normal([1, 2, 12, 8], { rng })
const full = scaledDotProductAttention(q, k, v, { causal: true })

// By hand: the keys in two blocks. Each block's state (o, lse) is exact softmax attention over its own keys;
// merging the states by their logsumexps gives attention over the union, so no T×T score matrix is ever needed.
const merged = scope(() => {
  const keys = (x: typeof k, from: number, to: number) => slice(x, [null, null, [from, to]])
  const first = scaledDotProductAttention(q, keys(k, 0, 6), keys(v, 0, 6), { causal: true })
  // keyOffset: these keys sit at positions 6–11, which the causal mask needs to know.
  const second = scaledDotProductAttention(q, keys(k, 6, 12), keys(v, 6, 12), { causal: true, keyOffset: 6 })
  return attnState.merge({ o: first.out, lse: first.lse }, { o: second.out, lse: second.lse })
})
const close = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).every((x, i) => Math.abs(x - b[i]!) < 1e-5)
console.log(close(merged.o.dataSync(), full.out.dataSync()), close(merged.lse.dataSync(), full.lse.dataSync())) // => [true, true]

// The same loop, packaged: queries and keys in chunks of 4, each query chunk merging over the key chunks it sees.
const chunked = chunkedPrefill(q, k, v, { causal: true, chunkSize: 4 })
console.log(close(chunked.out.dataSync(), full.out.dataSync())) // => true
// #endregion recipe
