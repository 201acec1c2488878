/**
 * Property tests over bad inputs to the public functions issue 19 touched, on every backend (fast-check): each
 * generated bad call raises a typed heed error naming the op and the argument, never a TypeError, a RangeError, a
 * silent wrap or a NaN that leaks past a mask; the device stays usable after each failure.
 */
import t from 'tap'
import fc from 'fast-check'
import { either as E } from 'fp-ts'
import { HeedError, ArgumentError, ShapeError, ValueError, gather, oneHot, parseSafetensors, sum, take, tensor, topk, zeros, type Tensor } from '@heed/tensor'
import * as attention from '@heed/attention'
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
    fc.property(optionKey(['scale', 'causal', 'queryOffset', 'keyOffset', 'mask', 'scoreMod', 'blockSize']), k =>
      typed(() => scaledDotProductAttention(q, q, q, { [k]: true } as never), ArgumentError, k),
    ),
    runs(backend, 30),
  )
  fc.assert(fc.property(fc.string(), s => typed(() => multiHeadAttention({ dModel: 8, heads: 2, rope: s as never }), ArgumentError, 'rope')), runs(backend, 30))
  t.ok(typed(() => agentAttention(q, q, q, { causal: true } as never), ValueError, 'causal'), 'agent attention refuses causal')
  for (const k of ['headOffset', 'input', 'params']) t.ok(typed(() => scaledDotProductAttention(q, q, q, { [k]: 0 } as never), ArgumentError, k), `sdpa refuses the layer-only ${k}`)
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

/**
 * Every operator of packages/attention/src/operators with its valid base options: an unknown key (generated), a
 * misspelt key (with the suggestion), a known option of the wrong type, a bad shape and a null argument each raise
 * a typed error naming the op and the argument. Validation runs before any compute, so this stays fast.
 */
