import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { concat, matmul, memory, permute, reshape, scope, slice, tensor, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import { headPolicy, mask, lightningAttention, multiHeadAttention, operators, positionalMaps, recycledAttention, scaledDotProductAttention, type AttentionFn, type MhaParams } from '@heed/attention'
import { attend } from '@heed/attention/stream'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(77)
const [dModel, H, Hkv, hd, T] = [8, 4, 2, 4, 9]

/** q, k, v of the layer by hand (no RoPE): x·W split into heads. */
function heads(p: MhaParams, x: Tensor): [Tensor, Tensor, Tensor] {
  const split = (y: Tensor, n: number) => permute(reshape(y, [1, T, n, hd]), [0, 2, 1, 3])
  return [split(matmul(x, p.Wq), H), split(matmul(x, p.Wk), Hkv), split(matmul(x, p.Wv), Hkv)]
}
const outProj = (p: MhaParams, o: Tensor) => matmul(reshape(permute(o, [0, 2, 1, 3]), [1, T, H * hd]), p.Wo)
const kvHead = (x: Tensor, h: number) => slice(x, [null, [Math.floor(h / 2), Math.floor(h / 2) + 1]])
const qHead = (x: Tensor, h: number) => slice(x, [null, [h, h + 1]])

t.test('per-head operators in the layer = the operators called per head by hand', async t => {
  const before = memory().tensors
  const layer0 = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd })
  const params = layer0.init({ seed: 2, dtype: 'float64' })
  const x = tensor(randomArray(rand, T * dModel), [1, T, dModel], 'float64')
  const lightning = operators.lightning({ decay: 0.9 })
  const recycled = operators.recycled({ stride: 3, keep: 2 })
  // Head 0 alone (splits kv head 0's group), heads 1–2 (straddle both kv heads), head 3 its own.
  const per: AttentionFn[] = [lightning, recycled, recycled, operators.sdpa()]
  const layer = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd, attention: (h: number) => per[h]! })
  t.equal(layer.attention?.length, H)
  const got = scope(() => layer.forward(params, x).dataSync())
  const want = scope(() => {
    const [q, k, v] = heads(params, x)
    const o0 = lightningAttention(qHead(q, 0), kvHead(k, 0), kvHead(v, 0), { decay: 0.9 }).out
    // Recycled on heads 1–2 with each head reading its own kv head (its small cache votes per head).
    const q12 = slice(q, [null, [1, 3]])
    const k12 = concat([kvHead(k, 1), kvHead(k, 2)], 1)
    const v12 = concat([kvHead(v, 1), kvHead(v, 2)], 1)
    const o12 = recycledAttention(q12, k12, v12, { stride: 3, keep: 2, queryOffset: 0, keyOffset: 0 }).out
    const o3 = scaledDotProductAttention(qHead(q, 3), kvHead(k, 3), kvHead(v, 3), { causal: true }).out
    return outProj(params, concat([o0, o12, o3], 1)).dataSync()
  })
  assertClose(t, got, want, { atol: 1e-12, rtol: 1e-11, msg: 'layer = per-head calls' })
  // One operator for every head: the same as the default layer when it is sdpa.
  const same = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd, attention: operators.sdpa() })
  assertClose(t, scope(() => same.forward(params, x).dataSync()), scope(() => layer0.forward(params, x).dataSync()), { atol: 1e-12, rtol: 1e-12, msg: 'attention: sdpa = default' })
  for (const w of [x, ...Object.values(params)]) (w as Tensor).dispose()
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('attend through a layer with streaming-capable operators equals one-shot', async t => {
  const before = memory().tensors
  const maps = scope(() => positionalMaps(tensor(randomArray(rand, 40 * 3), [40, 3], 'float32'), { Wq: tensor(randomArray(rand, 3 * H * hd), [3, H * hd], 'float32'), Wk: tensor(randomArray(rand, 3 * H * hd), [3, H * hd], 'float32') }, { heads: H }))
  const cases: [string, AttentionFn | ((h: number) => AttentionFn), (readonly ReturnType<typeof headPolicy.full>[]) | undefined][] = [
    ['lightning (prefix form)', operators.lightning({ decay: 'tnl' }), undefined],
    ['sdpa heads 0–1, lightning heads 2–3', (h: number) => (h < 2 ? operators.sdpa() : operators.lightning({ decay: 0.8 })), undefined],
    ['positional maps (merge form)', operators.positional(maps), undefined],
    ['sdpa over a streaming kv head (merged passes)', operators.sdpa(), [headPolicy.full(), headPolicy.streaming(2, 4)]],
  ]
  for (const [name, attention, policies] of cases) {
    const layer = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd, attention })
    const params = layer.init({ seed: 5 })
    const N = 30
    const xs = Float32Array.from(randomArray(rand, N * dModel))
    const chunks: TokenChunk[] = [{ tokens: tensor(xs.subarray(0, 7 * dModel), [7, dModel], 'float32'), positions: 0 }]
    for (let p = 7; p < N; p += 4) chunks.push({ tokens: tensor(xs.subarray(p * dModel, Math.min(N, p + 4) * dModel), [Math.min(N, p + 4) - p, dModel], 'float32'), positions: p })
    const outs = await lastValueFrom(from(chunks).pipe(attend(layer, () => layer.cache({ batch: 1, capacity: N, chunk: 4, ...(policies ? { policies } : {}) }), params), toArray()))
    const got = outs.flatMap(y => Array.from(y.dataSync()))
    for (const y of outs) y.dispose()
    // attend borrows its chunks: the test made them and frees them
    for (const c of chunks) c.tokens.dispose()
    const x = tensor(xs, [N, dModel], 'float32')
    // The streaming kv head (query heads 2–3) sees sinks + recent; the full one everything.
    const m = policies ? mask.perHead(H, h => (h < 2 ? mask.all : mask.streaming(2, 4))) : undefined
    const one = scope(() => layer.forward(params, x, m ? { mask: m } : {}).dataSync())
    assertClose(t, got, one, { atol: 3e-5, rtol: 3e-4, msg: `${name}: stream = one-shot` })
    for (const w of [x, ...Object.values(params)]) (w as Tensor).dispose()
  }
  maps.q.dispose()
  maps.k.dispose()
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('a cache with an operator that has no incremental form is a clear error', async t => {
  const layer = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd, attention: (h: number) => (h === 3 ? operators.act({ sinks: [0] }) : operators.sdpa()) })
  const params = layer.init({ seed: 1 })
  const x = tensor(randomArray(rand, 3 * dModel), [3, dModel], 'float32')
  const cache = layer.cache({ batch: 1, capacity: 8 })
  t.throws(() => layer.forward(params, x, { cache }), { name: 'ValueError', message: /act.*heads \[3, 4\)|heads \[3, 4\).*act/ })
  // a softmax operator cannot read kv heads that keep no keys
  const sd = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd })
  const recurrent = sd.cache({ batch: 1, capacity: 8, policies: [headPolicy.recurrent(), headPolicy.full()] })
  t.throws(() => sd.forward(params, x, { cache: recurrent }), { name: 'ValueError', message: /policy 'recurrent'/ })
  t.throws(() => sd.cache({ batch: 1 }), { name: 'ValueError', message: /capacity/ }, 'full heads need a capacity')
  t.throws(() => multiHeadAttention({ dModel, heads: H, attention: 3 as never }), { name: 'ArgumentError' })
  t.throws(() => multiHeadAttention({ dModel, heads: H, attention: () => 1 as never }), /factory/)
  t.throws(() => multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd, attention: operators.flow() }).forward(params, x, { causal: true, mask: mask.causal }), /mask/)
  for (const w of [x, ...Object.values(params)]) (w as Tensor).dispose()
  cache.dispose()
  recurrent.dispose()
})

