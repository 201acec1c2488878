// Alignment on a real language model (issue 17): preference pairs from the KJV, completion log-probs of a
// transformerLM against a float64 reference and a token-by-token recomputation, the batch loss as the mean of the
// per-pair losses, DPO's β → 0 limit as its closed form, and typed errors for bad input. A tiny model (dModel 16,
// one layer, context 32) keeps it fast; one check loads the shipped model as the reference.
import t from 'tap'
import { from, lastValueFrom, last } from 'rxjs'
import { ArgumentError, cast, dispose, keep, logSoftmax, mean, noGrad, scope, sgd, ShapeError, sub, tensor, ValueError, type Tensor } from '@heed/tensor'
import { charTokenizer, KJV_ALPHABET, KJV_BOOKS, KJV_VALIDATION_FROM, kjvSplit, loadKjv, loadKjvModel, transformerLM, type TransformerLMParams, type Verse } from '@heed/attention'
import {
  collatePreferences,
  completionBatch,
  completionLogps,
  cpoLoss,
  dpoLoss,
  flexDpoLoss,
  kjvPreferencePairs,
  ktoLoss,
  lmKtoBatch,
  lmPreferenceLogps,
  logpsFromTokens,
  preferenceDataset,
  readMetricsSync,
  type PreferenceLogps,
  type TextPair,
} from '@heed/align'
import { collectMetrics, preferenceBatches, trainStep } from '@heed/align/stream'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'

const tokenizer = charTokenizer(KJV_ALPHABET)
const config = { vocab: KJV_ALPHABET.length, dModel: 16, layers: 1, heads: 2, context: 32 } as const
const lm = transformerLM(config)

const verse = (book: Verse['book'], n: number, text: string): Verse => ({ book, chapter: 1, verse: n, text })
const VERSES: Verse[] = [
  verse('Ge', 1, 'In the beginning God created the heaven and the earth.'),
  verse('Ge', 2, 'And the earth was without form, and void; and darkness was upon the face of the deep.'),
  verse('Ge', 3, 'And God said, Let there be light: and there was light, and it was good indeed.'),
  verse('Ge', 4, 'And God saw the light, that it was good: and God divided the light from the darkness.'),
  verse('Ge', 5, 'And the evening and the morning were the first day, and the people rested in peace.'),
]

const to64 = (p: TransformerLMParams): TransformerLMParams => scope(() => keep(mapParams(p, x => cast(x, 'float64'))))
function mapParams(p: TransformerLMParams, f: (x: Tensor) => Tensor): TransformerLMParams {
  const walk = (v: unknown): unknown => (v !== null && typeof v === 'object' && 'dtype' in v ? f(v as Tensor) : Array.isArray(v) ? v.map(walk) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)])) : v)
  return walk(p) as TransformerLMParams
}

t.test('kjvPreferencePairs: verse openings, equal lengths, shuffled words, the style word', async t => {
  const pairs = kjvPreferencePairs(VERSES, { count: 10, promptLength: 12, completionLength: 20, seed: 3 })
  t.equal(pairs.length, 10)
  t.same(pairs.map(p => p.task).filter(x => x === 'style').length, 5, 'styleFraction 0.5 by default')
  t.same(pairs.slice(0, 4).map(p => p.task), ['continuation', 'style', 'continuation', 'style'], 'tasks interleaved')
  for (const p of pairs) {
    const v = VERSES.find(x => `${x.book} ${x.chapter}:${x.verse}` === p.source)!
    t.equal(p.prompt, v.text.slice(0, 12), 'the prompt opens its verse')
    t.equal(p.chosen.length, 20)
    t.equal(p.rejected.length, 20, 'rejected as long as chosen')
    t.not(p.chosen, p.rejected)
    if (p.task === 'continuation') {
      t.equal(p.chosen, v.text.slice(12, 32), 'chosen is the true continuation')
      const words = (s: string) => s.split(' ').sort()
      if (words(p.chosen).join() === words(p.rejected).join()) t.pass('rejected: the same words shuffled')
      else t.ok(VERSES.some(x => x.text.slice(12, 32) === p.rejected), 'or another verse’s continuation')
    } else {
      t.ok(p.chosen.includes('God') && !p.rejected.includes('God'), 'style: chosen has the word, rejected has not')
    }
  }
  t.same(kjvPreferencePairs(VERSES, { count: 10, promptLength: 12, completionLength: 20, seed: 3 }), pairs, 'deterministic for a seed')
  t.same(kjvPreferencePairs(VERSES, { count: 4, styleFraction: 0, promptLength: 12, completionLength: 20 }).map(p => p.task), ['continuation', 'continuation', 'continuation', 'continuation'])
  t.throws(() => kjvPreferencePairs(VERSES, { count: 2, targetWord: 'Moses', promptLength: 12, completionLength: 20 }), ValueError, 'no verse has the word')
  t.throws(() => kjvPreferencePairs(VERSES, { count: 0 }), ValueError)
  // one-word windows cannot be shuffled, and every verse has the same one: an error, not an endless search
  const same = [0, 1, 2].map(i => ({ ...VERSES[0]!, text: `In the beginning ${i}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`.slice(0, 40) }))
  const stuck = (() => { try { kjvPreferencePairs(same, { count: 2, styleFraction: 0, promptLength: 20, completionLength: 20 }); return undefined } catch (e) { return e } })()
  t.type(stuck, ValueError, 'identical unshufflable windows are a ValueError')
  t.match(String((stuck as Error).message), /^kjvPreferencePairs: .*verses/, 'naming the op and verses')

  const split = kjvSplit(await loadKjv())
  const held = kjvPreferencePairs(split.validation, { count: 20, seed: 1 })
  const first = KJV_BOOKS.indexOf(KJV_VALIDATION_FROM)
  t.ok(held.every(p => KJV_BOOKS.indexOf(p.source.split(' ')[0] as never) >= first), 'held-out pairs open verses of the validation books')
  t.ok(held.every(p => tokenizer.covers(p.prompt + p.chosen + p.rejected)), 'in the vocabulary')
})

