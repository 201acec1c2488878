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

t.test('mask and scoreMod factories, Mask/ScoreMod/CacheOverflowError constructors: typed errors naming them', async t => {
  const { mask, scoreMod, alibiSlopes, Mask, ScoreMod, CacheOverflowError } = await import('@heed/attention')
  const any = (f: unknown) => f as (...a: unknown[]) => unknown
  t.throws(() => new (Mask as unknown as new (n?: unknown) => unknown)(), { name: 'ArgumentError', op: 'Mask', arg: 'node' })
  t.throws(() => new (ScoreMod as unknown as new (n?: unknown) => unknown)({ kind: 'bogus' }), { name: 'ArgumentError', op: 'ScoreMod' })
  t.throws(() => new (CacheOverflowError as unknown as new () => unknown)(), { name: 'ValueError', op: 'CacheOverflowError', arg: 'kvHead' })
  t.equal(new CacheOverflowError(0, 4, 3, 2).op, 'kvCache.append', 'a real overflow still names the append')
  t.throws(() => mask.window(2 ** 40), { name: 'ValueError', op: 'mask.window', arg: 'size', message: /32-bit/ })
  t.throws(() => mask.chunk(2 ** 31), { name: 'ValueError', op: 'mask.chunk' })
  t.throws(() => mask.sinks(2 ** 40), { name: 'ValueError', op: 'mask.sinks' })
  t.throws(() => mask.streaming(-1, 4), { name: 'ValueError', op: 'mask.streaming', arg: 'nSink' })
  t.throws(() => mask.perHead(2 ** 40, () => mask.all), { name: 'ValueError', op: 'mask.perHead', arg: 'heads' })
  t.throws(() => any(mask.segments)(), { name: 'ArgumentError', op: 'mask.segments', arg: 'ids' })
  t.throws(() => any(mask.segments)(2 ** 40), { name: 'ArgumentError', op: 'mask.segments' })
  t.throws(() => any(mask.segments)({ a: 1 }), { name: 'ArgumentError', op: 'mask.segments' })
  t.ok(mask.segments([0, 0, 1]) instanceof Mask, 'an id array is still a mask')
  t.throws(() => alibiSlopes(2 ** 40), { name: 'ValueError', op: 'alibiSlopes', arg: 'heads' })
  t.throws(() => scoreMod.alibi(2 ** 40), { name: 'ValueError', op: 'scoreMod.alibi' })
  t.throws(() => any(scoreMod.alibi)(null), { name: 'ArgumentError', op: 'scoreMod.alibi' })
  t.throws(() => any(scoreMod.relativeBias)([0]), { name: 'ArgumentError', op: 'scoreMod.relativeBias', arg: 'opts' })
  t.throws(() => any(scoreMod.relativeBias)('x', { heads: 1, maxDistance: 0 }), { name: 'ArgumentError', arg: 'table' })
  t.throws(() => any(scoreMod.relativeBias)([0], { heads: 1, maxDistance: 0, maxDist: 1 }), { name: 'ArgumentError', message: /did you mean maxDistance\?/ })
})

t.test('kvCache, cachedAttention, mergeAttention, attnState.identity: bad arguments are typed errors naming them', async t => {
  const { kvCache, cachedAttention, mergeAttention, attnState } = await import('@heed/attention')
  const any = (f: unknown) => f as (...a: unknown[]) => unknown
  t.throws(() => kvCache({ batch: 1, kvHeads: 1, headDim: 4, capacity: 8, capacty: 8 } as never), { name: 'ArgumentError', op: 'kvCache', message: /did you mean capacity\?/ })
  const cache = kvCache({ batch: 1, kvHeads: 1, headDim: 4, capacity: 8 })
  t.throws(() => any(cachedAttention)(), { name: 'ArgumentError', op: 'cachedAttention', arg: 'q' })
  t.throws(() => any(cachedAttention)(q, 'x'), { name: 'ArgumentError', op: 'cachedAttention', arg: 'cache' })
  t.throws(() => any(cachedAttention)(q, cache, { casual: true }), { name: 'ArgumentError', op: 'cachedAttention', message: /did you mean causal\?/ })
  cache.dispose()
  t.throws(() => cachedAttention(q, cache), { name: 'DisposedError', op: 'cachedAttention' })
  t.throws(() => any(mergeAttention)(), { name: 'ArgumentError', op: 'mergeAttention', arg: 'parts' })
  t.throws(() => any(mergeAttention)('x'), { name: 'ArgumentError', op: 'mergeAttention' })
  t.throws(() => any(mergeAttention)([{ out: q, lse: [[0]] }]), { name: 'ArgumentError', arg: 'parts[0].lse' })
  t.throws(() => any(attnState.identity)(), { name: 'ArgumentError', op: 'attnState.identity', arg: 'like' })
  t.throws(() => any(attnState.identity)(q, { dtype: 'float32' }), { name: 'DTypeError', op: 'attnState.identity', arg: 'dtype' })
  t.throws(() => attnState.identity([2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20]), { name: 'ValueError', op: 'attnState.identity' })
  const d = zeros([1, 1, 2, 2])
  d.dispose()
  t.throws(() => attnState.identity(d), { name: 'DisposedError', op: 'attnState.identity' })
})

