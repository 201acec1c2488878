/**
 * Property tests over bad inputs to the public functions issue 19 touched, on every backend (fast-check): each
 * generated bad call raises a typed heed error naming the op and the argument, never a TypeError, a RangeError, a
 * silent wrap or a NaN that leaks past a mask; the device stays usable after each failure.
 */
import t from 'tap'
import fc from 'fast-check'
import { either as E } from 'fp-ts'
import { HeedError, ArgumentError, ValueError, gather, oneHot, parseSafetensors, sum, take, tensor, topk, zeros, type Tensor } from '@heed/tensor'
import { agentAttention, mask, multiHeadAttention, scaledDotProductAttention } from '@heed/attention'
import { equalOpportunityDifference, metricFrame, selectionRate, truePositiveRate } from '@heed/fairness'
import { eachBackend } from '../packages/tensor/test/helpers/backends.js'

const runs = (backend: string, n: number) => ({ numRuns: backend === 'webgpu' ? Math.ceil(n / 3) : n, seed: 19 })
/** fn throws a HeedError of class `cls` (optionally naming `arg`); any other throw or none is a counterexample. */
const typed = (fn: () => unknown, cls: typeof HeedError, arg?: string): boolean => {
  try {
    const r = fn() as { dispose?: () => void } | undefined
    r?.dispose?.()
    return false
  } catch (e) {
    return e instanceof cls && (arg === undefined || (e as HeedError).arg === arg)
  }
}
const optionKey = (allowed: readonly string[]) => fc.string({ minLength: 1, maxLength: 10 }).filter(k => !allowed.includes(k) && k !== '__proto__')

void eachBackend(t, 'unknown option keys are ArgumentErrors naming the key', async (t, backend) => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3])
  const q = zeros([1, 1, 3, 4])
  fc.assert(fc.property(optionKey(['axis', 'keepDims']), k => typed(() => sum(x, { [k]: 1 } as never), ArgumentError, k)), runs(backend, 60))
  fc.assert(
    fc.property(optionKey(['scale', 'causal', 'queryOffset', 'keyOffset', 'mask', 'scoreMod', 'blockSize', 'headOffset', 'input', 'params']), k =>
      typed(() => scaledDotProductAttention(q, q, q, { [k]: true } as never), ArgumentError, k),
    ),
    runs(backend, 30),
  )
  fc.assert(fc.property(fc.string(), s => typed(() => multiHeadAttention({ dModel: 8, heads: 2, rope: s as never }), ArgumentError, 'rope')), runs(backend, 30))
  t.ok(typed(() => agentAttention(q, q, q, { causal: true } as never), ValueError, 'causal'), 'agent attention refuses causal')
  t.same(sum(x, { axis: 0, keepDims: true }).shape, [1, 3], 'valid options still work')
  x.dispose()
  q.dispose()
})

void eachBackend(t, 'non-tensor arguments to attention are ArgumentErrors naming the argument', async (t, backend) => {
  const q = zeros([1, 1, 3, 4])
  const junk = fc.constantFrom<unknown>(null, undefined, 3, 'q', [[1, 2]], {}, true)
  fc.assert(
    fc.property(junk, fc.integer({ min: 0, max: 2 }), (bad, pos) => {
      const args: unknown[] = [q, q, q]
      args[pos] = bad
      return typed(() => (scaledDotProductAttention as (...a: unknown[]) => unknown)(...args), ArgumentError, ['q', 'k', 'v'][pos])
    }),
    runs(backend, 40),
  )
  t.ok(typed(() => (multiHeadAttention as (o?: unknown) => unknown)(), ArgumentError, 'opts'), 'multiHeadAttention()')
  q.dispose()
})

void eachBackend(t, 'a NaN key or value row reaches exactly the rows that see it (causal and packed)', async (t, backend) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 2, max: 24 }), fc.nat(), fc.boolean(), fc.boolean(), async (T, seed, inValues, packed) => {
      const bad = seed % T
      const D = 4
      const vals = Array.from({ length: T * D }, (_, i) => Math.sin(i * 0.7 + seed))
      const poisoned = vals.slice()
      poisoned[bad * D] = NaN
      const split = Math.max(1, Math.floor(T / 2))
      const ids = Array.from({ length: T }, (_, i) => (i < split ? 0 : 1))
      const [tq, tk, tv] = [vals, inValues ? vals : poisoned, inValues ? poisoned : vals].map(v => tensor(v, [1, 1, T, D]) as Tensor)
      const { out, lse } = scaledDotProductAttention(tq!, tk!, tv!, { causal: true, ...(packed ? { mask: mask.segments(ids) } : {}) })
      const o = await out.data()
      for (const u of [tq, tk, tv, out, lse]) u!.dispose()
      for (let i = 0; i < T; i++) {
        const sees = bad <= i && (!packed || ids[i] === ids[bad])
        if (Number.isNaN(o[i * D]!) !== sees) return false
      }
      return true
    }),
    runs(backend, 30),
  )
})

