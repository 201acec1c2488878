import t from 'tap'
import { lastValueFrom, toArray, filter, take as takeN } from 'rxjs'
import { cast, dispose, ParseError, scope, tensor, valueAndGrad, ValueError, DTypeError, ShapeError, type Tensor } from '@heed/tensor'
import {
  charTokenizer,
  flattenParams,
  KJV_ALPHABET,
  KJV_BOOKS,
  kjvSplit,
  lmBatch,
  lmBatchOffsets,
  lmDuoGates,
  lmLoss,
  loadKjv,
  loadLM,
  parseKjv,
  saveLM,
  transformerLM,
  validationLoss,
  type TransformerLMParams,
} from '@heed/attention'
import { trainLM, type TrainLMEvent } from '@heed/attention/stream'
import { assertClose, checkGrad } from '../../tensor/test/helpers/numeric.js'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'

const tiny = { vocab: 7, dModel: 8, layers: 2, heads: 2, hidden: 12, context: 6 } as const

const castTree = (p: TransformerLMParams, dtype: 'float64' | 'float32'): TransformerLMParams => {
  const walk = (x: unknown): unknown => (x !== null && typeof x === 'object' && 'dtype' in x ? cast(x as Tensor, dtype) : Array.isArray(x) ? x.map(walk) : x !== null && typeof x === 'object' ? Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)])) : x)
  return walk(p) as TransformerLMParams
}

t.test('corpus: the shipped KJV parses, the alphabet is the text\'s, the tokenizer round-trips it, the split is by book', async t => {
  const verses = await loadKjv()
  t.equal(verses.length, 31102)
  t.same([verses[0]!.book, verses[0]!.chapter, verses[0]!.verse], ['Ge', 1, 1])
  t.equal(verses[0]!.text, 'In the beginning God created the heaven and the earth.')
  t.equal(verses.at(-1)!.book, 'Rev')
  const split = kjvSplit(verses)
  const all = split.trainText + split.validationText
  t.equal(charTokenizer.fromText(all).vocab.join(''), KJV_ALPHABET, 'KJV_ALPHABET is the corpus alphabet')
  const tok = charTokenizer(KJV_ALPHABET)
  t.equal(tok.decode(tok.encode(all)), all, 'the tokenizer round-trips the whole corpus')
  // the split: training is Genesis–Acts, validation Romans–Revelation, 5–10 % of the characters, disjoint
  const romans = KJV_BOOKS.indexOf('Rom')
  t.ok(split.train.every(v => KJV_BOOKS.indexOf(v.book) < romans))
  t.ok(split.validation.every(v => KJV_BOOKS.indexOf(v.book) >= romans))
  t.equal(split.train.length + split.validation.length, verses.length)
  const frac = split.validationText.length / all.length
  t.ok(frac > 0.05 && frac < 0.1, `validation is ${(100 * frac).toFixed(1)} % of the characters`)
  t.equal(split.trainText.split('\n').length - 1, split.train.length, 'one line per verse, no references')
  t.notOk(/\d/.test(all), 'no digits: references are dropped')
  // no training window can reach validation text: windows lie inside the training token array
  const train = tok.encode(split.trainText)
  for (let i = 0; i < 50; i++) for (const o of lmBatchOffsets(train.length, { batch: 8, context: 256, seed: 3 }, i)) t.ok(o >= 0 && o + 257 <= train.length) || t.fail('window past the end')
  t.throws(() => kjvSplit(verses, { validationFrom: 'Nope' as never }), ValueError)
  t.throws(() => kjvSplit(verses.slice(0, 10)), ValueError, 'no validation verses')
  t.throws(() => parseKjv('Foo1:1 x'), ValueError)
  t.throws(() => parseKjv('Exo1:1 a\nGe1:1 b'), ValueError, 'out of canonical order')
  t.throws(() => parseKjv('no reference'), ValueError)
})

