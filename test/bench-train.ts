// `npm run bench -- train --quick`: the training bench runs end to end on a tiny model and writes results of the
// documented shape. Timings are never asserted. PyTorch is optional (a peer, never a dependency): its row is either a
// result or a stated reason. heed and tfjs start from the same parameters and batches, so their losses agree.
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { root, run } from './helpers/proc.js'

interface RunResult {
  readonly stepMs: number[]
  readonly losses: number[]
  readonly decode?: { readonly tokens: number[] }
  readonly leak?: { readonly tensorsBefore: number; readonly tensorsAfter: number }
}

t.test('train bench --quick: table, JSON and Markdown', async t => {
  const out = await mkdtemp(join(tmpdir(), 'heed-bench-train-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const res = await run(process.execPath, ['--conditions=@heed/source', '--import', 'tsx', 'bench/run.ts', 'train', '--quick', '--no-webgpu', `--out=${out}`], root)
  t.equal(res.code, 0, res.stderr)
  t.match(res.stdout, /profile of one heed step: \d+ kernel calls/)

  const json = JSON.parse(await readFile(join(out, 'train.json'), 'utf8')) as {
    machine: { cores: number }
    results: { model: { name: string }; steps: number; heed: RunResult; torch?: RunResult | { error: string }; tfjs?: RunResult | { error: string }; profile?: { calls: number; byKernel: { kernel: string; calls: number; ms: number }[] } }[]
  }
  t.ok(json.machine.cores >= 1)
  t.equal(json.results.length, 1)
  const r = json.results[0]!
  t.equal(r.model.name, 'tiny')
  t.equal(r.heed.stepMs.length, r.steps)
  t.ok(r.heed.stepMs.every(ms => ms > 0))
  t.ok(r.heed.losses.every(Number.isFinite), 'finite losses')
  t.ok(r.heed.losses.every(l => l > 0 && l < 2 * Math.log(65)), 'losses near log(65) from a small init')
  t.same(r.heed.leak, { tensorsBefore: r.heed.leak!.tensorsBefore, tensorsAfter: r.heed.leak!.tensorsBefore }, 'no tensor outlives the run')
  t.equal(r.heed.decode?.tokens.length, 8, 'greedy decode produced its tokens')
  t.ok(r.profile!.calls > 0 && r.profile!.byKernel.some(k => k.kernel.includes('MatMul')), 'per-kernel profile of one step')
  for (const [name, peer] of [['tfjs', r.tfjs], ['torch', r.torch]] as const) {
    t.ok(peer, `${name} row present`)
    if (peer && 'error' in peer) {
      t.comment(`${name}: ${peer.error}`)
      continue
    }
    for (let s = 0; s < r.steps; s++) t.ok(Math.abs(peer!.losses[s]! - r.heed.losses[s]!) < 2e-3, `${name} loss at step ${s + 1} agrees with heed's`)
  }
  const md = await readFile(join(out, 'train.md'), 'utf8')
  t.match(md, /\| heed cpu \|/)
  t.match(md, /\| tfjs-wasm \|/)
})
