// `npm run bench -- operators` in a tiny setting: the bench runs end to end and writes results of the documented
// shape. Timings are machine-dependent and never asserted; recall and error of dense attention are exact by
// construction, so those are.
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { root, run } from './helpers/proc.js'

interface Row {
  readonly backend: string
  readonly op: string
  readonly T: number
  readonly ok?: boolean
  readonly ms?: number
  readonly runs?: number
  readonly extraBytes?: number
  readonly recall?: number
  readonly relError?: number
  readonly skipped?: string
}

t.test('operators bench: table, JSON, Markdown and SVG', async t => {
  const out = await mkdtemp(join(tmpdir(), 'heed-bench-operators-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const ops = ['scaledDotProductAttention', 'lightningAttention', 'mask.streaming']
  const res = await run(process.execPath, ['--conditions=@heed/source', '--import', 'tsx', 'bench/run.ts', 'operators', '--max=1024', `--ops=${ops.join(',')}`, '--backends=cpu', `--out=${out}`], root)
  t.equal(res.code, 0, res.stderr)
  t.match(res.stdout, /linear growth, time\(64k\) \/ time\(8k\)/)

  const json = JSON.parse(await readFile(join(out, 'operators.json'), 'utf8')) as {
    backends: string[]
    operators: { name: string; config: string; heads: number; causal: boolean }[]
    rows: Row[]
    linearGrowth: { target: number; results: { op: string; ratio?: number }[] }
  }
  t.same(json.backends, ['cpu'])
  t.same(json.operators.map(o => o.name).sort(), [...ops].sort())
  t.equal(json.rows.length, ops.length, 'one row per operator at T = 1024')
  for (const r of json.rows) {
    t.equal(r.T, 1024)
    t.equal(r.ok, true, `${r.op} ran`)
    t.ok(r.ms! > 0 && r.runs! >= 1 && Number.isFinite(r.extraBytes), `${r.op} timed and measured`)
    t.ok(r.recall! >= 0 && r.recall! <= 1, `${r.op} recall in [0, 1]`)
    t.ok(r.relError! >= 0, `${r.op} relative error`)
  }
  const dense = json.rows.find(r => r.op === 'scaledDotProductAttention')!
  t.equal(dense.recall, 1, 'dense attention retrieves every needle')
  t.ok(dense.relError! < 1e-6, 'dense attention is its own reference')
  t.equal(json.linearGrowth.target, 10)
  t.same(json.linearGrowth.results.map(r => [r.op, r.ratio]), [['lightningAttention', undefined]], 'no ratio below 8k')

  const md = await readFile(join(out, 'operators.md'), 'utf8')
  t.match(md, /\| cpu \| lightningAttention \|/)
  const svg = await readFile(join(out, 'operators.svg'), 'utf8')
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.equal((svg.match(/<polyline /g) ?? []).length, ops.length, 'one line per operator')
})
