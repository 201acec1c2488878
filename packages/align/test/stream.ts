import t from 'tap'
import { Subject, from, lastValueFrom, toArray, throwError, concat, of } from 'rxjs'
import { ArgumentError, ValueError, dispose, memory, sgd, stack, sum, mul, tensor, type Tensor } from '@heed/tensor'
import { dpoLoss } from '@heed/align'
import { collectMetrics, preferenceBatches, showProgress, stepInfo, trainStep, type StepResult } from '@heed/align/stream'
import { run, report, asciiChart, svgChart } from '../../../examples/align-dpo.js'

type Ex = { c: Tensor; r: Tensor }
// operators borrow their inputs (the stream ownership rule): the tests made these and free them
const made: unknown[] = []
const ex = (c: number, r: number): Ex => {
  const e = { c: tensor([c], [1], 'float64'), r: tensor([r], [1], 'float64') }
  made.push(e)
  return e
}
const freeMade = () => dispose(made.splice(0))

t.test('preferenceBatches groups, flushes the remainder, borrows its inputs and frees its buffer on teardown', async t => {
  const before = memory().tensors
  const collate = (xs: readonly Ex[]) => ({ c: stack(xs.map(x => x.c)), r: stack(xs.map(x => x.r)) })
  const out = await lastValueFrom(from([ex(1, 2), ex(3, 4), ex(5, 6)]).pipe(preferenceBatches({ size: 2, collate }), toArray()))
  t.same(out.map(b => b.c.shape), [[2, 1], [1, 1]])
  dispose(out)
  t.ok((made as Ex[]).every(e => !e.c.isDisposed), 'inputs borrowed, not disposed')
  freeMade()
  t.equal(memory().tensors, before, 'the views collate did not use are freed')
  const dropped = await lastValueFrom(from([ex(1, 2), ex(3, 4), ex(5, 6)]).pipe(preferenceBatches({ size: 2, collate, dropLast: true }), toArray()))
  t.equal(dropped.length, 1)
  dispose(dropped)
  freeMade()
  t.equal(memory().tensors, before, 'dropLast remainder (a view) disposed')
  const s = new Subject<Ex>()
  const sub = s.pipe(preferenceBatches({ size: 3, collate })).subscribe()
  s.next(ex(1, 2))
  s.next(ex(1, 2))
  sub.unsubscribe()
  freeMade()
  t.equal(memory().tensors, before, 'teardown disposes the views of the buffered examples')
  const err = await lastValueFrom(from([ex(1, 2)]).pipe(preferenceBatches({ size: 1, collate: () => { throw new ValueError({ op: 'collate' }) } }))).catch(e => e)
  t.type(err, ValueError, 'collate failure on the error channel')
  freeMade()
  t.equal(memory().tensors, before, 'and the views of its inputs disposed')
  const nul = await lastValueFrom(from([null as unknown as Ex]).pipe(preferenceBatches({ size: 1, collate }))).catch(e => e)
  t.type(nul, ArgumentError, 'a null example is a typed error on the error channel')
  t.throws(() => preferenceBatches({ size: 0, collate }), ValueError)
  t.throws(() => preferenceBatches({ size: 2, collate: 3 as never }), ArgumentError)
})