t.test('charTokenizer: unknown characters are an error or a documented replacement, never silently lost', async t => {
  const tok = charTokenizer('ab ')
  t.same([...tok.encode('ab ba')], [0, 1, 2, 1, 0])
  const err = t.throws(() => tok.encode('abc')) as ValueError
  t.ok(err instanceof ValueError && /"c" \(code 99\) at position 2/.test(err.message), err.message)
  t.same([...tok.encode('abc', { unknown: 'skip' })], [0, 1])
  t.same([...tok.encode('abc', { unknown: { replace: ' ' } })], [0, 1, 2])
  t.throws(() => tok.encode('c', { unknown: { replace: 'z' } }), ValueError)
  t.throws(() => tok.decode([3]), ValueError)
  t.throws(() => charTokenizer('aa'), ValueError)
  t.throws(() => charTokenizer(''), ValueError)
  t.ok(tok.covers('aab') && !tok.covers('x'))
  t.equal(tok.encode('').length, 0)
})

t.test('transformerLM: shapes, parameter count, GPT-2 init, typed errors', async t => {
  await noLeaks(t, 'no leaks', () => {
    const lm = transformerLM(tiny)
    const p = lm.init({ seed: 2 })
    const flat = flattenParams(p)
    t.equal(Object.values(flat).reduce((n, x) => n + x.size, 0), lm.parameterCount)
    t.same(Object.keys(flat).slice(0, 4), ['embed', 'blocks.0.attn.Wq', 'blocks.0.attn.Wk', 'blocks.0.attn.Wv'])
    t.notOk('head' in p, 'tied by default')
    const untied = transformerLM({ ...tiny, tied: false })
    const pu = untied.init()
    t.same(pu.head!.shape, [8, 7])
    t.equal(untied.parameterCount, lm.parameterCount + 56)
    // residual projections are scaled down by √(2L)
    const sd = (x: Tensor) => Math.sqrt([...x.dataSync()].reduce((s, v) => s + v * v, 0) / x.size)
    const big = transformerLM({ vocab: 64, dModel: 64, layers: 8, heads: 4, context: 8 })
    const pb = big.init()
    t.ok(Math.abs(sd(pb.embed) - 0.02) < 0.002 && Math.abs(sd(pb.blocks[0]!.attn.Wo) - 0.02 / 4) < 0.0005 && Math.abs(sd(pb.blocks[0]!.W2) - 0.005) < 0.0005)
    const ids = tensor([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32')
    const y = lm.forward(p, ids)
    t.same(y.shape, [2, 3, 7])
    const row = tensor([1, 2, 3], [3], 'int32')
    const y1 = lm.forward(p, row)
    t.same(y1.shape, [3, 7])
    assertClose(t, y1.dataSync(), y.dataSync().slice(0, 21), { atol: 0, rtol: 0, msg: 'unbatched = batch row 0' })
    const bad = { f: tensor([1, 2], [2], 'float32'), r3: tensor([[[1]]], [1, 1, 1], 'int32'), big: tensor([7], [1], 'int32'), tg: tensor([1], [1], 'int32') }
    t.throws(() => lm.forward(p, bad.f), DTypeError)
    t.throws(() => lm.forward(p, bad.r3), ShapeError)
    t.throws(() => lm.forward(pu, ids), ShapeError, 'params of another model')
    t.throws(() => lm.forward(p, bad.big), ValueError, 'token id out of range')
    t.throws(() => transformerLM({ ...tiny, layers: 0 }), ValueError)
    t.throws(() => lmLoss(y, bad.tg), ShapeError)
    dispose([p, pu, pb, ids, y, y1, bad, row])
  })
})

t.test('transformerLM: float32 logits equal the float64 model; every parameter gradient matches finite differences', async t => {
  const lm = transformerLM(tiny)
  const p64 = castTree(lm.init({ seed: 5 }), 'float64')
  const p32 = castTree(p64, 'float32')
  const ids = tensor([[0, 3, 6, 2, 2, 1], [5, 4, 3, 2, 1, 0]], [2, 6], 'int32')
  const targets = tensor([[3, 6, 2, 2, 1, 4], [4, 3, 2, 1, 0, 6]], [2, 6], 'int32')
  const l64 = lm.forward(p64, ids)
  const l32 = lm.forward(p32, ids)
  assertClose(t, l32.dataSync(), l64.dataSync(), { atol: 1e-5, rtol: 1e-4, msg: 'float32 logits vs float64' })
  // gradients of float32 vs float64 at the same point
  const vg = valueAndGrad((p: TransformerLMParams) => lmLoss(lm.forward(p, ids), targets))
  const [v64, g64] = vg(p64)
  const [v32, g32] = vg(p32)
  assertClose(t, v32.dataSync(), v64.dataSync(), { atol: 1e-6, rtol: 1e-5, msg: 'loss' })
  const f64 = flattenParams(g64)
  const f32 = flattenParams(g32)
  for (const k of Object.keys(f64)) assertClose(t, f32[k]!.dataSync(), f64[k]!.dataSync(), { atol: 1e-5, rtol: 1e-3, msg: `float32 grad ${k}` })
  // finite differences on the float64 model, every parameter
  const names = Object.keys(flattenParams(p64))
  const flat = flattenParams(p64)
  const rebuild = (xs: Tensor[]): TransformerLMParams => {
    const byName = Object.fromEntries(names.map((n, i) => [n, xs[i]!]))
    const tree = (pre: string) => ({ Wq: byName[`${pre}.attn.Wq`]!, Wk: byName[`${pre}.attn.Wk`]!, Wv: byName[`${pre}.attn.Wv`]!, Wo: byName[`${pre}.attn.Wo`]! })
    return {
      embed: byName['embed']!,
      blocks: [0, 1].map(l => ({ attn: tree(`blocks.${l}`), norm1: byName[`blocks.${l}.norm1`]!, norm2: byName[`blocks.${l}.norm2`]!, W1: byName[`blocks.${l}.W1`]!, b1: byName[`blocks.${l}.b1`]!, W2: byName[`blocks.${l}.W2`]!, b2: byName[`blocks.${l}.b2`]! })),
      normF: byName['normF']!,
    }
  }
  // larger than N(0, 0.02) values, so that the gradients are not all tiny
  const inputs = names.map(n => ({ v: [...flat[n]!.dataSync()].map((x, i) => x * 20 + 0.1 * Math.sin(i + n.length)), shape: flat[n]!.shape }))
  await checkGrad(t, (...xs) => scope(() => lmLoss(lm.forward(rebuild(xs), ids), targets)), inputs, { eps: 1e-6, atol: 1e-7, rtol: 1e-5, msg: 'lm' })
  dispose([p64, p32, ids, targets, l64, l32, v64, g64, v32, g32])
})

t.test('checkpoints: save → load gives identical logits (float32), close ones (float16); bad files are typed errors', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const lm = transformerLM(tiny)
    const p = lm.init({ seed: 9 })
    const vocab = [...'abcdefg']
    const ids = tensor([[1, 2, 3, 4]], [1, 4], 'int32')
    const want = lm.forward(p, ids)
    const bytes = await saveLM(lm, p, { vocab })
    const c = loadLM(bytes)
    t.same(c.vocab, vocab)
    t.same(c.config, lm.config)
    t.equal(c.training, undefined)
    const got = c.lm.forward(c.params, ids)
    t.same([...got.dataSync()], [...want.dataSync()], 'identical logits')
    const half = loadLM(await saveLM(lm, p, { vocab, dtype: 'float16' }))
    const gh = half.lm.forward(half.params, ids)
    assertClose(t, gh.dataSync(), want.dataSync(), { atol: 2e-3, rtol: 2e-2, msg: 'float16 storage' })
    t.ok((await saveLM(lm, p, { vocab, dtype: 'float16' })).length < bytes.length - 2 * lm.parameterCount + 64, 'two bytes a parameter less')
    // bad input
    t.throws(() => loadLM(bytes.slice(0, bytes.length - 3)), ParseError, 'truncated')
    const corrupt = bytes.slice()
    corrupt[9] = 0x7b
    t.throws(() => loadLM(corrupt), ParseError, 'corrupt header')
    t.throws(() => loadLM(bytes, { expect: { ...tiny, layers: 3 } }), ValueError, 'a checkpoint of another model')
    const other = transformerLM({ ...tiny, hidden: 16 })
    const po = other.init()
    const ob = await saveLM(other, po, { vocab })
    t.throws(() => loadLM(ob, { expect: tiny }), /config\.hidden/)
    await t.rejects(saveLM(lm, p, { vocab: ['a'] }), ValueError, 'vocabulary of another size')
    dispose([p, ids, want, c.params, got, half.params, gh, po])
  })
})

