import t from 'tap'
import { concat, dispose, memory, mul, scope, slice, sum, tensor, type Tensor } from '@heed/tensor'
import { mask, multiHeadAttention, s2Attention, s2Mask, s2Shards, type S2Options } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(56)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1)), shape })

/** dkernel's block rule, written from the formula: ((kb + h·step + off) mod stride == 0) per head (MHA layout). */
const dkernelAllow = (H: number, o: Required<Pick<S2Options, 'blockSize' | 'localBlocks' | 'stride' | 'offset'>>) => (h: number, pq: number, pk: number): boolean => {
  const qb = Math.floor(pq / o.blockSize)
  const kb = Math.floor(pk / o.blockSize)
  const step = Math.max(1, Math.floor(o.stride / H))
  return pk <= pq && qb >= kb && (qb - kb < o.localBlocks || (kb + h * step + o.offset) % o.stride === 0)
}

t.test('MHA shards follow dkernel; their union is the full causal context when H ≥ stride', async t => {
  const o = { blockSize: 2, localBlocks: 2, stride: 4, offset: 1 }
  const H = 4
  const m = s2Mask(H, H, o)
  const allow = dkernelAllow(H, o)
  let same = true
  let union = true
  for (let pq = 0; pq < 40; pq++)
    for (let pk = 0; pk <= pq; pk++) {
      let any = false
      for (let h = 0; h < H; h++) {
        const mine = m.test(0, h, pq, pk)
        if (mine !== allow(h, pq, pk)) same = false
        any ||= mine
      }
      if (!any) union = false
    }
  t.ok(same, 'mask = dkernel formula for every head and pair')
  t.ok(union, '⋃_h shards = causal')
  t.same(s2Shards(8, 8, { stride: 4 }).gaps, [], 'H = 8, stride 4: no gaps')
})

t.test('the reference pitfalls are rejected, and GQA layouts cover the context', async t => {
  // H = 2 with stride 8 (step 4) reaches residues {0, 4} only; dkernel's GQA (step from H, offsets over kv heads)
  // with H = 32, Hkv = 8, stride 16 reaches 8 of 16.
  t.throws(() => s2Shards(2, 2, { stride: 8 }), { name: 'ValueError' })
  t.same(s2Shards(2, 2, { stride: 8, allowGaps: true }).gaps, [1, 2, 3, 5, 6, 7])
  t.throws(() => s2Shards(32, 8, { stride: 16, layout: 'kv' }), /leaves residues/)
  t.same(s2Shards(32, 16, { stride: 16, layout: 'kv' }).gaps, [], "layout 'kv' with Hkv ≥ stride covers (step from Hkv)")
  for (const [H, Hkv, stride] of [[32, 8, 16], [8, 2, 4], [8, 4, 8], [6, 2, 4]] as const) {
    const s = s2Shards(H, Hkv, { stride })
    t.same(s.gaps, [], `group layout H=${H} Hkv=${Hkv} stride=${stride}: no gaps`)
    t.ok(s.kvResidues.every(r => r!.length === stride), 'every kv group alone covers every residue')
    // Token-level check: for every kv group, the union over its query heads is the full causal mask.
    const m = s2Mask(H, Hkv, { stride, blockSize: 2, localBlocks: 1 })
    const g = H / Hkv
    let ok = true
    for (let j = 0; j < Hkv; j++)
      for (let pq = 0; pq < 3 * stride * 2; pq++)
        for (let pk = 0; pk <= pq; pk++) {
          let any = false
          for (let r = 0; r < g; r++) any ||= m.test(0, j * g + r, pq, pk)
          if (!any) ok = false
        }
    t.ok(ok, `H=${H} Hkv=${Hkv}: ⋃ over each kv group's query heads = causal`)
  }
  t.throws(() => s2Shards(4, 3), { name: 'ValueError' })
  t.throws(() => s2Shards(4, 4, { blockSize: 0 }), /blockSize/)
  t.throws(() => s2Shards(4, 4, { layout: 'rows' as never }), /layout/)
})

