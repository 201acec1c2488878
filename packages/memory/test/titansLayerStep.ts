import t from 'tap'
import { dispose, slice, tensor, type Tensor } from '@heed/tensor'
import { disposeTitansState, initTitansLayer, titansLayer, titansLayerStep, type TitansLayerStreamState, type TitansVariant } from '@heed/memory'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const d = 8
const opts = { heads: 2, segment: 5, window: 3, chunkSize: 3, maxLr: 0.5 }
const params = initTitansLayer({ dim: d, depth: 2, persistentTokens: 2, seed: 4, dtype: 'float64' })
const rand = prng(11)
const rows = (T: number): Tensor => tensor(randomArray(rand, T * d), [T, d], 'float64')

/** Free what an older state holds and the newer one does not (what a KV cache does for a recurrent state). */
function replace(old: TitansLayerStreamState | undefined, now: TitansLayerStreamState): void {
  if (!old) return
  const keep = new Set<Tensor>()
  const collect = (s: TitansLayerStreamState, into: Set<Tensor>) => {
    for (const x of [...s.memory.weights, ...s.memory.momentum, ...(s.segmentWeights ?? []), s.keys, s.values, s.hKeys, s.hValues]) if (x) into.add(x)
    if (s.memory.pending) for (const x of [s.memory.pending.keys, s.memory.pending.values, s.memory.pending.gates.theta, s.memory.pending.gates.logEta, s.memory.pending.gates.logKeep]) into.add(x)
  }
  collect(now, keep)
  const gone = new Set<Tensor>()
  collect(old, gone)
  for (const x of gone) if (!keep.has(x)) x.dispose()
}

function stream(x: Tensor, variant: TitansVariant, sizes: readonly number[]): { out: number[]; state: TitansLayerStreamState } {
  let state: TitansLayerStreamState | undefined
  const out: number[] = []
  let at = 0
  for (const n of sizes) {
    const c = slice(x, [[at, at + n]])
    const r = titansLayerStep(params, c, variant, state, opts)
    out.push(...Array.from(r.out.dataSync()))
    dispose([c, r.out])
    replace(state, r.state)
    state = r.state
    at += n
  }
  return { out, state: state! }
}

for (const variant of ['MAC', 'MAG', 'MAL'] as const)
  t.test(`titansLayerStep ${variant}: a stream equals the full layer, across segment, window and chunk boundaries`, async t => {
    const T = 13
    const x = rows(T)
    const full = titansLayer(params, x, variant, undefined, opts)
    const want = Array.from(full.out.dataSync())
    dispose(full.out)
    disposeTitansState(full.state)
    for (const sizes of [[T], Array.from({ length: T }, () => 1), [4, 3, 6], [2, 5, 1, 5]]) {
      const got = stream(x, variant, sizes)
      assertClose(t, got.out, want, { atol: 1e-10, rtol: 1e-9, msg: `chunks ${sizes.join('+')}` })
      t.equal(got.state.position, T)
      replace(got.state, { memory: { weights: [], momentum: [], pending: null, position: 0 }, position: 0 })
    }
    x.dispose()
  })

t.test('titansLayerStep state stays bounded however long the stream', async t => {
  for (const variant of ['MAC', 'MAG', 'MAL'] as const) {
    const x = rows(37)
    const { state } = stream(x, variant, Array.from({ length: 37 }, () => 1))
    const held = state.keys?.shape[2] ?? 0
    const bound = variant === 'MAC' ? opts.segment - 1 : opts.window - 1
    t.ok(held <= bound, `${variant}: ${held} rows of keys held (≤ ${bound})`)
    t.equal(held, variant === 'MAC' ? 37 % opts.segment : opts.window - 1)
    t.ok((state.memory.pending?.keys.shape[0] ?? 0) < opts.chunkSize, `${variant}: the pending chunk is shorter than a chunk`)
    t.same(state.memory.weights.map(w => w.shape), params.memory.init.map(w => w.shape), `${variant}: the memory is its weights, whatever the length`)
    replace(state, { memory: { weights: [], momentum: [], pending: null, position: 0 }, position: 0 })
    x.dispose()
  }
})
