// #region recipe
import { dispose, mul, random, reshape, rsqrt, scope, square, sum, tensor, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention } from '@heed/attention'
import { disposeTitansState, initMemoryWeights, memoryForward, titansState, titansStep } from '@heed/memory'

// A passkey task: 1,024 tokens of repeating filler with "PASS d" planted near the start. Every position writes
// the association token → next token; at the end the query is PASS, and the answer is whichever digit's
// embedding is nearest to what comes back.
const L = 1024, D = 64, FILLER = 16, PASS = FILLER, DIGIT = FILLER + 1, VOCAB = FILLER + 11
const g = random.rng(2026)
const emb = scope(() => {
  const e = random.normal([VOCAB, D], { rng: g })
  return mul(e, rsqrt(sum(square(e), { axis: 1, keepDims: true }))) // unit rows
})
const table = emb.dataSync()
const embed = (ids: number[]): Tensor => tensor(ids.flatMap(i => Array.from(table.subarray(i * D, (i + 1) * D))), [ids.length, D])
const nearestDigit = (y: ArrayLike<number>): number => {
  const score = (d: number) => table.subarray((DIGIT + d) * D, (DIGIT + d + 1) * D).reduce((s, x, i) => s + x * y[i]!, 0)
  return Array.from({ length: 10 }, (_, d) => d).reduce((best, d) => (score(d) > score(best) ? d : best))
}

const digit = 7, depth = 100
const tokens = Array.from({ length: L }, (_, i) => (i === depth ? PASS : i === depth + 1 ? DIGIT + digit : i % FILLER))
tokens[L - 1] = PASS
const keys = embed(tokens.slice(0, L - 1))
const values = embed(tokens.slice(1))
const query = embed([PASS])

// Titans: a d×d linear memory written by one gradient step per token (chunks of 16), with momentum.
const weights = initMemoryWeights({ keyDim: D, depth: 1, init: 'zeros' })
const start = titansState(weights)
const { state, out } = titansStep(start, { keys, values, gates: { theta: 0.2, eta: 0.6, alpha: 0 } }, { chunkSize: 16, activation: 'tanh' })
const recalled = scope(() => memoryForward(state.weights, query, 'tanh').dataSync())
console.log(nearestDigit(recalled)) // => 7

// Sliding-window attention over the last 256 tokens cannot see position 100.
const rows = (x: Tensor, n: number) => reshape(x, [1, 1, n, D])
const windowed = scope(() =>
  scaledDotProductAttention(rows(query, 1), rows(keys, L - 1), rows(values, L - 1), { causal: true, mask: mask.window(256), queryOffset: L - 1, scale: 16 }).out.dataSync(),
)
console.log(nearestDigit(windowed) === digit) // => false

console.log(`memory state: ${state.weights.map(w => w.shape.join('×')).join(', ')} floats, whatever the length`)
dispose([emb, keys, values, query, weights, out])
disposeTitansState(start)
disposeTitansState(state)
// #endregion recipe
