import t from 'tap'
import { asyncScheduler, firstValueFrom, lastValueFrom, map, retry, share, take, toArray, type Observable } from 'rxjs'
import { dispose, gather, matmul, scope, tensor, transpose, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import {
  charTokenizer,
  counterUniform,
  headPolicy,
  mask,
  perplexity,
  rmsNorm,
  sampler,
  transformerLM,
  validationLoss,
  type HeadPolicy,
  type Mask,
  type TransformerLM,
  type TransformerLMParams,
} from '@heed/attention'
import { generate, generateText } from '@heed/attention/stream'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'

const tiny = { vocab: 7, dModel: 8, layers: 2, heads: 2, hidden: 12, context: 6, tied: false } as const

/** float64 parameters with the weight matrices scaled up, so that logits are far from uniform. */
function params64(lm: TransformerLM, seed: number, scale = 20): TransformerLMParams {
  const p = lm.init({ seed, dtype: 'float64' })
  const walk = (x: unknown): unknown => {
    if (x !== null && typeof x === 'object' && 'dtype' in x) {
      const tx = x as Tensor
      const s = tx.rank === 2 ? scale : 1
      const out = tensor(Float64Array.from(tx.dataSync(), v => v * s), tx.shape, 'float64')
      tx.dispose()
      return out
    }
    if (Array.isArray(x)) return x.map(walk)
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]))
    return x
  }
  return walk(p) as TransformerLMParams
}

/** Logits of the whole sequence in one forward without a cache, every layer under `maskOf(layer)` (float64 rows). */
function fullLogits(lm: TransformerLM, p: TransformerLMParams, ids: readonly number[], maskOf?: (l: number) => Mask | undefined): Float64Array[] {
  const V = lm.config.vocab
  const y = scope(() => {
    let h = gather(p.embed, tensor(Int32Array.from(ids), [1, ids.length], 'int32'), 0)
    for (let l = 0; l < lm.config.layers; l++) {
      const m = maskOf?.(l)
      h = lm.blocks[l]!.forward(p.blocks[l]!, h, { positions: 0, ...(m ? { mask: m } : {}) })
    }
    return matmul(rmsNorm(h, p.normF, lm.config.eps), p.head ?? transpose(p.embed))
  })
  const v = Float64Array.from(y.dataSync())
  y.dispose()
  return Array.from({ length: ids.length }, (_, i) => v.subarray(i * V, (i + 1) * V))
}

const argmax = (row: ArrayLike<number>): number => {
  let b = 0
  for (let i = 1; i < row.length; i++) if (row[i]! > row[b]!) b = i
  return b
}

/** Generation by recomputing the whole forward at every step (no cache), drawing with `pick`. */
function recompute(lm: TransformerLM, p: TransformerLMParams, prompt: readonly number[], n: number, pick: (row: ArrayLike<number>, i: number) => number, maskOf?: (l: number) => Mask | undefined): number[] {
  const seq = [...prompt]
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const id = pick(fullLogits(lm, p, seq, maskOf).at(-1)!, i)
    out.push(id)
    seq.push(id)
  }
  return out
}

/** The mask a per-head policy list stands for (heads = kv heads in `tiny`). */
const policyMask = (ps: readonly HeadPolicy[]): Mask =>
  mask.perHead(ps.length, h => {
    const q = ps[h]!
    // (a recurrent head keeps no keys: no softmax head reads it)
    return q.kind === 'full' ? mask.causal : q.kind === 'streaming' ? mask.streaming(q.sink, q.recent) : mask.none
  })

/** counterUniform(0, 0), (1, 1), (2^40, 3), frozen when it was written. */
const GOLDEN = ['0.665013991575', '0.674499946526', '0.692112155951']

const all = <T>(o: Observable<T>): Promise<T[]> => lastValueFrom(o.pipe(toArray()))

