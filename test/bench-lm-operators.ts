// `npm run bench -- lm-operators --quick` (issue 16): the sweep's machinery on a tiny config — a trained run per
// decode path (cache, recurrent state, a windowed cache), cache policies, an operator and the observers applied to the
// quick dense run, the Markdown + JSON + SVG outputs, and resumption (a second invocation reuses the cached runs).
// test/lm-operators.ts trains and decodes every operator; timings are never asserted.
import t from 'tap'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { claimList, type LmOperatorsJson } from '../bench/lm-operators.js'
import { root, run } from './helpers/proc.js'

const only = 'dense,window,flow,combiner,applied-full,applied-streaming,applied-duo-50,applied-act,observers'

t.test('lm-operators bench --quick: table, JSON, plots; resumable per run', async t => {
  const out = await mkdtemp(join(tmpdir(), 'heed-bench-lm-ops-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const args = ['--conditions=@heed/source', '--import', 'tsx', 'bench/run.ts', 'lm-operators', '--quick', `--only=${only}`, `--out=${out}`]
  const res = await run(process.execPath, args, root)
  t.equal(res.code, 0, res.stderr)
  const j = JSON.parse(await readFile(join(out, 'lm-operators-quick.json'), 'utf8')) as LmOperatorsJson
  t.equal(j.bench, 'lm-operators')
  t.same(j.runs.map(r => r.id), only.split(','), 'one result per run asked for, in table order')
  for (const r of j.runs) t.notOk(r.error, `${r.id} ran (${r.error ?? 'ok'})`)
  const get = (id: string) => j.runs.find(r => r.id === id)!
  for (const id of ['dense', 'window', 'flow', 'combiner']) {
    const r = get(id)
    t.ok(Number.isFinite(r.bitsPerChar) && r.bitsPerChar > 0, `${id}: validation bits/char`)
    t.equal(r.seeds[0]!.curve.length, j.trained.recipe.steps, `${id}: a training curve point per step`)
    t.equal(r.buckets.at(-1)!.to, 16 * j.trained.config.context, `${id}: position buckets out to 16× context`)
    t.equal(r.bytes.held.length, 3, `${id}: bytes at 1×, 4×, 16×`)
  }
  t.equal(get('dense').decodeMatches, true, 'dense: cached decode = recompute')
  t.equal(get('window').decodeMatches, true, 'window: cached decode (window-only cache) = recompute')
  t.ok(get('flow').decode === 'cache' && get('flow').decodeMatches === true, 'flow streams its state through the cache, = recompute')
  t.equal(get('flow').bytes.held[2], get('flow').bytes.held[0], 'the flow state does not grow')
  t.ok(get('combiner').decode === 'cache' && get('combiner').decodeMatches === true, 'combiner streams its segment state through the cache, = recompute')
  t.ok(get('combiner').bytes.held[2]! < get('dense').bytes.held[2]!, 'combiner holds less than the full cache at 16× context')
  t.equal(get('window').bytes.held[2], get('window').bytes.held[0], 'the window cache does not grow')
  t.ok(get('applied-streaming').bytes.held[2]! < get('applied-full').bytes.held[2]!, 'StreamingLLM holds less than the full cache')
  // The operators read the same 16×-context stream as the cache policies: the same position buckets.
  t.equal(j.applied.forwardTokens, j.applied.streamTokens, 'operators: one forward over the whole 16×-context stream')
  t.equal(get('applied-act').buckets.at(-1)!.to, 16 * j.applied.config.context, 'applied-act: position buckets out to 16× context')
  t.same(get('applied-act').buckets.map(b => b.from), get('applied-full').buckets.map(b => b.from), 'applied-act: the cache policies\' buckets')
  // DuoAttention: one gate pattern thresholded at the sparsity's quantile over all heads of all layers.
  const perLayer = get('applied-duo-50').extra!['streamingPerLayer'] as number[]
  t.equal(perLayer.length, j.applied.config.layers, 'duo: streaming heads counted per layer')
  t.equal(perLayer.reduce((a, x) => a + x, 0), (j.applied.config.layers * j.applied.config.kvHeads) / 2, 'duo 50 %: half of all heads stream')
  const obs = get('observers').extra as { sinkMass: number[][]; retrieval: number[][] }
  t.equal(obs.sinkMass.length, j.applied.config.layers, 'sink mass per layer')
  t.equal(obs.retrieval[0]!.length, j.applied.config.heads, 'retrieval score per head')
  const md = await readFile(join(out, 'lm-operators-quick.md'), 'utf8')
  t.match(md, /^# The seed operators inside a KJV character LM/)
  t.match(md, /<a id="lm-dense"><\/a>dense softmax/)
  t.match(md, /papers' claims/)
  // The same claim records feed this Markdown and the results page's "heed beside the papers" table.
  const claims = claimList(j)
  t.equal(claims.length, 5, 'StreamingLLM, DuoAttention, Lightning/Flow, Titans, MoH')
  for (const c of claims) {
    t.ok(md.includes(c.claim), `the Markdown states: ${c.claim}`)
    t.match(c.verdict, /\*\*(Supports|supports|Contradicts|contradicts|Cannot|Does not)/, `${c.claim}: a verdict`)
  }
  t.match(claims.find(c => c.claim.startsWith('MoH'))!.verdict, /Cannot test/, 'a run the sweep skipped gives "cannot test", not a number')
  const files = await readdir(out)
  for (const p of ['pareto', 'position', 'training']) t.ok(files.includes(`lm-operators-quick-${p}.svg`), `${p} plot`)
  // Resumable: the same command again trains nothing.
  const again = await run(process.execPath, args, root)
  t.equal(again.code, 0, again.stderr)
  t.match(again.stderr, /dense: cached/)
  t.notMatch(again.stderr, /seed 0 step/)
})
