import t from 'tap'
import {
  ArgumentError,
  AxisError,
  DTypeError,
  ShapeError,
  ValueError,
  add,
  concat,
  expandDims,
  memory,
  mul,
  pad,
  permute,
  scalar,
  scope,
  slice,
  split,
  squeeze,
  stack,
  sum,
  tensor,
  transpose,
  tril,
  triu,
  unstack,
  setBackend,
  type SliceEntry,
  type Tensor,
} from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray, randomTensor, sizeOf, suiteBackends } from './helpers/numeric.js'

const rand = prng(20240611)
const randInt = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1))
const randomShape = (rank: number, lo = 0, hi = 4): number[] => Array.from({ length: rank }, () => randInt(lo, hi))
const shuffle = <T>(a: T[]): T[] => {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randInt(0, i)
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}
const strides = (shape: readonly number[]): number[] => shape.map((_, i) => sizeOf(shape.slice(i + 1)))
/** Every multi-index of `shape` in row-major order. */
function* indices(shape: readonly number[]): Generator<number[]> {
  if (sizeOf(shape) === 0) return
  const idx = new Array<number>(shape.length).fill(0)
  while (true) {
    yield [...idx]
    let d = shape.length - 1
    for (; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break
      idx[d] = 0
    }
    if (d < 0) return
  }
}
const at = (v: readonly number[], shape: readonly number[], idx: readonly number[]): number => {
  const st = strides(shape)
  return v[idx.reduce((acc, k, d) => acc + k * st[d]!, 0)]!
}
/** A scalar loss with a non-trivial cotangent: sum(y * w) for fixed random w. */
const weighted = (y: Tensor, w: Tensor): Tensor => sum(mul(y, w))
/** f's intermediates disposed on every evaluation, as checkGrad counts tensors. */
const scoped = (f: (...xs: Tensor[]) => Tensor) => (...xs: Tensor[]): Tensor => scope(() => f(...xs))
const weightsFor = (shape: readonly number[]): Tensor => tensor(randomArray(rand, sizeOf(shape)), shape, 'float64')
const data = (x: Tensor): number[] => Array.from(x.dataSync())
const baseline = memory().tensors