t.test('completionLogps equals a float64 reference and a token-by-token computation', async t => {
  const p32 = lm.init({ seed: 1 })
  const p64 = to64(p32)
  await noLeaks(t, 'no tensors left', () => {
    // Rows of different lengths: padding after a short row must not change its log-probs.
    const prompts = [tokenizer.encode('In the be'), tokenizer.encode('And'), tokenizer.encode('Let there be li')]
    const completions = [tokenizer.encode('ginning'), tokenizer.encode(' God said'), tokenizer.encode('ght')]
    const batch = completionBatch(prompts, completions)
    const T = batch.input.shape[1]!
    t.equal(T, Math.max(...prompts.map((p, i) => p.length + completions[i]!.length)) - 1)
    const lp32 = completionLogps(lm, p32, batch)
    const lp64 = completionLogps(lm, p64, batch)
    t.equal(lp64.dtype, 'float64')
    const v32 = lp32.dataSync()
    const v64 = lp64.dataSync()
    const mask = batch.mask.dataSync()
    // float64 log-softmax of the float64 logits, in plain JS.
    const logits = noGrad(() => lm.forward(p64, batch.input))
    const L = logits.dataSync()
    const labels = batch.labels.dataSync()
    const V = config.vocab
    let maxRef = 0
    let max32 = 0
    let maxTok = 0
    for (let i = 0; i < prompts.length; i++) {
      let total = 0
      for (let j = 0; j < T; j++) {
        const o = (i * T + j) * V
        let m = -Infinity
        for (let v = 0; v < V; v++) m = Math.max(m, L[o + v]!)
        let z = 0
        for (let v = 0; v < V; v++) z += Math.exp(L[o + v]! - m)
        const ref = L[o + labels[i * T + j]!]! - m - Math.log(z)
        maxRef = Math.max(maxRef, Math.abs(ref - v64[i * T + j]!))
        if (mask[i * T + j]) {
          max32 = Math.max(max32, Math.abs(ref - v32[i * T + j]!))
          total += v64[i * T + j]!
        }
      }
      // Token by token: the model run on one prefix at a time, no batch, no padding.
      let byToken = 0
      for (let k = 0; k < completions[i]!.length; k++) {
        const prefix = Int32Array.from([...prompts[i]!, ...completions[i]!.subarray(0, k)])
        const out = noGrad(() => scope(() => logSoftmax(lm.forward(p64, tensor(prefix, [1, prefix.length], 'int32')), { axis: -1 })))
        const row = out.dataSync()
        const lpTok = row[(prefix.length - 1) * V + completions[i]![k]!]!
        out.dispose()
        maxTok = Math.max(maxTok, Math.abs(lpTok - v64[i * T + prompts[i]!.length - 1 + k]!))
        byToken += lpTok
      }
      const summed = logpsFromTokens(lp64, batch.mask)
      t.ok(Math.abs(summed.dataSync()[i]! - byToken) < 1e-9, `row ${i}: masked sum = token-by-token sum (${summed.dataSync()[i]} vs ${byToken})`)
      t.ok(Math.abs(total - byToken) < 1e-9)
      summed.dispose()
    }
    t.ok(maxRef < 1e-12, `float64 path = JS log-softmax (${maxRef})`)
    t.ok(max32 < 1e-4, `float32 within 1e-4 of float64 (${max32})`)
    t.ok(maxTok < 1e-9, `batched = one prefix at a time (${maxTok})`)
    t.same([...mask.slice(0, T)].map(Number), Array.from({ length: T }, (_, j) => (j + 1 >= prompts[0]!.length && j < prompts[0]!.length + completions[0]!.length - 1 ? 1 : 0)), 'mask: label positions of the completion')
    dispose([batch, lp32, lp64, logits])
  })
  dispose([p32, p64])
})

