// `npm run bench -- align-lm --quick` (issue 17): every method of the DPO family fine-tunes a tiny model on KJV
// preference pairs through the shared training-step operator, and the bench writes align-lm.json, align-lm.md and
// its plots in the documented shape. Figures are not asserted beyond being finite and consistent; a second run
// reuses each method's cached result.
import t from 'tap'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AlignLmJson } from '../bench/align-lm.js'
import { root, run } from './helpers/proc.js'

t.test('align-lm bench --quick: every method, held-out metrics, plots, resumable', async t => {
  const out = await mkdtemp(join(tmpdir(), 'heed-bench-align-lm-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const bench = () => run(process.execPath, ['--conditions=@heed/source', '--import', 'tsx', 'bench/run.ts', 'align-lm', '--quick', `--out=${out}`], root)
  const res = await bench()
  t.equal(res.code, 0, res.stderr)
  const j = JSON.parse(await readFile(join(out, 'align-lm.json'), 'utf8')) as AlignLmJson
  t.equal(j.bench, 'align-lm')
  t.equal(j.settings.preset, 'quick')
  t.same(j.runs.map(r => r.key), ['dpo', 'ipo', 'hinge', 'robust', 'simpo', 'orpo', 'kto', 'flex', 'dpo-sft'], 'every method of the issue')
  t.equal(j.reference.evals.all.rewardAccuracy, 0, 'π = π_ref ranks no pair strictly')
  t.equal(j.reference.evals.kl, 0, 'KL of the reference to itself')
  for (const r of j.runs) {
    t.equal(r.train['loss']!.length, j.settings.steps, `${r.key}: one loss per step`)
    t.same(r.evals.map(e => e.step), [0, 1, 2], `${r.key}: held-out evaluations`)
    const e = r.evals.at(-1)!
    t.ok(e.kl >= 0 && Number.isFinite(e.kl) && Number.isFinite(r.bitsPerChar) && e.all.rewardAccuracy >= 0 && e.all.rewardAccuracy <= 1, `${r.key}: finite figures`)
    t.equal(r.samples.length, j.settings.samples)
  }
  t.ok(j.runs.every(r => r.train['rewards/margins'] !== undefined && r.train['logps/chosen'] !== undefined || r.key === 'kto'), "TRL's metrics from every paired run")
  const md = await readFile(join(out, 'align-lm.md'), 'utf8')
  t.match(md, /^# DPO and its family on the shipped KJV model/)
  t.match(md, /\| DPO \(sigmoid, β 0\.1\) \| \d+ % \/ \d+ % \|/)
  const files = await readdir(out)
  t.ok(['align-lm-logps.svg', 'align-lm-accuracy.svg', 'align-lm-tradeoff.svg'].every(f => files.includes(f)), 'plots written')
  const svg = await readFile(join(out, 'align-lm-logps.svg'), 'utf8')
  t.match(svg, /optimizer step/, 'labelled axes')
  const again = await bench()
  t.equal(again.code, 0, again.stderr)
  t.match(again.stderr, /dpo from .*dpo\.json/, 'the second run reads the cached results')
})
