import t from 'tap'
import { rng, ShapeError, ValueError } from '@heed/tensor'
import { SparseyHierarchy, SparseyMac, codeOverlap, expansivity, gridReceptiveFields } from '@heed/memory'
import { runMnistDemo, skeletonise } from '../../../examples/memory-sparsey-mnist.js'

const N_IN = 256
const ACTIVE = 24
const g = rng(1)
const item = (): number[] => {
  const s = new Set<number>()
  while (s.size < ACTIVE) s.add(g.int(0, N_IN))
  return [...s]
}
/** Keep a fraction s of x's active bits, replace the rest with bits outside x. */
const variant = (x: number[], s: number): number[] => {
  const out = new Set(x.slice(0, Math.round(s * ACTIVE)))
  while (out.size < ACTIVE) {
    const j = g.int(0, N_IN)
    if (!x.includes(j)) out.add(j)
  }
  return [...out]
}
const storeAll = (mac: SparseyMac, xs: number[][]) => xs.map(x => mac.learn(x, { context: null }).code!)

t.test('codes: one winner per module, η limits', async t => {
  const mac = new SparseyMac({ inputSize: N_IN, seed: 2 })
  const c = mac.learn(item()).code!
  t.equal(c.length, 12)
  t.ok(c.every(w => w >= 0 && w < 8))
  t.equal(expansivity(0.1, 8, { gMin: 0.2 }), 1)
  t.equal(expansivity(1, 8, { gMin: 0.2, chi: 100 }), 801)
  t.ok(expansivity(0.6, 8) < expansivity(0.7, 8) && expansivity(0.7, 8) < expansivity(0.7, 16))
  t.throws(() => mac.learn([300]), ValueError)
  t.throws(() => mac.learn(new Uint8Array(3)), ShapeError)
  t.throws(() => new SparseyMac({ inputSize: 0 }), ValueError)
})

t.test('zero weights: G = 0 and selection is uniform (χ², 8 cells)', async t => {
  const mac = new SparseyMac({ inputSize: N_IN, seed: 3 })
  const x = item()
  t.equal(mac.familiarity(x), 0)
  const counts = new Float64Array(8)
  for (let i = 0; i < 4000; i++) counts[mac.step(x, { mode: 'csa' }).code![0]!]!++
  const chi2 = counts.reduce((s, c) => s + (c - 500) ** 2 / 500, 0)
  t.ok(chi2 < 20.3, `χ²(7) = ${chi2.toFixed(2)} < 20.3 (p > 0.005)`)
})

t.test('single-trial exact recall, G = 1 on stored and low on novel, no collapse', async t => {
  const mac = new SparseyMac({ inputSize: N_IN, seed: 4 })
  const xs = Array.from({ length: 25 }, item)
  const codes = storeAll(mac, xs)
  xs.forEach((x, i) => t.equal(codeOverlap(mac.recall(x, { context: null }).code!, codes[i]!), 12, `item ${i}`))
  t.equal(new Set(codes.map(c => c.join())).size, 25, 'distinct codes')
  xs.forEach(x => t.ok(Math.abs(mac.familiarity(x, { context: null }) - 1) < 1e-9))
  let gn = 0
  for (let i = 0; i < 20; i++) gn += mac.familiarity(item())
  t.ok(gn / 20 < 0.3, `G(novel) = ${(gn / 20).toFixed(3)} < 0.3`)
  let pair = 0
  let n = 0
  for (let i = 0; i < 25; i++) for (let j = i + 1; j < 25; j++, n++) pair += codeOverlap(codes[i]!, codes[j]!)
  t.ok(pair / n < 1.5 * 1.5, `mean pairwise overlap ${(pair / n).toFixed(2)} < 1.5·Q/K`)
})

