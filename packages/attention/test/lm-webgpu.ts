/**
 * The language model on the WebGPU backend: the same training run as on the CPU (same seed, data order and
 * recipe) gives the same loss curve to float32 accuracy; a checkpoint loaded onto WebGPU gives the CPU's logits;
 * greedy generation through the KV cache (full and streaming policies) gives the CPU's characters; no tensors
 * are left behind. Timings are reported as comments, never asserted.
 */
import t from 'tap'
import { lastValueFrom, toArray } from 'rxjs'
import { dispose, setBackend, tensor } from '@heed/tensor'
import { charTokenizer, headPolicy, KJV_ALPHABET, kjvSplit, loadKjv, loadLM, perplexity, transformerLM, type TransformerLMConfig } from '@heed/attention'
import { generateText, trainLM, type TrainLMEvent } from '@heed/attention/stream'
import { requireWebgpu, webgpuUnavailable } from '../../tensor/test/helpers/backends.js'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'

const config: TransformerLMConfig = { vocab: KJV_ALPHABET.length, dModel: 32, layers: 2, heads: 4, kvHeads: 2, context: 32 }

t.test('transformerLM on WebGPU: training, checkpoints, logits and cached generation match the CPU', async t => {
  const reason = await webgpuUnavailable()
  if (reason !== undefined) {
    if (requireWebgpu()) t.fail(`HEED_REQUIRE_WEBGPU is set but WebGPU is unavailable: ${reason}`)
    else t.comment(`skipped: no WebGPU adapter (${reason})`)
    return
  }
  const split = kjvSplit(await loadKjv())
  const tok = charTokenizer(KJV_ALPHABET)
  const train = tok.encode(split.trainText.slice(0, 40_000))
  const validation = tok.encode(split.validationText.slice(0, 4_000))
  const lm = transformerLM(config)
  const steps = 8

  const run = async (backend: string): Promise<{ events: TrainLMEvent[]; seconds: number }> => {
    await setBackend(backend)
    try {
      const t0 = performance.now()
      const events = await lastValueFrom(trainLM({ lm, train, validation, vocab: tok.vocab, steps, batch: 4, lr: 1e-2, warmup: 2, evalEvery: steps, evalTokens: 512 }).pipe(toArray()))
      return { events, seconds: (performance.now() - t0) / 1000 }
    } finally {
      await setBackend('cpu')
    }
  }
  const cpu = await run('cpu')
  const gpu = await noLeaks(t, 'a WebGPU training run leaves no live tensors', () => run('webgpu'))
  const loss = (r: typeof cpu) => r.events.flatMap(e => (e.kind === 'step' ? [e.loss] : []))
  const [lc, lg] = [loss(cpu), loss(gpu)]
  t.equal(lg.length, steps, 'every step ran on WebGPU')
  const worst = Math.max(...lc.map((l, i) => Math.abs(l - lg[i]!) / l))
  t.ok(worst < 2e-3, `the loss curves agree step for step (worst relative difference ${worst.toExponential(2)}; CPU ${lc.map(l => l.toFixed(4)).join(' ')})`)
  t.ok(lg.at(-1)! < lg[0]!, 'the loss falls on WebGPU')
  const ev = (r: typeof cpu) => r.events.find(e => e.kind === 'eval')!
  const [ec, eg] = [ev(cpu), ev(gpu)]
  if (ec.kind === 'eval' && eg.kind === 'eval') t.ok(Math.abs(ec.bitsPerChar - eg.bitsPerChar) < 2e-3 * ec.bitsPerChar, `validation bits/char agree (CPU ${ec.bitsPerChar.toFixed(4)}, WebGPU ${eg.bitsPerChar.toFixed(4)})`)
  t.comment(`${steps} steps of 4×${config.context} tokens: CPU ${cpu.seconds.toFixed(2)} s, WebGPU ${gpu.seconds.toFixed(2)} s (this machine's WebGPU adapter; not asserted)`)

  // The CPU run's final checkpoint, loaded on each backend: logits, perplexity under a cache policy, generation.
  const bytes = cpu.events.filter(e => e.kind === 'checkpoint').at(-1)!
  if (bytes.kind !== 'checkpoint') throw new Error('no checkpoint')
  const onCpu = loadLM(bytes.bytes)
  const onGpu = loadLM(bytes.bytes, { backend: 'webgpu' })
  t.equal(onGpu.params.embed.backend, 'webgpu', 'loadLM puts the parameters on the backend asked for')
  const ids = Array.from(tok.encode('And God said, Let there be light'))
  const logits = async (m: typeof onCpu, backend: string): Promise<Float32Array> => {
    const y = m.lm.forward(m.params, tensor(Int32Array.from(ids), [1, ids.length], 'int32', { backend }))
    const v = Float32Array.from(await y.data())
    y.dispose()
    return v
  }
  const [yc, yg] = [await logits(onCpu, 'cpu'), await logits(onGpu, 'webgpu')]
  let num = 0
  let den = 0
  for (let i = 0; i < yc.length; i++) (num += (yc[i]! - yg[i]!) ** 2), (den += yc[i]! ** 2)
  t.ok(Math.sqrt(num / den) < 1e-4, `forward logits agree (relative RMSE ${Math.sqrt(num / den).toExponential(2)})`)

  let t1 = performance.now()
  const text = validation.subarray(0, 2 * config.context + 1)
  const policies = Array.from({ length: config.kvHeads! }, () => headPolicy.streaming(2, 14))
  const [pc, pg] = [await perplexity(onCpu.lm, onCpu.params, text, { policies, chunk: 16 }), await perplexity(onGpu.lm, onGpu.params, text, { policies, chunk: 16 })]
  t.ok(Math.abs(pc.bitsPerChar - pg.bitsPerChar) < 1e-3 * pc.bitsPerChar, `perplexity with sinks + recent past the context agrees (CPU ${pc.bitsPerChar.toFixed(4)}, WebGPU ${pg.bitsPerChar.toFixed(4)})`)
  t.equal(pg.kvBytes.final, pc.kvBytes.final, 'the same KV bytes held')
  t.comment(`perplexity: ${((performance.now() - t1) / 1000).toFixed(1)} s`)

  for (const [name, pol] of [['full cache', undefined], ['sinks + recent', policies]] as const) {
    const gen = (m: typeof onCpu) => lastValueFrom(generateText(m.lm, m.params, tok, 'And God said', { maxTokens: 24, temperature: 0.8, topK: 20, seed: 5, ...(pol ? { policies: pol } : {}) }).pipe(toArray()))
    const [gc, gg] = [(await gen(onCpu)).join(''), (await gen(onGpu)).join('')]
    t.comment(`${name}: ${((performance.now() - t1) / 1000).toFixed(1)} s`)
    t1 = performance.now()
    t.equal(gg, gc, `sampled generation (seed 5) through the ${name} gives the CPU's characters: ${JSON.stringify(gc)}`)
  }
  dispose([onCpu.params, onGpu.params, onCpu.training?.state, onGpu.training?.state])
})
