// #region recipe
import { concat, random, slice, tensor, type Tensor } from '@heed/tensor'
import { multiHeadAttention, operators, type AttentionFn } from '@heed/attention'

// A layer takes its operator as a value: `multiHeadAttention({ attention })`. Swapping attention is changing that
// value; projections, RoPE, the KV cache and the parameters stay the layer's.
const dModel = 32, heads = 4, T = 48
const choices: Record<string, AttentionFn> = {
  softmax: operators.sdpa(),
  'sliding window': operators.window(16),
  s2: operators.s2({ blockSize: 8, localBlocks: 2, stride: 2, heads, kvHeads: heads }),
  lightning: operators.lightning({ decay: 'tnl' }),
  flow: operators.flow(),
}

const rng = random.rng(11)
const x = random.normal([1, T, dModel], { rng })
const changed = x.dataSync().slice()
changed.fill(5, (T - 1) * dModel)
const xChanged = tensor(changed, [1, T, dModel])
const rowsBefore = (y: Tensor) => y.dataSync().subarray(0, (T - 1) * dModel)

// Each operator is causal: changing the last token leaves every earlier output as it was.
const causal: Record<string, boolean> = {}
for (const [name, attention] of Object.entries(choices)) {
  const layer = multiHeadAttention({ dModel, heads, attention })
  const params = layer.init({ seed: 1 })
  const [a, b] = [layer.forward(params, x), layer.forward(params, xChanged)]
  const before = rowsBefore(b)
  causal[name] = rowsBefore(a).every((v, i) => Math.abs(v - before[i]!) < 1e-5)
}
console.log(causal) // => {"softmax":true,"sliding window":true,"s2":true,"lightning":true,"flow":true}

// Per head: a function of the head index. Here heads 0–1 keep softmax and heads 2–3 run Lightning.
const mixed = multiHeadAttention({ dModel, heads, attention: (h: number) => (h < 2 ? operators.sdpa() : operators.lightning({ decay: 'tnl' })) })
console.log(mixed.forward(mixed.init({ seed: 1 }), x).shape) // => [1, 48, 32]

// Operators with an incremental form decode through the layer's KV cache exactly: the sliding window, fed
// in chunks of 16, gives the one-shot result.
const window = multiHeadAttention({ dModel, heads, attention: choices['sliding window']! })
const wp = window.init({ seed: 1 })
const cache = window.cache({ batch: 1, capacity: T })
const chunks = [0, 16, 32].map(s => window.forward(wp, slice(x, [0, s, 0], [1, 16, dModel]), { cache }))
const streamed = concat(chunks, 1).dataSync()
const full = window.forward(wp, x).dataSync()
console.log(full.every((v, i) => Math.abs(v - streamed[i]!) < 1e-5)) // => true
// #endregion recipe