const TEXT_PAIRS: TextPair[] = [
  { prompt: 'In the beginning ', chosen: 'God created', rejected: 'created God' },
  { prompt: 'And the earth ', chosen: 'was without', rejected: 'without was' },
  { prompt: 'And God said, ', chosen: 'Let there be', rejected: 'there be Let' },
  { prompt: 'And God saw ', chosen: 'the light,', rejected: 'light, the' },
]

t.test('preferenceDataset → collatePreferences → lmPreferenceLogps: the reference once, the loss at π = π_ref is ln 2', async t => {
  const ref = lm.init({ seed: 1 })
  const reference = { lm, params: ref }
  await noLeaks(t, 'no tensors left', async () => {
    const ds = await preferenceDataset(TEXT_PAIRS, { reference, tokenizer, chunk: 3 })
    t.equal(ds.length, 4)
    const direct = completionBatch([tokenizer.encode(TEXT_PAIRS[2]!.prompt)], [tokenizer.encode(TEXT_PAIRS[2]!.chosen)])
    const lp = completionLogps(lm, ref, direct)
    const v = lp.dataSync()
    const P = TEXT_PAIRS[2]!.prompt.length
    t.ok(ds[2]!.refChosen.every((x, k) => Math.abs(x - v[P - 1 + k]!) < 1e-6), 'stored reference log-probs = completionLogps of the pair alone')
    dispose([direct, lp])
    const batch = collatePreferences(ds)
    const out = scope(() => {
      const b = lmPreferenceLogps(lm, ref, batch)
      const { metrics, loss } = dpoLoss(b, { beta: 0.1 })
      return keep({ loss, metrics, chosen: logpsFromTokens(b.chosenLogps, b.chosenMask!) })
    })
    t.ok(Math.abs(out.loss.dataSync()[0]! - Math.LN2) < 1e-6, 'policy = reference: ln 2')
    const m = readMetricsSync(out.metrics)
    t.equal(m['rewards/accuracies'], 0)
    const sums = ds.map(e => e.refChosen.reduce((a, b) => a + b, 0))
    t.ok(Math.abs(m['logps/chosen']! - sums.reduce((a, b) => a + b, 0) / 4) < 1e-4, 'logps/chosen = mean summed reference log-prob')
    dispose([out, batch])
  })
  dispose(ref)
})

