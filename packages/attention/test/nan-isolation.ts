/**
 * The NaN rule of scaledDotProductAttention, on every backend: a NaN (or ±∞) in an input reaches exactly the
 * output rows that see it. A key or value row that a mask excludes (causal, window, packed segments, cache slots
 * past the filled prefix, padding) never influences any output, whatever its values; a NaN in a visible key, value
 * or in a query row propagates to the rows that see it (out NaN, and lse NaN where the score itself is NaN).
 */
import t from 'tap'
import { mul, scope, sum, tensor, valueAndGrad, type DType, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, type Mask, type SdpaOptions } from '@heed/attention'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(19)

interface Case {
  readonly name: string
  readonly T: number
  readonly D: number
  readonly opts: SdpaOptions
  /** the full mask the options make (for the expected NaN pattern) */
  readonly visible: Mask
  /** the poisoned key row */
  readonly bad: number
}

const segIds = (T: number) => Array.from({ length: T }, (_, i) => (i < T / 2 ? 0 : 1))
const cases: Case[] = [
  { name: 'causal', T: 8, D: 4, opts: { causal: true }, visible: mask.causal, bad: 3 },
  { name: 'causal odd D (TypeScript inner products)', T: 9, D: 3, opts: { causal: true, blockSize: 4 }, visible: mask.causal, bad: 5 },
  { name: 'window', T: 10, D: 4, opts: { mask: mask.window(2) }, visible: mask.window(2), bad: 4 },
  { name: 'segments (packed)', T: 8, D: 4, opts: { mask: mask.segments(segIds(8)) }, visible: mask.segments(segIds(8)), bad: 1 },
  { name: 'causal segments T=256 split at 128', T: 256, D: 4, opts: { causal: true, mask: mask.segments(segIds(256)) }, visible: mask.and(mask.causal, mask.segments(segIds(256))), bad: 40 },
  { name: 'causal T=256 (float32 WebAssembly path)', T: 256, D: 8, opts: { causal: true }, visible: mask.causal, bad: 100 },
  { name: 'streaming sinks + window', T: 12, D: 4, opts: { mask: mask.streaming(2, 3), blockSize: 3 }, visible: mask.streaming(2, 3), bad: 5 },
]

const dtypes = (backend: string): DType[] => (backend === 'webgpu' ? ['float32'] : ['float64', 'float32'])
const tolOf = (dtype: DType, backend: string) => (dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : backend === 'webgpu' ? { atol: 1e-5, rtol: 1e-4 } : { atol: 1e-6, rtol: 1e-6 })

async function run(q: number[], k: number[], v: number[], T: number, D: number, dtype: DType, opts: SdpaOptions): Promise<{ out: Float64Array; lse: Float64Array }> {
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x, [1, 1, T, D], dtype) as Tensor) as [Tensor, Tensor, Tensor]
  const { out, lse } = scaledDotProductAttention(tq, tk, tv, opts)
  const r = { out: Float64Array.from(await out.data()), lse: Float64Array.from(await lse.data()) }
  for (const x of [tq, tk, tv, out, lse]) x.dispose()
  return r
}

void eachBackend(t, 'a NaN reaches exactly the rows that see it', async (t, backend) => {
  for (const c of cases)
    for (const dtype of dtypes(backend)) {
      const { T, D, bad } = c
      const [q, k, v] = [0, 1, 2].map(() => randomArray(rand, T * D))
      const clean = await run(q!, k!, v!, T, D, dtype, c.opts)
      const qOffset = 0
      const sees = (i: number) => c.visible.test(0, 0, qOffset + i, bad)
      for (const where of ['k', 'v'] as const) {
        const poisoned = (where === 'k' ? k! : v!).slice()
        poisoned[bad * D + 1] = NaN
        const r = await run(q!, where === 'k' ? poisoned : k!, where === 'v' ? poisoned : v!, T, D, dtype, c.opts)
        const msg = `${c.name} ${dtype} NaN in ${where}[${bad}]`
        let wrong = 0
        let leaked = 0
        for (let i = 0; i < T; i++) {
          const row = r.out.subarray(i * D, (i + 1) * D)
          if (sees(i)) {
            // a NaN value poisons its own column; a NaN key poisons the score, so the whole row and its lse
            if (!(where === 'v' ? Number.isNaN(row[1]) : row.every(Number.isNaN) && Number.isNaN(r.lse[i]))) wrong++
          } else if (row.some(Number.isNaN) || Number.isNaN(r.lse[i])) leaked++
        }
        t.equal(wrong, 0, `${msg}: every row that sees it is NaN`)
        t.equal(leaked, 0, `${msg}: no row that cannot see it is NaN`)
        const keep = (x: Float64Array, w: number) => Array.from(x).filter((_, e) => !sees(Math.floor(e / w)))
        assertClose(t, keep(r.out, D), keep(clean.out, D), { ...tolOf(dtype, backend), msg: `${msg}: the other rows are unchanged` })
        assertClose(t, keep(r.lse, 1), keep(clean.lse, 1), { ...tolOf(dtype, backend), msg: `${msg}: their lse is unchanged` })
      }
    }
})

