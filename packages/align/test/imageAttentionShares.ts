import t from 'tap'
import { memory, tensor } from '@heed/tensor'
import { scaledDotProductAttention } from '@heed/attention'
import { referenceProbs } from '@heed/attention/testing'
import { imageAttentionShares } from '@heed/align'
import { prng, randomArray } from '../../tensor/test/helpers/numeric.js'

t.test('image attention shares equal the dense attention mass on each image', async t => {
  const rand = prng(3)
  const [B, H, Tq, Tk, D] = [1, 2, 3, 10, 4]
  const qv = randomArray(rand, B * H * Tq * D, -2, 2)
  const kv = randomArray(rand, B * H * Tk * D, -2, 2)
  const images = [[0, 1, 2], [5, 6]]
  const base = memory().tensors
  const q = tensor(qv, [B, H, Tq, D], 'float64')
  const k = tensor(kv, [B, H, Tk, D], 'float64')
  const { out, lse } = scaledDotProductAttention(q, k, k)
  const sharesT = imageAttentionShares(q, k, lse, images)
  const shares = await sharesT.data()
  sharesT.dispose()
  // dense float64: P rows averaged over heads and query rows, summed per image, normalised over images
  const P = referenceProbs({ values: qv, shape: [B, H, Tq, D] }, { values: kv, shape: [B, H, Tk, D] })
  const mass = images.map(set => {
    let m = 0
    for (let r = 0; r < B * H * Tq; r++) for (const j of set) m += P.p[r * Tk + j]!
    return m / (B * H * Tq)
  })
  const total = mass.reduce((a, b) => a + b, 0)
  t.equal(shares.length, 2)
  mass.forEach((m, i) => t.ok(Math.abs(shares[i]! - m / total) < 1e-12, `image ${i}: ${shares[i]} vs ${m / total}`))
  t.throws(() => imageAttentionShares(q, k, lse, []), /images/)
  for (const x of [q, k, out, lse]) x.dispose()
  t.equal(memory().tensors, base)
})
