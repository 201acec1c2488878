import t from 'tap'
import { from, lastValueFrom, toArray, take } from 'rxjs'
import { dispose, memory, tensor } from '@heed/tensor'
import { type TokenChunk } from '@heed/tensor/stream'
import { SparseyMac } from '@heed/memory'
import { disposeEvent, sparsey, tensorBrainMemory, type SparseyEvent, type TensorBrainEvent } from '@heed/memory/stream'

const rows = (n: number, size: number, seed: number): number[][] =>
  Array.from({ length: n }, (_, i) => Array.from({ length: size }, (_, j) => (((i * 7919 + j * 104729 + seed) % 13) === 0 ? 1 : 0)))
const chunk = (r: number[][], start: number): TokenChunk => ({ tokens: tensor(r, [r.length, r[0]!.length], 'float32'), positions: start })

t.test('sparsey operator: stores as chunks stream, recalls on demand, chunking does not matter', async t => {
  const base = memory().tensors
  const data = rows(8, 64, 1)
  const run = async (cuts: number[]) => {
    const items: (TokenChunk | { query: ReturnType<typeof tensor> })[] = []
    let s = 0
    for (const c of cuts) {
      items.push(chunk(data.slice(s, s + c), s))
      s += c
    }
    items.push({ query: tensor(data, [8, 64], 'float32') })
    const out = await lastValueFrom(from(items).pipe(sparsey({ inputSize: 64, seed: 3 }), toArray()))
    // the operator borrows its items (stream ownership rule): the test made them and frees them
    dispose(items)
    const codes = await Promise.all(out.map(async (e: SparseyEvent) => Array.from(await e.codes.data())))
    out.forEach(disposeEvent)
    return codes
  }
  const one = await run([8])
  const many = await run([3, 1, 4])
  t.same(one[0], many.slice(0, 3).flat(), 'stored codes independent of chunking')
  t.same(one[1], many[3], 'recall independent of chunking')
  t.same(one[1], one[0], 'recall reproduces the stored codes')
  const mac = new SparseyMac({ inputSize: 64, seed: 3 })
  const plain = data.map(r => Array.from(mac.learn(Uint8Array.from(r)).code!))
  t.same(one[0], plain.flat(), 'operator = plain functions')
  t.equal(memory().tensors, base, 'inputs and outputs freed')
})

t.test('tensorBrainMemory: per-subscription state, recall by time index, buffers freed on unsubscribe', async t => {
  const base = memory().tensors
  const triples = [[1, 0, 2], [3, 1, 4], [5, 2, 6]]
  const op = tensorBrainMemory({ entities: 10, predicates: 3, dim: 64, seed: 1 })
  // the operator borrows its items (stream ownership rule): the test made them and frees them
  const made: unknown[] = []
  const items = () => {
    const it = [{ tokens: tensor(triples, [3, 3], 'int32'), positions: 0 } as TokenChunk, { query: tensor([2, 0], [2], 'int32') }]
    made.push(it)
    return it
  }
  const [a, b] = await Promise.all([lastValueFrom(from(items()).pipe(op, toArray())), lastValueFrom(from(items()).pipe(op, toArray()))])
  const rec = async (e: TensorBrainEvent) => Array.from(await e.triples.data())
  t.same(await rec(a[1]!), [5, 2, 6, 1, 0, 2])
  t.same(await rec(b[1]!), await rec(a[1]!), 'independent subscriptions agree')
  ;[...a, ...b].forEach(disposeEvent)
  const first = await lastValueFrom(from(items()).pipe(op, take(1)))
  disposeEvent(first)
  await new Promise(r => setTimeout(r, 10))
  dispose(made)
  t.equal(memory().tensors, base, 'model tensors disposed when the subscription ends')
})

t.test('disposeEvent rejects what is not a stream event, naming itself', async t => {
  for (const bad of [null, undefined, 3, [1], tensor([1]), { kind: 'other' }])
    t.throws(() => disposeEvent(bad as never), { name: 'ArgumentError', op: 'disposeEvent', arg: 'event' }, `disposeEvent(${String(bad)})`)
  const e = { kind: 'recall' as const, times: tensor([0], [1], 'int32'), triples: tensor([0, 1, 2], [1, 3], 'int32') }
  const before = memory().tensors
  disposeEvent(e)
  t.equal(memory().tensors, before - 2, 'an event’s tensors are disposed')
})