t.test('the operators reject unknown and mistyped options, bad shapes and null arguments, naming op and argument', async t => {
  const A = attention as unknown as Record<string, (...a: unknown[]) => unknown>
  const x = zeros([1, 1, 4, 4])
  const rank3 = zeros([1, 4, 4])
  const gates = zeros([1, 1, 4])
  const centroids = zeros([1, 2, 4])
  const SDPA = ['scale', 'causal', 'queryOffset', 'keyOffset', 'mask', 'scoreMod', 'blockSize']
  type Case = {
    readonly op: string
    readonly call?: (q: unknown, k: unknown, v: unknown, o: unknown) => unknown
    readonly base: Record<string, unknown>
    readonly allowed: readonly string[]
    /** a misspelling of a known option and the name it should suggest */
    readonly misspelt: readonly [string, string]
    /** a known option with a value of the wrong type, the error class and the argument it names */
    readonly wrong: readonly [Record<string, unknown>, typeof HeedError, string]
  }
  const cases: Case[] = [
    { op: 'lightningAttention', base: { decay: 0.9 }, allowed: ['decay', 'scale', 'blockSize', 'causal', 'state', 'form'], misspelt: ['decy', 'decay'], wrong: [{ decay: 0.9, causal: 'yes' }, ArgumentError, 'causal'] },
    { op: 'flowAttention', base: {}, allowed: ['causal', 'eps', 'clamp', 'state', 'blockSize'], misspelt: ['causl', 'causal'], wrong: [{ causal: 1 }, ArgumentError, 'causal'] },
    { op: 'flowStats', base: {}, allowed: ['causal', 'eps', 'clamp', 'state', 'blockSize'], misspelt: ['epss', 'eps'], wrong: [{ eps: 'tiny' }, ValueError, 'eps'] },
    { op: 'actAttention', base: { sinks: [0] }, allowed: [...SDPA, 'beta', 'tau', 'sinks', 'exclude', 'heads', 'epsilon'], misspelt: ['betta', 'beta'], wrong: [{ beta: 'half' }, ValueError, 'beta'] },
    { op: 'combinerAttention', base: {}, allowed: ['segmentLength', 'pool', 'causal', 'scale'], misspelt: ['segmentLen', 'segmentLength'], wrong: [{ pool: 3 }, ValueError, 'pool'] },
    { op: 'combinerWeights', call: (q, k, _v, o) => A['combinerWeights']!(q, k, o), base: {}, allowed: ['segmentLength', 'pool', 'causal', 'scale'], misspelt: ['pol', 'pool'], wrong: [{ causal: 'yes' }, ArgumentError, 'causal'] },
    { op: 'windowAttention', base: { grid: [2, 2] }, allowed: ['grid', 'window', 'scale'], misspelt: ['windw', 'window'], wrong: [{ grid: '2x2' }, ValueError, 'grid'] },
    { op: 'channelAttention', base: {}, allowed: ['scale'], misspelt: ['scal', 'scale'], wrong: [{ scale: 'big' }, ValueError, 'scale'] },
    { op: 'duoAttention', base: { alpha: [1] }, allowed: [...SDPA, 'alpha', 'sink', 'recent'], misspelt: ['recnt', 'recent'], wrong: [{ alpha: [1], recent: 'all' }, ValueError, 'recent'] },
    { op: 'hipAttention', base: {}, allowed: ['maskK', 'blockSizeQ', 'queryStride', 'blockSizeK', 'causal', 'queryOffset', 'scale', 'selection'], misspelt: ['maskk', 'maskK'], wrong: [{ causal: 'yes' }, ArgumentError, 'causal'] },
    { op: 'hipSelect', call: (q, k, _v, o) => A['hipSelect']!(q, k, o), base: {}, allowed: ['maskK', 'blockSizeQ', 'queryStride', 'blockSizeK', 'causal', 'queryOffset'], misspelt: ['blocksizeq', 'blockSizeQ'], wrong: [{ maskK: 'all' }, ValueError, 'maskK'] },
    { op: 'longHeadsAttention', base: {}, allowed: ['chunkSize', 'attnLength', 'rope', 'scale'], misspelt: ['chunksize', 'chunkSize'], wrong: [{ chunkSize: 'big' }, ValueError, 'chunkSize'] },
    { op: 'mohAttention', call: (q, k, v, o) => A['mohAttention']!(q, k, v, gates, o), base: {}, allowed: [...SDPA, 'active'], misspelt: ['activ', 'active'], wrong: [{ active: ['0'] }, ValueError, 'active'] },
    { op: 'pineAttention', base: { documents: [] }, allowed: ['documents', 'rope', 'scale', 'mask', 'plan'], misspelt: ['document', 'documents'], wrong: [{ documents: 'all' }, ValueError, 'documents'] },
    { op: 'recycledAttention', base: { stride: 1, keep: 1 }, allowed: [...SDPA, 'stride', 'keep', 'threshold', 'aggregate', 'plan'], misspelt: ['treshold', 'threshold'], wrong: [{ stride: '1', keep: 1 }, ValueError, 'stride'] },
    { op: 'routingAttention', base: { centroids }, allowed: ['centroids', 'assignment', 'window', 'causal', 'scale', 'excludeSelf'], misspelt: ['assigment', 'assignment'], wrong: [{ centroids, excludeSelf: 'yes' }, ArgumentError, 'excludeSelf'] },
    { op: 's2Attention', base: {}, allowed: [...SDPA, 'localBlocks', 'stride', 'offset', 'denseHeads', 'layout', 'homoHead', 'allowGaps'], misspelt: ['localblock', 'localBlocks'], wrong: [{ homoHead: 1 }, ArgumentError, 'homoHead'] },
    { op: 'taskKvAttention', base: { heterogeneous: [true] }, allowed: [...SDPA, 'heterogeneous', 'sink', 'recent', 'middle', 'window', 'plan'], misspelt: ['heterogenous', 'heterogeneous'], wrong: [{ heterogeneous: 'all' }, ValueError, 'heterogeneous'] },
    { op: 'varAttention', base: { visual: [0], sinks: [0] }, allowed: [...SDPA, 'visual', 'sinks', 'p', 'heads', 'rho', 'imageFloor', 'rows'], misspelt: ['imagefloor', 'imageFloor'], wrong: [{ visual: 'image', sinks: [] }, ValueError, 'visual'] },
  ]
  const named = (e: unknown, cls: typeof HeedError, op: string, arg: string): boolean => e instanceof cls && (e as HeedError).op === op && (e as HeedError).arg === arg && e.message.startsWith(`${op}: ${arg}: `)
  const throwsNamed = (fn: () => unknown, cls: typeof HeedError, op: string, arg: string): boolean => {
    try {
      fn()
    } catch (e) {
      return named(e, cls, op, arg)
    }
    return false
  }
  for (const c of cases) {
    const call = c.call ?? ((q, k, v, o) => A[c.op]!(q, k, v, o))
    fc.assert(fc.property(optionKey(c.allowed), k => throwsNamed(() => call(x, x, x, { ...c.base, [k]: 1 }), ArgumentError, c.op, k)), { numRuns: 8, seed: 19 })
    const [bad, near] = c.misspelt
    try {
      call(x, x, x, { ...c.base, [bad]: 1 })
      t.fail(`${c.op}: misspelt ${bad} accepted`)
    } catch (e) {
      t.ok(named(e, ArgumentError, c.op, bad) && (e as Error).message.includes(`did you mean ${near}?`), `${c.op}: misspelt ${bad} suggests ${near}`)
    }
    const [opts, cls, arg] = c.wrong
    t.ok(throwsNamed(() => call(x, x, x, opts), cls, c.op, arg), `${c.op}: ${arg} of the wrong type is a ${cls.name}`)
    t.ok(throwsNamed(() => call(x, rank3, x, c.base), ShapeError, c.op, 'k'), `${c.op}: a rank-3 k is a ShapeError naming k`)
    const nullArg = c.call ? 'k' : 'q'
    t.ok(throwsNamed(() => (c.call ? call(x, null, x, c.base) : call(null, x, x, c.base)), ArgumentError, c.op, nullArg), `${c.op}: a null ${nullArg}`)
    t.ok(throwsNamed(() => call(x, x, x, null), ArgumentError, c.op, 'opts'), `${c.op}: null options`)
  }
  for (const u of [x, rank3, gates, centroids]) u.dispose()
})