t.test('recurrent operators stream through attend with their constant-size state, not a KV cache', async t => {
  const { noLeaks } = await import('../../tensor/test/helpers/leaks.js')
  const N = 120
  const xs = Float32Array.from(randomArray(rand, N * dModel))
  const cases: [string, AttentionFn | ((h: number) => AttentionFn)][] = [
    ['lightning', operators.lightning({ decay: 'tnl' })],
    ['flow', operators.flow()],
    ['lightning heads 0–1 (recurrent kv head), sdpa heads 2–3 (full kv head)', (h: number) => (h < 2 ? operators.lightning({ decay: 0.8 }) : operators.sdpa())],
    ['scaled lightning', operators.scaled(operators.lightning({ decay: 0.9 }), [1, 0.5, 2, 1])],
  ]
  for (const [name, attention] of cases)
    await noLeaks(t, `${name}: no leaks`, async () => {
      const layer = multiHeadAttention({ dModel, heads: H, kvHeads: Hkv, headDim: hd, attention })
      const params = layer.init({ seed: 9 })
      const mixed = name.includes('sdpa')
      const chunks: TokenChunk[] = [{ tokens: tensor(xs.subarray(0, 5 * dModel), [5, dModel], 'float32'), positions: 0 }]
      for (let p = 5; p < N; p++) chunks.push({ tokens: tensor(xs.subarray(p * dModel, (p + 1) * dModel), [1, dModel], 'float32'), positions: p })
      const bytes: number[] = []
      let retained: number[] = []
      // no capacity needed when every kv head is recurrent: nothing grows with the stream
      const cache = () => {
        const c = layer.cache(mixed ? { batch: 1, capacity: N } : { batch: 1 })
        const orig = c.append.bind(c)
        c.append = (k, v, pos) => {
          orig(k, v, pos)
          bytes.push(c.bytes())
          retained = [c.retained(0), c.retained(1)]
        }
        return c
      }
      const outs = await lastValueFrom(from(chunks).pipe(attend(layer, cache, params), toArray()))
      const got = outs.flatMap(y => Array.from(y.dataSync()))
      for (const y of outs) y.dispose()
      for (const c of chunks) c.tokens.dispose()
      const x = tensor(xs, [N, dModel], 'float32')
      const one = scope(() => layer.forward(params, x).dataSync())
      x.dispose()
      assertClose(t, got, one, { atol: 5e-5, rtol: 5e-4, msg: `${name}: stream = one-shot` })
      // bytes() after an append counts the states of the chunk before it: constant from the second append on
      t.equal(new Set(bytes.slice(1)).size, 1, `${name}: the cache's bytes stay at ${bytes[1]} over ${N} tokens`)
      t.same(retained, mixed ? [0, N] : [0, 0], `${name}: keys kept per kv head: ${retained}`)
      for (const w of Object.values(params)) (w as Tensor).dispose()
    })
})
