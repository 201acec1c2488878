// A 500-step training run of a tiny transformer (embedding, one pre-norm block, tied output, fused crossEntropy,
// adamw) leaves no live tensors beyond its parameters and optimizer state: after every step the live count equals
// the count right after init, and disposing params and state returns to the baseline (issue 15).
import t from 'tap'
import { adamw, crossEntropy, dispose, gather, matmul, memory, random, reshape, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { rmsNorm, transformerBlock, type TransformerBlockParams } from '../src/index.js'

interface Params {
  readonly emb: Tensor
  readonly block: TransformerBlockParams
  readonly normF: Tensor
}

t.test('500 training steps leave only the parameters and the optimizer state alive', async t => {
  const V = 11
  const d = 16
  const B = 2
  const T = 8
  const base = memory().tensors
  const blk = transformerBlock({ dModel: d, heads: 2 })
  let params: Params = { emb: random.normal([V, d], { seed: 1, std: 0.1 }), block: blk.init({ seed: 2 }), normF: random.uniform([d], { seed: 3, low: 0.9, high: 1.1 }) }
  const opt = adamw({ lr: 1e-2 })
  let state = opt.init(params)
  const live = memory().tensors
  const leaves = (x: unknown): number => (x instanceof Object && 'dispose' in x ? 1 : x && typeof x === 'object' ? Object.values(x).reduce((s: number, v) => s + leaves(v), 0) : 0)
  t.equal(live - base, leaves(params) + leaves(state.slots), 'init made the params and the Adam moments')
  const vg = valueAndGrad((p: Params, x: Tensor, y: Tensor) => {
    const h = blk.forward(p.block, gather(p.emb, x, 0))
    return crossEntropy(reshape(matmul(rmsNorm(h, p.normF), p.emb, { transposeB: true }), [B * T, V]), y)
  })
  let first = NaN
  let last = NaN
  let extra = 0
  for (let s = 0; s < 500; s++) {
    // a fixed pattern to learn: next token = (token + 1) mod V
    const xs = Int32Array.from({ length: B * T }, (_, i) => (i * 3 + s) % V)
    const x = tensor(xs, [B, T], 'int32')
    const y = tensor(xs.map(v => (v + 1) % V), [B * T], 'int32')
    const [loss, grads] = vg(params, x, y)
    ;[params, state] = opt.step(grads, state, params)
    const v = loss.dataSync()[0]!
    if (s === 0) first = v
    last = v
    dispose([loss, grads, x, y])
    extra = Math.max(extra, memory().tensors - live)
  }
  t.equal(extra, 0, 'no step leaves a tensor behind')
  t.ok(last < first / 2, `the model learns (loss ${first.toFixed(3)} → ${last.toFixed(3)})`)
  dispose([params, state])
  t.equal(memory().tensors, base, 'disposing params and state returns to the baseline')
})
