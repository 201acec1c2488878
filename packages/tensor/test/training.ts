import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { adamw, clipByGlobalNorm, dispose, memory, mul, progressBar, sgd, sub, sum, tensor, trackTensors, trainer, ArgumentError, DisposedError, ValueError, warmupCosine, type Tensor } from '@heed/tensor'
import { showProgress, trainStep, type StepResult } from '@heed/tensor/stream'

t.test('clipByGlobalNorm: PyTorch clip_grad_norm_ semantics over the whole tree, no leak', async t => {
  const base = memory().tensors
  const g = { a: tensor([3, 0], [2], 'float64'), b: [tensor([[4]], [1, 1], 'float64')], n: 7 }
  // ‖g‖ = 5: clipped to 1 → every leaf × 1/(5 + 1e-6)
  const c = clipByGlobalNorm(g, 1)
  t.equal(c.norm.dataSync()[0], 5)
  const f = 1 / (5 + 1e-6)
  t.same([...c.grads.a.dataSync()], [3 * f, 0])
  t.same([...c.grads.b[0]!.dataSync()], [4 * f])
  t.equal(c.grads.n, 7, 'non-tensor leaves pass through')
  // under the limit: unchanged values
  const u = clipByGlobalNorm(g, 10)
  t.same([...u.grads.a.dataSync()], [3, 0])
  // a zero gradient stays zero (no 0/0)
  const zero = { a: tensor([0, 0], [2]) }
  const z = clipByGlobalNorm(zero, 1)
  t.same([...z.grads.a.dataSync()], [0, 0])
  t.throws(() => clipByGlobalNorm(g, 0), ValueError)
  t.throws(() => clipByGlobalNorm({ n: 1 }, 1), ValueError)
  dispose([g, c, u, z, zero])
  t.equal(memory().tensors, base)
})

t.test('warmupCosine: linear warm-up, cosine to minLr, flat after total', async t => {
  const s = warmupCosine({ lr: 1, warmup: 10, total: 110, minLr: 0.1 })
  t.equal(s(1), 0.1)
  t.equal(s(5), 0.5)
  t.equal(s(10), 1)
  t.ok(Math.abs(s(60) - 0.55) < 1e-12, 'half way down the cosine: (1 + 0.1) / 2')
  t.equal(s(110), 0.1)
  t.equal(s(500), 0.1)
  for (let k = 11; k < 110; k++) t.ok(s(k + 1) <= s(k), `monotone after warm-up at ${k}`)
  const nw = warmupCosine({ lr: 2, total: 4 })
  t.ok(Math.abs(nw(1) - (0.2 + 0.9 * (1 + Math.cos(Math.PI / 4)))) < 1e-12, 'no warm-up starts on the curve')
  t.throws(() => warmupCosine({ lr: 1, total: 0 }), ValueError)
  t.throws(() => warmupCosine({ lr: 1, total: 5, warmup: 6 }), ValueError)
  t.throws(() => warmupCosine({ lr: 1, total: 5, minLr: 2 }), ValueError)
})

t.test('progressBar: whole lines in a log (count, elapsed, eta), redraws on a terminal', async t => {
  let clock = 0
  const lines: string[] = []
  const log = { write: (s: string) => void lines.push(s), isTTY: false }
  const bar = progressBar({ total: 100, label: 'train', stream: log, now: () => clock, logIntervalMs: 5000 })
  bar.tick(1, 'loss 4.0') // first tenth boundary seen: a line
  clock = 1000
  bar.tick(1) // same tenth, 1 s later: no line
  clock = 7000
  bar.tick(1) // interval passed: a line
  clock = 8000
  bar.tick(7) // 10/100 crosses a tenth: a line
  bar.done('loss 2.0')
  bar.done('twice') // idempotent
  t.equal(lines.length, 4)
  t.ok(lines.every(l => l.endsWith('\n') && !l.includes('\r')))
  t.match(lines[0]!, /^train \[\.+\] 1\/100 0\.0s eta 0\.0s loss 4\.0\n$/)
  t.match(lines[1]!, /3\/100 7\.0s eta 3m46s loss 4\.0/)
  t.match(lines[3]!, /10\/100 8\.0s eta 1m12s loss 2\.0\n$/)
  const tty: string[] = []
  const tb = progressBar({ total: 2, stream: { write: s => void tty.push(s), isTTY: true }, now: () => clock })
  tb.tick()
  tb.tick()
  tb.done()
  t.ok(tty[0]!.startsWith('\r\x1b[2K') && tty[tty.length - 1]!.endsWith('\n'))
  t.throws(() => progressBar({ total: 0 }), ValueError)
  t.throws(() => progressBar({ total: 1, width: 0 }), ValueError)
})