t.test('counterUniform and sampler: pure functions of (seed, counter), the distribution they should draw', async t => {
  const u = Array.from({ length: 2000 }, (_, i) => counterUniform(7, i))
  t.ok(u.every(x => x >= 0 && x < 1))
  t.same(u.slice(0, 5), Array.from({ length: 5 }, (_, i) => counterUniform(7, i)), 'same pair, same draw')
  t.not(counterUniform(7, 0), counterUniform(8, 0))
  t.not(counterUniform(7, 0), counterUniform(7, 2 ** 32), 'the counter is not folded to 32 bits')
  const meanU = u.reduce((a, b) => a + b, 0) / u.length
  t.ok(Math.abs(meanU - 0.5) < 0.03, `mean ${meanU}`)
  // frozen values: the same in every JavaScript engine (integer arithmetic only)
  t.same([counterUniform(0, 0), counterUniform(1, 1), counterUniform(2 ** 40, 3)].map(x => x.toFixed(12)), GOLDEN)

  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)]
  const freq = (s: ReturnType<typeof sampler>): number[] => {
    const c = [0, 0, 0]
    for (let i = 0; i < 4000; i++) c[s.pick(logits, i)]!++
    return c.map(x => x / 4000)
  }
  const f1 = freq(sampler('t', 3, { seed: 1 }))
  t.ok(f1.every((f, i) => Math.abs(f - [0.5, 0.3, 0.2][i]!) < 0.03), `softmax frequencies ${f1}`)
  const f2 = freq(sampler('t', 3, { seed: 1, topK: 2 }))
  t.ok(f2[2] === 0 && Math.abs(f2[0]! - 0.625) < 0.03, `top-2 renormalised ${f2}`)
  const f3 = freq(sampler('t', 3, { seed: 1, topP: 0.7 }))
  t.ok(f3[2] === 0 && Math.abs(f3[0]! - 0.625) < 0.03, `nucleus 0.7 = {0, 1} ${f3}`)
  const f4 = freq(sampler('t', 3, { seed: 1, temperature: 0.5 }))
  const z = 0.25 + 0.09 + 0.04
  t.ok(Math.abs(f4[0]! - 0.25 / z) < 0.03, `temperature 0.5 sharpens ${f4}`)
  t.equal(sampler('t', 3, { temperature: 0 }).pick([1, 3, 3], 0), 1, 'greedy: lowest id among ties')
  t.equal(sampler('t', 3, { topK: 1 }).pick([1, 3, 3], 5), 1)
  t.equal(sampler('t', 3).pick([-Infinity, 0, -Infinity], 0), 1, '−∞ logits are never drawn')
  t.throws(() => sampler('t', 3).pick([0, NaN, 0], 0), ValueError)
  t.throws(() => sampler('t', 3).pick([-Infinity, -Infinity, -Infinity], 0), ValueError)
  t.throws(() => sampler('t', 3).pick([0, 0], 0), ValueError)
})

t.test('generate: greedy with the KV cache equals recomputing the whole forward at every step, token for token', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const lm = transformerLM(tiny)
    const p = params64(lm, 3)
    const prompt = [1, 2, 3, 4, 5]
    const greedy = (row: ArrayLike<number>) => argmax(row)
    // 12 tokens: positions run past the training context (6); prefill in chunks of 2
    const want = recompute(lm, p, prompt, 12, greedy)
    t.same(await all(generate(lm, p, prompt, { temperature: 0, maxTokens: 12, chunk: 2 })), want, 'full cache, chunked prefill')
    t.same(await all(generate(lm, p, prompt, { temperature: 0, maxTokens: 12 })), want, 'one prefill chunk')
    t.ok(new Set(want).size > 1, 'not a constant sequence')
    // streaming heads: equal to the full forward under mask.streaming (exact: keys stay at their positions)
    const mix = [headPolicy.streaming(1, 3), headPolicy.full()]
    const win = [headPolicy.streaming(0, 4), headPolicy.streaming(0, 4)]
    const policies = (l: number) => (l === 0 ? mix : win)
    const wantS = recompute(lm, p, prompt, 12, greedy, l => policyMask(policies(l)))
    t.same(await all(generate(lm, p, prompt, { temperature: 0, maxTokens: 12, chunk: 2, policies })), wantS, 'per-head streaming/full mix, window without sinks')
    t.notSame(wantS, want, 'the streaming policy changes the text (the comparison can fail)')
    // seeded sampling through the cache equals the recomputation drawing with the same counters
    const s = sampler('test', tiny.vocab, { seed: 11, temperature: 1 })
    const wantT = recompute(lm, p, prompt, 12, s.pick)
    const got = await all(generate(lm, p, prompt, { seed: 11, maxTokens: 12 }))
    t.same(got, wantT, 'sampling: draw i uses counter i')
    t.same(await all(generate(lm, p, prompt, { seed: 11, maxTokens: 12 })), got, 'reproducible')
    t.notSame(await all(generate(lm, p, prompt, { seed: 12, maxTokens: 12 })), got, 'another seed, another text')
    t.notSame(got, want, 'sampling is not greedy here')
    t.same(await all(generate(lm, p, prompt, { seed: 11, topK: 1, maxTokens: 12 })), want, 'top-k 1 is greedy')
    t.same(await all(generate(lm, p, prompt, { seed: 11, topP: 1e-9, maxTokens: 12 })), want, 'a tiny top-p is greedy')
    dispose(p)
  })
})