t.test('similarity preservation: code overlap rises with input overlap', async t => {
  const mac = new SparseyMac({ inputSize: N_IN, seed: 5 })
  const xs = Array.from({ length: 25 }, item)
  const codes = storeAll(mac, xs)
  const curve = [0, 0.2, 0.4, 0.6, 0.8, 1].map(s => {
    let o = 0
    xs.forEach((x, i) => {
      const snap = mac.snapshot()
      o += codeOverlap(mac.step(variant(x, s), { mode: 'csa', context: null }).code!, codes[i]!)
      mac.restore(snap)
    })
    return o / xs.length
  })
  t.comment(`overlap curve ${curve.map(c => c.toFixed(2)).join(' ')}`)
  for (let i = 1; i < curve.length; i++) t.ok(curve[i]! >= curve[i - 1]! - 0.5, `monotone at ${i}`)
  t.ok(curve[0]! < 0.3 * 12 && curve[1]! < 0.3 * 12, 'about chance at s ≤ 0.2')
  t.ok(curve[4]! >= 0.8 * 12 && curve[5]! >= 0.8 * 12, '≥ 0.8·Q at s ≥ 0.8')
})

t.test('noise: G falls with corruption, nearest stored code identifies the item', async t => {
  const mac = new SparseyMac({ inputSize: N_IN, seed: 6 })
  const xs = Array.from({ length: 20 }, item)
  const codes = storeAll(mac, xs)
  const gs = [1, 0.8, 0.6, 0.4].map(s => xs.reduce((a, x) => a + mac.familiarity(variant(x, s), { context: null }), 0) / xs.length)
  for (let i = 1; i < gs.length; i++) t.ok(gs[i]! < gs[i - 1]!, `G ${gs.map(x => x.toFixed(2)).join(' > ')}`)
  let hit = 0
  xs.forEach((x, i) => {
    const c = mac.recall(variant(x, 0.8), { context: null }).code!
    const best = codes.reduce((b, d, j) => (codeOverlap(c, d) > codeOverlap(c, codes[b]!) ? j : b), 0)
    if (best === i) hit++
  })
  t.ok(hit / xs.length >= 0.95, `identification ${hit}/${xs.length}`)
})

t.test('capacity curve and freezing', async t => {
  const points = [10, 25, 50, 100].map(N => {
    const mac = new SparseyMac({ inputSize: N_IN, seed: 7 })
    const xs = Array.from({ length: N }, item)
    const codes = storeAll(mac, xs)
    const recall = xs.filter((x, i) => codeOverlap(mac.recall(x, { context: null }).code!, codes[i]!) === 12).length / N
    let gn = 0
    for (let i = 0; i < 20; i++) gn += mac.familiarity(item())
    return { N, recall, density: mac.saturation, gNovel: gn / 20, mac }
  })
  t.comment(points.map(p => `N=${p.N} recall ${p.recall.toFixed(2)} density ${p.density.toFixed(2)} G(novel) ${p.gNovel.toFixed(2)}`).join('; '))
  for (let i = 1; i < points.length; i++) {
    t.ok(points[i]!.recall <= points[i - 1]!.recall, 'recall non-increasing')
    t.ok(points[i]!.density >= points[i - 1]!.density, 'density non-decreasing')
    t.ok(points[i]!.gNovel >= points[i - 1]!.gNovel - 0.02, 'G(novel) non-decreasing')
  }
  t.equal(points[0]!.recall, 1)
  const full = points[3]!.mac
  t.ok(full.frozen, 'a mac past freezeAt is frozen')
  const before = full.weightsU()
  for (let i = 0; i < 10; i++) t.notOk(full.learn(item()).learned)
  t.same(full.weightsU(), before, 'weights unchanged once frozen')
})

t.test('fixed cost per step: counted work is the same at 10 and 1000 stored items', async t => {
  const cost = (N: number) => {
    const mac = new SparseyMac({ inputSize: N_IN, seed: 8, freezeAt: 1 })
    for (let i = 0; i < N; i++) mac.learn(item(), { context: null })
    const r0 = mac.counters.weightReads
    const w0 = mac.counters.weightWrites
    mac.learn(item(), { context: null })
    return [mac.counters.weightReads - r0, mac.counters.weightWrites - w0]
  }
  t.same(cost(10), cost(1000))
})

