import t from 'tap'
import { ArgumentError, DTypeError, ShapeError, ValueError, dispose, memory, scope, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import {
  alphasCumprod,
  anchorLoss,
  attentionRatio,
  cpoLoss,
  ddimInversionNoise,
  diffusionDpoLoss,
  gaussianNoise,
  greedyPerplexity,
  ktoLoss,
  maskImage,
  miaDpoThreshold,
  noisePredictionErrors,
  opaDpoLoss,
  orpoLoss,
  selectRejected,
  tokenLogps,
} from '@heed/align'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'

const sp = (x: number): number => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)))
const ls = (x: number): number => -sp(-x)
const sig = (x: number): number => 1 / (1 + Math.exp(-x))
// Every tensor a test makes is tracked, so the leak checks see only what the library leaves behind.
const made: Tensor[] = []
const f64 = (v: readonly number[]) => { const x = tensor([...v], [v.length], 'float64'); made.push(x); return x }
const disposeMade = () => dispose(made.splice(0))
const ones = (n: number) => f64(new Array(n).fill(1))

t.test('KTO: research-note vectors, apo_zero_unpaired, KL from mismatched pairs, gradients', async t => {
  disposeMade()
  const before = memory().tensors
  const logps = f64([1, -1, -2, 0.5])
  const ref = f64([0, 0, 0, 0])
  const des = tensor([true, true, false, false], [4], 'bool')
  const out = ktoLoss({ logps, refLogps: ref, desirable: des, kl: 0.5 })
  assertClose(t, out.losses.dataSync(), [0.487503, 0.53743, 0.437823, 0.5], { atol: 2e-6, msg: 'kto per example' })
  const apo = ktoLoss({ logps, refLogps: ref, desirable: des }, { lossType: 'apo_zero_unpaired' })
  assertClose(t, apo.losses.dataSync(), [1 - sig(0.1), 1 - sig(-0.1), sig(-0.2), sig(0.05)], { atol: 1e-12, msg: 'apo_zero_unpaired' })
  const kl = ktoLoss({ logps, refLogps: ref, desirable: des, kl: { logps: f64([-1, -2]), refLogps: f64([-2, -2]) } })
  assertClose(t, kl.kl.dataSync(), [0.5], { msg: 'KL = mean log-ratio' })
  const klNeg = ktoLoss({ logps, refLogps: ref, desirable: des, kl: { logps: f64([-3]), refLogps: f64([-2]) } })
  assertClose(t, klNeg.kl.dataSync(), [0], { msg: 'KL clamped at 0' })
  await checkGrad(t, x => scope(() => ktoLoss({ logps: x!, refLogps: ref, desirable: des, kl: 0.3 }, { desirableWeight: 1.5 }).loss), [{ v: [1, -1, -2, 0.5], shape: [4] }])
  t.throws(() => ktoLoss({ logps, refLogps: ref, desirable: f64([1, 0, 1, 0]) }), DTypeError)
  t.throws(() => ktoLoss({ logps, refLogps: f64([0]), desirable: des }), ShapeError)
  dispose([logps, ref, des, out, apo, kl, klNeg])
  disposeMade()
  t.equal(memory().tensors, before, 'no leaked tensors')
})

t.test('CPO / SimPO / AlphaPO: reference vectors, NLL term, gradients', async t => {
  const aw = [-1.2, -0.8, -2.0]
  const al = [-1.5, -0.7, -2.5]
  const b = { chosenLogps: f64(aw), rejectedLogps: f64(al), chosenLengths: ones(3), rejectedLengths: ones(3) }
  const simpo = cpoLoss(b, { lossType: 'simpo', beta: 2, simpoGamma: 0.5, cpoAlpha: 0 })
  assertClose(t, simpo.losses.dataSync(), [0.644397, 1.103186, 0.474077], { atol: 2e-6, msg: 'SimPO vector' })
  const cpo = cpoLoss(b, { beta: 0.1 })
  const h = aw.map((v, i) => v - al[i]!)
  const nll = -(aw[0]! + aw[1]! + aw[2]!) / 3
  assertClose(t, cpo.loss.dataSync(), [h.reduce((s, x) => s - ls(0.1 * x), 0) / 3 + nll], { atol: 1e-12, msg: 'CPO = sigmoid + NLL' })
  const alpha = cpoLoss(b, { alpha: 0.5, cpoAlpha: 0, beta: 1 })
  const rew = (x: number) => (1 - Math.exp(-0.5 * x)) / 0.5
  assertClose(t, alpha.losses.dataSync(), aw.map((v, i) => -ls(rew(v) - rew(al[i]!))), { atol: 1e-12, msg: 'AlphaPO' })
  const hinge = cpoLoss(b, { lossType: 'hinge', cpoAlpha: 0, beta: 1 })
  assertClose(t, hinge.losses.dataSync(), h.map(x => Math.max(0, 1 - x)), { atol: 1e-12, msg: 'hinge' })
  const ipo = cpoLoss(b, { lossType: 'ipo', cpoAlpha: 0, beta: 0.5 })
  assertClose(t, ipo.losses.dataSync(), h.map(x => (x - 1) ** 2), { atol: 1e-12, msg: 'ipo' })
  for (const lossType of ['sigmoid', 'simpo', 'ipo'] as const)
    await checkGrad(t, (c, r) => scope(() => cpoLoss({ chosenLogps: c!, rejectedLogps: r!, chosenLengths: ones(3), rejectedLengths: ones(3) }, { lossType, beta: 2, alpha: lossType === 'sigmoid' ? 0.3 : 0 }).loss), [{ v: aw, shape: [3] }, { v: al, shape: [3] }], { msg: `cpo ${lossType}` })
  t.throws(() => cpoLoss({ chosenLogps: f64(aw), rejectedLogps: f64(al) }), ArgumentError, 'NLL needs lengths')
  t.throws(() => cpoLoss(b, { lossType: 'dpo' as 'ipo' }), ArgumentError)
  dispose([b, simpo, cpo, alpha, hinge, ipo])
})

