// #region recipe
import { lastValueFrom, toArray } from 'rxjs'
import { charTokenizer, KJV_ALPHABET, kjvSplit, loadKjv, loadLM, transformerLM } from '@heed/attention'
import { trainLM } from '@heed/attention/stream'
import { dispose } from '@heed/tensor'

// The corpus: the King James Bible shipped with @heed/attention, split by book (validation: Romans–Revelation).
const split = kjvSplit(await loadKjv())
const tok = charTokenizer(KJV_ALPHABET)
const train = tok.encode(split.trainText)
const validation = tok.encode(split.validationText)
console.log(tok.size, split.train.length, split.validation.length) // => [63, 27931, 3171]

// A tiny model, so that the recipe runs in seconds; the shipped one is dModel 128, 6 layers, context 256.
const lm = transformerLM({ vocab: tok.size, dModel: 32, layers: 2, heads: 2, context: 32 })
console.log(lm.parameterCount) // => 27072

// batches → trainStep (AdamW, warm-up + cosine, clipping) → step / eval / checkpoint events
const events = await lastValueFrom(
  trainLM({ lm, train, validation, vocab: tok.vocab, steps: 30, batch: 4, lr: 1e-2, warmup: 3, evalEvery: 15, evalTokens: 2048, checkpointEvery: 15 }).pipe(toArray()),
)
const steps = events.filter(e => e.kind === 'step')
const evals = events.filter(e => e.kind === 'eval')
console.log(steps.length, evals.map(e => e.step)) // => [30, [15, 30]]
console.log(steps.at(-1)!.loss < steps[0]!.loss) // => true

// Checkpoints are safetensors bytes: write them anywhere; `trainLM({ …, resume: bytes })` continues exactly.
const last = events.filter(e => e.kind === 'checkpoint').at(-1)!
const restored = loadLM(last.bytes, { expect: lm.config })
console.log(restored.training!.state.count, restored.vocab.join('') === KJV_ALPHABET) // => [30, true]
dispose([restored.params, restored.training!.state])
// #endregion recipe