t.test('the loss of a batch is the mean of the per-pair losses (the SFT term: NLL per chosen token)', async t => {
  const ref = lm.init({ seed: 1 })
  const policy = lm.init({ seed: 2 })
  const ds = await preferenceDataset(TEXT_PAIRS, { reference: { lm, params: ref }, tokenizer })
  const losses: Record<string, (b: PreferenceLogps) => Tensor> = {
    dpo: b => dpoLoss(b, { beta: 0.1 }).loss,
    ipo: b => dpoLoss(b, { lossType: 'ipo', beta: 0.5 }).loss,
    simpo: b => cpoLoss(b, { lossType: 'simpo', beta: 2, simpoGamma: 1, cpoAlpha: 0 }).loss,
    'dpo+sft': b => flexDpoLoss(b, { betaChosen: 0.1, betaRejected: 0.1, sftWeight: 1 }).loss,
  }
  const perPair: Record<string, number[]> = {}
  await noLeaks(t, 'no tensors left', () => {
    for (const [name, f] of Object.entries(losses)) {
      const value = (xs: typeof ds): number => {
        const b = collatePreferences(xs)
        const l = scope(() => f(lmPreferenceLogps(lm, policy, b)))
        const x = l.dataSync()[0]!
        dispose([b, l])
        return x
      }
      const whole = value(ds)
      const each = ds.map(e => value([e]))
      perPair[name] = each
      // The SFT term is the batch's NLL per chosen token (TRL's), so unequal lengths weight it by length.
      const n = ds.map(e => e.chosen.length)
      const expected =
        name === 'dpo+sft'
          ? perPair['dpo']!.reduce((a, b) => a + b, 0) / ds.length + each.reduce((a, x, i) => a + (x - perPair['dpo']![i]!) * n[i]!, 0) / n.reduce((a, b) => a + b, 0)
          : each.reduce((a, b) => a + b, 0) / each.length
      t.ok(Math.abs(whole - expected) < 1e-5 * Math.max(1, Math.abs(expected)), `${name}: batch ${whole} = per-pair losses combined as documented ${expected}`)
    }
    // KTO is unpaired: its loss is the mean over the 2B completions (each example's own term).
    const b = collatePreferences(ds)
    const out = scope(() => keep(ktoLoss(lmKtoBatch(lm, policy, b, { lm, params: ref }), { beta: 0.1 })))
    const per = out.losses.dataSync()
    t.equal(per.length, 8, 'one KTO term per completion')
    t.ok(Math.abs(out.loss.dataSync()[0]! - [...per].reduce((a, x) => a + x, 0) / 8) < 1e-6)
    dispose([b, out])
  })
  dispose([ref, policy])
})

t.test('DPO as β → 0: its gradient is −(β/2)∇(c − r), so SGD at lr η·2/β runs as SGD on −(c − r) at η', async t => {
  // σ(−βh) → ½: −logσ(βh) = ln 2 − βh/2 + O(β²h²), so the whole run follows the closed form's.
  const ref = to64(lm.init({ seed: 1 }))
  const ds = await preferenceDataset(TEXT_PAIRS, { reference: { lm, params: ref }, tokenizer })
  const beta = 1e-7
  const eta = 0.05
  const train = async (loss: (b: PreferenceLogps) => { loss: Tensor }, lr: number) => {
    let final: TransformerLMParams | undefined
    const h = await lastValueFrom(
      from([...ds, ...ds, ...ds]).pipe(
        preferenceBatches({ size: 4, collate: xs => collatePreferences(xs) }),
        trainStep({ params: ref, optimizer: sgd({ lr }), loss: (p: TransformerLMParams, b) => loss(lmPreferenceLogps(lm, p, b)), onComplete: p => void (final = p) }),
        collectMetrics(),
        last(),
      ),
    )
    return { h, final: final! }
  }
  const limit = (b: PreferenceLogps) => ({
    loss: scope(() => {
      const c = sub(logpsFromTokens(b.chosenLogps, b.chosenMask!), logpsFromTokens(b.refChosenLogps!, b.chosenMask!))
      const r = sub(logpsFromTokens(b.rejectedLogps, b.rejectedMask!), logpsFromTokens(b.refRejectedLogps!, b.rejectedMask!))
      return mean(sub(r, c))
    }),
  })
  const dpo = await train(b => dpoLoss(b, { beta }), (2 * eta) / beta)
  const closed = await train(limit, eta)
  t.equal(dpo.h.steps.length, 3)
  t.ok(Math.abs(dpo.h.series['loss']![0]! - Math.LN2) < 1e-12, 'step 1: ln 2')
  let maxDiff = 0
  let maxMove = 0
  const walk = (a: unknown, b: unknown, r: unknown): void => {
    if (a !== null && typeof a === 'object' && 'dtype' in a) {
      const x = (a as Tensor).dataSync(), y = (b as Tensor).dataSync(), z = (r as Tensor).dataSync()
      for (let i = 0; i < x.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!))
        maxMove = Math.max(maxMove, Math.abs(y[i]! - z[i]!))
      }
    } else if (a !== null && typeof a === 'object') for (const k of Object.keys(a)) walk((a as never)[k], (b as never)[k], (r as never)[k])
  }
  walk(dpo.final, closed.final, ref)
  t.ok(maxMove > 1e-3, `the run moves the parameters (${maxMove})`)
  t.ok(maxDiff < 1e-6 * maxMove, `DPO's run = the closed form's run (max difference ${maxDiff})`)
  // The closed form's loss is −(c − r); DPO's is ln 2 − β(c − r)/2 to first order.
  const dl = dpo.h.series['loss']!
  const cl = closed.h.series['loss']!
  t.ok(dl.every((x, i) => Math.abs(x - (Math.LN2 + (beta / 2) * cl[i]!)) < 1e-12), 'loss = ln 2 − (β/2)(c − r) at every step')
  dispose([ref, dpo.final, closed.final])
})

