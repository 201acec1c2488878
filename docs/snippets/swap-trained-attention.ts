// #region recipe
import { lastValueFrom, toArray } from 'rxjs'
import { charTokenizer, headPolicy, kjvSplit, loadKjv, loadKjvModel, loadLM, operators, perplexity, transformerLM } from '@heed/attention'
import { trainLM } from '@heed/attention/stream'
import { dispose } from '@heed/tensor'

// The shipped model (trained with softmax attention everywhere) and 512 characters of the validation books.
const model = await loadKjvModel()
const tok = charTokenizer(model.vocab)
const split = kjvSplit(await loadKjv())
const text = tok.encode(split.validationText).subarray(0, 513)
const dense = await perplexity(model.lm, model.params, text)

// 1. Change the cache, not the operator: StreamingLLM's 4 sinks + 60 recent tokens in every layer and kv head.
const sinks = await perplexity(model.lm, model.params, text, { policies: Array.from({ length: model.lm.config.kvHeads }, () => headPolicy.streaming(4, 60)) })
console.log(sinks.kvBytes.final < dense.kvBytes.final) // => true

// 2. Change the operator: the same weights, with Lightning attention (linear, TNL decay) in the last two layers.
//    `attention` maps a layer to its operator; undefined keeps softmax there. The parameters are unchanged.
const hybrid = transformerLM({ ...model.lm.config, attention: l => (l >= 4 ? operators.lightning({ decay: 'tnl', blockSize: 64 }) : undefined) })
const swapped = await perplexity(hybrid, model.params, text)
console.log(swapped.bitsPerChar > dense.bitsPerChar) // => true

// 3. Heal it: a short fine-tune of the hybrid from the trained weights (`params`); the last checkpoint holds the
//    result, and loading it needs the same `attention` map (operators are code, not stored in the file).
const events = await lastValueFrom(
  trainLM({ lm: hybrid, params: model.params, train: tok.encode(split.trainText), vocab: tok.vocab, steps: 8, batch: 2, lr: 1e-3, warmup: 1, evalEvery: 0 }).pipe(toArray()),
)
const last = events.filter(e => e.kind === 'checkpoint').at(-1)!
const healed = loadLM(last.bytes, { attention: l => (l >= 4 ? operators.lightning({ decay: 'tnl', blockSize: 64 }) : undefined) })
const after = await perplexity(healed.lm, healed.params, text)
console.log(after.bitsPerChar < swapped.bitsPerChar) // => true
dispose([model.params, healed.params, healed.training?.state])
// #endregion recipe
console.error({ dense: dense.bitsPerChar, sinks: sinks.bitsPerChar, swapped: swapped.bitsPerChar, after: after.bitsPerChar })