t.test('lmRecipe, trainLM and checkpointStep check their arguments in their own name, before any training', async t => {
  const { lmRecipe, checkpointStep } = await import('@heed/attention/stream')
  const tok = charTokenizer('abcdefg')
  const train = tok.encode('abcdefg'.repeat(40))
  const lm = transformerLM(tiny)
  t.same(lmRecipe({ steps: 10, batch: 2 }), { steps: 10, batch: 2, lr: 3e-3, warmup: 1, minLr: 3e-3 / 10, weightDecay: 0.01, beta1: 0.9, beta2: 0.95, clipNorm: 1, seed: 0 }, 'the defaults')
  t.throws(() => lmRecipe(null as never), { name: 'ArgumentError', op: 'lmRecipe', arg: 'opts' })
  t.throws(() => lmRecipe({ steps: 10, batch: 2, lerningRate: 1 } as never), { name: 'ArgumentError', op: 'lmRecipe', message: /lerningRate/ })
  for (const [k, v] of [['steps', 0], ['batch', 1.5], ['lr', -1], ['lr', Infinity], ['warmup', -1], ['beta1', 1], ['beta2', -0.1], ['clipNorm', 0], ['weightDecay', -1], ['seed', 0.5]] as const)
    t.throws(() => lmRecipe({ steps: 10, batch: 2, [k]: v }), { op: 'lmRecipe', arg: k, message: /^lmRecipe/ }, `${k}: ${v}`)
  const ok = { lm, train, vocab: tok.vocab, steps: 2, batch: 1 }
  t.throws(() => trainLM({ ...ok, lm: null as never }), { name: 'ArgumentError', op: 'trainLM', arg: 'lm' })
  t.throws(() => trainLM({ ...ok, vocab: 'abc' as never }), { name: 'ArgumentError', op: 'trainLM', arg: 'vocab' })
  t.throws(() => trainLM({ ...ok, evalEvry: 3 } as never), { name: 'ArgumentError', op: 'trainLM', message: /evalEvry/ })
  t.throws(() => trainLM({ ...ok, beta2: 2 }), { op: 'trainLM', arg: 'beta2', message: /^trainLM/ })
  t.throws(() => checkpointStep([1, 2] as never), { name: 'ArgumentError', op: 'checkpointStep', arg: 'bytes' })
})

