import t from 'tap'
import vm from 'node:vm'
import v8 from 'node:v8'
import {
  ArgumentError,
  DTypeError,
  ShapeError,
  ValueError,
  adam,
  adamw,
  add,
  dispose,
  matmul,
  memory,
  mean,
  mul,
  random,
  sgd,
  square,
  sub,
  sum,
  tanh,
  tensor,
  valueAndGrad,
  type Optimizer,
  type Tensor,
} from '@heed/tensor'
import { assertClose } from './helpers/numeric.js'

const treeDisposed = (x: unknown): boolean => (x as { isDisposed?: boolean })?.isDisposed === true || (typeof x === 'object' && x !== null && Object.values(x).some(treeDisposed))
const vals = (x: unknown): number[] => Array.from((x as Tensor).dataSync())

// A nested pytree exercises objects, arrays and a frozen (non-float) leaf.
const P0 = { layer: { w: [0.5, -1.5, 2], b: [0.1] }, list: [[-3, 0.25]] }
const G = [
  { layer: { w: [0.3, -0.2, 1e-3], b: [-4] }, list: [[0.5, -0.5]] },
  { layer: { w: [-0.1, 0.4, 2], b: [1] }, list: [[0.05, 0]] },
]
const flat = (x: typeof P0): number[] => [...x.layer.w, ...x.layer.b, ...x.list[0]!]
function toTensors(x: typeof P0) {
  return {
    layer: { w: tensor(x.layer.w, [3], 'float64'), b: tensor(x.layer.b, [1], 'float64') },
    list: [tensor(x.list[0]!, [2], 'float64')],
    frozen: tensor([1, 2], [2], 'int32'),
    tag: 'not a tensor',
  }
}

/** Float64 references, written straight from the papers / PyTorch docs. */
function reference(kind: 'sgd' | 'momentum' | 'nesterov' | 'adam' | 'adamL2' | 'adamw', lr: number, wd: number): number[][] {
  let p = flat(P0)
  const m = p.map(() => 0)
  const v = p.map(() => 0)
  const [b1, b2, eps, mu] = [0.9, 0.999, 1e-8, 0.8]
  const out: number[][] = []
  G.forEach((gTree, k) => {
    const step = k + 1
    const g = flat(gTree)
    p = p.map((pi, i) => {
      let gi = g[i]!
      if (kind !== 'adamw') gi += wd * pi
      if (kind === 'sgd') return pi - lr * gi
      if (kind === 'momentum' || kind === 'nesterov') {
        m[i] = step === 1 ? gi : mu * m[i]! + gi
        return pi - lr * (kind === 'nesterov' ? gi + mu * m[i]! : m[i]!)
      }
      m[i] = b1 * m[i]! + (1 - b1) * gi
      v[i] = b2 * v[i]! + (1 - b2) * gi * gi
      const mh = m[i]! / (1 - b1 ** step)
      const vh = v[i]! / (1 - b2 ** step)
      const decayed = kind === 'adamw' ? pi * (1 - lr * wd) : pi
      return decayed - (lr * mh) / (Math.sqrt(vh) + eps)
    })
    out.push(p)
  })
  return out
}

