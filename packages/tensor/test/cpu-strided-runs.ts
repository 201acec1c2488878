// The CPU transpose/slice fast path that copies contiguous last-axis runs (head splits [B, T, H, D] → [B, H, T, D],
// slices of whole rows) against an element-by-element reference, for run lengths on both sides of its thresholds
// and for every storage kind.
import t from 'tap'
import { memory, permute, slice, tensor, type DType } from '@heed/tensor'

const strides = (s: readonly number[]): number[] => s.map((_, i) => s.slice(i + 1).reduce((a, b) => a * b, 1))

function refPermute(v: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): number[] {
  const out: number[] = []
  const st = strides(shape)
  const os = perm.map(p => shape[p]!)
  const n = os.reduce((a, b) => a * b, 1)
  const ost = strides(os)
  for (let i = 0; i < n; i++) {
    let off = 0
    for (let d = 0; d < os.length; d++) off += (Math.floor(i / ost[d]!) % os[d]!) * st[perm[d]!]!
    out.push(v[off]!)
  }
  return out
}

t.test('permute keeping the last axis: runs of 7, 8, 15, 16, 40 and 70 elements', async t => {
  const base = memory().tensors
  for (const dtype of ['float32', 'float64', 'int32', 'bool'] as DType[])
    for (const D of [7, 8, 15, 16, 40, 70]) {
      const shape = [2, 3, 4, D]
      const n = shape.reduce((a, b) => a * b, 1)
      const vals = Array.from({ length: n }, (_, i) => (dtype === 'bool' ? i % 3 === 0 : ((i * 7919) % 1000) - 500))
      const x = tensor(vals as number[], shape, dtype)
      for (const perm of [[0, 2, 1, 3], [2, 1, 0, 3], [1, 0, 2, 3]]) {
        const y = permute(x, perm)
        const want = refPermute((dtype === 'bool' ? vals.map(Number) : vals) as number[], shape, perm)
        t.same(Array.from(y.dataSync() as ArrayLike<number>, Number), want, `${dtype} D ${D} perm [${perm}]`)
        y.dispose()
      }
      x.dispose()
    }
  t.equal(memory().tensors, base)
})

t.test('slices of whole rows and of row pieces', async t => {
  const x = tensor(Float32Array.from({ length: 5 * 6 * 33 }, (_, i) => i), [5, 6, 33])
  const y = slice(x, [[1, 4], [null, null, 2], [3, 30]])
  const want: number[] = []
  for (let a = 1; a < 4; a++) for (let b = 0; b < 6; b += 2) for (let c = 3; c < 30; c++) want.push(a * 198 + b * 33 + c)
  t.same(Array.from(y.dataSync() as Float32Array), want)
  t.same(y.shape, [3, 3, 27])
  x.dispose()
  y.dispose()
})