t.test('trainStep: loss → valueAndGrad → optimizer step, metrics as numbers, teardown frees params and state', async t => {
  const before = memory().tensors
  const params = { w: tensor([0, 0], [2], 'float64') }
  // Policy log-probs are linear in w: chosen = w·a, rejected = w·b; the reference is w = 0.
  const loss = (p: { w: Tensor }, batch: { a: Tensor; b: Tensor }) => {
    const chosenLogps = sum(mul(batch.a, p.w), { axis: -1 })
    const rejectedLogps = sum(mul(batch.b, p.w), { axis: -1 })
    const zero = mul(chosenLogps, 0)
    return dpoLoss({ chosenLogps, rejectedLogps, refChosenLogps: zero, refRejectedLogps: zero }, { beta: 1 })
  }
  const batch = () => {
    const b = { a: tensor([[1, 0], [1, 1]], [2, 2], 'float64'), b: tensor([[0, 1], [0, 2]], [2, 2], 'float64') }
    made.push(b)
    return b
  }
  let final: { w: Tensor } | undefined
  const steps = await lastValueFrom(from([batch(), batch(), batch()]).pipe(trainStep({ params, optimizer: sgd({ lr: 0.5 }), loss, onComplete: p => (final = p) }), toArray()))
  t.equal(steps.length, 3)
  t.equal(steps[0]!.loss, Math.LN2, 'first loss is ln 2')
  t.ok(steps[2]!.loss < steps[0]!.loss, 'loss falls')
  t.equal(steps[0]!.metrics['rewards/accuracies'], 0)
  t.equal(steps[2]!.metrics['rewards/accuracies'], 1)
  t.same(Array.from(params.w.dataSync()), [0, 0], 'caller params untouched')
  t.ok(final !== undefined && final.w.dataSync()[0]! > 0, 'final params handed over')
  dispose([final, params])
  freeMade()
  t.equal(memory().tensors, before, 'no leaked tensors after completion')
  const s = new Subject<{ a: Tensor; b: Tensor }>()
  const p2 = { w: tensor([0, 0], [2], 'float64') }
  const sub = s.pipe(trainStep({ params: p2, optimizer: sgd({ lr: 0.1 }), loss })).subscribe()
  s.next(batch())
  sub.unsubscribe()
  dispose(p2)
  freeMade()
  t.equal(memory().tensors, before, 'teardown frees the per-subscription params and state')
  const bad = await lastValueFrom(of(batch()).pipe(trainStep({ params: { w: tensor([0, 0, 0], [3], 'float64') }, optimizer: sgd({ lr: 0.1 }), loss }))).catch(e => e)
  t.ok(bad instanceof Error, 'a failing loss goes to the error channel')
  const upstream = await lastValueFrom(concat(of(batch()), throwError(() => new Error('upstream'))).pipe(trainStep({ params: { w: tensor([0, 0], [2], 'float64') }, optimizer: sgd({ lr: 0.1 }), loss }))).catch(e => e)
  t.match((upstream as Error).message, 'upstream')
  t.throws(() => trainStep({ params: {} as { w: Tensor }, optimizer: sgd({ lr: 0.1 }), loss }), ArgumentError)
})

t.test('showProgress reports each step in a log and passes steps through; collectMetrics accumulates', async t => {
  const lines: string[] = []
  const steps: StepResult[] = [1, 2, 3].map(step => ({ step, loss: 1 / step, metrics: { 'rewards/accuracies': step / 3 } }))
  const stream = { write: (s: string) => void lines.push(s), isTTY: false }
  const hist = await lastValueFrom(from(steps).pipe(showProgress({ total: 3, stream }), collectMetrics()))
  t.same(hist.steps, [1, 2, 3])
  t.same(hist.series['loss'], [1, 0.5, 1 / 3])
  // not a terminal: whole lines, one per tenth crossed, and the closing line
  t.ok(lines.every(l => l.endsWith('\n') && !l.includes('\r')), 'log lines, not redraws')
  t.match(lines[2]!, /3\/3 .*loss 0\.3333 accuracies 1\.000/)
  t.match(lines[lines.length - 1]!, /3\/3 /)
  t.equal(stepInfo(steps[0]!, []), 'loss 1.0000')
  t.throws(() => showProgress({ total: 0 }), ValueError)
})

t.test('the example trains: DPO starts at ln 2 and falls, accuracy rises, rejected log-prob drops (small setting)', async t => {
  const before = memory().tensors
  const r = await run({ steps: 25, batchSize: 8, referenceSteps: 20, quiet: true })
  const loss = r.dpo.series['loss']!
  t.ok(Math.abs(loss[0]! - Math.LN2) < 1e-6, 'DPO loss starts at ln 2')
  t.ok(loss[loss.length - 1]! < loss[0]!, 'and falls')
  const acc = r.dpo.series['rewards/accuracies']!
  t.ok(acc[acc.length - 1]! > acc[0]!, 'reward accuracy rises')
  const rej = r.dpo.series['logps/rejected']!
  t.ok(rej[rej.length - 1]! < rej[0]!, 'rejected log-prob drops')
  const text = report(r)
  t.match(text, /DPO {6}\(β=0\.1\): loss 0\.6931 →/)
  t.match(asciiChart({ a: [0, 1, 2] }, { width: 8, height: 3 }), /\*/)
  t.match(svgChart([{ title: 'x', series: { a: [1, 2] } }]), /^<svg/)
  t.equal(memory().tensors, before, 'the example leaves no tensors behind')
})