t.test('operator helpers (moh, agent, lightning, duo) and the KJV/tokenizer helpers: typed errors naming them', async t => {
  const api = await import('@heed/attention')
  const any = (f: unknown) => f as (...a: unknown[]) => unknown
  const d = zeros([1, 1, 4, 4])
  d.dispose()
  await t.rejects(any(api.activeHeads)() as Promise<unknown>, { name: 'ArgumentError', op: 'activeHeads', arg: 'gates' })
  await t.rejects(api.activeHeads(d), { name: 'DisposedError', op: 'activeHeads' })
  await t.rejects(api.activeHeads(q), { name: 'ShapeError', op: 'activeHeads' })
  t.throws(() => any(api.mohBalanceLoss)(null, q), { name: 'ArgumentError', op: 'mohBalanceLoss', arg: 'probs' })
  t.throws(() => any(api.agentMaps)(), { name: 'ArgumentError', op: 'agentMaps', arg: 'q' })
  t.throws(() => api.agentMaps(q, q, { numAgent: 4 } as never), { name: 'ArgumentError', op: 'agentMaps', message: /did you mean numAgents\?/ })
  t.throws(() => any(api.agentDwc)(), { name: 'ArgumentError', op: 'agentDwc', arg: 'opts' })
  t.throws(() => api.agentDwc({ heads: 2 ** 20, valueDim: 2 ** 20, kernel: 3 }), { name: 'ValueError', op: 'agentDwc' })
  t.throws(() => any(api.combineLinearStates)(), { name: 'ArgumentError', op: 'combineLinearStates', arg: 'a' })
  t.throws(() => any(api.combineLinearStates)({ S: d, pos: 0 }, { S: q, pos: 0 }, [1]), { name: 'DisposedError', op: 'combineLinearStates' })
  t.throws(() => any(api.combineLinearStates)({ S: q, pos: 0 }, { S: q, pos: 0 }), { name: 'ArgumentError', arg: 'decays' })
  t.throws(() => any(api.clampGates)([0.5]), { name: 'ArgumentError', op: 'clampGates', arg: 'alpha' })
  t.throws(() => any(api.duoDeploy)(), { name: 'ArgumentError', op: 'duoDeploy', arg: 'alpha' })
  t.throws(() => any(api.duoGateLoss)(), { name: 'ArgumentError', op: 'duoGateLoss', arg: 'q' })
  t.throws(() => any(api.duoGateLoss)(q, q, q, { a: 1 }), { name: 'ValueError', op: 'duoGateLoss', arg: 'alpha' })
  t.throws(() => any(api.charTokenizer)(), { name: 'ArgumentError', op: 'charTokenizer', arg: 'alphabet' })
  t.throws(() => any(api.parseKjv)(null), { name: 'ArgumentError', op: 'parseKjv', arg: 'text' })
  t.throws(() => any(api.versesText)([[1, 2]]), { name: 'ArgumentError', op: 'versesText', arg: 'verses[0]' })
  t.throws(() => any(api.kjvSplit)('x'), { name: 'ArgumentError', op: 'kjvSplit', arg: 'verses' })
  t.throws(() => api.kjvSplit([], { validFrom: 'Rom' } as never), { name: 'ArgumentError', op: 'kjvSplit', message: /did you mean validationFrom\?/ })
})
