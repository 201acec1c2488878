// #region recipe
import { add, adamw, clipByGlobalNorm, dispose, matmul, mean, mul, random, scope, sub, tanh, trackTensors, valueAndGrad, warmupCosine, type Tensor } from '@heed/tensor'

// Fit y = tanh(3x) on [-1, 1] with a one-hidden-layer MLP: parameters are a plain object of tensors (a pytree).
const rng = random.rng(0)
const xs = random.uniform([256, 1], { rng, low: -1, high: 1 })
const ys = tanh(mul(xs, 3))
type Params = { W1: Tensor<'float32'>; b1: Tensor<'float32'>; W2: Tensor<'float32'>; b2: Tensor<'float32'> }
let params: Params = {
  W1: random.normal([1, 32], { rng, std: 1 }),
  b1: random.normal([32], { rng, std: 0.1 }),
  W2: random.normal([32, 1], { rng, std: 1 / Math.sqrt(32) }),
  b2: random.normal([1], { rng, std: 0.1 }),
}

// The loss as a function of the parameters; valueAndGrad gives the loss and a gradient tree shaped like params.
const loss = (p: Params): Tensor => scope(() => {
  const h = tanh(add(matmul(xs, p.W1), p.b1))
  const err = sub(add(matmul(h, p.W2), p.b2), ys)
  return mean(mul(err, err))
})
const lossAndGrads = valueAndGrad(loss)

// AdamW with warm-up + cosine decay; `step` frees the old params and state and returns the new ones.
const steps = 200
const opt = adamw({ lr: warmupCosine({ lr: 0.03, warmup: 10, total: steps }), weightDecay: 0 })
let state = opt.init(params)
const tracker = trackTensors() // counts the tensors made from here on that are still alive
let first = 0
let last = 0
for (let i = 0; i < steps; i++) {
  const [value, grads] = lossAndGrads(params)
  const clipped = clipByGlobalNorm(grads, 1) // PyTorch's clip_grad_norm_
  ;[params, state] = opt.step(clipped.grads, state, params)
  const v = (await value.data())[0]!
  if (i === 0) first = v
  last = v
  dispose([value, grads, clipped]) // gradients are the caller's: nothing else frees them
}
console.log(first > 0.1, last < 0.01) // => [true, true]
dispose([params, state])
console.log(tracker.live().length) // => 0
dispose([xs, ys])
// #endregion recipe