for (const backend of suiteBackends())
  t.test(`shape ops on ${backend}`, async t => {
    await setBackend(backend)
    {
      t.test('transpose and permute', async t => {
        const base = memory().tensors
        for (let trial = 0; trial < 12; trial++) {
          const rank = trial % 5
          const shape = randomShape(rank)
          const { t: x, v } = randomTensor(rand, shape)
          const perm = shuffle(Array.from({ length: rank }, (_, i) => i))
          const axes = perm.map(p => (rand() < 0.5 ? p - rank : p)) // negative axes mean the same
          const y = permute(x, axes)
          const outShape = perm.map(p => shape[p]!)
          t.same(y.shape, outShape)
          const ref = [...indices(outShape)].map(o => {
            const inIdx = new Array<number>(rank)
            perm.forEach((p, i) => (inIdx[p] = o[i]!))
            return at(v, shape, inIdx)
          })
          t.same(data(y), ref, `permute [${shape}] by [${axes}]`)
          const tr = transpose(x)
          t.same(tr.shape, [...shape].reverse())
          const back = transpose(tr)
          t.same(data(back), v)
          for (const z of [x, y, tr, back]) z.dispose()
        }
        const x = tensor([[1, 2, 3], [4, 5, 6]], undefined, 'int32')
        const y = transpose(x, [1, 0])
        t.same(data(y), [1, 4, 2, 5, 3, 6])
        t.equal(y.dtype, 'int32')
        x.dispose()
        y.dispose()
        t.equal(memory().tensors, base)
      })

      t.test('transpose/permute gradients', async t => {
        const shape = [2, 3, 4]
        const w = weightsFor([4, 2, 3])
        await checkGrad(t, scoped(x => weighted(permute(x, [2, 0, -2]), w)), [{ v: randomArray(rand, 24), shape }], { msg: 'permute' })
        const w2 = weightsFor([4, 3, 2])
        await checkGrad(t, scoped(x => weighted(transpose(x), w2)), [{ v: randomArray(rand, 24), shape }], { msg: 'transpose' })
        w.dispose()
        w2.dispose()
      })

      t.test('expandDims and squeeze are views', async t => {
        const base = memory().tensors
        const x = tensor([[1, 2, 3]])
        const cases: [number, number[]][] = [[0, [1, 1, 3]], [1, [1, 1, 3]], [2, [1, 3, 1]], [-1, [1, 3, 1]], [-3, [1, 1, 3]]]
        for (const [axis, want] of cases) {
          const y = expandDims(x, axis)
          t.same(y.shape, want, `expandDims axis ${axis}`)
          t.equal(y.storage, x.storage, 'shares storage')
          y.dispose()
        }
        const s = squeeze(x)
        t.same(s.shape, [3])
        t.equal(s.storage, x.storage)
        const z = tensor(new Float32Array(6), [1, 2, 1, 3, 1])
        const cases2: [number | number[] | undefined, number[]][] = [
          [undefined, [2, 3]],
          [0, [2, 1, 3, 1]],
          [-1, [1, 2, 1, 3]],
          [[0, 2], [2, 3, 1]],
        ]
        for (const [axis, want] of cases2) {
          const q = axis === undefined ? squeeze(z) : typeof axis === 'number' ? squeeze(z, axis) : squeeze(z, axis)
          t.same(q.shape, want, `squeeze ${JSON.stringify(axis)}`)
          q.dispose()
        }
        const r0 = scalar(5)
        const e0 = expandDims(r0, 0)
        t.same(e0.shape, [1])
        const s0 = squeeze(e0)
        t.same(s0.shape, [])
        t.same(data(s0), [5])
        const empty = tensor([], [0, 1])
        const se = squeeze(empty)
        t.same(se.shape, [0])
        for (const u of [x, s, z, r0, e0, s0, empty, se]) u.dispose()
        t.equal(memory().tensors, base)
      })

      t.test('expandDims/squeeze gradients', async t => {
        const w = weightsFor([2, 1, 3])
        await checkGrad(t, scoped(x => weighted(expandDims(x, 1), w)), [{ v: randomArray(rand, 6), shape: [2, 3] }], { msg: 'expandDims' })
        const w2 = weightsFor([2, 3])
        await checkGrad(t, scoped(x => weighted(squeeze(x, -2), w2)), [{ v: randomArray(rand, 6), shape: [2, 1, 3] }], { msg: 'squeeze' })
        w.dispose()
        w2.dispose()
      })

      t.test('slice with a numpy-like spec', async t => {
        const base = memory().tensors
        // The reference follows Python's slice semantics literally, index by index.
        const pyIndices = (n: number, e: SliceEntry): number[] | number => {
          if (typeof e === 'number') return e < 0 ? e + n : e
          const [start, stop, step] = e ?? []
          const s = step ?? 1
          const all = Array.from({ length: n }, (_, i) => i)
          const norm = (v: number | null | undefined, d: number): number => (v === null || v === undefined ? d : v < 0 ? v + n : v)
          if (s > 0) {
            const b = Math.max(0, norm(start, 0))
            const en = Math.min(n, norm(stop, n))
            return all.filter(i => i >= b && i < en && (i - b) % s === 0)
          }
          const b = Math.min(n - 1, norm(start, n - 1))
          const en = Math.max(-1, stop === null || stop === undefined ? -1 : norm(stop, -1))
          return all.filter(i => i <= b && i > en && (b - i) % -s === 0).reverse()
        }
        const randomEntry = (n: number): SliceEntry => {
          const r = rand()
          if (r < 0.15 && n > 0) return randInt(-n, n - 1)
          if (r < 0.25) return null
          const bound = (): number | null => (rand() < 0.25 ? null : randInt(-n - 2, n + 2))
          const step = rand() < 0.3 ? null : [1, 2, 3, -1, -2][randInt(0, 4)]!
          return [bound(), bound(), step]
        }
        for (let trial = 0; trial < 40; trial++) {
          const rank = randInt(1, 4)
          const shape = randomShape(rank, 0, 5)
          const { t: x, v } = randomTensor(rand, shape)
          const spec = Array.from({ length: randInt(0, rank) }, (_, d) => randomEntry(shape[d]!))
          const per = shape.map((n, d) => pyIndices(n, spec[d] ?? null))
          const outShape = per.flatMap(p => (typeof p === 'number' ? [] : [p.length]))
          const lists = per.map(p => (typeof p === 'number' ? [p] : p))
          const ref = [...indices(lists.map(l => l.length))].map(ix => at(v, shape, ix.map((k, d) => lists[d]![k]!)))
          const y = slice(x, spec)
          t.same(y.shape, outShape, `shape of [${shape}] sliced by ${JSON.stringify(spec)}`)
          t.same(data(y), ref, `values of [${shape}] sliced by ${JSON.stringify(spec)}`)
          x.dispose()
          y.dispose()
        }
        const x = tensor([[1, 2, 3], [4, 5, 6]])
        const y = slice(x, [-1, [null, null, -1]])
        t.same(y.shape, [3])
        t.same(data(y), [6, 5, 4])
        const z = slice(x, [1, 0])
        t.same(z.shape, [])
        t.same(data(z), [4])
        for (const u of [x, y, z]) u.dispose()
        t.equal(memory().tensors, base)
      })

      t.test('slice with begin and size', async t => {
        const base = memory().tensors
        const { t: x, v } = randomTensor(rand, [3, 4, 5])
        const y = slice(x, [1, -3, 0], [2, -1, 5])
        t.same(y.shape, [2, 3, 5])
        const ref = [...indices([2, 3, 5])].map(([i, j, k]) => at(v, [3, 4, 5], [i! + 1, j! + 1, k!]))
        t.same(data(y), ref)
        const e = slice(x, [3, 0, 0], [0, 4, 5])
        t.same(e.shape, [0, 4, 5])
        for (const u of [x, y, e]) u.dispose()
        t.equal(memory().tensors, base)
      })

      t.test('slice gradients', async t => {
        const shape = [4, 5, 3]
        const cases: readonly (readonly SliceEntry[])[] = [
          [[1, 3], null, [0, 2]],
          [[null, null, 2], [4, 0, -2], 1],
          [-1, [null, null, -1]],
          [[3, 1], null, null], // empty: gradient is all zeros
        ]
        for (const spec of cases) {
          const probe = tensor(new Float64Array(60), shape)
          const outShape = slice(probe, spec)
          const w = weightsFor(outShape.shape)
          await checkGrad(t, scoped(x => weighted(slice(x, spec), w)), [{ v: randomArray(rand, 60), shape }], { msg: `slice ${JSON.stringify(spec)}` })
          for (const u of [probe, outShape, w]) u.dispose()
        }
        const w = weightsFor([2, 2, 3])
        await checkGrad(t, scoped(x => weighted(slice(x, [1, 2, 0], [2, 2, -1]), w)), [{ v: randomArray(rand, 60), shape }], { msg: 'slice begin/size' })
        w.dispose()
      })

      t.test('concat, split, stack, unstack', async t => {
        const base = memory().tensors
        for (let trial = 0; trial < 10; trial++) {
          const rank = randInt(1, 4)
          const shape = randomShape(rank, 0, 4)
          const axis = randInt(-rank, rank - 1)
          const a = ((axis % rank) + rank) % rank
          const parts = Array.from({ length: randInt(1, 3) }, () => {
            const s = shape.map((d, j) => (j === a ? randInt(0, 3) : d))
            return { s, ...randomTensor(rand, s) }
          })
          const y = concat(parts.map(p => p.t), axis)
          const outShape = shape.map((d, j) => (j === a ? parts.reduce((p, q) => p + q.s[a]!, 0) : d))
          t.same(y.shape, outShape)
          const ref = [...indices(outShape)].map(ix => {
            let k = ix[a]!
            for (const p of parts) {
              if (k < p.s[a]!) return at(p.v, p.s, ix.map((q, j) => (j === a ? k : q)))
              k -= p.s[a]!
            }
            throw new Error('unreachable')
          })
          t.same(data(y), ref, `concat along ${axis}`)
          const back = split(y, parts.map(p => p.s[a]!), axis)
          back.forEach((b, i) => {
            t.same(b.shape, parts[i]!.s)
            t.same(data(b), parts[i]!.v)
          })
          for (const u of [y, ...back, ...parts.map(p => p.t)]) u.dispose()
        }
        const x = tensor([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
        const [p, q, r] = split(x, 3, -1)
        t.same(data(q!), [2, 3, 8, 9])
        const st = stack([p!, q!, r!], 1)
        t.same(st.shape, [2, 3, 2])
        t.same(data(st), data(x))
        const st0 = stack([p!, q!], 0)
        t.same(st0.shape, [2, 2, 2])
        t.same(data(st0), [0, 1, 6, 7, 2, 3, 8, 9])
        const stm = stack([p!, q!], -1)
        t.same(stm.shape, [2, 2, 2])
        t.same(data(stm), [0, 2, 1, 3, 6, 8, 7, 9])
        const us = unstack(stm, -1)
        t.same(us.map(data), [data(p!), data(q!)])
        const [c1, c2] = [scalar(1), scalar(2)]
        const sc = stack([c1, c2])
        t.same(sc.shape, [2])
        const empty = split(x, [0, 6], 1)
        t.same(empty[0]!.shape, [2, 0])
        const e03 = tensor([], [0, 3])
        t.same(unstack(e03), [])
        for (const u of [x, p!, q!, r!, st, st0, stm, ...us, sc, c1, c2, e03, ...empty]) u.dispose()
        t.equal(memory().tensors, base)
      })

      t.test('concat/split/stack/unstack gradients', async t => {
        const w = weightsFor([2, 5])
        await checkGrad(t, scoped((a, b) => weighted(concat([a, b, a], 1), w)), [
          { v: randomArray(rand, 4), shape: [2, 2] },
          { v: randomArray(rand, 2), shape: [2, 1] },
        ], { msg: 'concat' })
        const w1 = weightsFor([2, 1])
        const w2 = weightsFor([2, 3])
        await checkGrad(t, scoped(x => {
          const [a, b, c] = split(x, [1, 0, 3], -1)
          return add(weighted(a!, w1), weighted(c!, w2)) // b unused: its cotangent is zero
        }), [{ v: randomArray(rand, 8), shape: [2, 4] }], { msg: 'split' })
        const w3 = weightsFor([3, 2, 2])
        await checkGrad(t, scoped((a, b) => weighted(stack([a, b], 1), w3)), [
          { v: randomArray(rand, 6), shape: [3, 2] },
          { v: randomArray(rand, 6), shape: [3, 2] },
        ], { msg: 'stack' })
        const w4 = weightsFor([3])
        await checkGrad(t, scoped(x => {
          const parts = unstack(x, 1)
          return add(weighted(parts[0]!, w4), weighted(parts[1]!, parts[0]!))
        }), [{ v: randomArray(rand, 6), shape: [3, 2] }], { msg: 'unstack' })
        for (const u of [w, w1, w2, w3, w4]) u.dispose()
      })

      t.test('pad', async t => {
        const base = memory().tensors
        for (let trial = 0; trial < 8; trial++) {
          const rank = randInt(0, 3)
          const shape = randomShape(rank, 0, 3)
          const { t: x, v } = randomTensor(rand, shape)
          const pads = shape.map(() => [randInt(0, 2), randInt(0, 2)] as const)
          const value = trial % 2 ? 0 : -7.5
          const y = pad(x, pads, value)
          const outShape = shape.map((d, i) => d + pads[i]![0] + pads[i]![1])
          t.same(y.shape, outShape)
          const ref = [...indices(outShape)].map(ix => {
            const inner = ix.map((k, d) => k - pads[d]![0])
            return inner.every((k, d) => k >= 0 && k < shape[d]!) ? at(v, shape, inner) : value
          })
          t.same(data(y), ref, `pad [${shape}] by ${JSON.stringify(pads)}`)
          x.dispose()
          y.dispose()
        }
        const x = tensor([1, 2], undefined, 'int32')
        const y = pad(x, [[1, 0]])
        t.same(data(y), [0, 1, 2])
        t.equal(y.dtype, 'int32')
        x.dispose()
        y.dispose()
        t.equal(memory().tensors, base)
        const w = weightsFor([4, 5])
        await checkGrad(t, scoped(x => weighted(pad(x, [[1, 1], [0, 2]], 3), w)), [{ v: randomArray(rand, 6), shape: [2, 3] }], { msg: 'pad' })
        w.dispose()
      })

      t.test('tril and triu', async t => {
        const base = memory().tensors
        for (const shape of [[3, 4], [2, 4, 3], [2, 0, 3], [1, 2, 2, 5]])
          for (const k of [-2, -1, 0, 1, 3]) {
            const { t: x, v } = randomTensor(rand, shape)
            const lo = tril(x, k)
            const up = triu(x, k)
            const r = shape.length
            const refL = [...indices(shape)].map(ix => (ix[r - 1]! - ix[r - 2]! <= k ? at(v, shape, ix) : 0))
            const refU = [...indices(shape)].map(ix => (ix[r - 1]! - ix[r - 2]! >= k ? at(v, shape, ix) : 0))
            t.same(data(lo), refL, `tril [${shape}] k=${k}`)
            t.same(data(up), refU, `triu [${shape}] k=${k}`)
            for (const u of [x, lo, up]) u.dispose()
          }
        const ones = tensor(new Float32Array(9).fill(1), [3, 3])
        const l0 = tril(ones)
        t.same(data(l0), [1, 0, 0, 1, 1, 0, 1, 1, 1])
        ones.dispose()
        l0.dispose()
        t.equal(memory().tensors, base)
        const w = weightsFor([2, 3, 3])
        await checkGrad(t, scoped(x => weighted(tril(x, -1), w)), [{ v: randomArray(rand, 18), shape: [2, 3, 3] }], { msg: 'tril' })
        await checkGrad(t, scoped(x => weighted(triu(x, 1), w)), [{ v: randomArray(rand, 18), shape: [2, 3, 3] }], { msg: 'triu' })
        w.dispose()
      })

      t.test('float32 values survive exactly', async t => {
        const v = [1e30, -3.5e-38, Math.fround(Math.PI), NaN, Infinity, -0]
        const x = tensor(v, [2, 3])
        const xt = transpose(x)
        const y = concat([xt, xt], 0)
        assertClose(t, data(y), [v[0]!, v[3]!, v[1]!, v[4]!, v[2]!, v[5]!, v[0]!, v[3]!, v[1]!, v[4]!, v[2]!, v[5]!].map(Math.fround), { atol: 0, rtol: 0 })
        for (const u of [x, xt, y]) u.dispose()
      })

      t.test('errors', async t => {
        const base = memory().tensors
        const x = tensor(new Float32Array(6), [2, 3])
        const i = tensor([1, 2], undefined, 'int32')
        const bad = x as unknown as Tensor<'float32', number[]>
        const m22 = tensor(new Float32Array(4), [2, 2])
        const m42 = tensor(new Float32Array(8), [4, 2])
        const m32 = tensor(new Float32Array(6), [3, 2])
        const v3 = tensor(new Float32Array(3), [3])
        const s1 = scalar(1)
        const s2 = scalar(2)
        t.throws(() => permute(bad, [0]), AxisError, 'permute: too few axes')
        t.throws(() => permute(bad, [0, 0]), AxisError, 'permute: repeated axis')
        t.throws(() => permute(bad, [0, 2]), AxisError, 'permute: axis out of range')
        t.throws(() => permute(bad, [0, 1.5]), AxisError, 'permute: non-integer axis')
        t.throws(() => transpose('x' as unknown as Tensor), ArgumentError)
        t.throws(() => expandDims(bad, 3), AxisError)
        t.throws(() => expandDims(x, -4), AxisError)
        t.throws(() => squeeze(bad, 0), ShapeError)
        t.throws(() => squeeze(x, [2]), AxisError)
        t.throws(() => slice(x, [0, 0, 0]), ShapeError, 'slice: too many entries')
        t.throws(() => slice(x, [2]), ValueError, 'slice: integer index out of range')
        t.throws(() => slice(x, [[0, 1, 0]]), ValueError, 'slice: step 0')
        t.throws(() => slice(x, [[0.5, 1]]), ValueError, 'slice: non-integer bound')
        t.throws(() => slice(x, ['a' as unknown as SliceEntry]), ValueError)
        t.throws(() => slice(x, [0], [1]), ShapeError, 'slice: begin rank')
        t.throws(() => slice(x, [0, 4], [1, 1]), ValueError, 'slice: begin out of range')
        t.throws(() => slice(x, [0, 1], [1, 3]), ValueError, 'slice: size past the end')
        t.throws(() => slice(x, [0, 1], [1, -2]), ValueError)
        t.throws(() => concat([]), ValueError)
        t.throws(() => concat([x, m22, m42], 0), ShapeError)
        t.throws(() => concat([x, v3]), ShapeError)
        t.throws(() => concat([s1, s2]), ShapeError)
        t.throws(() => concat([x, i]), DTypeError)
        t.throws(() => concat([x, 3 as unknown as Tensor]), ArgumentError)
        t.throws(() => concat([x, x], 2), AxisError)
        t.throws(() => concat(x as unknown as Tensor[]), ArgumentError)
        t.throws(() => stack([x, m32]), ShapeError)
        t.throws(() => stack([x, x], 3), AxisError)
        t.throws(() => stack([x, i]), DTypeError)
        t.throws(() => unstack(s1), ShapeError)
        t.throws(() => split(x, 4, 1), ValueError, 'split: count does not divide')
        t.throws(() => split(x, 0, 1), ValueError)
        t.throws(() => split(x, [1, 1], 1), ValueError, 'split: sizes do not sum')
        t.throws(() => split(x, [4, -1], 1), ValueError)
        t.throws(() => split(x, 1, -3), AxisError)
        t.throws(() => split(s1, 1), ShapeError)
        t.throws(() => pad(x, [[1, 1]]), ShapeError)
        t.throws(() => pad(x, [[1, 1], [-1, 0]]), ValueError)
        t.throws(() => pad(x, [[1, 1], [1] as unknown as readonly [number, number]]), ValueError)
        t.throws(() => pad(i, [[1, 1]], NaN), ValueError)
        t.throws(() => tril(i), ShapeError)
        t.throws(() => triu(x, 0.5), ValueError)
        for (const u of [x, i, m22, m42, m32, v3, s1, s2]) u.dispose()
        t.equal(memory().tensors, base, 'failed calls leave no tensors behind')
      })
    }
  })

t.teardown(() => {
  if (memory().tensors !== baseline) console.error(`shape-ops: ${memory().tensors - baseline} tensors leaked`)
})