t.test('trainLM: loss falls; a run interrupted and resumed equals the uninterrupted run step for step; no leaks', async t => {
  const tok = charTokenizer('abcdefg')
  const text = 'abcdefgabcdefg gfedcba '.repeat(20).replace(/ /g, 'a')
  const train = tok.encode(text)
  const validation = tok.encode('abcdefgabcdefgabcdefg')
  const lm = transformerLM(tiny)
  const recipe = { steps: 8, batch: 3, lr: 1e-2, warmup: 2, seed: 4 }
  await noLeaks(t, 'no live tensors after full, resumed and cancelled runs', async () => {
    const events: TrainLMEvent[] = await lastValueFrom(trainLM({ lm, train, validation, vocab: tok.vocab, ...recipe, evalEvery: 4, checkpointEvery: 3 }).pipe(toArray()))
    const steps = events.filter(e => e.kind === 'step')
    t.same(steps.map(e => e.step), [1, 2, 3, 4, 5, 6, 7, 8])
    t.same(events.filter(e => e.kind === 'eval').map(e => e.step), [4, 8])
    t.same(events.filter(e => e.kind === 'checkpoint').map(e => e.step), [3, 6, 8])
    t.ok(steps.at(-1)!.loss < steps[0]!.loss, 'loss falls')
    t.ok(steps.every(s => Number.isFinite(s.gradNorm) && s.lr > 0))
    // resume from the step-3 checkpoint
    const ck3 = events.find(e => e.kind === 'checkpoint' && e.step === 3) as Extract<TrainLMEvent, { kind: 'checkpoint' }>
    const resumed = await lastValueFrom(trainLM({ lm, train, validation, vocab: tok.vocab, ...recipe, evalEvery: 4, checkpointEvery: 3, resume: ck3.bytes }).pipe(filter(e => e.kind === 'step'), toArray()))
    t.same(resumed.map(e => [e.step, (e as { loss: number }).loss]), steps.slice(3).map(e => [e.step, e.loss]), 'same losses, bit for bit')
    // a resume from another recipe or another model is refused
    t.throws(() => trainLM({ lm, train, vocab: tok.vocab, ...recipe, lr: 2e-2, resume: ck3.bytes }), /recipe\.lr/)
    t.throws(() => trainLM({ lm: transformerLM({ ...tiny, dModel: 4 }), train, vocab: tok.vocab, ...recipe, resume: ck3.bytes }), ValueError)
    // unsubscribing mid-run frees everything
    await lastValueFrom(trainLM({ lm, train, vocab: tok.vocab, ...recipe }).pipe(takeN(2), toArray()))
    await new Promise(r => setTimeout(r, 10))
  })
  t.throws(() => trainLM({ lm, train: train.slice(0, 5), vocab: tok.vocab, ...recipe }), ValueError)
})

