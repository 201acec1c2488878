import t from 'tap'
import { ArgumentError, DTypeError, ShapeError, ValueError, dispose, memory, scope, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { DPO_LOSS_TYPES, dpoLoss, flexDpoLoss, logpsFromTokens, readMetricsSync, type DpoLossOptions, type DpoLossType } from '@heed/align'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

// ---- float64 reference, transcribed from TRL's dpo_trainer.py formulas, independent of the library ----
const sp = (x: number): number => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)))
const ls = (x: number): number => -sp(-x)
const sig = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))
interface Ref {
  pc: number[]
  pr: number[]
  rc: number[]
  rr: number[]
  nc: number[]
  nr: number[]
}
function reference(type: DpoLossType, x: Ref, o: { beta: number; betaR?: number; eps: number; tau?: number }): number[] {
  const B = x.pc.length
  const { beta, eps } = o
  const bR = o.betaR ?? beta
  const c = x.pc.map((v, i) => v - x.rc[i]!)
  const r = x.pr.map((v, i) => v - x.rr[i]!)
  const smooth = (z: number) => -(1 - eps) * ls(z) - eps * ls(-z)
  const sorted = (a: number[]) => [...a].sort((p, q) => p - q)
  const out: number[] = []
  const a = sorted(x.pc.map((v, i) => v - x.pr[i]!))
  const b = sorted(x.rc.map((v, i) => v - x.rr[i]!))
  const sc = sorted(c)
  const sr = sorted(r)
  const nll = -x.pc.reduce((s, v) => s + v, 0) / x.nc.reduce((s, v) => s + v, 0)
  for (let i = 0; i < B; i++) {
    const ci = c[i]!
    const ri = r[i]!
    const u = beta * ci - bR * ri
    switch (type) {
      case 'sigmoid': out.push(smooth(u)); break
      case 'hinge': out.push(Math.max(0, 1 - u)); break
      case 'ipo': out.push((ci / x.nc[i]! - ri / x.nr[i]! - 1 / (2 * beta)) ** 2); break
      case 'exo_pair': out.push(sig(u) * (ls(u) - Math.log(1 - eps)) + sig(-u) * (ls(-u) - Math.log(eps))); break
      case 'nca_pair': out.push(-ls(beta * ci) - 0.5 * ls(-beta * ci) - 0.5 * ls(-bR * ri)); break
      case 'robust': out.push((-(1 - eps) * ls(u) + eps * ls(-u)) / (1 - 2 * eps)); break
      case 'bco_pair': out.push(-ls(beta * ci) - ls(-bR * ri)); break
      case 'sppo_hard': out.push((ci - 1 / (2 * beta)) ** 2 + (ri + 1 / (2 * beta)) ** 2); break
      case 'aot': out.push(smooth(beta * (a[i]! - b[i]!))); break
      case 'aot_unpaired': out.push(smooth(beta * (sc[i]! - sr[i]!))); break
      case 'apo_zero': out.push(1 - sig(beta * ci) + sig(bR * ri)); break
      case 'apo_down': out.push(sig(beta * ci) + 1 - sig(u)); break
      case 'discopop': {
        const m = sig(u / (o.tau ?? 0.05))
        out.push(-ls(u) * (1 - m) + Math.exp(Math.min(-u, 80)) * m)
        break
      }
      case 'sft': out.push(nll); break
      case 'sigmoid_norm': out.push(-ls((beta * ci) / x.nc[i]! - (bR * ri) / x.nr[i]!)); break
    }
  }
  return out
}

const f64 = (v: readonly number[]) => tensor([...v], [v.length], 'float64')
const batchOf = (x: Ref) => ({
  chosenLogps: f64(x.pc),
  rejectedLogps: f64(x.pr),
  refChosenLogps: f64(x.rc),
  refRejectedLogps: f64(x.rr),
  chosenLengths: f64(x.nc),
  rejectedLengths: f64(x.nr),
})
const epsFor = (type: DpoLossType): number => (type === 'exo_pair' ? 1e-3 : type === 'robust' ? 0.1 : 0)
const flexOk = (type: DpoLossType) => !['ipo', 'sppo_hard', 'aot', 'aot_unpaired'].includes(type)

