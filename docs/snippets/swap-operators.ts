// #region recipe
import { matmul, permute, random, reshape, scope, tensor, type Tensor } from '@heed/tensor'
import { flowAttention, lightningAttention, mask, s2Attention, scaledDotProductAttention } from '@heed/attention'

// Every operator takes q, k, v as [B, H, T, D] and returns { out, … }, so a layer can take the operator as a
// plain function argument: swapping attention is changing one value, not rewriting the layer.
type Operator = (q: Tensor, k: Tensor, v: Tensor) => Tensor
const operators: Record<string, Operator> = {
  softmax: (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true }).out,
  'sliding window': (q, k, v) => scaledDotProductAttention(q, k, v, { causal: true, mask: mask.window(16) }).out,
  s2: (q, k, v) => s2Attention(q, k, v, { blockSize: 8, localBlocks: 2, stride: 2 }).out,
  lightning: (q, k, v) => lightningAttention(q, k, v, { decay: 'tnl' }).out,
  flow: (q, k, v) => flowAttention(q, k, v, { causal: true }).out,
}

const T = 64, dModel = 32, heads = 4, headDim = dModel / heads
const rng = random.rng(11)
const W = { q: random.normal([dModel, dModel], { rng, std: 0.2 }), k: random.normal([dModel, dModel], { rng, std: 0.2 }), v: random.normal([dModel, dModel], { rng, std: 0.2 }), o: random.normal([dModel, dModel], { rng, std: 0.2 }) }

/** One self-attention layer, x [T, dModel] → [T, dModel], around whichever operator it is given. */
const selfAttention = (attention: Operator, x: Tensor): Tensor =>
  scope(() => {
    const split = (y: Tensor) => permute(reshape(y, [1, T, heads, headDim]), [0, 2, 1, 3])
    const out = attention(split(matmul(x, W.q)), split(matmul(x, W.k)), split(matmul(x, W.v)))
    return matmul(reshape(permute(out, [0, 2, 1, 3]), [T, dModel]), W.o)
  })

// Each operator is causal: changing the last token must leave every earlier output as it was.
const x = random.normal([T, dModel], { rng })
const last = x.dataSync().slice()
last.fill(5, (T - 1) * dModel)
const xChanged = tensor(last, [T, dModel])
const earlierRowsKept: Record<string, boolean> = {}
for (const [name, attention] of Object.entries(operators)) {
  const a = selfAttention(attention, x).dataSync()
  const b = selfAttention(attention, xChanged).dataSync()
  earlierRowsKept[name] = a.subarray(0, (T - 1) * dModel).every((v, i) => Math.abs(v - b[i]!) < 1e-6)
}
console.log(earlierRowsKept) // => {"softmax":true,"sliding window":true,"s2":true,"lightning":true,"flow":true}
// #endregion recipe