t.test('generate: stop sequences and predicates; generateText', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const lm = transformerLM(tiny)
    const p = params64(lm, 3)
    const prompt = [1, 2, 3, 4, 5]
    const full = await all(generate(lm, p, prompt, { temperature: 0, maxTokens: 12 }))
    const at = 4
    const seq = full.slice(at - 1, at + 1)
    const first = full.findIndex((_, i) => i >= 1 && full[i - 1] === seq[0] && full[i] === seq[1])
    t.same(await all(generate(lm, p, prompt, { temperature: 0, maxTokens: 12, stop: [[6, 6, 6, 6], seq] })), full.slice(0, first + 1), 'stops after the sequence, emitting it')
    t.same(await all(generate(lm, p, prompt, { temperature: 0, maxTokens: 12, stop: g => g.length === 3 })), full.slice(0, 3), 'predicate')
    const tok = charTokenizer('abcdefg')
    const text = (await all(generateText(lm, p, tok, 'bcdef', { temperature: 0, maxTokens: 12 }))).join('')
    t.equal(text, tok.decode(full), 'one string per token')
    const c = text[6]!
    const cut = (await all(generateText(lm, p, tok, 'bcdef', { temperature: 0, maxTokens: 12, stop: c }))).join('')
    t.equal(cut, text.slice(0, text.indexOf(c) + 1), 'stop string')
    t.throws(() => generateText(lm, p, tok, 'bcx', {}), ValueError, 'a character outside the vocabulary, before anything starts')
    t.throws(() => generateText(lm, p, tok, 'bc', { stop: 'z' }), ValueError)
    t.throws(() => generateText(lm, p, tok, 'bc', { stop: [''] }), ValueError)
    t.throws(() => generateText(lm, p, tok, '', {}), ValueError, 'empty prompt')
    dispose(p)
  })
})

t.test('generate: cold, caches freed on unsubscribe, complete and error; share, two subscribers, retry', async t => {
  const lm = transformerLM(tiny)
  const p = params64(lm, 4)
  const prompt = [0, 6, 2]
  const opts = { seed: 5, maxTokens: 10 }
  const ref = await all(generate(lm, p, prompt, opts))
  await noLeaks(t, 'first value, then unsubscribe', async () => {
    t.equal(await firstValueFrom(generate(lm, p, prompt, opts)), ref[0])
  })
  await noLeaks(t, 'a scheduler between decode steps changes nothing but the timing', async () => {
    let waits = 0
    const counting = { now: () => asyncScheduler.now(), schedule: ((...a: Parameters<typeof asyncScheduler.schedule>) => (waits++, asyncScheduler.schedule(...a))) as typeof asyncScheduler.schedule }
    t.same(await all(generate(lm, p, prompt, { ...opts, scheduler: counting })), ref)
    t.equal(waits, opts.maxTokens - 1, 'one wait before each decode step')
  })
  await noLeaks(t, 'take(3)', async () => {
    t.same(await all(generate(lm, p, prompt, opts).pipe(take(3))), ref.slice(0, 3))
  })
  await noLeaks(t, 'unsubscribed from outside while decoding', async () => {
    const seen: number[] = []
    let sub: { unsubscribe(): void } | undefined
    await new Promise<void>(resolve => {
      sub = generate(lm, p, prompt, opts).subscribe({ next: id => (seen.push(id), seen.length === 2 && resolve()) })
    })
    sub!.unsubscribe()
    t.same(seen, ref.slice(0, 2))
  })
  await noLeaks(t, 'error channel', async () => {
    const other = transformerLM({ ...tiny, tied: true })
    const q = other.init({ dtype: 'float64' })
    await t.rejects(all(generate(lm, q, prompt, opts)), ShapeError, 'params of another model: a ShapeError on the error channel')
    dispose(q)
  })
  await noLeaks(t, 'share, two subscribers, retry', async () => {
    let forwards = 0
    const counted: TransformerLM = { ...lm, forward: (...a) => (forwards++, lm.forward(...a)) }
    const cold = generate(counted, p, prompt, opts)
    const [a, b] = await Promise.all([all(cold), all(cold)])
    t.same([a, b], [ref, ref], 'two subscribers, two independent runs, same tokens')
    const perRun = forwards / 2
    forwards = 0
    const shared = cold.pipe(share())
    const [c, d] = await Promise.all([all(shared), all(shared)])
    t.same([c, d], [ref, ref])
    t.equal(forwards, perRun, 'share(): one run for both')
    let fail = true
    const flaky = cold.pipe(
      map((id, i) => {
        if (fail && i === 2) {
          fail = false
          throw new Error('transient')
        }
        return id
      }),
      retry(1),
    )
    t.same(await all(flaky), [...ref.slice(0, 2), ...ref], 'retry resubscribes from scratch')
  })
  dispose(p)
})