t.test('ORPO: log-odds vector, NLL, log1mexp branches, gradients', async t => {
  const b = { chosenLogps: f64([-1.2, -0.8, -2.0]), rejectedLogps: f64([-1.5, -0.7, -2.5]), chosenLengths: ones(3), rejectedLengths: ones(3) }
  const out = orpoLoss(b)
  const l1m = (x: number) => Math.log(-Math.expm1(x))
  const lo = [-1.2, -0.8, -2.0].map((w, i) => { const l = [-1.5, -0.7, -2.5][i]!; return w - l - (l1m(w) - l1m(l)) })
  assertClose(t, out.logOdds.dataSync(), lo, { atol: 1e-12, msg: 'log odds' })
  assertClose(t, out.losses.dataSync(), lo.map(x => -0.1 * ls(x)), { atol: 1e-12, msg: 'odds-ratio term' })
  assertClose(t, Array.from(out.losses.dataSync(), v => -v), [-0.051065, -0.07925, -0.045193], { atol: 5e-5, msg: 'research-note β·logσ(log_odds)' })
  assertClose(t, out.nll.dataSync(), [4 / 3], { atol: 1e-12, msg: 'NLL' })
  await checkGrad(t, (c, r) => scope(() => orpoLoss({ chosenLogps: c!, rejectedLogps: r!, chosenLengths: ones(3), rejectedLengths: ones(3) }).loss), [{ v: [-1.2, -0.3, -2.0], shape: [3] }, { v: [-1.5, -0.7, -1e-3], shape: [3] }])
  t.throws(() => orpoLoss({ chosenLogps: f64([-1]), rejectedLogps: f64([-2]) }), ArgumentError)
  dispose([b, out])
})

