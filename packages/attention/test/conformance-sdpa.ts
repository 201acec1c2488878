import t from 'tap'
import { add, keep, tensor, type Tensor } from '@heed/tensor'
import { chunkedPrefill, mask, scaledDotProductAttention, splitKvAttention } from '@heed/attention'
import { conformance, type ConformanceRun, type ConformanceTest } from '@heed/attention/testing'

const sdpa: ConformanceRun = (q, k, v, opts) => scaledDotProductAttention(q, k, v, opts)
const big = 1 << 20

t.test('scaledDotProductAttention meets contracts C1–C8', async t => {
  const report = await conformance(t, {
    name: 'sdpa',
    run: sdpa,
    patterns: ['NS', 'CS', 'NC', 'CC'],
    incremental: true,
    degenerate: [
      // Tiled equals naive for every block size, divisible or not.
      ...[1, 3, 4, 64].map(blockSize => ({ name: `blockSize ${blockSize}`, run: ((q, k, v, o) => scaledDotProductAttention(q, k, v, { ...o, blockSize })) as ConformanceRun })),
      { name: 'window ≥ T', run: (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...o, mask: mask.window(big) }) },
      { name: 'sinks ≥ T', run: (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...o, mask: mask.sinks(big) }) },
      { name: 'streaming(0, ≥T) on causal', patterns: ['CS', 'CC'], run: (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...o, mask: mask.streaming(0, big) }) },
      { name: 'chunk ≥ T', run: (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...o, mask: mask.chunk(big) }) },
      { name: 'splitKvAttention', run: (q, k, v, o) => splitKvAttention(q, k, v, { ...o, splits: 3 }) },
      { name: 'chunkedPrefill', run: (q, k, v, o) => chunkedPrefill(q, k, v, { ...o, chunkSize: 2 }) },
    ],
  })
  t.same(report.ran, ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8'], 'every contract ran')
  t.same(report.skipped, [], 'nothing skipped')
})

t.test('the harness reports what an operator cannot be checked for', async t => {
  // Plain non-causal attention with no mask, offset or lse support: only what applies runs.
  const plain: ConformanceRun = (q, k, v, o) => ({ out: scaledDotProductAttention(q, k, v, o.scale === undefined ? {} : { scale: o.scale }).out })
  const report = await conformance(t, { name: 'plain', run: plain, patterns: ['NS', 'NC'], incremental: false, supports: { mask: false, offsets: false, grad: false } })
  t.same(report.ran, ['C1', 'C6', 'C7'])
  t.ok(report.skipped.some(s => s.startsWith('C2')), 'C2 skipped: no causal pattern')
  t.ok(report.skipped.some(s => s.startsWith('C8')), 'C8 skipped: no mask')
  t.ok(report.skipped.some(s => s.startsWith('C6')), 'C6 skipped inside: no lse')
})

t.test('the harness catches a broken operator', async t => {
  // Off-by-one causal (a key too early): prefix consistency and parity must fail. Failures are collected on a
  // recorder, not on tap, so this test passes when the harness reports them.
  const broken: ConformanceRun = (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...o, ...(o.causal ? { causal: false, mask: mask.custom((_b, _h, pq, pk) => pk <= pq + 1) } : {}) })
  const failures: string[] = []
  const recorder: ConformanceTest = {
    ok: (v, msg) => {
      if (!v) failures.push(msg)
      return !!v
    },
    test: async (_name, fn) => fn(recorder),
  }
  await conformance(recorder, { name: 'broken', run: broken, patterns: ['CS'], incremental: true, contracts: ['C1', 'C2'] })
  t.ok(failures.some(f => f.includes('CS') && f.includes('out')), 'C1 parity failure reported')
  t.ok(failures.some(f => f.includes('prefix')), 'C2 prefix failure reported')

  // Forgetting keyOffset breaks split-KV (C3); dropping the mask breaks C5's empty rows, C7 and C8.
  failures.length = 0
  const noKeyOffset: ConformanceRun = (q, k, v, { keyOffset: _k, ...o }) => scaledDotProductAttention(q, k, v, o)
  await conformance(recorder, { name: 'noKeyOffset', run: noKeyOffset, patterns: ['CS'], incremental: true, contracts: ['C3'] })
  t.ok(failures.some(f => f.includes('key splits')), 'C3 key-split failure reported')
  failures.length = 0
  const noMask: ConformanceRun = (q, k, v, { mask: _m, ...o }) => scaledDotProductAttention(q, k, v, o)
  await conformance(recorder, { name: 'noMask', run: noMask, patterns: ['NS'], incremental: false, contracts: ['C5', 'C7', 'C8'] })
  for (const what of ['fully masked row', 'masking key', 'packed: out', 'right-padded: out', 'packed: dk'])
    t.ok(failures.some(f => f.includes(what)), `"${what}" failure reported`)
})

t.test('the leak check counts only what the contract made', async t => {
  const failures: string[] = []
  const recorder: ConformanceTest = {
    ok: (v, msg) => {
      if (!v) failures.push(msg)
      return !!v
    },
    test: async (_name, fn) => fn(recorder),
  }
  // A planted leak: the operator keeps a tensor out of the harness's scope and forgets it.
  const forgotten: Tensor[] = []
  const leaky: ConformanceRun = (q, k, v, o) => {
    forgotten.push(keep(add(q, 0)))
    return scaledDotProductAttention(q, k, v, o)
  }
  await conformance(recorder, { name: 'leaky', run: leaky, patterns: ['NS'], incremental: false, contracts: ['C1'] })
  t.same(failures, ['C1: no leaked tensors'], 'the planted leak fails C1, and only its leak check')
  for (const x of forgotten) x.dispose()
  // A tensor made before the contract goes away during it (as the GC safety net frees another test's forgotten
  // tensor): a difference of global counts failed here; the contract's own record does not move.
  failures.length = 0
  const neighbour = tensor([1, 2, 3], [3], 'float64')
  const meanwhile: ConformanceRun = (q, k, v, o) => {
    neighbour.dispose()
    return scaledDotProductAttention(q, k, v, o)
  }
  await conformance(recorder, { name: 'meanwhile', run: meanwhile, patterns: ['NS'], incremental: false, contracts: ['C1'] })
  t.same(failures, [], 'a neighbour freeing its tensor does not fail the check')
})