t.test('generate: onKvBytes reports the KV bytes the caches retain for each token drawn', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const lm = transformerLM(tiny)
    const p = params64(lm, 6)
    const prompt = [3, 1, 4, 1]
    const opts = { seed: 2, maxTokens: 9 }
    // float64 keys and values of headDim 4 each, 2 kv heads, 2 layers
    const perToken = 2 * 2 * (4 + 4) * 8
    const full: number[] = []
    const ids = await all(generate(lm, p, prompt, { ...opts, onKvBytes: b => void full.push(b) }))
    t.same(ids, await all(generate(lm, p, prompt, opts)), 'the callback changes no token')
    t.same(full, ids.map((_, i) => (prompt.length + i) * perToken), 'full heads: prompt + tokens before it, one report per token')
    const sw = [headPolicy.streaming(1, 3), headPolicy.streaming(1, 3)]
    const streaming: number[] = []
    t.same(await all(generate(lm, p, prompt, { ...opts, policies: sw, onKvBytes: b => void streaming.push(b) })), await all(generate(lm, p, prompt, { ...opts, policies: sw })))
    t.equal(streaming.length, opts.maxTokens)
    t.ok(streaming.every(b => b > 0 && b <= 4 * perToken), `sink + recent bound the bytes: ${streaming.join(', ')}`)
    t.equal(new Set(streaming.slice(3)).size, 1, 'constant once the window is full')
    const err = new Error('from the callback')
    await t.rejects(all(generate(lm, p, prompt, { ...opts, onKvBytes: () => { throw err } })), err, 'a throwing callback errors the stream')
    dispose(p)
  })
})

t.test('generate: bad input is a typed error when called, naming what was wrong', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const lm = transformerLM(tiny)
    const p = lm.init({ dtype: 'float64' })
    const bad: [string, () => unknown][] = [
      ['empty prompt', () => generate(lm, p, [])],
      ['id out of range', () => generate(lm, p, [1, 7])],
      ['negative id', () => generate(lm, p, [-1])],
      ['fractional id', () => generate(lm, p, [1.5])],
      ['temperature < 0', () => generate(lm, p, [1], { temperature: -0.1 })],
      ['topP 0', () => generate(lm, p, [1], { topP: 0 })],
      ['topP > 1', () => generate(lm, p, [1], { topP: 1.5 })],
      ['topK 0', () => generate(lm, p, [1], { topK: 0 })],
      ['seed', () => generate(lm, p, [1], { seed: -1 })],
      ['maxTokens', () => generate(lm, p, [1], { maxTokens: 0 })],
      ['chunk', () => generate(lm, p, [1], { chunk: 0 })],
      ['empty stop sequence', () => generate(lm, p, [1], { stop: [[]] })],
      ['stop id out of range', () => generate(lm, p, [1], { stop: [[9]] })],
      ['policies per kv head', () => generate(lm, p, [1], { policies: [headPolicy.full()] })],
      ['no room for maxTokens', () => generate(lm, p, [1, 2], { capacity: 4, maxTokens: 4 })],
      ['onKvBytes not a function', () => generate(lm, p, [1], { onKvBytes: 3 as unknown as () => void })],
    ]
    for (const [name, f] of bad) t.throws(f, ValueError, name)
    const long = t.throws(() => generate(lm, p, [1, 2, 3, 4, 5], { capacity: 4 })) as ValueError
    t.ok(long instanceof ValueError && /at most 4 tokens/.test(long.message) && /5 tokens/.test(long.message), `prompt longer than the cache: ${long.message}`)
    // streaming heads need no capacity: any prompt length goes through
    const sw = Array.from({ length: 2 }, () => headPolicy.streaming(1, 2))
    t.equal((await all(generate(lm, p, [1, 2, 3, 4, 5, 6, 0, 1], { capacity: 1, policies: sw, maxTokens: 3 }))).length, 3)
    dispose(p)
  })
})

