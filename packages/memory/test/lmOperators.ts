// memoryOperators.titans inside transformerLM: cached decode streams each layer's Titans state and equals the full
// recomputation at every decoded position, across memory-chunk, segment (MAC) and window (MAG/MAL) boundaries, with
// a batch of two streams (each row its own memory); the state a cache holds stops growing.
import t from 'tap'
import { dispose, noGrad, scope, tensor } from '@heed/tensor'
import { transformerLM } from '@heed/attention'
import { memoryOperators } from '@heed/memory'

const V = 7
const B = 2
const ids = Int32Array.from({ length: B * 40 }, (_, i) => (i * 5 + (i >> 3)) % V)
const row = (b: number, n: number) => ids.subarray(b * 40, b * 40 + n)
const batch = (from: number, to: number) => Int32Array.from({ length: B * (to - from) }, (_, i) => row(Math.floor(i / (to - from)), to)[from + (i % (to - from))]!)

for (const variant of ['MAC', 'MAG', 'MAL'] as const)
  t.test(`titans ${variant} in transformerLM: cached decode = full recomputation; bounded state`, async t => {
    const lm = transformerLM({ vocab: V, layers: 2, heads: 2, dModel: 8, context: 32, attention: () => memoryOperators.titans(variant, { segment: 5, window: 3, chunkSize: 3, maxLr: 0.5 }) })
    const params = lm.init({ seed: 2 })
    const caches = lm.cache({ batch: B, capacity: 40, chunk: 2 })
    const logits = (x: Int32Array, n: number, o = {}) => noGrad(() => scope(() => lm.forward(params, tensor(x, [B, n], 'int32'), o).dataSync()))
    try {
      const prompt = 4
      let worst = 0
      const bytes: number[] = []
      for (let n = prompt; n <= 30; n++) {
        const got = n === prompt ? logits(batch(0, prompt), prompt, { caches }) : logits(batch(n - 1, n), 1, { caches })
        bytes.push(caches.reduce((s, c) => s + c.bytes(), 0))
        if (n > 14) continue
        const want = logits(batch(0, n), n)
        const step = got.length / B
        for (let b = 0; b < B; b++)
          for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(got[(b + 1) * step - V + j]! - want[(b + 1) * n * V - V + j]!))
      }
      t.ok(worst < 1e-4, `decoded logits = full recomputation to 14 tokens (max |Δ| ${worst.toExponential(1)})`)
      // The memory's weights and momentum are fixed in size; the pending chunk (< 3 rows) and the window or segment
      // (< 5 rows) cycle, so what the cache holds after 30 tokens is what it held within the first cycle.
      t.ok(Math.max(...bytes.slice(15)) <= Math.max(...bytes.slice(0, 16)), `state bytes bounded (${Math.min(...bytes)}–${Math.max(...bytes)})`)
    } finally {
      for (const c of caches) c.dispose()
      dispose(params)
    }
  })