t.test('Diffusion-DPO / InPO: vector, ln 2 at init, gradients, noise sources', async t => {
  disposeMade()
  const before = memory().tensors
  const e = { modelErrChosen: f64([0.1, 0.2]), modelErrRejected: f64([0.15, 0.1]), refErrChosen: f64([0.12, 0.2]), refErrRejected: f64([0.14, 0.1]) }
  const out = diffusionDpoLoss(e)
  assertClose(t, out.losses.dataSync(), [2.6786e-33, Math.LN2], { rtol: 1e-4, atol: 1e-37, msg: 'vector' })
  assertClose(t, out.metrics.implicit_acc.dataSync(), [0.5], { msg: 'implicit accuracy (strict)' })
  await checkGrad(t, (w, l) => scope(() => diffusionDpoLoss({ modelErrChosen: w!, modelErrRejected: l!, refErrChosen: e.refErrChosen, refErrRejected: e.refErrRejected }, { beta: 20 }).loss), [{ v: [0.1, 0.3], shape: [2] }, { v: [0.2, 0.05], shape: [2] }])
  const extreme = diffusionDpoLoss({ ...e, modelErrChosen: f64([1e4, -1e4]) })
  t.ok(Number.isFinite(extreme.loss.dataSync()[0]!), 'finite at β·Δ ~ 1e7')
  const sched = alphasCumprod(100)
  const eps = (x: Tensor) => scope(() => tensor(Array.from(x.dataSync(), v => 0.1 * v), x.shape, 'float64'))
  const x0w = tensor([0.5, -0.5, 1, 0], [2, 2], 'float64')
  const x0l = tensor([0.2, 0.1, -1, 0.3], [2, 2], 'float64')
  for (const noise of [gaussianNoise({ alphasCumprod: sched, seed: 1 }), ddimInversionNoise({ model: eps, alphasCumprod: sched, seed: 2 }), ddimInversionNoise({ model: eps, alphasCumprod: sched, eta: 0 })]) {
    const errs = noisePredictionErrors({ model: eps, reference: eps, chosen: x0w, rejected: x0l, t: 40, noise })
    const l = diffusionDpoLoss(errs)
    assertClose(t, l.loss.dataSync(), [Math.LN2], { atol: 1e-12, msg: 'model == reference ⇒ ln 2' })
    dispose([errs, l])
  }
  // Deterministic inversion (eta 0) with a zero ε-model: x stays √ᾱ-scaled x0 and the reparametrised noise is exact.
  const inv = ddimInversionNoise({ model: x => scope(() => tensor(new Array(x.size).fill(0), x.shape, 'float64')), alphasCumprod: sched, eta: 0 })({ chosen: x0w, rejected: x0l }, 30)
  assertClose(t, inv.chosen.xt.dataSync(), Array.from(x0w.dataSync(), v => v * Math.sqrt(sched[30]!)), { atol: 1e-12, msg: 'DDIM inversion with ε̂ = 0' })
  t.throws(() => gaussianNoise({ alphasCumprod: sched })({ chosen: x0w, rejected: x0l }, 100), ValueError)
  t.throws(() => diffusionDpoLoss({ ...e, refErrChosen: f64([1]) }), ShapeError)
  dispose([e, out, extreme, x0w, x0l, inv])
  disposeMade()
  t.equal(memory().tensors, before, 'no leaked tensors')
})

t.test('OPA-DPO: composition of weighted pairs, image pairs and the anchor; gradients', async t => {
  const pair = (c: number[], r: number[], rc: number[], rr: number[]) => ({ chosenLogps: f64(c), rejectedLogps: f64(r), refChosenLogps: f64(rc), refRejectedLogps: f64(rr) })
  const p1 = pair([-3, -4], [-5, -6], [-3.5, -4], [-5, -5.5])
  const p2 = pair([-2, -7], [-5, -6], [-2.5, -6], [-5, -5.5])
  const p3 = pair([-3, -4], [-3.2, -4.5], [-3.5, -4], [-3.3, -4.4])
  const p4 = pair([-2, -7], [-2.1, -7.5], [-2.5, -6], [-2.2, -7.4])
  const dpo = (c: number[], r: number[], rc: number[], rr: number[]) => c.reduce((s, _, i) => s - ls(0.1 * (c[i]! - rc[i]! - (r[i]! - rr[i]!))), 0) / c.length
  const anc = (c: number[], rc: number[], sign: number) => c.reduce((s, _, i) => s - ls(sign * 0.1 * (c[i]! - rc[i]!)), 0) / c.length
  const L1 = dpo([-3, -4], [-5, -6], [-3.5, -4], [-5, -5.5])
  const L2 = dpo([-2, -7], [-5, -6], [-2.5, -6], [-5, -5.5])
  const L3 = dpo([-3, -4], [-3.2, -4.5], [-3.5, -4], [-3.3, -4.4])
  const L4 = dpo([-2, -7], [-2.1, -7.5], [-2.5, -6], [-2.2, -7.4])
  const A = anc([-3, -4], [-3.5, -4], 1) + anc([-2, -7], [-2.5, -6], -1) + anc([-3, -4], [-3.5, -4], 1) + anc([-2, -7], [-2.5, -6], -1)
  const out = opaDpoLoss({ standard: p1, revised: p2, standardImage: p3, revisedImage: p4 })
  assertClose(t, out.loss.dataSync(), [L1 + L2 + 0.2 * (L3 + L4) + A], { atol: 1e-12, msg: 'OPA-DPO total' })
  const noAnchor = opaDpoLoss({ standard: p1, revised: p2 }, { anchorCoef: 0 })
  assertClose(t, noAnchor.loss.dataSync(), [L1 + L2], { atol: 1e-12, msg: 'language pairs only' })
  assertClose(t, anchorLoss(f64([0.5, -1]), { delta: 0.2, direction: 'below' }).dataSync(), [(-ls(-0.3) - ls(1.2)) / 2], { atol: 1e-12, msg: 'anchorLoss below' })
  await checkGrad(
    t,
    (c, w) => scope(() => opaDpoLoss({ standard: { chosenLogps: c!, rejectedLogps: tensor([[-1, -1, -2]], [1, 3], 'float64'), chosenMask: tensor([[1, 1, 0]], [1, 3], 'float64'), rejectedMask: tensor([[1, 1, 1]], [1, 3], 'float64') }, revised: { chosenLogps: c!, rejectedLogps: c!, chosenMask: tensor([[1, 1, 1]], [1, 3], 'float64'), rejectedMask: tensor([[1, 0, 1]], [1, 3], 'float64'), chosenTokenWeights: w! } }).loss),
    [{ v: [-0.5, -1.5, -0.7], shape: [1, 3] }, { v: [2.5, 1, 1.5], shape: [1, 3] }],
    { msg: 'OPA-DPO token-weighted' },
  )
  t.throws(() => opaDpoLoss({ standard: p1, revised: p2, standardImage: p3 }), ArgumentError)
  const img = tensor(Array.from({ length: 3 * 4 * 4 }, (_, i) => i), [3, 4, 4], 'float64')
  const masked = maskImage(img, { ratio: 0.5, seed: 3 })
  const mv = masked.dataSync()
  const changed = Array.from(mv).filter((v, i) => v !== i).length
  t.ok(changed > 0 && changed < 48 && changed % 3 === 0, `pixels masked across channels together (${changed / 3} of 16)`)
  t.ok(Array.from(mv).every((v, i) => v === i || v === 23.5), 'masked pixels take the image mean')
  dispose([p1, p2, p3, p4, out, noAnchor, img, masked])
})