// Reference vectors: TRL HEAD's dpo_trainer.py formulas evaluated in float64 on these inputs, β = 0.1.
const NOTE: Ref = { pc: [-10, -20, -5, -40], pr: [-12, -18, -9, -35], rc: [-11, -19, -6, -42], rr: [-11, -19, -8, -36], nc: [5, 10, 3, 20], nr: [6, 9, 4, 18] }
const NOTE_VALUES: Record<DpoLossType, number[]> = {
  sigmoid: [0.598139, 0.798139, 0.598139, 0.644397],
  hinge: [0.8, 1.2, 0.8, 0.9],
  ipo: [21.467778, 27.155679, 19.506944, 24.557531],
  exo_pair: [2.422015, 3.110397, 2.422015, 2.589954],
  nca_pair: [1.338793, 1.438793, 1.338793, 1.369407],
  robust: [0.573139, 0.823139, 0.573139, 0.631897],
  bco_pair: [1.288793, 1.488793, 1.288793, 1.342536],
  sppo_hard: [32, 72, 32, 45],
  aot: [0.644397, 0.798139, 0.598139, 0.598139],
  aot_unpaired: [0.693147, 0.598139, 0.693147, 0.644397],
  apo_zero: [0.950042, 1.049958, 0.950042, 0.975145],
  apo_down: [0.975145, 1.024855, 0.975145, 1.024855],
  discopop: [0.814763, 0.805752, 0.814763, 0.873792],
  sft: [75 / 38, 75 / 38, 75 / 38, 75 / 38],
  sigmoid_norm: [0.674982, 0.703758, 0.664406, 0.690927],
}

t.test("TRL's reference vectors, every lossType", async t => {
  const before = memory().tensors
  const b = batchOf(NOTE)
  for (const type of DPO_LOSS_TYPES) {
    const out = dpoLoss(b, { lossType: type, labelSmoothing: epsFor(type) })
    assertClose(t, out.losses.dataSync(), NOTE_VALUES[type], { atol: 2e-6, rtol: 0, msg: type })
    const mean = NOTE_VALUES[type].reduce((s, v) => s + v, 0) / 4
    assertClose(t, out.loss.dataSync(), [mean], { atol: 2e-6, rtol: 0, msg: `${type} batch mean` })
    dispose(out)
  }
  const cdpo = dpoLoss(b, { labelSmoothing: 0.1 })
  assertClose(t, cdpo.losses.dataSync(), [0.618139, 0.778139, 0.618139, 0.654397], { atol: 2e-6, rtol: 0, msg: 'cDPO' })
  const m = readMetricsSync(cdpo.metrics)
  assertClose(t, [m['rewards/chosen']!, m['rewards/rejected']!, m['rewards/margins']!, m['rewards/accuracies']!, m['logps/chosen']!, m['logps/rejected']!], [0.075, 0, 0.075, 0.75, -18.75, -18.5], { atol: 1e-12, msg: 'metrics' })
  assertClose(t, cdpo.chosenRewards.dataSync(), [0.1, -0.1, 0.1, 0.2], { atol: 1e-12, msg: 'chosenRewards' })
  dispose([cdpo, b])
  t.equal(memory().tensors, before, 'no leaked tensors')
})

