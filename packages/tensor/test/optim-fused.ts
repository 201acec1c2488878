import t from 'tap'
import * as h from '@heed/tensor'
import { adam, adamw, memory, tensor, type Optimizer, type Tensor } from '@heed/tensor'
import { assertClose, prng, randomArray } from './helpers/numeric.js'
import { eachBackend } from './helpers/backends.js'
import { runParity } from './helpers/parity.js'

// float32 params take the one-pass AdamUpdate kernel; float64 params keep the composed update (the reference).

interface Hyper {
  lr: number
  b1: number
  b2: number
  eps: number
  wd: number
  decoupled: boolean
}

/** PyTorch's Adam / AdamW in float64, `steps` updates with the given gradients. */
function reference(p0: readonly number[], grads: readonly (readonly number[])[], hp: Hyper): { p: number[]; m: number[]; v: number[] } {
  const p = [...p0]
  const m = p.map(() => 0)
  const v = p.map(() => 0)
  grads.forEach((g, s) => {
    const t = s + 1
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]! + (hp.decoupled ? 0 : hp.wd * p[i]!)
      m[i] = hp.b1 * m[i]! + (1 - hp.b1) * gi
      v[i] = hp.b2 * v[i]! + (1 - hp.b2) * gi * gi
      const mHat = m[i]! / (1 - hp.b1 ** t)
      const vHat = v[i]! / (1 - hp.b2 ** t)
      p[i] = (hp.decoupled ? p[i]! * (1 - hp.lr * hp.wd) : p[i]!) - (hp.lr * mHat) / (Math.sqrt(vHat) + hp.eps)
    }
  })
  return { p, m, v }
}

/** The update composed of elementwise ops, as `adamFamily` ran it before the fused kernel. */
function composed(p: Tensor, g: Tensor, m0: Tensor, v0: Tensor, t: number, hp: Hyper): [Tensor, Tensor, Tensor] {
  return h.scope(() => {
    const gd = hp.decoupled ? g : h.add(g, h.mul(p, hp.wd))
    const m = h.add(h.mul(m0, hp.b1), h.mul(gd, 1 - hp.b1))
    const v = h.add(h.mul(v0, hp.b2), h.mul(h.mul(gd, gd), 1 - hp.b2))
    const dir = h.div(h.div(m, 1 - hp.b1 ** t), h.add(h.sqrt(h.div(v, 1 - hp.b2 ** t)), hp.eps))
    const decayed = hp.decoupled ? h.mul(p, 1 - hp.lr * hp.wd) : p
    return [h.sub(decayed, h.mul(dir, hp.lr)), m, v] as [Tensor, Tensor, Tensor]
  })
}

const cases: [string, (o: { lr: number }) => Optimizer, Hyper][] = [
  ['adam', o => adam(o), { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, decoupled: false }],
  ['adam L2', o => adam({ ...o, weightDecay: 0.1 }), { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, decoupled: false }],
  ['adamw', o => adamw(o), { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01, decoupled: true }],
  ['adamw custom betas', o => adamw({ ...o, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.3 }), { lr: 0.01, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.3, decoupled: true }],
]

for (const [name, make, hp] of cases) {
  t.test(`${name}: the fused float32 step equals the composed update and the float64 reference`, async t => {
    const before = memory().tensors
    const rand = prng(name.length)
    const n = 5000
    // adversarial gradient magnitudes: tiny, huge, zero, sign flips between steps
    const scale = [1, 1e-30, 1e6, 0, 1e-3]
    const p0 = randomArray(rand, n, -2, 2).map(Math.fround)
    const grads = Array.from({ length: 5 }, (_, s) => randomArray(rand, n, -1, 1).map((g, i) => Math.fround(g * scale[i % 5]! * (s % 2 ? -1 : 1))))
    const opt = make({ lr: hp.lr })
    let params: { w: Tensor } = { w: tensor(p0, [50, 100], 'float32') }
    let state = opt.init(params)
    let cp: Tensor = tensor(p0, [50, 100], "float32")
    let cm: Tensor = h.zerosLike(cp)
    let cv: Tensor = h.zerosLike(cp)
    for (let s = 0; s < grads.length; s++) {
      const g = tensor(grads[s]!, [50, 100], 'float32')
      ;[params, state] = opt.step({ w: g }, state, params)
      const [np, nm, nv] = composed(cp, g, cm, cv, s + 1, hp)
      h.dispose([cp, cm, cv, g])
      ;[cp, cm, cv] = [np, nm, nv]
    }
    const ref = reference(p0, grads, hp)
    const got = { p: params.w.dataSync(), m: (state.slots['mu'] as { w: Tensor }).w.dataSync(), v: (state.slots['nu'] as { w: Tensor }).w.dataSync() }
    assertClose(t, got.p, ref.p, { atol: 1e-7, rtol: 1e-6, msg: 'p vs float64' })
    // m sums gradients of flipping sign: its float32 error scales with the (effective) gradients, not with m
    const gmax = p0.map((pi, i) => Math.max(...grads.map(g => Math.abs(g[i]!))) + (hp.decoupled ? 0 : hp.wd * Math.abs(pi)))
    const scaled = (a: ArrayLike<number>, e: readonly number[], msg: string): void => {
      let bad = -1
      for (let i = 0; i < e.length && bad < 0; i++) if (!(Math.abs(a[i]! - e[i]!) <= 1e-6 * (Math.abs(e[i]!) + gmax[i]!) + 1e-40)) bad = i
      t.ok(bad < 0, msg, bad < 0 ? {} : { index: bad, actual: a[bad], expected: e[bad] })
    }
    scaled(got.m, ref.m, 'm vs float64')
    assertClose(t, got.v, ref.v, { atol: 1e-40, rtol: 1e-6, msg: 'v vs float64' })
    assertClose(t, got.p, cp.dataSync(), { atol: 1e-7, rtol: 1e-6, msg: 'p vs composed float32' })
    scaled(got.m, Array.from(cm.dataSync()), 'm vs composed float32')
    assertClose(t, got.v, cv.dataSync(), { atol: 1e-40, rtol: 1e-6, msg: 'v vs composed float32' })
    h.dispose([params.w, cp, cm, cv, ...(Object.values(state.slots) as { w: Tensor }[]).map(s => s.w)])
    t.equal(memory().tensors, before, 'no tensors left behind')
  })
}

t.test('the fused Adam step on every backend', async t => {
  await eachBackend(t, 'adam parity', async (tt, backend) => {
    const step = (opt: Optimizer) => (p: Tensor, g: Tensor, m: Tensor, v: Tensor) => {
      const [np, st] = opt.update({ w: g }, { count: 3, slots: { mu: { w: m }, nu: { w: v } } }, { w: p })
      return [np.w, (st.slots['mu'] as { w: Tensor }).w, (st.slots['nu'] as { w: Tensor }).w]
    }
    const ins = [{ shape: [7, 9] }, { shape: [7, 9] }, { shape: [7, 9], lo: -0.1, hi: 0.1 }, { shape: [7, 9], lo: 0, hi: 0.05 }]
    await runParity(tt, backend, [
      { name: 'adamw', inputs: ins, f: step(adamw({ lr: 0.01, weightDecay: 0.1 })) },
      { name: 'adam L2', inputs: ins, f: step(adam({ lr: 0.01, weightDecay: 0.1 })) },
    ])
  })
})