// loss(w) = Σ (w − target)², gradient 2(w − target)
const target = (): Tensor => tensor([1, -2, 3], [3], 'float64')
const quad = (p: { w: Tensor }, batch: { y: Tensor }) => {
  const d = sub(p.w, batch.y)
  return { loss: sum(mul(d, d)) }
}

t.test('trainStep: clipping, resume from a state equals the uninterrupted run, showProgress passes steps', async t => {
  const base = memory().tensors
  const w0 = { w: tensor([0, 0, 0], [3], 'float64') }
  const opt = adamw({ lr: 0.1, weightDecay: 0.01 })
  // trainStep borrows its batches (the stream ownership rule): the test made them and frees them
  const made: unknown[] = []
  const batches = (n: number) => {
    const b = Array.from({ length: n }, () => ({ y: target() }))
    made.push(b)
    return b
  }

  // uninterrupted: 6 steps, with clipping; capture the params after every step
  const full: number[][] = []
  const lines: string[] = []
  const steps: StepResult[] = await lastValueFrom(
    from(batches(6)).pipe(
      trainStep({ params: w0, optimizer: opt, loss: quad, clipNorm: 1, inspect: p => void full.push([...p.w.dataSync()]) }),
      showProgress({ total: 6, stream: { write: s => void lines.push(s), isTTY: false } }),
      toArray(),
    ),
  )
  t.same(steps.map(s => s.step), [1, 2, 3, 4, 5, 6])
  // gradient at w0 is 2·(−1, 2, −3): norm 2√14 > 1, reported before clipping
  t.ok(Math.abs(steps[0]!.gradNorm! - 2 * Math.sqrt(14)) < 1e-12)
  t.ok(lines.length >= 2 && /6\/6/.test(lines[lines.length - 1]!))

  // interrupted after 3 steps: keep params and optimizer state, resume for 3 more
  let saved: { p: { w: Tensor }; s: unknown } | undefined
  await lastValueFrom(
    from(batches(3)).pipe(
      trainStep({
        params: w0,
        optimizer: opt,
        loss: quad,
        clipNorm: 1,
        inspect: (p, step, s) => {
          if (step !== 3) return
          dispose(saved)
          saved = { p: { w: mul(p.w, 1) }, s: { count: s.count, slots: { mu: { w: mul(s.slots['mu']!.w, 1) }, nu: { w: mul(s.slots['nu']!.w, 1) } } } }
        },
      }),
      toArray(),
    ),
  )
  const resumed: number[][] = []
  const rsteps = await lastValueFrom(
    from(batches(3)).pipe(
      trainStep({ params: saved!.p, state: saved!.s as never, optimizer: opt, loss: quad, clipNorm: 1, inspect: p => void resumed.push([...p.w.dataSync()]) }),
      toArray(),
    ),
  )
  t.same(rsteps.map(s => s.step), [4, 5, 6], 'step numbers continue from the state')
  t.same(resumed, full.slice(3), 'resumed run equals the uninterrupted one, bit for bit')
  t.throws(() => trainStep({ params: w0, optimizer: sgd({ lr: 1 }), loss: quad, clipNorm: -1 }), ValueError)
  dispose([w0, saved, made])
  t.equal(memory().tensors, base, 'no leaks')
})