t.test('one and two steps match float64 references', async t => {
  const base = memory().tensors
  const cases: [string, Optimizer, ReturnType<typeof reference>][] = [
    ['sgd', sgd({ lr: 0.1 }), reference('sgd', 0.1, 0)],
    ['sgd wd', sgd({ lr: 0.1, weightDecay: 0.05 }), reference('sgd', 0.1, 0.05)],
    ['sgd momentum', sgd({ lr: 0.1, momentum: 0.8 }), reference('momentum', 0.1, 0)],
    ['sgd nesterov wd', sgd({ lr: 0.1, momentum: 0.8, nesterov: true, weightDecay: 0.01 }), reference('nesterov', 0.1, 0.01)],
    ['adam', adam({ lr: 0.01 }), reference('adam', 0.01, 0)],
    ['adam L2', adam({ lr: 0.01, weightDecay: 0.1 }), reference('adamL2', 0.01, 0.1)],
    ['adamw', adamw({ lr: 0.01 }), reference('adamw', 0.01, 0.01)],
    ['adamw wd 0.5', adamw({ lr: 0.01, weightDecay: 0.5 }), reference('adamw', 0.01, 0.5)],
  ]
  for (const [name, opt, ref] of cases) {
    let params = toTensors(P0)
    let state = opt.init(params)
    for (let k = 0; k < G.length; k++) {
      const grads = toTensors(G[k]!)
      const [np, ns] = opt.update(grads, state, params)
      t.equal(ns.count, k + 1, `${name}: count`)
      t.equal(np.tag, 'not a tensor', `${name}: non-tensor leaves pass through`)
      t.equal(np.frozen, params.frozen, `${name}: int leaves are frozen (same tensor)`)
      t.notOk(params.layer.w.isDisposed || state !== ns && Object.values(state.slots).some(x => treeDisposed(x)), `${name}: update disposes nothing`)
      assertClose(t, [...vals(np.layer.w), ...vals(np.layer.b), ...vals(np.list[0])], ref[k]!, { atol: 1e-14, rtol: 1e-12, msg: `${name}: step ${k + 1}` })
      dispose([grads, params.layer, params.list, state.slots])
      params = np
      state = ns
    }
    dispose([params, state.slots])
  }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('step() disposes old params and state, not grads', async t => {
  const base = memory().tensors
  const opt = adam({ lr: 0.1 })
  const p0 = { w: tensor([1, 2], [2]) }
  const s0 = opt.init(p0)
  const g = { w: tensor([0.5, 0.5], [2]) }
  const [p1, s1] = opt.step(g, s0, p0)
  t.ok(p0.w.isDisposed, 'old param disposed')
  t.ok((s0.slots['mu'] as typeof p0).w.isDisposed && (s0.slots['nu'] as typeof p0).w.isDisposed, 'old state disposed')
  t.notOk(g.w.isDisposed, 'grads kept')
  assertClose(t, vals(p1.w), [0.9, 1.9], { atol: 1e-6, msg: 'first adam step is lr·sign(g)' })
  dispose([g, p1, s1.slots])
  t.equal(memory().tensors, base)
})

t.test('learning-rate schedules', async t => {
  const base = memory().tensors
  const seen: number[] = []
  const opt = sgd({ lr: step => (seen.push(step), 1 / step) })
  let params = { w: tensor([0], [1], 'float64') }
  let state = opt.init(params)
  for (let i = 0; i < 3; i++) {
    const g = { w: tensor([1], [1], 'float64') }
    ;[params, state] = opt.step(g, state, params)
    g.w.dispose()
  }
  t.same(seen, [1, 2, 3])
  assertClose(t, vals(params.w), [-(1 + 1 / 2 + 1 / 3)], { atol: 1e-15 })
  t.throws(() => sgd({ lr: () => -1 }).update({ w: params.w }, sgd({ lr: 1 }).init(params), params), ValueError)
  dispose(params)
  t.equal(memory().tensors, base)
})

t.test('a disposed parameter at init is named by the optimizer', async t => {
  const w = tensor([1, 2])
  w.dispose()
  for (const [op, opt] of [
    ['adam', adam({ lr: 0.1 })],
    ['adamw', adamw({ lr: 0.1 })],
  ] as const)
    t.throws(() => opt.init({ w }), { name: 'DisposedError', op, arg: 'params' }, op)
})

t.test('validation', async t => {
  const base = memory().tensors
  t.throws(() => sgd({ lr: -1 }), ValueError)
  t.throws(() => sgd({} as { lr: number }), ValueError)
  t.throws(() => sgd({ lr: 0.1, momentum: 1 }), ValueError)
  t.throws(() => sgd({ lr: 0.1, nesterov: true }), ValueError)
  t.throws(() => sgd(null as unknown as { lr: number }), ArgumentError)
  t.throws(() => adam({ lr: 0.1, beta1: 1 }), ValueError)
  t.throws(() => adam({ lr: 0.1, beta2: -0.1 }), ValueError)
  t.throws(() => adamw({ lr: 0.1, eps: Number.NaN }), ValueError)
  t.throws(() => adamw({ lr: 0.1, weightDecay: -1 }), ValueError)
  const opt = adam({ lr: 0.1 })
  const p = { w: tensor([1, 2], [2]), b: tensor([0], [1]) }
  const s = opt.init(p)
  const bad = { w: tensor([1, 2, 3], [3]), b: tensor([0], [1]) }
  t.throws(() => opt.update(bad as never, s, p), ShapeError, 'grad shape mismatch')
  const badDtype = { w: tensor([1, 2], [2], 'float64'), b: tensor([0], [1]) }
  t.throws(() => opt.update(badDtype as never, s, p), DTypeError, 'grad dtype mismatch')
  t.throws(() => opt.update([p.w, p.b] as never, s, p), ShapeError, 'grad structure mismatch')
  t.throws(() => opt.update({ w: p.w } as never, s, p), ShapeError, 'missing grad entry')
  const other = sgd({ lr: 1, momentum: 0.5 }).init(p)
  t.throws(() => opt.update(p, other as never, p), ArgumentError, 'state of another optimizer')
  t.throws(() => opt.update(p, null as never, p), ArgumentError)
  dispose([p, s.slots, other.slots, bad, badDtype])
  t.equal(memory().tensors, base, 'failed updates leak nothing')
})

t.test('2-layer tanh MLP fits a sine with adam (loss drops ≥ 10×)', async t => {
  const base = memory().tensors
  const n = 64
  const xs = Array.from({ length: n }, (_, i) => -3 + (6 * i) / (n - 1))
  const x = tensor(xs, [n, 1])
  const y = tensor(xs.map(Math.sin), [n, 1])
  const h = 16
  let params = {
    w1: random.normal([1, h], { seed: 1 }),
    b1: random.normal([h], { seed: 2, std: 0.5 }),
    w2: random.normal([h, 1], { seed: 3, std: 1 / Math.sqrt(h) }),
    b2: tensor([0], [1]),
  }
  const loss = (p: typeof params, xb: Tensor<'float32'>, yb: Tensor<'float32'>) => mean(square(sub(add(matmul(tanh(add(matmul(xb, p.w1), p.b1)), p.w2), p.b2), yb)))
  const vg = valueAndGrad(loss)
  const opt = adam({ lr: 0.03 })
  let state = opt.init(params)
  const losses: number[] = []
  for (let i = 0; i < 250; i++) {
    const [l, g] = vg(params, x, y)
    losses.push(l.dataSync()[0]!)
    ;[params, state] = opt.step(g, state, params)
    dispose([l, g])
  }
  const first = losses[0]!
  const last = losses[losses.length - 1]!
  t.ok(last * 10 <= first, `loss ${first.toFixed(4)} → ${last.toFixed(5)}`)
  dispose([params, state.slots, x, y])
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('10,000 training steps leave memory at its baseline', async t => {
  const base = memory()
  const x = tensor([-1, -0.5, 0, 0.5, 1], [5])
  const y = tensor([-1, 0, 1, 2, 3], [5]) // y = 2x + 1
  let params = { w: tensor([0], [1]), b: tensor([0], [1]) }
  const vg = valueAndGrad((p: typeof params) => mean(square(sub(add(mul(p.w, x), p.b), y))))
  const opt = adamw({ lr: 0.01, weightDecay: 0 })
  let state = opt.init(params)
  for (let i = 0; i < 10_000; i++) {
    const [l, g] = vg(params)
    ;[params, state] = opt.step(g, state, params)
    dispose([l, g])
  }
  assertClose(t, [...vals(params.w), ...vals(params.b)], [2, 1], { atol: 1e-3, msg: 'converged to w=2, b=1' })
  t.equal(memory().tensors, base.tensors + 2 + 2 + 4, 'only x, y, params and state are live')
  dispose([params, state.slots, x, y])
  const after = memory()
  t.equal(after.tensors, base.tensors, 'tensors back at baseline')
  t.equal(after.bytes, base.bytes, 'bytes back at baseline')
  t.equal(after.storages, base.storages, 'storages back at baseline')
})

t.test('FinalizationRegistry frees tensors dropped without dispose()', async t => {
  // --expose-gc at run time: the flag makes V8 install `gc` in contexts created afterwards.
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as (() => void) | undefined
  if (typeof gc !== 'function') {
    t.pass('gc is not available: skipped')
    return
  }
  const base = memory()
  const k = 20
  ;(() => {
    for (let i = 0; i < k; i++) tensor(new Float32Array(1024), [1024])
  })()
  t.equal(memory().tensors, base.tensors + k, 'dropped tensors are still counted before GC')
  for (let i = 0; i < 50 && memory().leaked < base.leaked + k; i++) {
    gc()
    await new Promise(r => setTimeout(r, 5))
  }
  const after = memory()
  t.equal(after.leaked - base.leaked, k, 'memory().leaked counts the collected tensors')
  t.equal(after.tensors, base.tensors + k, 'still counted in memory().tensors (never disposed): two readings differ by what was made and disposed between them, never by what the GC happened to collect')
  t.equal(after.bytes, base.bytes, 'storage bytes released')
  t.equal(after.storages, base.storages, 'storages released')
})