void eachBackend(t, 'indices out of range are ValueErrors before dispatch; the device stays usable', async (t, backend) => {
  const n = 5
  const x = tensor([1, 2, 3, 4, 5], [n])
  const outside = fc.oneof(fc.integer({ min: n, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: -1 }))
  fc.assert(fc.property(outside, k => typed(() => gather(x, tensor([k], [1], 'int32')), ValueError, 'indices')), runs(backend, 40))
  fc.assert(fc.property(outside, k => typed(() => take(x, tensor([0, k], [2], 'int32')), ValueError, 'indices')), runs(backend, 20))
  fc.assert(fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }), (depth, k) => k < depth || typed(() => oneHot(tensor([k], [1], 'int32'), depth), ValueError)), runs(backend, 40))
  const ok = gather(x, tensor([4, 0], [2], 'int32'))
  t.same(Array.from(await ok.data()), [5, 1], 'a valid gather afterwards')
  ok.dispose()
  x.dispose()
})

void eachBackend(t, 'out-of-range integers and oversized shapes are ValueErrors', async (t, backend) => {
  fc.assert(fc.property(fc.oneof(fc.double({ min: 2 ** 31, max: 1e300, noNaN: true }), fc.double({ max: -(2 ** 31) - 1, min: -1e300, noNaN: true }), fc.constant(NaN)), v => typed(() => tensor([v], undefined, 'int32'), ValueError)), runs(backend, 40))
  fc.assert(fc.property(fc.integer({ min: -(2 ** 31), max: -1 }), v => typed(() => tensor([v], undefined, 'uint32'), ValueError)), runs(backend, 20))
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 1e6 }), { minLength: 2, maxLength: 4 }), shape => shape.reduce((a, b) => a * b, 1) * 4 <= 2 ** 32 || typed(() => zeros(shape), ValueError)),
    runs(backend, 40),
  )
  const y = tensor([1, 2], [2])
  t.same(Array.from(await y.data()), [1, 2], 'the backend still allocates after the refusals')
  y.dispose()
})

void eachBackend(t, 'topk ranks NaN highest, as PyTorch', async (t, backend) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 12 }), fc.nat(), async (v, at) => {
      const a = v.slice()
      a[at % a.length] = NaN
      const x = tensor(a, [a.length])
      const { values, indices } = topk(x, 1)
      const [val, idx] = [(await values.data())[0]!, (await indices.data())[0]!]
      for (const u of [x, values, indices]) u.dispose()
      return Number.isNaN(val) && idx === a.findIndex(Number.isNaN)
    }),
    runs(backend, 30),
  )
})

t.test('safetensors: any bytes give a Left(ParseError) or tensors, never a throw', async t => {
  const header = fc.oneof(
    fc.json(),
    fc.record({ x: fc.record({ dtype: fc.constantFrom('F32', 'BOOL', 'I64', 'U64', 'F8_E4M3', 'C64', 'F16', 'BF16', 'Q'), shape: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }), data_offsets: fc.tuple(fc.nat(16), fc.nat(16)) }) }).map(h => JSON.stringify(h)),
  )
  fc.assert(
    fc.property(header, fc.uint8Array({ maxLength: 32 }), (h, data) => {
      const text = new TextEncoder().encode(h)
      const bytes = new Uint8Array(8 + text.length + data.length)
      new DataView(bytes.buffer).setUint32(0, text.length, true)
      bytes.set(text, 8)
      bytes.set(data, 8 + text.length)
      const r = parseSafetensors(bytes)
      if (E.isRight(r)) for (const x of Object.values(r.right)) x.dispose()
      return true
    }),
    { numRuns: 200, seed: 19 },
  )
})

t.test('fairness: fairlearn conventions hold for any labels and groups', async t => {
  const rows = fc.array(fc.tuple(fc.constantFrom(0, 1), fc.constantFrom(0, 1), fc.constantFrom('a', 'b', 'c')), { minLength: 2, maxLength: 30 })
  fc.assert(
    fc.property(rows, r => {
      const [yT, yP, g] = [r.map(x => x[0]), r.map(x => x[1]), r.map(x => x[2])]
      const tpr = truePositiveRate(yT, yP)
      if (!(tpr >= 0 && tpr <= 1)) return false
      if (new Set(g).size < 2) return typed(() => equalOpportunityDifference(yT, yP, { sensitiveFeatures: g }), ValueError)
      const d = equalOpportunityDifference(yT, yP, { sensitiveFeatures: g })
      return d >= 0 && d <= 1
    }),
    { numRuns: 100, seed: 19 },
  )
  // a group whose weights are all zero is an error naming it
  fc.assert(
    fc.property(rows, r => {
      const g = r.map(x => x[2])
      const w = g.map(x => (x === g[0] ? 0 : 1))
      return typed(() => metricFrame({ metrics: selectionRate, yTrue: r.map(x => x[0]), yPred: r.map(x => x[1]), sensitiveFeatures: g, sampleWeight: w }), ValueError, 'sampleWeight')
    }),
    { numRuns: 50, seed: 19 },
  )
})