t.test('lmBatch and validationLoss: deterministic windows; the loss of a uniform model is ln V', async t => {
  const tokens = Int32Array.from({ length: 100 }, (_, i) => i % 7)
  const a = lmBatch(tokens, { batch: 2, context: 5, seed: 1 }, 3)
  const b = lmBatch(tokens, { batch: 2, context: 5, seed: 1 }, 3)
  t.same([...a.offsets], [...b.offsets])
  t.notSame([...lmBatchOffsets(100, { batch: 4, context: 5, seed: 1 }, 4)], [...lmBatchOffsets(100, { batch: 4, context: 5, seed: 1 }, 5)])
  const o = a.offsets[0]!
  t.same([...a.x.dataSync()].slice(0, 5), [...tokens.slice(o, o + 5)])
  t.same([...a.y.dataSync()].slice(0, 5), [...tokens.slice(o + 1, o + 6)])
  dispose([a, b])
  const lm = transformerLM({ ...tiny, tied: false })
  const p = lm.init()
  // zero head: uniform predictions
  const zp = { ...p, head: cast(tensor(new Array(56).fill(0), [8, 7]), 'float32') }
  const v = await validationLoss(lm, zp, tokens, { batch: 3 })
  t.ok(Math.abs(v.nats - Math.log(7)) < 1e-6 && Math.abs(v.bitsPerChar - Math.log2(7)) < 1e-6)
  t.equal(v.tokens, Math.floor(99 / 6) * 6)
  dispose([p, zp.head])
})

t.test('lmDuoGates: gates per layer and kv head in [0, 1]; the L1 term pulls unneeded gates down; no leaks', async t => {
  const lm = transformerLM({ ...tiny, context: 32 })
  const p = lm.init({ seed: 3 })
  const tokens = Int32Array.from({ length: 300 }, (_, i) => (i * 5 + (i >> 2)) % 7)
  await noLeaks(t, 'no leaks', () => {
    const free = lmDuoGates(lm, p, tokens, { sink: 1, recent: 3, context: 12, steps: 6, lambda: 0 })
    t.same(free.gates.map(g => g.length), [2, 2])
    t.ok(free.gates.flat().every(g => g >= 0 && g <= 1))
    t.equal(free.losses.length, 6)
    t.ok(free.losses.every(Number.isFinite))
    // at α ≡ 1 the gated model is the full one: the first distillation loss is exactly the L1 term
    t.equal(free.losses[0], 0)
    const sparse = lmDuoGates(lm, p, tokens, { sink: 1, recent: 3, context: 12, steps: 6, lambda: 1 })
    t.ok(sparse.gates.flat().every(g => g < 1), 'a strong L1 term moves every gate off 1')
    t.ok(sparse.gates.flat().reduce((a, b) => a + b) < free.gates.flat().reduce((a, b) => a + b))
  })
  t.throws(() => lmDuoGates(lm, p, tokens, { sink: 4, recent: 8, context: 10 }), ValueError)
  dispose(p)
})
