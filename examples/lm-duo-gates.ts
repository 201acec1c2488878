/**
 * DuoAttention on the shipped KJV model: train one gate per kv head of every layer by distillation (the model
 * frozen, `lmDuoGates`), then write the gates beside the model (packages/attention/models/kjv-char.duo.json), where
 * the tour and the docs read them.
 *
 *   npm run example -- lm-duo-gates              # ~5 minutes on 2 cores
 *   npm run example -- lm-duo-gates --steps 5    # a quick look (does not overwrite the shipped gates)
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { charTokenizer, kjvSplit, loadKjv, loadKjvModel, lmDuoGates } from '@heed/attention'
import { dispose, progressBar } from '@heed/tensor'

export const DUO_SETTINGS = { sink: 4, recent: 60, context: 320, batch: 2, steps: 60, lambda: 0.05, lr: 0.02, seed: 0 } as const

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--steps')
  const steps = i >= 0 ? Number(process.argv[i + 1]) : DUO_SETTINGS.steps
  const model = await loadKjvModel()
  const tok = charTokenizer(model.vocab)
  const train = tok.encode(kjvSplit(await loadKjv()).trainText)
  const bar = progressBar({ total: steps, label: 'lm-duo-gates' })
  const r = lmDuoGates(model.lm, model.params, train, { ...DUO_SETTINGS, steps, onStep: (_s, loss) => bar.tick(1, `loss ${loss.toFixed(4)}`) })
  bar.done()
  dispose(model.params)
  for (const [l, g] of r.gates.entries()) console.log(`layer ${l}: ${g.map(x => x.toFixed(2)).join(' ')}`)
  if (steps === DUO_SETTINGS.steps) {
    const path = fileURLToPath(new URL('../packages/attention/models/kjv-char.duo.json', import.meta.url))
    writeFileSync(path, JSON.stringify({ ...DUO_SETTINGS, gates: r.gates, losses: r.losses }, null, 1) + '\n')
    console.log(`wrote ${path}`)
  }
}
