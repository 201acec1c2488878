import { mask as masks } from '../../mask.js'
import { close } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec } from './exec.js'
import { pick, span, shuffle, problem } from './host.js'

/** C7: masking a key equals deleting it; permuting keys with the mask changes nothing. */
export const c7Masking: ContractCheck = {
  id: 'C7',
  title: 'masking = deletion, key-permutation invariance',
  check: async ({ op, sup, tol, patterns, skipped }, t, rand) => {
    for (const pattern of patterns) {
      const p = problem(rand, pattern, sup.gqa)
      const Tk = p.k.shape[2]
      const base = (pq: number, pk: number): boolean => !p.opts.causal || pk <= pq
      const one = await exec(op.run, p.q, p.k, p.v, p.opts)
      const perm = shuffle(rand, span(0, Tk))
      if (sup.mask && sup.offsets) {
        const j = Math.floor(((rand() + 1) / 2) * Tk)
        const keep = span(0, Tk).filter(x => x !== j)
        const fixed = { queryOffset: p.qOff, keyOffset: 0 }
        const masked = await exec(op.run, p.q, p.k, p.v, { ...fixed, mask: masks.custom((_b, _h, pq, pk) => pk !== j && base(pq, pk)) })
        const deleted = await exec(op.run, p.q, pick(p.k, keep), pick(p.v, keep), { ...fixed, mask: masks.custom((_b, _h, pq, pk) => base(pq, keep[pk]!)) })
        close(t, masked.out, deleted.out, tol.float64, `${pattern}: masking key ${j} = deleting it`)
        const permuted = await exec(op.run, p.q, pick(p.k, perm), pick(p.v, perm), { ...fixed, mask: masks.custom((_b, _h, pq, pk) => base(pq, perm[pk]!)) })
        close(t, permuted.out, one.out, tol.float64, `${pattern}: permuting keys with the mask`)
        if (permuted.lse && one.lse) close(t, permuted.lse, one.lse, tol.float64, `${pattern}: permuting keys with the mask (lse)`)
      } else if (!p.opts.causal) {
        const permuted = await exec(op.run, p.q, pick(p.k, perm), pick(p.v, perm), p.opts)
        close(t, permuted.out, one.out, tol.float64, `${pattern}: permuting keys (no mask)`)
      } else skipped.push(`C7 ${pattern}: needs mask and offsets`)
    }
  },
}
