// #region recipe
import { from, lastValueFrom, toArray } from 'rxjs'
import { dispose, random, tensor, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import { multiHeadAttention } from '@heed/attention'
import { attend } from '@heed/attention/stream'

const dModel = 32
const layer = multiHeadAttention({ dModel, heads: 4, kvHeads: 2, rope: true })
const params = layer.init({ seed: 1 })

// Hidden states of a 40-token sequence: a 32-token prompt, then 8 tokens generated one at a time.
const hidden = random.normal([40, dModel], { rng: random.rng(7) }).dataSync()
const rows = (from: number, to: number): Tensor => tensor(hidden.subarray(from * dModel, to * dModel), [to - from, dModel])
const chunks: TokenChunk[] = [{ tokens: rows(0, 32), positions: 0 }]
for (let p = 32; p < 40; p++) chunks.push({ tokens: rows(p, p + 1), positions: p })

// A factory, not a cache: each subscription gets its own cache, freed when the subscription ends.
const outputs = await lastValueFrom(from(chunks).pipe(attend(layer, () => layer.cache({ batch: 1, capacity: 64 }), params), toArray()))
console.log(outputs.map(y => y.shape[0])) // => [32, 1, 1, 1, 1, 1, 1, 1, 1]

// Prefill plus decode equals causal attention over the whole sequence at once.
const whole = rows(0, 40)
const oneShot = layer.forward(params, whole).dataSync()
const streamed = outputs.flatMap(y => Array.from(y.dataSync()))
console.log(streamed.every((v, i) => Math.abs(v - oneShot[i]!) < 1e-5)) // => true
// attend borrowed the chunks (operators never dispose what they receive): we made them, we free them
dispose([outputs, whole, params, chunks])
// #endregion recipe