void eachBackend(t, 'a NaN query row gives a NaN row (out and lse) and leaves the others alone', async (t, backend) => {
  for (const dtype of dtypes(backend)) {
    const T = 8
    const D = 4
    const [q, k, v] = [0, 1, 2].map(() => randomArray(rand, T * D))
    const clean = await run(q!, k!, v!, T, D, dtype, { causal: true })
    const qq = q!.slice()
    qq[2 * D] = NaN
    const r = await run(qq, k!, v!, T, D, dtype, { causal: true })
    t.ok(Array.from(r.out.subarray(2 * D, 3 * D)).every(Number.isNaN), `${dtype}: row 2 is NaN`)
    t.ok(Number.isNaN(r.lse[2]), `${dtype}: lse of row 2 is NaN`)
    const others = (x: Float64Array, w: number) => Array.from(x).filter((_, e) => Math.floor(e / w) !== 2)
    assertClose(t, others(r.out, D), others(clean.out, D), { ...tolOf(dtype, backend), msg: `${dtype}: other rows unchanged` })
  }
})

void eachBackend(t, 'never-written cache slots and padding influence nothing, gradients included', async (t, backend) => {
  // a cache of 16 slots filled up to 10 (the view kvCache passes: causal ∧ sinks(used)); slots 10.. hold garbage
  const [T, S, used, D] = [4, 16, 10, 4]
  for (const dtype of dtypes(backend)) {
    const q = randomArray(rand, T * D)
    const k = randomArray(rand, S * D)
    const v = randomArray(rand, S * D)
    const opts: SdpaOptions = { causal: true, mask: mask.sinks(used), queryOffset: used - T }
    const garbage = (x: number[]) => x.map((y, i) => (i >= used * D ? [NaN, Infinity, -Infinity, 1e38][i % 4]! : y))
    const results = await Promise.all(
      [
        [k, v],
        [garbage(k), garbage(v)],
      ].map(async ([kk, vv]) => {
        const [tq, tk, tv] = [tensor(q, [1, 1, T, D], dtype), tensor(kk!, [1, 1, S, D], dtype), tensor(vv!, [1, 1, S, D], dtype)]
        const w = tensor(randomArray(prng(3), T * D), [1, 1, T, D], dtype)
        const f = (a: Tensor, b: Tensor, c: Tensor) => scope(() => sum(mul(scaledDotProductAttention(a, b, c, opts).out, w)))
        const [value, grads] = valueAndGrad(f, { argnums: [0, 1, 2] })(tq, tk, tv)
        const r = { value: (await value.data())[0]!, grads: await Promise.all(grads.map(async g => Array.from(await g.data()))) }
        for (const x of [tq, tk, tv, w, value, ...grads]) x.dispose()
        return r
      }),
    )
    const [ok, bad] = results as [(typeof results)[0], (typeof results)[0]]
    t.ok(Number.isFinite(bad.value), `${dtype}: the output ignores the unwritten slots`)
    assertClose(t, [bad.value], [ok.value], { ...tolOf(dtype, backend), msg: `${dtype}: same output` })
    for (const [i, name] of ['dq', 'dk', 'dv'].entries()) {
      t.ok(bad.grads[i]!.every(Number.isFinite), `${dtype}: ${name} is finite`)
      assertClose(t, bad.grads[i]!, ok.grads[i]!, { ...tolOf(dtype, backend), atol: 1e-5, msg: `${dtype}: ${name} unchanged` })
    }
  }
})
