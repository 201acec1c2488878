/**
 * Issue 16's quick mode: every trained run of `npm run bench -- lm-operators` on a tiny config — a few trainLM
 * steps inside transformerLM (loss finite, gradients reaching the operator's own parameters), then streaming decode
 * through the cache, equal to the full recomputation wherever the operator is exact.
 */
import t from 'tap'
import { lastValueFrom, toArray } from 'rxjs'
import { dispose, noGrad, scope, tensor, valueAndGrad } from '@heed/tensor'
import { flattenParams, lmLoss, transformerLM, type TransformerLMParams } from '@heed/attention'
import { trainLM } from '@heed/attention/stream'
import { TRAINED, type LMShape } from '../bench/lm-operators-specs.js'

const shape: LMShape = { layers: 2, heads: 4, kvHeads: 2, dModel: 16, context: 16 }
const V = 11
const vocab = Array.from({ length: V }, (_, i) => String.fromCharCode(97 + i))
let seed = 7
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
const text = Int32Array.from({ length: 400 }, (_, i) => (i % 7 === 0 ? 0 : Math.floor(rnd() * V)))

const norm = (x: unknown): number => {
  let s = 0
  for (const leaf of Object.values(flattenParams(x))) for (const v of leaf.dataSync()) s += v * v
  return Math.sqrt(s)
}

for (const run of TRAINED) {
  t.test(`${run.id}: trains inside transformerLM and decodes through the ${run.decode} path`, async t => {
    const lm = transformerLM({ vocab: V, ...shape, ...(run.attention ? { attention: run.attention(shape) } : {}) })
    // Gradients: finite, and reaching the operator's own parameters where it has some.
    const params = lm.init({ seed: 1 })
    const x = tensor(text.subarray(0, 2 * shape.context), [2, shape.context], 'int32')
    const y = tensor(text.subarray(1, 2 * shape.context + 1), [2, shape.context], 'int32')
    const [value, grads] = valueAndGrad((p: TransformerLMParams) => lmLoss(lm.forward(p, x), y))(params)
    const loss = value.dataSync()[0]!
    t.ok(Number.isFinite(loss), `loss finite (${loss.toFixed(3)})`)
    t.ok(Number.isFinite(norm(grads)) && norm(grads.blocks[0]!.attn.Wo) > 0, 'gradients finite and reach the attention output map')
    if (grads.ops) t.ok(norm(grads.ops) > 0, "gradients reach the operator's own parameters")
    dispose([value, grads, x, y])

    // A few trainLM steps.
    const events = await lastValueFrom(trainLM({ lm, train: text, vocab, steps: 3, batch: 2, lr: 3e-3, warmup: 1, evalEvery: 0, params }).pipe(toArray()))
    const steps = events.filter(e => e.kind === 'step')
    t.equal(steps.length, 3, 'three steps')
    t.ok(steps.every(e => e.kind === 'step' && Number.isFinite(e.loss)), 'every step loss finite')

    // Decode: a 10-token prompt, then 6 one-token calls; each step's logits against the full prefix recomputed.
    const prompt = 10
    const full = (n: number): ArrayLike<number> => noGrad(() => scope(() => lm.forward(params, tensor(text.subarray(0, n), [1, n], 'int32')).dataSync()))
    if (run.decode === 'cache') {
      const caches = lm.cache({ batch: 1, capacity: 32, chunk: 4, ...(run.policies ? { policies: run.policies(shape) } : {}) })
      try {
        let worst = 0
        for (let n = prompt; n <= prompt + 6; n++) {
          const step = n === prompt ? text.subarray(0, prompt) : text.subarray(n - 1, n)
          const got = noGrad(() => scope(() => lm.forward(params, tensor(step, [1, step.length], 'int32'), { caches }).dataSync()))
          const want = full(n)
          for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(got[got.length - V + j]! - want[want.length - V + j]!))
        }
        if (run.exact) t.ok(worst < 2e-4, `cached decode = full recomputation (max |Δlogit| ${worst.toExponential(1)})`)
        // The operators that stream their own state (no keys kept): the cache holds what the table says they hold.
        if (/^(combiner|titans-|lightning$|flow$|agent$)/.test(run.id)) {
          const held = caches.reduce((n, c) => n + c.bytes(), 0)
          t.equal(held, run.bytes(shape, prompt + 6).held, `the cache holds ${held} bytes after ${prompt + 6} tokens, as the table's formula says`)
        }
      } finally {
        for (const c of caches) c.dispose()
      }
    } else {
      // No incremental form: the layer refuses a cache with a clear error, and decode recomputes the prefix.
      const caches = lm.cache({ batch: 1, capacity: 32 })
      t.throws(() => noGrad(() => scope(() => lm.forward(params, tensor(text.subarray(0, prompt), [1, prompt], 'int32'), { caches }))), /incremental/)
      for (const c of caches) c.dispose()
      const a = full(prompt + 3)
      t.ok(Array.from(a).every(Number.isFinite), 'decode by recomputation gives finite logits')
    }
    dispose(params)
  })
}