t.test('s2Attention = dense-mask reference, prefill and decode, GQA, gradients', async t => {
  const o = { blockSize: 3, localBlocks: 2, stride: 4 }
  const H = 4
  for (const Hkv of [4, 2]) {
    const allowOf = (h: number, pq: number, pk: number): boolean => s2Mask(H, Hkv, o).test(0, h, pq, pk) && pk <= pq
    const T = 29
    const [q, k, v] = [host([2, H, T, 5]), host([2, Hkv, T, 5]), host([2, Hkv, T, 3])]
    const ref = referenceAttention(q, k, v, { mask: mask.custom((_b, h, pq, pk) => allowOf(h, pq, pk)) })
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    const r = s2Attention(tq!, tk!, tv!, o)
    assertClose(t, await r.out.data(), ref.out, { atol: 1e-12, rtol: 1e-12, msg: `Hkv=${Hkv} prefill out` })
    assertClose(t, await r.lse.data(), ref.lse, { atol: 1e-12, rtol: 1e-12, msg: `Hkv=${Hkv} prefill lse` })
    r.out.dispose()
    r.lse.dispose()
    // Decode: one query at past ∈ {0, 1, b−1, b, b+1, 5b+12} against the prefix (dkernel's cases).
    for (const past of [0, 1, 2, 3, 4, 27]) {
      const sub = (x: Tensor, n: number, from = 0) => slice(x, [null, null, [from, from + n]])
      const d = scope(() => s2Attention(sub(tq!, 1, past), sub(tk!, past + 1), sub(tv!, past + 1), o))
      const want = referenceAttention(
        { values: rowsAt(q, past), shape: [2, H, 1, 5] },
        { values: prefix(k, past + 1), shape: [2, Hkv, past + 1, 5] },
        { values: prefix(v, past + 1), shape: [2, Hkv, past + 1, 3] },
        { mask: mask.custom((_b, h, pq, pk) => allowOf(h, pq, pk)) },
      )
      assertClose(t, await d.out.data(), want.out, { atol: 1e-12, rtol: 1e-12, msg: `Hkv=${Hkv} decode past=${past}` })
      d.out.dispose()
      d.lse.dispose()
    }
    for (const x of [tq, tk, tv]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  }
  const [q, k, v] = [host([1, 4, 9, 3]), host([1, 2, 9, 3]), host([1, 2, 9, 2])]
  const w = randomArray(rand, 4 * 9 * 2)
  await checkGrad(t, (a, b, c) => scope(() => sum(mul(s2Attention(a!, b!, c!, { blockSize: 2, localBlocks: 1, stride: 2 }).out, tensor(w, [1, 4, 9, 2], 'float64')))), [
    { v: [...q.values], shape: q.shape },
    { v: [...k.values], shape: k.shape },
    { v: [...v.values], shape: v.shape },
  ], { msg: 's2 grad' })
})

function rowsAt(x: { values: number[]; shape: Shape4 }, i: number): number[] {
  const [B, H, T, D] = x.shape
  const out: number[] = []
  for (let bh = 0; bh < B * H; bh++) out.push(...x.values.slice((bh * T + i) * D, (bh * T + i + 1) * D))
  return out
}
function prefix(x: { values: number[]; shape: Shape4 }, n: number): number[] {
  const [B, H, T, D] = x.shape
  const out: number[] = []
  for (let bh = 0; bh < B * H; bh++) out.push(...x.values.slice(bh * T * D, (bh * T + n) * D))
  return out
}

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 's2Attention', async (t, backend) => {
    const o = { blockSize: 2, localBlocks: 1, stride: 2 }
    const [q, k, v] = [host([1, 4, 11, 4]), host([1, 2, 11, 4]), host([1, 2, 11, 4])]
    const ref = referenceAttention(q, k, v, { mask: mask.custom((_b, h, pq, pk) => pk <= pq && s2Mask(4, 2, o).test(0, h, pq, pk)) })
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const r = s2Attention(tq!, tk!, tv!, o)
    assertClose(t, await r.out.data(), ref.out, { atol: 2e-6, rtol: 2e-5, msg: `${backend} out` })
    for (const x of [tq, tk, tv, r.out, r.lse]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  })
})

const big = 1 << 20
t.test('conformance', async t => {
  const o = { blockSize: 2, localBlocks: 1, stride: 2 }
  const run: ConformanceRun = (q, k, v, opts) => s2Attention(q, k, v, { ...opts, ...o, causal: opts.causal ?? false })
  const report = await conformance(t, {
    name: 's2Attention',
    run,
    // The shard pattern lives on absolute positions, so the dense reference gets the same mask.
    reference: (q, k, v, ro) => referenceAttention(q, k, v, { ...ro, mask: mask.and(...(ro.mask ? [ro.mask] : []), s2Mask(q.shape[1], k.shape[1], o)) }),
    patterns: ['CS', 'CC', 'NS'],
    incremental: true,
    // C6 compares with plain attention's P and C7/C8 renumber positions (moving blocks): not this operator's laws.
    contracts: ['C1', 'C2', 'C3', 'C5'],
  })
  t.same(report.skipped, [], 'nothing skipped')
  // C4 against plain dense attention (the reference above carries the shard mask).
  const deg = await conformance(t, {
    name: 's2Attention (unbounded)',
    run,
    patterns: ['CS', 'CC', 'NS'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [
      { name: 'stride = 1', run: (q, k, v, opts) => s2Attention(q, k, v, { ...opts, blockSize: 2, localBlocks: 1, stride: 1, causal: opts.causal ?? false }) },
      { name: 'localBlocks ≥ #blocks', run: (q, k, v, opts) => s2Attention(q, k, v, { ...opts, blockSize: 2, localBlocks: big, stride: 8, allowGaps: true, causal: opts.causal ?? false }) },
      { name: 'all dense heads', run: (q, k, v, opts) => s2Attention(q, k, v, { ...opts, blockSize: 1, localBlocks: 1, stride: 8, denseHeads: q.shape[1]!, causal: opts.causal ?? false }) },
    ],
  })
  t.same(deg.ran, ['C4'], 'C4 ran')
})

t.test('inside multiHeadAttention: forward with s2Mask, full and cached decode agree', async t => {
  const layer = multiHeadAttention({ dModel: 8, heads: 4, kvHeads: 2 })
  const params = layer.init({ seed: 3, dtype: 'float64' })
  const T = 13
  const x = tensor(randomArray(rand, T * 8), [1, T, 8], 'float64')
  const m = s2Mask(4, 2, { blockSize: 2, localBlocks: 1, stride: 2 })
  const before = memory().tensors
  const whole = layer.forward(params, x, { mask: m })
  const cache = layer.cache({ batch: 1, capacity: T, dtype: 'float64' })
  const steps: Tensor[] = []
  for (let i = 0; i < T; i++) steps.push(scope(() => layer.forward(params, slice(x, [null, [i, i + 1]]), { cache, mask: m })))
  const stepped = concat(steps, 1)
  assertClose(t, await stepped.data(), await whole.data(), { atol: 1e-12, rtol: 1e-12, msg: 'token-by-token decode = one-shot' })
  for (const s of [...steps, stepped, whole]) s.dispose()
  cache.dispose()
  t.equal(memory().tensors, before, 'no leaks')
  dispose([params, x])
})