t.test('every lossType against the float64 reference on random batches (plain and Flex-DPO β)', async t => {
  const rand = prng(11)
  for (let trial = 0; trial < 3; trial++) {
    const B = 6
    const x: Ref = {
      pc: randomArray(rand, B, -60, -1),
      pr: randomArray(rand, B, -60, -1),
      rc: randomArray(rand, B, -60, -1),
      rr: randomArray(rand, B, -60, -1),
      nc: randomArray(rand, B, 1, 30).map(Math.round),
      nr: randomArray(rand, B, 1, 30).map(Math.round),
    }
    const b = batchOf(x)
    for (const type of DPO_LOSS_TYPES)
      for (const [beta, betaR] of [[0.1, 0.1], [0.5, 0.3]] as const) {
        if (betaR !== beta && !flexOk(type)) continue
        const eps = epsFor(type) || (type === 'sigmoid' || type === 'aot' ? 0.05 : 0)
        const tau = 0.2
        const out = dpoLoss(b, { lossType: type, beta, betaRejected: betaR, labelSmoothing: eps, discopopTau: tau })
        assertClose(t, out.losses.dataSync(), reference(type, x, { beta, betaR, eps, tau }), { atol: 1e-12, rtol: 1e-12, msg: `${type} β=${beta}/${betaR}` })
        dispose(out)
      }
    dispose(b)
  }
})

t.test('extreme margins ±1e4: finite losses and gradients for every lossType', async t => {
  const x: Ref = { pc: [1e4, -1e4, 0, -5e3], pr: [-1e4, 1e4, 0, 5e3], rc: [0, 0, 1e4, 0], rr: [0, 0, -1e4, 0], nc: [1, 1, 1, 1], nr: [1, 1, 1, 1] }
  const tv = [410.0, 0.1]
  const trl: Ref = { pc: tv, pr: [810.5, 0.2], rc: [-610, -0.1], rr: [110.6, 0.5], nc: [1, 1], nr: [1, 1] }
  for (const xs of [x, trl])
    for (const type of DPO_LOSS_TYPES)
      for (const beta of [0.1, 5]) {
        const vg = valueAndGrad((pc: Tensor, pr: Tensor) => dpoLoss({ ...batchOf(xs), chosenLogps: pc, rejectedLogps: pr }, { lossType: type, beta, labelSmoothing: epsFor(type) }).loss, { argnums: [0, 1] })
        const [v, g] = vg(f64(xs.pc), f64(xs.pr))
        const vals = [...v.dataSync(), ...g[0].dataSync(), ...g[1].dataSync()]
        t.ok(vals.every(Number.isFinite), `${type} β=${beta}: finite ${vals.slice(0, 3).join(',')}`)
        const ref = reference(type, xs, { beta, eps: epsFor(type) })
        assertClose(t, [v.dataSync()[0]!], [ref.reduce((s, q) => s + q, 0) / ref.length], { rtol: 1e-12, atol: 1e-9, msg: `${type} β=${beta} value` })
        dispose([v, g])
      }
})

t.test('checkGrad: every lossType, with respect to all four log-prob inputs', async t => {
  const rand = prng(5)
  const B = 4
  const inputs = [0, 1, 2, 3].map(() => ({ v: randomArray(rand, B, -8, -1), shape: [B] }))
  const nc = f64([3, 5, 2, 4])
  const nr = f64([4, 2, 6, 3])
  for (const type of DPO_LOSS_TYPES) {
    const opts: DpoLossOptions = { lossType: type, beta: 0.5, labelSmoothing: epsFor(type) }
    await checkGrad(t, (pc, pr, rc, rr) => scope(() => dpoLoss({ chosenLogps: pc!, rejectedLogps: pr!, refChosenLogps: rc!, refRejectedLogps: rr!, chosenLengths: nc, rejectedLengths: nr }, opts).loss), inputs, { msg: type, atol: 1e-6 })
  }
  await checkGrad(t, (pc, pr, rc, rr) => scope(() => flexDpoLoss({ chosenLogps: pc!, rejectedLogps: pr!, refChosenLogps: rc!, refRejectedLogps: rr!, chosenLengths: nc, rejectedLengths: nr }, { sftWeight: 0.5 }).loss), inputs, { msg: 'flex+sft' })
  for (const f of ['forward_kl', 'js_divergence', 'alpha_divergence'] as const)
    await checkGrad(t, (pc, pr, rc, rr) => scope(() => dpoLoss({ chosenLogps: pc!, rejectedLogps: pr!, refChosenLogps: rc!, refRejectedLogps: rr! }, { fDivergence: f }).loss), inputs, { msg: f })
  dispose([nc, nr])
})