t.test('trainStep onNonFinite: continue (default), error (TerminateOnNaN), skip', async t => {
  const { eachBackend } = await import('./helpers/backends.js')
  const { noLeaks } = await import('./helpers/leaks.js')
  await eachBackend(t, 'onNonFinite', async (t, backend) => {
    // loss = Σ (w − y)²: a batch whose target holds NaN gives a NaN loss
    const lossOf = (p: { w: Tensor }, b: { y: Tensor }) => ({ loss: sum(mul(sub(p.w, b.y), sub(p.w, b.y))) })
    const run = (mode: 'continue' | 'error' | 'skip' | undefined) =>
      noLeaks(t, `no leaks (${mode ?? 'default'})`, async () => {
        const w0 = { w: tensor([0, 0], [2], 'float32', { backend }) }
        const ys = [tensor([1, 1], [2], 'float32', { backend }), tensor([Number.NaN, 1], [2], 'float32', { backend }), tensor([1, 1], [2], 'float32', { backend })]
        const seen: number[][] = []
        try {
          const steps = await lastValueFrom(
            from(ys.map(y => ({ y }))).pipe(
              trainStep({ params: w0, optimizer: sgd({ lr: 0.25 }), loss: lossOf, ...(mode ? { onNonFinite: mode } : {}), inspect: p => void p.w.data().then(v => seen.push([...v])) }),
              toArray(),
            ),
          )
          const w = await new Promise<number[][]>(res => setTimeout(() => res(seen), 50))
          return { steps, w }
        } finally {
          dispose([w0, ys])
        }
      })
    const cont = await run(undefined)
    t.ok(Number.isNaN(cont.steps[1]!.loss) && Number.isNaN(cont.steps[2]!.loss), 'default: the NaN step is applied and NaN flows on')

    await t.rejects(run('error'), { constructor: ValueError, message: /finite loss/ }, "'error' stops the stream with a ValueError")

    const skip = await run('skip')
    t.same(skip.steps.map(s => s.skipped ?? false), [false, true, false], "'skip' marks the NaN step")
    t.ok(Number.isFinite(skip.steps[2]!.loss), 'training goes on with finite losses')
    t.same(skip.w[1], skip.w[0], 'the skipped step leaves the parameters unchanged')
    t.ok(skip.w[2]!.every(v => Number.isFinite(v)), 'parameters stay finite')
    t.throws(() => trainStep({ params: { w: tensor([0]) }, optimizer: sgd({ lr: 1 }), loss: lossOf as never, onNonFinite: 'stop' as never }), ValueError)
  })
})

t.test('trainer: the synchronous core of trainStep, bit for bit; owns its copies, never the batches', async t => {
  const made = trackTensors()
  const w0 = { w: tensor([0, 0, 0], [3], 'float64') }
  const opt = adamw({ lr: 0.1, weightDecay: 0.01 })
  const batches = Array.from({ length: 4 }, () => ({ y: target() }))
  const viaStream: number[][] = []
  const results = await lastValueFrom(
    from(batches).pipe(trainStep({ params: w0, optimizer: opt, loss: quad, clipNorm: 1, inspect: p => void viaStream.push([...p.w.dataSync()]) }), toArray()),
  )
  const tr = trainer({ params: w0, optimizer: opt, loss: quad, clipNorm: 1 })
  const direct: number[][] = []
  for (const [i, b] of batches.entries()) {
    const s = tr.step(b)
    t.equal(s.step, i + 1)
    t.equal(s.loss.dataSync()[0], results[i]!.loss)
    t.equal(s.gradNorm!.dataSync()[0], results[i]!.gradNorm)
    t.equal(s.skipped, false)
    dispose(s)
    direct.push([...tr.params.w.dataSync()])
  }
  t.same(direct, viaStream, 'the same parameters after every step')
  t.ok(batches.every(b => !b.y.isDisposed), 'batches are the caller’s')
  t.same([...w0.w.dataSync()], [0, 0, 0], 'the initial params are copied, not moved')
  const out = tr.release()
  t.throws(() => tr.step(batches[0]!), DisposedError)
  tr.dispose() // after release: a no-op, the released params stay live
  t.same([...out.w.dataSync()], direct[3])
  // a plain-tensor loss, onNonFinite: 'skip' on the CPU keeps the params
  const tr2 = trainer({ params: w0, optimizer: sgd({ lr: 0.5 }), loss: (p: { w: Tensor }, y: number) => mul(sum(p.w), y), onNonFinite: 'skip' })
  const skipped = tr2.step(Number.NaN)
  t.equal(skipped.skipped, true)
  t.equal(skipped.step, 0)
  dispose(skipped)
  t.same([...tr2.params.w.dataSync()], [0, 0, 0])
  tr2.dispose()
  t.throws(() => trainer({ params: w0, optimizer: opt, loss: quad, clipnorm: 1 } as never), ArgumentError)
  t.throws(() => trainer({ params: {}, optimizer: opt, loss: quad } as never), ArgumentError)
  dispose([out, w0, batches])
  t.same(made.stop().map(x => x.id), [], 'nothing left live')
})
