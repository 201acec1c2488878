import t from 'tap'
import { memory, scope, sum, tensor } from '@heed/tensor'
import { headDivergence, mask, operators, retrievalScore, retrievalScoreFromArgmax, RETRIEVAL_THRESHOLD, scaledDotProductAttention, scaleHeads, vhrScales } from '@heed/attention'
import { conformance, referenceProbs, type ConformanceRun } from '@heed/attention/testing'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { runOn, seeded, tolFor } from './helpers/tier2a.js'

const { host } = seeded(29)

t.test('retrieval score: copy-paste steps inside the needle, from exact row argmax', async t => {
  // Prompt of 10 tokens with the needle at [4, 7); 3 decode steps copying needle tokens 13, 14, 15.
  const tokens = [1, 2, 3, 9, 13, 14, 15, 5, 6, 7, 13, 14, 15]
  const generated = [13, 14, 15]
  const [B, H, D] = [1, 3, 4]
  const q = host([B, H, 3, D])
  const k = host([B, 1, 13, D])
  // Head 0 looks at the needle token being copied, head 1 at the needle but the wrong token, head 2 elsewhere.
  for (let i = 0; i < 3; i++) {
    for (let d = 0; d < D; d++) k.values[(4 + i) * D + d] = d === i ? 4 : 0
    for (let d = 0; d < D; d++) q.values[(0 * 3 + i) * D + d] = d === i ? 4 : 0
    for (let d = 0; d < D; d++) q.values[(1 * 3 + i) * D + d] = d === (i + 1) % 3 ? 4 : 0
  }
  const before = memory().tensors
  const [tq, tk] = [q, k].map(x => tensor(x.values, x.shape, 'float64'))
  const opts = { causal: true, tokens, needle: [4, 7] as const, generated, queryOffset: 10 }
  const s = await retrievalScore(tq!, tk!, opts)
  const { argmax } = referenceProbs(q, k, { queryOffset: 10, mask: mask.causal })
  t.same(Array.from(s), Array.from(retrievalScoreFromArgmax(argmax, [B, H, 3], opts)), 'tensor path = host path on the dense argmax')
  assertClose(t, s, [1, 0, s[2]!], { atol: 1e-15, rtol: 0, msg: 'head 0 copies every needle token (score 1), head 1 none' })
  t.ok(s[0]! > RETRIEVAL_THRESHOLD && s[1]! <= RETRIEVAL_THRESHOLD, 'threshold separates them')
  for (const x of [tq, tk]) x!.dispose()
  t.equal(memory().tensors, before, 'no leaks')
  t.throws(() => retrievalScoreFromArgmax([0], [1, 1, 1], { tokens, needle: [3, 3], generated: [1] }), /needle/)
  t.throws(() => retrievalScoreFromArgmax([0], [1, 1, 1], { tokens, needle: [3, 4], generated: [] }), /generated/)
})

t.test('VHD and VHR: divergence between the image and no-image runs, scaling the top heads', async t => {
  const a = host([2, 3, 4, 2])
  const b = { values: a.values.map((x, i) => (Math.floor(i / 8) % 3 === 1 ? x + 0.5 : x)), shape: a.shape }
  const got = await runOn('cpu', 'float64', [a, b], (x, y) => ({ vhd: headDivergence(x!, y!) }))
  assertClose(t, got.values.vhd, [0, Math.SQRT2 * 0.5, 0], { atol: 1e-12, rtol: 1e-12, msg: 'only head 1 diverges' })
  t.same(vhrScales(got.values.vhd, { top: 1 }), [1, 2, 1])
  t.same(vhrScales([0.3, 0.1, 0.3, 0.2], { top: 0.5, alpha: 3 }), [3, 1, 3, 1], 'fraction, ties to the lower head')
  t.throws(() => vhrScales([1, 2], { top: 3 }), /top/)
  await checkGrad(t, (x, y) => scope(() => sum(headDivergence(x!, y!))), [a, b].map(x => ({ v: x.values, shape: x.shape })), { msg: 'vhd' })
  // scaleHeads multiplies each head's output; with all ones it is the operator itself.
  const [q, k, v] = [host([1, 3, 5, 2]), host([1, 3, 5, 2]), host([1, 3, 5, 2])]
  const r = await runOn('cpu', 'float64', [q, k, v], (x, y, z) => {
    const base = scaledDotProductAttention(x!, y!, z!, { causal: true })
    const s = scaleHeads(operators.sdpa(), [1, 2, 0.5])(x!, y!, z!, { causal: true })
    return { base: base.out, scaled: s.out }
  })
  assertClose(t, r.values.scaled, r.values.base.map((x, i) => x * [1, 2, 0.5][Math.floor(i / 10)]!), { atol: 1e-12, rtol: 1e-12, msg: 'VHR scaling per head' })
  t.equal(r.leaked, 0, 'no leaks')
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'headDivergence / scaleHeads', async (t, backend) => {
    const [a, b] = [host([1, 2, 3, 4]), host([1, 2, 3, 4])]
    const want = [0, 1].map(h => [0, 1, 2].reduce((s, i) => s + Math.sqrt([0, 1, 2, 3].reduce((z, d) => z + (a.values[(h * 3 + i) * 4 + d]! - b.values[(h * 3 + i) * 4 + d]!) ** 2, 0)), 0) / 3)
    const got = await runOn(backend, 'float32', [a, b], (x, y) => ({ vhd: headDivergence(x!, y!), s: scaleHeads(operators.sdpa(), [2, 3])(x!, y!, y!, {}).out }))
    assertClose(t, got.values.vhd, want, { ...tolFor('float32'), msg: `${backend} vhd` })
    t.equal(got.leaked, 0, 'no leaks')
  })
})

t.test('conformance: scaleHeads with unit scales is the wrapped operator', async t => {
  const run: ConformanceRun = (q, k, v, o) => scaleHeads(operators.sdpa(), [1, 1, 1, 1])(q, k, v, o)
  const report = await conformance(t, { name: 'scaleHeads(sdpa, 1)', run, patterns: ['NS', 'CS', 'NC', 'CC'], incremental: true })
  t.same(report.ran, ['C1', 'C2', 'C3', 'C5', 'C6', 'C7', 'C8'], 'all but C4 (its degenerate settings are registered below)')
  const deg = await conformance(t, {
    name: 'scaleHeads (VHR α = 1)',
    run: (q, k, v, o) => scaleHeads(operators.sdpa(), [2, 1, 1, 1])(q, k, v, o),
    patterns: ['CS'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [{ name: 'vhrScales(α = 1)', run: (q, k, v, o) => scaleHeads(operators.sdpa(), vhrScales([4, 3, 2, 1], { top: 2, alpha: 1 }))(q, k, v, o) }],
  })
  t.same(deg.ran, ['C4'])
})
