import t from 'tap'
import { memory, rng, sub, tensor, ValueError, ShapeError } from '@heed/tensor'
import { TensorBrain, type Triple } from '@heed/memory'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { runTensorBrainDemo } from '../../../examples/memory-tensor-brain.js'

const g = rng(3)
const randomTriples = (n: number, ne = 100, np = 10): Triple[] => Array.from({ length: n }, () => ({ subject: g.int(0, ne), predicate: g.int(0, np), object: g.int(0, ne) }))
const same = (a: Triple, b: Triple) => a.subject === b.subject && a.predicate === b.predicate && a.object === b.object

t.test('measure: teacher write-back adds exactly the shared column; argmax picks the top score', async t => {
  const base = memory().tensors
  const tb = new TensorBrain({ entities: 20, predicates: 4, dim: 32, seed: 1, dtype: 'float64' })
  const q = tensor(Array.from({ length: 32 }, () => g.normal()), [32], 'float64')
  const { q: q2, k, p } = await tb.measure(q, 'entity', { mode: 'teacher', index: 5 })
  const a5 = tb.embedding('entity', 5)
  const d = sub(q2, q)
  const dv = await d.data()
  const av = await a5.data()
  t.equal(k, 5)
  t.ok(dv.every((x, i) => Math.abs(x - av[i]!) < 1e-12))
  const am = await tb.measure(q, 'entity')
  t.equal(am.k, p.indexOf(Math.max(...p)))
  const bad = tensor([1, 2, 3])
  t.throws(() => tb.scores(bad, 'entity'), ShapeError)
  bad.dispose()
  await t.rejects(tb.measure(q, 'entity', { mode: 'teacher', index: 99 }), ValueError)
  ;[q, q2, a5, d, am.q].forEach(x => x.dispose())
  tb.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('perception: accuracy vs noise is high and non-increasing; feedback helps', async t => {
  const triples = randomTriples(200)
  const cfg = { entities: 100, predicates: 10, dim: 128, seed: 2 }
  const tb = new TensorBrain(cfg)
  const off = new TensorBrain({ ...cfg, feedback: 0 })
  const accs: number[] = []
  let withFb = 0
  let without = 0
  for (const noise of [0, 0.5, 1, 1.5, 2]) {
    const s = tb.scene(triples, { noise, rng: rng(4) })
    const a = (await tb.perceive(s)).triples.filter((d, i) => same(d, triples[i]!)).length / triples.length
    const b = (await off.perceive(s)).triples.filter((d, i) => same(d, triples[i]!)).length / triples.length
    s.dispose()
    accs.push(a)
    withFb += a
    without += b
  }
  t.comment(`accuracy at noise 0, .5, 1, 1.5, 2: ${accs.map(a => a.toFixed(3)).join(' ')}`)
  t.equal(accs[0], 1)
  t.ok(accs[2]! >= 0.9)
  for (let i = 1; i < accs.length; i++) t.ok(accs[i]! <= accs[i - 1]! + 0.02, 'non-increasing')
  t.ok(withFb >= without, `feedback ${withFb.toFixed(2)} ≥ none ${without.toFixed(2)}`)
  tb.dispose()
  off.dispose()
})

t.test('episodic memory: exact recall, old episodes undisturbed, recall by cue', async t => {
  const tb = new TensorBrain({ entities: 100, predicates: 10, dim: 128, seed: 5 })
  const first = randomTriples(100)
  const ts = tb.storeEpisodes(first)
  const before = await tb.recall(ts)
  before.forEach((d, i) => t.ok(same(d, first[i]!), `episode ${i}`))
  const old = await (async () => { const e = tb.embedding('time', 3); const v = await e.data(); e.dispose(); return v })()
  tb.storeEpisodes(randomTriples(100))
  const after = await tb.recall(ts)
  t.same(after, before, 'old episodes decode the same after 100 new ones')
  const e3 = tb.embedding('time', 3)
  t.same(await e3.data(), old, 'old time-index column untouched')
  e3.dispose()
  const cue = await tb.recallByCue({ subject: first[7]!.subject, object: first[7]!.object })
  t.equal(cue.t, 7)
  tb.dispose()
})

t.test('semantic memory: marginals match episode frequencies', async t => {
  const tb = new TensorBrain({ entities: 30, predicates: 5, dim: 128, seed: 6 })
  const subjects = [0, 1, 2]
  const probs = [0.5, 0.3, 0.2]
  const eps: Triple[] = Array.from({ length: 200 }, () => {
    const r = g.next()
    const s = r < 0.5 ? 0 : r < 0.8 ? 1 : 2
    return { subject: subjects[s]!, predicate: g.int(0, 5), object: g.int(3, 30) }
  })
  tb.storeEpisodes(eps)
  const sem = await tb.semantic()
  subjects.forEach(s => {
    const f = eps.filter(e => e.subject === s).length / eps.length
    t.ok(Math.abs(sem.subject[s]! - f) <= 0.05, `P(s=${s}) ${sem.subject[s]!.toFixed(3)} vs ${f.toFixed(3)} (target ${probs[s]})`)
  })
  const prior = await tb.semanticPrior()
  t.ok(prior.subject[0]! > prior.subject[1]! && prior.subject[1]! > prior.subject[2]!, 'decode(ā) keeps the ranking')
  const cond = await tb.semantic({ subject: eps[0]!.subject, predicate: eps[0]!.predicate })
  t.ok(cond.object[eps[0]!.object]! > 0, 'conditional query reaches a stored object')
  tb.dispose()
})

t.test('CPU and WebGPU decode the same triples', async t => {
  const triples = randomTriples(40)
  const results: Record<string, Triple[]> = {}
  await eachBackend(t, 'perceive', async (tt, backend) => {
    const tb = new TensorBrain({ entities: 100, predicates: 10, dim: 64, seed: 8, backend })
    const s = tb.scene(triples, { noise: 0.5, rng: rng(1) })
    results[backend] = (await tb.perceive(s)).triples
    s.dispose()
    tb.dispose()
    tt.ok(results[backend]!.length === 40)
  })
  if (results['webgpu'] !== undefined) t.same(results['webgpu'], results['cpu'])
})

t.test('Tensor Brain demo, reduced run', async t => {
  const r = await runTensorBrainDemo({ noises: [0, 1], limit: 60, dim: 128 })
  t.equal(r.recallExact, 1)
  t.equal(r.oldRecallAfterNew, 1)
  t.ok(r.noiseCurve[0]!.accuracy === 1)
  t.ok(r.marginalError < 0.05)
})

t.test('sizes from the user are checked before anything is allocated (no process abort)', async t => {
  t.throws(() => new TensorBrain({ entities: 1e9, predicates: 2, dim: 1e3 }), { name: 'ValueError', op: 'TensorBrain', arg: 'entities', message: /too large to allocate/ })
  t.throws(() => new TensorBrain({ entities: 2, predicates: 2, dim: 1e5 }), { name: 'ValueError', arg: 'dim' })
  t.throws(() => new TensorBrain({ entities: 2, predicates: 2, dims: 8 } as never), { name: 'ArgumentError', message: /did you mean dim\?/ })
})