t.test('invariants: ln 2 at policy == reference, gradient signs, robust unbiasedness, multi-loss sums', async t => {
  const p = f64([-3, -7, -2])
  const q = f64([-5, -1, -9])
  const n = f64([2, 3, 4])
  const atInit: Partial<Record<DpoLossType, number>> = { sigmoid: Math.LN2, robust: Math.LN2, aot: Math.LN2, aot_unpaired: Math.LN2, sigmoid_norm: Math.LN2, hinge: 1, ipo: 25, nca_pair: 2 * Math.LN2, bco_pair: 2 * Math.LN2, sppo_hard: 50, apo_zero: 1, apo_down: 1, discopop: (Math.LN2 + 1) / 2, exo_pair: 2.761231 }
  for (const [type, v] of Object.entries(atInit)) {
    const out = dpoLoss({ chosenLogps: p, rejectedLogps: q, refChosenLogps: p, refRejectedLogps: q, chosenLengths: n, rejectedLengths: n }, { lossType: type as DpoLossType, labelSmoothing: epsFor(type as DpoLossType) })
    assertClose(t, out.loss.dataSync(), [v], { atol: 1e-6, msg: `${type} at init` })
    dispose(out)
  }
  const [, g] = valueAndGrad((pc: Tensor, pr: Tensor) => dpoLoss({ ...batchOf(NOTE), chosenLogps: pc, rejectedLogps: pr }).loss, { argnums: [0, 1] })(f64(NOTE.pc), f64(NOTE.pr))
  // The note's gradients are per pair (∂ℓ_i); the batch mean divides by B = 4.
  assertClose(t, Array.from(g[0].dataSync(), v => v * 4), [-0.045017, -0.054983, -0.045017, -0.047502], { atol: 1e-6, msg: 'sigmoid grad chosen' })
  assertClose(t, Array.from(g[1].dataSync(), v => v * 4), [0.045017, 0.054983, 0.045017, 0.047502], { atol: 1e-6, msg: 'sigmoid grad rejected' })
  dispose(g)
  const eps = 0.2
  const h = f64([1.5, -3, 0.4])
  const z = f64([0, 0, 0])
  const rob = (hh: Tensor) => dpoLoss({ chosenLogps: hh, rejectedLogps: z }, { lossType: 'robust', labelSmoothing: eps, beta: 1 }).losses
  const plus = rob(h)
  const minus = rob(f64([-1.5, 3, -0.4]))
  const lhs = Array.from(plus.dataSync(), (v, i) => (1 - eps) * v + eps * minus.dataSync()[i]!)
  assertClose(t, lhs, [1.5, -3, 0.4].map(x => -ls(x)), { atol: 1e-14, msg: 'robust unbiasedness' })
  const multi = dpoLoss(batchOf(NOTE), { lossType: ['sigmoid', 'bco_pair', 'sft'], lossWeights: [0.8, 0.2, 1] })
  const want = NOTE_VALUES.sigmoid.map((v, i) => 0.8 * v + 0.2 * NOTE_VALUES.bco_pair[i]! + NOTE_VALUES.sft[i]!)
  assertClose(t, multi.losses.dataSync(), want, { atol: 2e-6, msg: 'MPO combination' })
  const w = dpoLoss(batchOf(NOTE), { pairWeights: f64([1, 0, 2, 1]) })
  assertClose(t, w.losses.dataSync(), NOTE_VALUES.sigmoid.map((v, i) => v * [1, 0, 2, 1][i]!), { atol: 2e-6, msg: 'pair weights' })
  const free = dpoLoss({ chosenLogps: f64([-1]), rejectedLogps: f64([-2]) })
  assertClose(t, free.loss.dataSync(), [-ls(0.1)], { atol: 1e-12, msg: 'reference-free' })
  dispose([p, q, n, plus, minus, h, z, multi, w, free])
})