t.test('perplexity: a full cache over one training window equals validationLoss; buckets; streaming policies; KV bytes', async t => {
  await noLeaks(t, 'no leaks', async () => {
    const lm = transformerLM(tiny)
    const p = params64(lm, 6, 8)
    const text = Array.from({ length: 30 }, (_, i) => (i * 5 + ((i * i) % 3)) % 7)
    const window = Int32Array.from(text.slice(0, 7))
    const v = await validationLoss(lm, p, window, { context: 6 })
    for (const chunk of [1, 4, 64]) {
      const r = await perplexity(lm, p, window, { chunk })
      t.ok(Math.abs(r.nats - v.nats) < 1e-12, `chunk ${chunk}: ${r.nats} vs validationLoss ${v.nats}`)
      t.equal(r.tokens, 6)
    }
    // the reference: per-position losses from one masked forward over the text
    const lossesOf = (maskOf?: (l: number) => Mask | undefined): number[] =>
      fullLogits(lm, p, text.slice(0, -1), maskOf).map((row, i) => {
        const m = Math.max(...row)
        const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0))
        return lse - row[text[i + 1]!]!
      })
    const bucketed = (ls: number[], edges: number[]) => edges.map((e, k) => ls.slice(e, edges[k + 1] ?? ls.length))
    const hd = lm.blocks[0]!.attention.headDim
    const perToken = 2 * hd * 8 // keys and values, float64
    const L = tiny.layers
    const H = tiny.heads
    for (const [name, policies, retained, slots] of [
      ['full', undefined, 29, 29],
      ['window without sinks', [headPolicy.streaming(0, 5), headPolicy.streaming(0, 5)], 4, 4 + 8],
      ['sinks + recent', [headPolicy.streaming(2, 3), headPolicy.streaming(2, 3)], 4, 4 + 8],
      ['per-head mix', [headPolicy.streaming(1, 3), headPolicy.full()], (3 + 29) / 2, (3 + 8 + 29) / 2],
    ] as const) {
      const r = await perplexity(lm, p, text, { chunk: 8, ...(policies ? { policies } : {}) })
      const ref = lossesOf(policies ? () => policyMask(policies) : undefined)
      const edges = [0, 6, 12, 24]
      t.same(r.buckets.map(b => [b.from, b.to, b.tokens]), [[0, 6, 6], [6, 12, 6], [12, 24, 12], [24, 29, 5]], `${name}: default buckets [0, T, 2T, 4T, …)`)
      bucketed(ref, edges).forEach((ls, k) => {
        const want = ls.reduce((a, b) => a + b, 0) / ls.length
        t.ok(Math.abs(r.buckets[k]!.nats - want) < 1e-10, `${name}: bucket ${k} ${r.buckets[k]!.nats} vs ${want}`)
        t.ok(Math.abs(r.buckets[k]!.bitsPerChar - want / Math.LN2) < 1e-10)
      })
      const mean = ref.reduce((a, b) => a + b, 0) / ref.length
      t.ok(Math.abs(r.nats - mean) < 1e-10 && Math.abs(r.bitsPerChar - mean / Math.LN2) < 1e-10 && Math.abs(r.perplexity - Math.exp(mean)) < 1e-9, `${name}: overall`)
      t.equal(r.kvBytes.final, L * H * retained * perToken, `${name}: KV bytes retained at the end`)
      t.equal(r.kvBytes.peak, L * H * slots * perToken, `${name}: storage held (peak)`)
    }
    const full = lossesOf()
    const win = lossesOf(() => policyMask([headPolicy.streaming(0, 5), headPolicy.streaming(0, 5)]))
    t.notSame(full.slice(6), win.slice(6), 'the policies differ past the window (the comparisons can fail)')
    const custom = await perplexity(lm, p, text, { buckets: [0, 10], maxTokens: 21 })
    t.same(custom.buckets.map(b => [b.from, b.to, b.tokens]), [[0, 10, 10], [10, 20, 10]], 'custom edges, maxTokens')
    const progress: number[] = []
    await perplexity(lm, p, text, { chunk: 10, onProgress: r => progress.push(r) })
    t.same(progress, [11, 21, 30])
    await t.rejects(perplexity(lm, p, [1]), ValueError, 'one token')
    await t.rejects(perplexity(lm, p, [1, 9]), ValueError, 'id out of range')
    await t.rejects(perplexity(lm, p, text, { chunk: 0 }), ValueError)
    await t.rejects(perplexity(lm, p, text, { buckets: [1, 4] }), ValueError, 'edges start at 0')
    await t.rejects(perplexity(lm, p, text, { buckets: [0, 4, 4] }), ValueError, 'strictly increasing')
    await t.rejects(perplexity(lm, p, text, { policies: [headPolicy.full()] }), ValueError, 'one policy per kv head')
    dispose(p)
  })
})