t.test('the layer operator factories reject unknown options where the layer is built', async t => {
  const { operators } = attention
  const make: [string, () => unknown, string][] = [
    ['operators.sdpa', () => operators.sdpa({ blocksize: 8 } as never), 'blocksize'],
    ['operators.lightning', () => operators.lightning({ decay: 'tnl', decy: 0.9 } as never), 'decy'],
    ['operators.flow', () => operators.flow({ causal: true } as never), 'causal'],
    ['operators.act', () => operators.act({ sinks: [0], heads: [0] } as never), 'heads'],
    ['operators.recycled', () => operators.recycled({ stride: 2, keep: 2, causal: true } as never), 'causal'],
    ['operators.pine', () => operators.pine({ documents: [], mask: undefined, plan: {} } as never), 'plan'],
    ['operators.var', () => operators.var({ visual: [], sinks: [], causal: false } as never), 'causal'],
    ['operators.taskKv', () => operators.taskKv({ heterogeneous: [true], sinks: 4 } as never), 'sinks'],
    ['operators.moh', () => operators.moh({ shared: 1, topk: 1 } as never), 'topk'],
    ['operators.agent', () => operators.agent({ agents: 2, causal: true } as never), 'causal'],
    ['operators.routing', () => operators.routing({ clusters: 2, seeds: 1 } as never), 'seeds'],
    ['operators.landmark', () => operators.landmark({ blockSize: 2, topk: 1 } as never), 'topk'],
    ['operators.s2', () => operators.s2({ heads: 2, kvHeads: 2, strides: 2 } as never), 'strides'],
  ]
  for (const [op, fn, arg] of make) t.ok(typed(fn, ArgumentError, arg) && (() => { try { fn() } catch (e) { return (e as HeedError).op === op } return false })(), `${op} names ${arg}`)
  // a layer call the operator has no mode for is an error, not computed some other way
  const layer = multiHeadAttention({ dModel: 8, heads: 2, attention: operators.recycled({ stride: 2, keep: 2 }) })
  const p = layer.init({ seed: 1 })
  const x = zeros([1, 4, 8])
  t.ok(typed(() => layer.forward(p, x, { causal: false }), ValueError, 'causal'), 'recycled refuses a non-causal layer call')
  for (const w of Object.values(p)) (w as Tensor).dispose()
  x.dispose()
})
