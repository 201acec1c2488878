// heed's transformerLM against its PyTorch twin (scripts/heed_lm.py), through the committed fixture in
// fixtures/lm-torch/ (regenerate: `/usr/bin/python3 scripts/heed_lm.py fixture`; PyTorch is not needed here).
// The checkpoints were made by heed; logits.json holds the logits PyTorch computed from them for fixed prompts, in
// float32 and float64; *.torch.safetensors are the weights PyTorch loaded, saved back by the script.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { dispose, tensor } from '@heed/tensor'
import { flattenParams, loadLM, saveLM, type LoadedLM } from '@heed/attention'
import { assertClose } from '../../tensor/test/helpers/numeric.js'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'

interface Case {
  readonly model: string
  readonly prompt: string
  readonly ids: number[]
  readonly position: number
  readonly logits: number[][]
  readonly logits64: number[][]
}

const dir = new URL('./fixtures/lm-torch/', import.meta.url)
const fixture = JSON.parse(readFileSync(new URL('logits.json', dir), 'utf8')) as { torch: string; cases: Case[] }
const file = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, dir)))
const models = [...new Set(fixture.cases.map(c => c.model))]

t.ok(models.length >= 2 && fixture.cases.length >= 4 * models.length - 2, `the fixture has ${fixture.cases.length} cases over ${models.join(', ')} (PyTorch ${fixture.torch})`)

t.test("logits equal PyTorch's for the fixed prompts (float32 and float64)", async t => {
  await noLeaks(t, 'no leaks', () => {
    for (const name of models) {
      const bytes = file(`${name}.safetensors`)
      const m32 = loadLM(bytes)
      const m64 = loadLM(bytes, { dtype: 'float64' })
      for (const c of fixture.cases.filter(x => x.model === name)) {
        const ids = tensor(Int32Array.from(c.ids), [c.ids.length], 'int32')
        const y32 = m32.lm.forward(m32.params, ids, { position: c.position })
        const y64 = m64.lm.forward(m64.params, ids, { position: c.position })
        t.same(y32.shape, [c.ids.length, m32.config.vocab])
        const what = `${name} ${JSON.stringify(c.prompt)} at position ${c.position}`
        // Both sides compute in float32 with their own summation orders and GELU/exp approximations.
        assertClose(t, y32.dataSync(), c.logits.flat(), { atol: 1e-5, rtol: 1e-4, msg: `${what}: float32` })
        // The same math in float64 on both sides: agreement to rounding.
        assertClose(t, y64.dataSync(), c.logits64.flat(), { atol: 1e-10, rtol: 1e-9, msg: `${what}: float64` })
        dispose([ids, y32, y64])
      }
      dispose([m32.params, m64.params])
    }
  })
})

t.test('weights saved by PyTorch load in heed with identical tensors; heed → PyTorch → heed is byte for byte', async t => {
  await noLeaks(t, 'no leaks', async () => {
    for (const name of models) {
      const mine = file(`${name}.safetensors`)
      const theirs = file(`${name}.torch.safetensors`)
      const a: LoadedLM = loadLM(mine)
      const b: LoadedLM = loadLM(theirs, { expect: a.config })
      t.same(b.config, a.config, `${name}: config`)
      t.same(b.vocab, a.vocab, `${name}: vocabulary`)
      const fa = flattenParams(a.params)
      const fb = flattenParams(b.params)
      t.same(Object.keys(fb).sort(), Object.keys(fa).sort(), `${name}: tensor names`)
      for (const k of Object.keys(fa)) t.same(fb[k]!.dataSync(), fa[k]!.dataSync(), `${name}: ${k} identical`)
      t.same(theirs, mine, `${name}: the file PyTorch wrote is heed's, byte for byte`)
      t.same(await saveLM(b.lm, b.params, { vocab: b.vocab }), mine, `${name}: heed saves what it loaded from PyTorch unchanged`)
      dispose([a.params, b.params])
    }
  })
})
