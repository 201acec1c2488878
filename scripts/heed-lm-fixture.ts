/**
 * The heed half of the PyTorch fixture (packages/attention/test/fixtures/lm-torch/): small fixed checkpoints made
 * by heed, which `scripts/heed_lm.py fixture` then loads in PyTorch. Not run by hand or by CI on its own:
 *
 *     /usr/bin/python3 scripts/heed_lm.py fixture     # runs this, then computes the logits and the round trip
 *
 * Parameters are not `lm.init`'s (gains of one and zero biases would leave half the model's math untested): every
 * tensor is a seeded normal draw — weights N(0, 1/in), embeddings N(0, 1), gains 1 + N(0, 0.2²), biases
 * N(0, 0.1²) — so the logits depend on every tensor of the checkpoint.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { dispose, random, type Tensor } from '@heed/tensor'
import { flattenParams, saveLM, transformerLM, type TransformerLMConfig, type TransformerLMParams } from '@heed/attention'

/** The fixture's models: the default shape (tied head, half-split RoPE) with grouped-query attention, and an
 * untied head with interleaved RoPE of another base. */
export const FIXTURE_MODELS: readonly { readonly name: string; readonly config: Omit<TransformerLMConfig, 'vocab'>; readonly seed: number }[] = [
  { name: 'tied-gqa', config: { dModel: 16, layers: 2, heads: 4, kvHeads: 2, hidden: 24, context: 24 }, seed: 1 },
  { name: 'untied-interleaved', config: { dModel: 12, layers: 2, heads: 2, hidden: 20, context: 24, tied: false, rope: { style: 'interleaved', base: 500 } }, seed: 2 },
]

/** The fixture's alphabet: the characters of its prompts (see heed_lm.py), sorted. */
export const FIXTURE_VOCAB = [...' abcdeghinorstw'] as const

function fixtureParams(like: TransformerLMParams, seed: number): TransformerLMParams {
  let k = 0
  const draw = (name: string, t: Tensor): Tensor => {
    const s = seed * 1000 + k++
    const leaf = name.split('.').at(-1)!
    if (t.rank === 2) return random.normal(t.shape, { seed: s, std: name === 'embed' ? 1 : 1 / Math.sqrt(t.shape[0]!) })
    if (leaf.startsWith('norm')) return random.normal(t.shape, { seed: s, mean: 1, std: 0.2 })
    return random.normal(t.shape, { seed: s, std: 0.1 })
  }
  const walk = (x: unknown, path: string): unknown => {
    if (x !== null && typeof x === 'object' && 'dtype' in x) return draw(path, x as Tensor)
    if (Array.isArray(x)) return x.map((v, i) => walk(v, `${path}.${i}`))
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([kk, v]) => [kk, walk(v, path === '' ? kk : `${path}.${kk}`)]))
    return x
  }
  return walk(like, '') as TransformerLMParams
}

export async function makeFixture(dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true })
  const written: string[] = []
  for (const m of FIXTURE_MODELS) {
    const lm = transformerLM({ ...m.config, vocab: FIXTURE_VOCAB.length })
    const skeleton = lm.init()
    const params = fixtureParams(skeleton, m.seed)
    dispose(skeleton)
    // Every checkpoint tensor is drawn (the walk above covers the whole pytree, in checkpoint names).
    if (Object.keys(flattenParams(params)).length === 0) throw new Error('no parameters')
    const file = join(dir, `${m.name}.safetensors`)
    writeFileSync(file, await saveLM(lm, params, { vocab: FIXTURE_VOCAB }))
    dispose(params)
    written.push(file)
  }
  return written
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = resolve(process.argv[2] ?? 'packages/attention/test/fixtures/lm-torch')
  for (const f of await makeFixture(dir)) console.log(f)
}
