import t from 'tap'
import { measureForward } from './helpers/forwardPeak.js'

/**
 * The CPU forward's memory is O(T·D): a causal forward at T = 16,384 (D = 64, float32) stays under 256 MiB of extra
 * resident memory. Method (see helpers/forwardPeak.ts): a fresh child process runs the forward and reports
 * `maxRSS after − RSS just before` (its high-water mark reset first), which covers every transient inside the
 * synchronous kernel call, and the heap + ArrayBuffer growth, which counts allocations even where the allocator
 * reuses resident memory. A single T×T score matrix at this T would be 1 GiB (f32) per head, so the limit separates
 * O(T·D) from O(T²) by a wide margin.
 *
 * Heads: H = 2 here, not the B1 H8 D64 of the benchmark. One causal T = 16k head costs ~34 GFLOP, about 8 s per
 * head on this 2-core machine, so H = 8 (~70 s) is too slow for a unit test; the O(T²) question is answered per
 * head, and `npm run bench -- attention` runs the full B1 H8 D64 T = 16k forward and reports its peak (add
 * `--backends=cpu --limit=200` where a loaded machine makes the default limit skip it).
 */
const T = 16_384
const H = 2
const LIMIT = 256 * 2 ** 20

t.test(`causal forward at T=${T} (B1 H${H} D64, float32) stays under 256 MiB of extra memory`, async t => {
  const r = await measureForward({ backend: 'cpu', T, H, D: 64, dtype: 'float32' }, 280_000)
  if (!r.ok) return t.fail(r.error)
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`
  t.comment(`forward ${(r.ms / 1000).toFixed(1)} s; extra peak ${mib(r.extraBytes)} (${r.exact ? 'exact' : 'upper bound'}); retained ${mib(r.retainedBytes)}`)
  t.ok(r.lseFinite, 'every row has a finite logsumexp')
  t.ok(r.extraBytes < LIMIT, `extra peak ${mib(r.extraBytes)} < 256 MiB`)
  // out [1,H,T,64] f32 and its readback copy are 8 MiB each at H = 2; the kernel's scratch adds O(T·D) more
  t.ok(r.retainedBytes < LIMIT, `retained ${mib(r.retainedBytes)} < 256 MiB`)
})