t.test('bad input: typed errors naming the field', async t => {
  const ref = lm.init({ seed: 1 })
  const reference = { lm, params: ref }
  const bad = async (pairs: TextPair[], opts: object, match: RegExp, msg: string) => {
    const err = await preferenceDataset(pairs, { reference, tokenizer, ...opts }).catch((e: unknown) => e)
    t.type(err, ValueError, msg)
    t.match(String((err as Error).message), match, msg)
  }
  await bad([{ prompt: 'And ', chosen: 'God said', rejected: 'said' }], {}, /pairs\[0\]\.rejected.*8 characters/s, 'chosen and rejected of different lengths')
  await bad([{ prompt: 'And ', chosen: '', rejected: '' }], {}, /pairs\[0\]\.chosen.*empty completion/s, 'empty completion')
  await bad([{ prompt: '', chosen: 'a', rejected: 'b' }], {}, /pairs\[0\]\.prompt/, 'empty prompt')
  await bad([{ prompt: 'Café ', chosen: 'God', rejected: 'dog' }], {}, /pairs\[0\]\.prompt.*"é".*position 3/s, 'a prompt character outside the vocabulary')
  await bad([{ prompt: 'A'.repeat(30), chosen: 'God', rejected: 'dog' }], {}, /context, 32/, 'longer than the context')
  const other = transformerLM({ ...config, dModel: 8 })
  const otherParams = other.init({ seed: 0 })
  await bad(TEXT_PAIRS, { reference: { lm: other, params: otherParams }, policy: lm }, /reference\.config\.dModel.*16.*8/s, 'a reference of another architecture')
  await bad(TEXT_PAIRS, { tokenizer: charTokenizer('abc') }, /tokenizer/, 'a tokenizer of another vocabulary')
  t.ok((await preferenceDataset([{ prompt: 'And ', chosen: 'God said', rejected: 'said' }], { reference, tokenizer, lengths: 'any' })).length === 1, "lengths: 'any' allows them")
  t.throws(() => completionBatch([tokenizer.encode('a')], []), ValueError, 'one completion per prompt')
  t.throws(() => completionBatch([tokenizer.encode('a')], [new Int32Array(0)]), ValueError, 'empty completion')
  t.throws(() => completionBatch([tokenizer.encode('abc')], [tokenizer.encode('de')], { maxLength: 4 }), ValueError, 'longer than maxLength')
  t.throws(() => collatePreferences([]), ValueError)
  t.throws(() => completionLogps(null as never, ref, {} as never), ArgumentError, 'not a model')
  t.throws(() => completionLogps(lm, ref, {} as never), ShapeError, 'not a completion batch')
  t.throws(() => lmPreferenceLogps(lm, ref, {} as never), ArgumentError)
  t.throws(() => lmKtoBatch(lm, ref, {} as never, reference), ArgumentError)
  dispose([ref, otherParams])
})

t.test('the shipped model loads as the reference', async t => {
  const m = await loadKjvModel()
  try {
    const split = kjvSplit(await loadKjv())
    const pairs = kjvPreferencePairs(split.validation, { count: 6, styleFraction: 0, seed: 5 })
    const ds = await preferenceDataset(pairs, { reference: m, tokenizer: charTokenizer(m.vocab) })
    for (const e of ds) {
      t.equal(e.refChosen.length, 24)
      t.ok(e.refChosen.every(x => Number.isFinite(x) && x <= 0) && e.refRejected.every(x => Number.isFinite(x) && x <= 0), 'finite log-probs')
    }
    const sum = (x: Float32Array) => x.reduce((a, b) => a + b, 0)
    const mean = (f: (e: (typeof ds)[number]) => Float32Array) => ds.reduce((a, e) => a + sum(f(e)), 0) / ds.length
    t.ok(mean(e => e.refChosen) > mean(e => e.refRejected), 'on average the shipped model already prefers the true continuation to its shuffled words')
    const wrong = transformerLM({ ...m.config, layers: 1 })
    await t.rejects(preferenceDataset(pairs, { reference: m, policy: wrong, tokenizer }), ValueError, 'a policy of another config')
  } finally {
    dispose(m.params)
  }
})
