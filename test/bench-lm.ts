// `npm run bench -- lm --quick`: the LM bench trains a tiny model end to end, decodes with the KV cache and writes
// lm.json and lm.md of the documented shape. Timings are never asserted. Where PyTorch is installed the bench also
// trains the twin: same initial parameters and batches, so the data order must match and the first step's loss
// agree to float32 rounding; without it the bench must say so and run heed alone.
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LmBenchJson } from '../bench/lm.js'
import { root, run } from './helpers/proc.js'

t.test('lm bench --quick: JSON and Markdown, validation bpc, training and decode tokens/s', async t => {
  const out = await mkdtemp(join(tmpdir(), 'heed-bench-lm-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const res = await run(process.execPath, ['--conditions=@heed/source', '--import', 'tsx', 'bench/run.ts', 'lm', '--quick', `--out=${out}`], root)
  t.equal(res.code, 0, res.stderr)
  const j = JSON.parse(await readFile(join(out, 'lm.json'), 'utf8')) as LmBenchJson
  t.equal(j.bench, 'lm')
  t.equal(j.preset, 'quick')
  t.equal(j.heed.steps.length, j.recipe.steps, 'one loss per step')
  t.same(j.heed.evals.map(e => e.step), [3, 6], 'validation every evalEvery steps')
  const v = j.heed.finalValidation
  t.ok(v.nats > 0 && v.nats < Math.log(j.config.vocab) + 0.5, `validation loss ${v.nats} nats is finite and near or below log(vocab)`)
  t.ok(Math.abs(v.bitsPerChar - v.nats / Math.LN2) < 1e-9, 'bits per character = nats / ln 2')
  t.ok(j.heed.trainTokensPerSecond > 0 && j.heed.decode.tokensPerSecond > 0, 'tokens/s reported')
  t.equal(j.heed.decode.tokens, 8)
  t.equal(j.heed.decode.sample.length, 8, 'decoded text')
  t.ok(j.heed.decode.checkedTokens >= 1 && j.heed.decode.cacheMatchesRecompute, 'decode with the cache equals a recompute without it')
  if (j.torch.available) {
    t.ok(j.torch.dataOrderMatches, "PyTorch reads heed's batches")
    t.ok(j.torch.firstStepLossDiff < 1e-4, `same init and batch: first-step losses agree (${j.torch.firstStepLossDiff})`)
    t.ok(Math.abs(j.relativeDifference!) < 0.02 && j.withinTarget, 'final validation losses within 2 %')
    t.match(res.stdout, /heed − PyTorch: .* % of PyTorch's final validation loss/)
  } else {
    t.match(res.stdout, /PyTorch: not run — /, 'says that PyTorch is missing')
  }
  const md = await readFile(join(out, 'lm.md'), 'utf8')
  t.match(md, /^# Language model: heed/)
  t.match(md, /\| heed \(cpu\) \| \d+\.\d{4} \| \d+\.\d{4} \| \d+ \|/)
  t.match(md, /Greedy decode with the KV cache/)
})