t.test('token-level inputs with masks equal sequence-level inputs; masked -inf never leaks NaN', async t => {
  const lp = tensor([-1, -2, -Infinity, -0.5, -0.5, -0.5], [2, 3], 'float64')
  const mask = tensor([1, 1, 0, 1, 1, 1], [2, 3], 'float64')
  const s = logpsFromTokens(lp, mask)
  assertClose(t, s.dataSync(), [-3, -1.5], { msg: 'sum' })
  const m = logpsFromTokens(lp, mask, { reduce: 'mean' })
  assertClose(t, m.dataSync(), [-1.5, -0.5], { msg: 'mean' })
  const rlp = tensor([-1.5, -2, -Infinity, -1, -0.5, -0.25], [2, 3], 'float64')
  const tok = dpoLoss({ chosenLogps: lp, rejectedLogps: rlp, refChosenLogps: rlp, refRejectedLogps: lp, chosenMask: mask, rejectedMask: mask }, { lossType: 'ipo' })
  const seq = dpoLoss({ chosenLogps: f64([-3, -1.5]), rejectedLogps: f64([-3.5, -1.75]), refChosenLogps: f64([-3.5, -1.75]), refRejectedLogps: f64([-3, -1.5]), chosenLengths: f64([2, 3]), rejectedLengths: f64([2, 3]) }, { lossType: 'ipo' })
  assertClose(t, tok.losses.dataSync(), seq.losses.dataSync(), { atol: 1e-12, msg: 'token == sequence' })
  const [, g] = valueAndGrad((x: Tensor) => dpoLoss({ chosenLogps: x, rejectedLogps: rlp, chosenMask: mask, rejectedMask: mask }).loss)(lp)
  t.ok(Array.from(g.dataSync()).every(Number.isFinite), 'finite gradient through -inf at masked positions')
  t.equal(g.dataSync()[2], 0, 'masked position gets no gradient')
  await checkGrad(t, (x, w) => scope(() => dpoLoss({ chosenLogps: x!, rejectedLogps: f64([-2, -3]), chosenMask: mask, chosenTokenWeights: w! }).loss), [{ v: [-1, -2, -3, -0.5, -0.25, -1], shape: [2, 3] }, { v: [1, 2.5, 1, 1.5, 1, 2], shape: [2, 3] }], { msg: 'token weights' })
  dispose([lp, mask, s, m, rlp, tok, seq, g])
})

t.test('bad input → typed errors naming op, argument, expected and actual', async t => {
  const a = f64([-1, -2])
  const b = f64([-1])
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: b }), ShapeError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a, refChosenLogps: b, refRejectedLogps: b }), ShapeError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: tensor([1, 2], [2], 'float32') }), DTypeError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { lossType: 'nope' as DpoLossType }), ValueError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { lossType: 'exo_pair' }), ValueError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { lossType: 'robust', labelSmoothing: 0.5 }), ValueError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { lossType: 'ipo' }), ArgumentError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { beta: -1 }), ValueError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { lossType: 'sppo_hard', betaRejected: 0.05 }), ValueError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a, refChosenLogps: a }), ArgumentError)
  t.throws(() => dpoLoss({ chosenLogps: [1, 2] as unknown as Tensor, rejectedLogps: a }), ArgumentError)
  t.throws(() => dpoLoss({ chosenLogps: tensor([[1, 2]], [1, 2], 'float64'), rejectedLogps: tensor([[1, 2]], [1, 2], 'float64') }), ArgumentError)
  t.throws(() => dpoLoss({ chosenLogps: a, rejectedLogps: a }, { lossType: ['sigmoid', 'sft'], lossWeights: [1] }), ValueError)
  try {
    dpoLoss({ chosenLogps: a, rejectedLogps: b })
  } catch (e) {
    const err = e as ShapeError
    t.equal(err.op, 'dpoLoss')
    t.equal(err.arg, 'rejectedLogps')
    t.match(err.message, /expected batch size 2/)
  }
  dispose([a, b])
})
