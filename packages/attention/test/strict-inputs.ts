/** Bad inputs to the attention entry points: typed errors naming the op and the argument, never a TypeError or a silent default. */
import t from 'tap'
import { ArgumentError, ShapeError, ValueError, zeros } from '@heed/tensor'
import { agentAttention, multiHeadAttention, scaledDotProductAttention } from '@heed/attention'

const q = zeros([1, 1, 4, 4])

t.test('scaledDotProductAttention: missing or non-tensor arguments, unknown options', async t => {
  const sdpa = scaledDotProductAttention as unknown as (...a: unknown[]) => unknown
  t.throws(() => sdpa(), { name: 'ArgumentError', op: 'scaledDotProductAttention', arg: 'q' }, 'no arguments')
  t.throws(() => sdpa(null, q, q), { name: 'ArgumentError', arg: 'q' }, 'null q')
  t.throws(() => sdpa(q, [[1]], q), { name: 'ArgumentError', arg: 'k' }, 'a plain array as k')
  t.throws(() => sdpa(q, q, q, null), { name: 'ArgumentError', arg: 'opts' }, 'null options')
  t.throws(() => sdpa(q, q, q, { casual: true }), { name: 'ArgumentError', arg: 'casual', message: /did you mean causal\?/ }, 'misspelt causal')
  t.throws(() => sdpa(q, q, q, { causal: 'yes' }), { name: 'ArgumentError', arg: 'causal' }, 'causal not a boolean')
  // the layer's own keys are stripped by the operator wrappers, so sdpa never needs to accept them
  t.throws(() => sdpa(q, q, q, { causal: true, headOffset: 0 }), { name: 'ArgumentError', op: 'scaledDotProductAttention', arg: 'headOffset' }, 'a layer-only key')
})

t.test('multiHeadAttention: no options, unknown options, a bogus rope', async t => {
  const mha = multiHeadAttention as unknown as (o?: unknown) => unknown
  t.throws(() => mha(), { name: 'ArgumentError', op: 'multiHeadAttention', arg: 'opts' }, 'no options')
  t.throws(() => mha(null), ArgumentError, 'null options')
  t.throws(() => mha({ dModel: 8, heads: 2, rope: 'bogus' }), { name: 'ArgumentError', arg: 'rope' }, "rope: 'bogus'")
  t.throws(() => mha({ dModel: 8, heads: 2, rope: { bass: 10 } }), { name: 'ArgumentError', message: /did you mean base\?/ }, 'misspelt rope option')
  t.throws(() => mha({ dModel: 8, heads: 2, kvheads: 1 }), { name: 'ArgumentError', arg: 'kvheads', message: /did you mean kvHeads\?/ })
  const layer = multiHeadAttention({ dModel: 8, heads: 2, rope: true })
  const params = layer.init({ seed: 1 })
  const x = zeros([1, 3, 8])
  t.throws(() => layer.forward(params, x, { casual: false } as never), { name: 'ArgumentError', op: 'multiHeadAttention.forward', arg: 'casual' })
  for (const p of Object.values(params)) p.dispose()
  x.dispose()
})

t.test('agentAttention: causal and masks are unsupported modes, not ignored', async t => {
  t.throws(() => agentAttention(q, q, q, { causal: true } as never), { name: 'ValueError', arg: 'causal', message: /non-causal only/ })
  t.throws(() => agentAttention(q, q, q, { mask: {} } as never), ValueError)
  t.throws(() => agentAttention(q, q, q, { numAgent: 2 } as never), { name: 'ArgumentError', message: /did you mean numAgents\?/ })
  t.throws(() => agentAttention(q, zeros([1, 1, 4, 3]), q, { numAgents: 2 }), ShapeError)
  const { out } = agentAttention(q, q, q, { numAgents: 2, causal: false } as never)
  t.same(out.shape, [1, 1, 4, 4], 'causal: false is the mode it has')
  out.dispose()
})

t.test('landmark and HiLo attention: modes they do not have are errors, not ignored', async t => {
  const { landmarkAttention, hiloAttention } = await import('@heed/attention')
  const x = zeros([1, 1, 6, 4])
  t.throws(() => landmarkAttention(x, x, x, { blockSize: 2, causal: false } as never), { name: 'ValueError', arg: 'causal', message: /causal by construction/ })
  t.throws(() => landmarkAttention(x, x, x, { blockSize: 2, topk: 1 } as never), { name: 'ArgumentError', message: /did you mean topK\?/ })
  t.throws(() => hiloAttention(x, x, x, { grid: [2, 3], causal: true } as never), { name: 'ValueError', arg: 'causal' })
  t.throws(() => hiloAttention(x, x, x, { grid: [2, 3], windw: 1 } as never), { name: 'ArgumentError', message: /did you mean window\?/ })
  x.dispose()
})