t.test('MIA-DPO: attention ratios, thresholds, perplexity and rejected selection', async t => {
  const seq = tensor([1, 1, 1, 1, 3, 3, 3, 3], [2, 2, 2], 'float64')
  assertClose(t, attentionRatio(seq, { kind: 'sequence' }, 0).dataSync(), [0.25], { msg: 'sequence ratio' })
  const grid = tensor([1, 2, 3, 4], [2, 2], 'float64')
  assertClose(t, attentionRatio(grid, { kind: 'grid', rows: 2, cols: 2 }, 3).dataSync(), [0.4], { msg: 'grid tile ratio' })
  const pip = tensor(Array.from({ length: 16 }, (_, i) => ([5, 6, 9, 10].includes(i) ? 4 : 1)), [4, 4], 'float64')
  assertClose(t, attentionRatio(pip, { kind: 'pip', inner: 2 }).dataSync(), [16 / 28], { msg: 'pic-in-pic centre ratio' })
  t.same(miaDpoThreshold('sequence', 3), { threshold: 0.7, inclusive: true })
  t.same(miaDpoThreshold('grid', 9), { threshold: 0.3, inclusive: false })
  t.throws(() => miaDpoThreshold('grid', 5), ValueError)
  t.throws(() => attentionRatio(grid, { kind: 'grid', rows: 3, cols: 2 }), ValueError)
  const logits = tensor([0, 0, 0, 0, 10, 0], [1, 2, 3], 'float64')
  const lse = Math.log(2 + Math.exp(10))
  assertClose(t, greedyPerplexity(logits).dataSync(), [Math.exp(-(-Math.log(3) + (10 - lse)) / 2)], { atol: 1e-12, msg: 'greedy perplexity' })
  const keepMask = selectRejected({ ratios: f64([0.5, 0.7, 0.9, 0.3]), perplexities: f64([1.5, 2, 3, 1.05]), differs: tensor([true, true, true, true], [4], 'bool') }, { threshold: 0.7, inclusive: true })
  t.same(Array.from(keepMask.dataSync()), [1, 1, 0, 0], 'low attention, uncertain, wrong → kept')
  t.throws(() => selectRejected({ ratios: f64([0.5]), perplexities: f64([1, 2]), differs: tensor([true], [1], 'bool') }, { threshold: 0.7 }), ShapeError)
  const tl = tokenLogps(tensor([0, Math.log(3), 0, 0], [2, 2], 'float64'), tensor([1, 0], [2], 'int32'))
  assertClose(t, tl.dataSync(), [Math.log(0.75), Math.log(0.5)], { atol: 1e-12, msg: 'tokenLogps' })
  t.throws(() => tokenLogps(grid, f64([1, 0])), DTypeError)
  dispose([seq, grid, pip, logits, keepMask, tl])
})

t.test('valueAndGrad through a tiny policy: DPO-family losses train end to end', async t => {
  const [v, g] = valueAndGrad((x: Tensor) => scope(() => cpoLoss({ chosenLogps: x, rejectedLogps: f64([-2, -2]), chosenLengths: ones(2), rejectedLengths: ones(2) }).loss))(f64([-1, -3]))
  t.ok(Number.isFinite(v.dataSync()[0]!))
  t.ok(g.dataSync()[0]! < 0 && g.dataSync()[1]! < 0, 'raising chosen lowers the loss')
  dispose([v, g])
})
