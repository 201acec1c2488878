import { mask as masks } from '../../mask.js'
import { close } from './compare.js'
import type { ContractCheck } from './context.js'
import { withGrads, type Graded } from './exec.js'
import { host, sliceT, catT, batch, concatCot, padBatch } from './host.js'
import type { HostArray } from './types.js'

/** C8: packed (segments) ≡ padded (left and right) ≡ per-sequence, for outputs and gradients. */
export const c8Varlen: ContractCheck = {
  id: 'C8',
  title: 'varlen: packed = padded = per-sequence',
  requires: ({ sup, patterns }) => [
    [sup.mask, 'mask'],
    [patterns.includes('NS') || patterns.includes('CS'), 'a self pattern (NS or CS)'],
  ],
  check: async ({ op, sup, tol, patterns }, t, rand) => {
    for (const pattern of patterns.filter(x => x === 'NS' || x === 'CS')) {
      const lens = [3, 5, 2]
      const Lmax = Math.max(...lens)
      const [H, Hkv, D, Dv] = [4, sup.gqa ? 2 : 4, 5, 3]
      const seqs = lens.map(L => ({ q: host(rand, [1, H, L, D]), k: host(rand, [1, Hkv, L, D]), v: host(rand, [1, Hkv, L, Dv]) }))
      const cot = lens.map(L => host(rand, [1, H, L, Dv]).values)
      const opts = pattern === 'CS' ? { causal: true } : {}
      const differentiable = sup.grad
      // Per-sequence: the ground truth.
      const per = await Promise.all(seqs.map((s, i) => withGrads(op.run, [s.q, s.k, s.v], opts, cot[i]!, differentiable)))
      // Packed along T with segment ids.
      const ids = lens.flatMap((L, i) => Array<number>(L).fill(i))
      const packed = await withGrads(op.run, (['q', 'k', 'v'] as const).map(n => catT(seqs.map(s => s[n]))) as [HostArray, HostArray, HostArray], { ...opts, mask: masks.segments(ids) }, concatCot(cot, H, lens, Dv), differentiable)
      const perCat = (f: (r: Graded) => HostArray) => catT(per.map(f))
      close(t, packed.out.values, perCat(r => r.out).values, tol.float64, `${pattern} packed: out`)
      if (differentiable)
        for (const [i, n] of (['dq', 'dk', 'dv'] as const).entries())
          close(t, packed.grads[i]!.values, perCat(r => r.grads[i]!).values, tol.float64, `${pattern} packed: ${n}`)
      for (const side of ['right', 'left'] as const) {
        const padOf = (b: number) => (side === 'left' ? Lmax - lens[b]! : 0)
        const pad = (n: 'q' | 'k' | 'v') => padBatch(seqs.map(s => s[n]), Lmax, padOf)
        const valid = (b: number, pk: number) => pk >= padOf(b) && pk < padOf(b) + lens[b]!
        const padCot = padBatch(cot.map((c, i) => ({ values: c, shape: [1, H, lens[i]!, Dv] as const })), Lmax, padOf)
        const padded = await withGrads(op.run, [pad('q'), pad('k'), pad('v')], { ...opts, mask: masks.custom((b, _h, _pq, pk) => valid(b, pk)) }, padCot.values, differentiable)
        const unpad = (x: HostArray, b: number) => sliceT(batch(x, b), padOf(b), padOf(b) + lens[b]!)
        const gather = (x: HostArray) => catT(lens.map((_, b) => unpad(x, b)))
        close(t, gather(padded.out).values, perCat(r => r.out).values, tol.float64, `${pattern} ${side}-padded: out`)
        if (differentiable)
          for (const [i, n] of (['dq', 'dk', 'dv'] as const).entries()) {
            close(t, gather(padded.grads[i]!).values, perCat(r => r.grads[i]!).values, tol.float64, `${pattern} ${side}-padded: ${n}`)
            const g = padded.grads[i]!
            const [B, Hg, T, Dg] = g.shape
            let stray = 0
            for (let b = 0; b < B; b++) for (let h = 0; h < Hg; h++) for (let j = 0; j < T; j++) if (!valid(b, j)) for (let d = 0; d < Dg; d++) stray = Math.max(stray, Math.abs(g.values[((b * Hg + h) * T + j) * Dg + d]!))
            t.ok(stray === 0, `${pattern} ${side}-padded: ${n} is 0 on padding`, { stray })
          }
      }
    }
  },
}
