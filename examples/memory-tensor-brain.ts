// The Tensor Brain on a small WordNet knowledge graph: 295 noun relations around "mammal" (hypernym, part_of,
// member_of) from WordNet 3.1, shipped in packages/memory/data. Each triple is a scene; perception decodes noisy
// scenes into triples, every triple is imprinted as an episode (a time index), recall by time index decodes the
// stored triple, and semantic memory marginalises over the episodes.
//
// Run: node --conditions=@heed/source --import tsx examples/memory-tensor-brain.ts
//      (or `npm run example -- memory-tensor-brain`); writes out/memory-tensor-brain/noise.svg and result.json.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { rng } from '@heed/tensor'
import { TensorBrain, type Triple } from '@heed/memory'
import { outDir, writeOutput } from './lib/out.js'
import { chart } from './lib/plot.js'

export interface TbDemoResult {
  readonly triples: number
  readonly entities: number
  /** [noise, exact-triple accuracy] with feedback, and without (feedback 0). */
  readonly noiseCurve: readonly { noise: number; accuracy: number; accuracyNoFeedback: number }[]
  readonly recallExact: number
  readonly oldRecallAfterNew: number
  readonly marginalError: number
}

export async function runTensorBrainDemo(opts: { noises?: readonly number[]; limit?: number; dim?: number; log?: (s: string) => void } = {}): Promise<TbDemoResult> {
  const log = opts.log ?? (() => {})
  const file = fileURLToPath(new URL('../packages/memory/data/wordnet-mammals.tsv', import.meta.url))
  const rows = readFileSync(file, 'utf8').split('\n').filter(l => l && !l.startsWith('#')).map(l => l.split('\t') as [string, string, string])
  const used = rows.slice(0, opts.limit ?? rows.length)
  const entities = [...new Set(used.flatMap(([s, , o]) => [s, o]))].sort()
  const predicates = [...new Set(used.map(([, p]) => p))].sort()
  const triples: Triple[] = used.map(([s, p, o]) => ({ subject: entities.indexOf(s), predicate: predicates.indexOf(p), object: entities.indexOf(o) }))
  const cfg = { entities, predicates, dim: opts.dim ?? 256, seed: 1 }
  const tb = new TensorBrain(cfg)
  const noFb = new TensorBrain({ ...cfg, feedback: 0 })
  const same = (a: Triple, b: Triple) => a.subject === b.subject && a.predicate === b.predicate && a.object === b.object
  log(`${triples.length} WordNet triples, ${entities.length} entities, ${predicates.length} predicates (${predicates.join(', ')}), n = ${cfg.dim}`)

  const noiseCurve: { noise: number; accuracy: number; accuracyNoFeedback: number }[] = []
  for (const noise of opts.noises ?? [0, 0.5, 1, 1.25, 1.5, 2]) {
    const scenes = tb.scene(triples, { noise, rng: rng(7) })
    const a = (await tb.perceive(scenes)).triples.filter((d, i) => same(d, triples[i]!)).length / triples.length
    const b = (await noFb.perceive(scenes)).triples.filter((d, i) => same(d, triples[i]!)).length / triples.length
    scenes.dispose()
    noiseCurve.push({ noise, accuracy: a, accuracyNoFeedback: b })
    log(`noise ${noise.toFixed(2)}·‖scene‖: triple accuracy ${(100 * a).toFixed(1)} % (without top-down feedback ${(100 * b).toFixed(1)} %)`)
  }
  noFb.dispose()

  const half = Math.floor(triples.length / 2)
  const times = tb.storeEpisodes(triples.slice(0, half))
  const before = await tb.recall(times)
  tb.storeEpisodes(triples.slice(half))
  const after = await tb.recall(times)
  const oldRecallAfterNew = after.filter((d, i) => same(d, before[i]!)).length / half
  const all = await tb.recall(triples.map((_, t) => t))
  const recallExact = all.filter((d, i) => same(d, triples[i]!)).length / triples.length
  log(`episodic recall by time index: ${(100 * recallExact).toFixed(1)} % exact; old episodes unchanged after ${triples.length - half} new ones: ${(100 * oldRecallAfterNew).toFixed(1)} %`)

  const sem = await tb.semantic()
  const freq = new Float64Array(predicates.length)
  triples.forEach(t => freq[t.predicate]!++)
  let marginalError = 0
  predicates.forEach((p, k) => {
    marginalError = Math.max(marginalError, Math.abs(sem.predicate[k]! - freq[k]! / triples.length))
    log(`P(predicate = ${p}) semantic ${sem.predicate[k]!.toFixed(3)} vs episode frequency ${(freq[k]! / triples.length).toFixed(3)}`)
  })
  const dog = entities.indexOf('dog')
  if (dog >= 0) {
    const q = await tb.semantic({ subject: dog, predicate: predicates.indexOf('hypernym') })
    const top = Array.from(q.object).map((p, k) => [p, k] as const).sort((a, b) => b[0] - a[0]).slice(0, 2)
    log(`query (dog, hypernym, ?): ${top.map(([p, k]) => `${entities[k]} ${p.toFixed(3)}`).join(', ')}`)
  }
  tb.dispose()
  return { triples: triples.length, entities: entities.length, noiseCurve, recallExact, oldRecallAfterNew, marginalError }
}

export function noiseSvg(r: TbDemoResult): string {
  return chart({
    title: `Tensor Brain perception, ${r.triples} WordNet triples`,
    xLabel: 'noise ‖ε‖ / ‖scene‖',
    yLabel: 'exact triple accuracy',
    yMin: 0,
    yMax: 1,
    series: [
      { name: 'with top-down feedback', points: r.noiseCurve.map(p => [p.noise, p.accuracy] as const) },
      { name: 'without feedback', points: r.noiseCurve.map(p => [p.noise, p.accuracyNoFeedback] as const), dashed: true },
    ],
  })
}

async function main(): Promise<void> {
  const r = await runTensorBrainDemo({ log: console.log })
  const dir = outDir('memory-tensor-brain')
  const json = writeOutput(join(dir, 'result.json'), JSON.stringify(r, null, 2))
  console.log(`wrote ${writeOutput(join(dir, 'noise.svg'), noiseSvg(r))} and ${json}`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