t.test('sequences: horizontal input carries the previous code', async t => {
  const mac = new SparseyMac({ inputSize: N_IN, seed: 9, horizontal: true })
  const alphabet = Array.from({ length: 12 }, item)
  const seqs = Array.from({ length: 6 }, () => Array.from({ length: 4 }, () => g.int(0, 12)))
  const stored = seqs.map(s => {
    mac.resetContext()
    return s.map(i => mac.learn(alphabet[i]!).code!)
  })
  let agree = 0
  let total = 0
  seqs.forEach((s, k) =>
    s.forEach((i, f) => {
      // A sequence's first frame has no context to disambiguate an item seen in several places.
      if (f === 0) return
      const c = mac.recall(alphabet[i]!, { context: stored[k]![f - 1]! }).code!
      agree += codeOverlap(c, stored[k]![f]!)
      total += 12
    }),
  )
  t.ok(agree / total >= 0.9, `teacher-forced agreement ${(agree / total).toFixed(3)}`)
  const gOf = (s: number[], ctx: Int32Array[]) => s.slice(1).reduce((a, i, f) => a + mac.familiarity(alphabet[i]!, { context: ctx[f]! }), 0) / (s.length - 1)
  const learned = seqs.reduce((a, s, k) => a + gOf(s, stored[k]!), 0) / seqs.length
  const novel = seqs.reduce((a, s, k) => a + gOf([...s].reverse(), [...stored[k]!].reverse()), 0) / seqs.length
  t.ok(learned > novel, `G learned order ${learned.toFixed(2)} > novel ${novel.toFixed(2)}`)
})

t.test('snapshot/restore: a branch replays identically (parallel = sequential)', async t => {
  const a = new SparseyMac({ inputSize: N_IN, seed: 10 })
  const xs = Array.from({ length: 8 }, item)
  xs.slice(0, 4).forEach(x => a.learn(x))
  const snap = a.snapshot()
  const first = xs.slice(4).map(x => a.learn(x).code!.join())
  a.restore(snap)
  t.same(xs.slice(4).map(x => a.learn(x).code!.join()), first)
})

t.test('hierarchy: every level codes, persistence holds higher codes', async t => {
  const net = new SparseyHierarchy({
    inputSize: 64,
    seed: 1,
    levels: [
      { receptiveFields: gridReceptiveFields({ width: 8, height: 8, patch: 4 }), Q: 6, K: 4 },
      { receptiveFields: [[0, 1, 2, 3]], Q: 6, K: 4, persistence: 2, horizontal: true },
    ],
    topDown: true,
  })
  t.equal(net.levels[0]!.length, 4)
  const frames = Array.from({ length: 4 }, () => Array.from({ length: 64 }, (_, i) => i).filter(() => g.next() < 0.3))
  const out = frames.map(f => net.step(f, { learn: true }))
  out.forEach(o => o.codes[0]!.forEach(c => t.equal(c!.length, 6)))
  t.same(out[1]!.codes[1]![0], out[0]!.codes[1]![0], 'level-2 code held for its persistence')
  net.reset()
  const again = net.step(frames[0]!)
  t.equal(codeOverlap(again.codes[0]![0]!, out[0]!.codes[0]![0]!), 6, 'level-1 recall of a stored frame')
})

t.test('MNIST preprocessing: skeletonising thins a 3-pixel bar to one pixel and keeps its length', async t => {
  const w = 12
  const h = 7
  const bar = new Uint8Array(w * h)
  for (let y = 2; y <= 4; y++) for (let x = 1; x <= 10; x++) bar[y * w + x] = 1
  const sk = skeletonise(bar, w, h)
  const rows = [0, 1, 2, 3, 4, 5, 6].filter(y => sk.slice(y * w, (y + 1) * w).some(v => v === 1))
  t.same(rows, [3], 'one row left')
  t.ok(sk.reduce((a, v) => a + v, 0) >= 6, 'the stroke survives')
})

t.test('MNIST demo, reduced run', async t => {
  const r = runMnistDemo({ trainPerClass: 20, testPerClass: 5 })
  t.equal(r.trained, 200)
  t.ok(r.accuracy > 0.3, `accuracy ${r.accuracy} well above chance`)
})
