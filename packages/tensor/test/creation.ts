import t from 'tap'
import { either as E } from 'fp-ts'
import {
  ArgumentError,
  DTypeError,
  ParseError,
  ShapeError,
  ValueError,
  arange,
  dispose,
  eye,
  full,
  fullLike,
  linspace,
  memory,
  ones,
  onesLike,
  scalar,
  tensor,
  zeros,
  zerosLike,
  type DType,
  type Tensor,
} from '@heed/tensor'

const vals = (x: Tensor): number[] => Array.from(x.dataSync())

t.test('tensor() infers shape and dtype', async t => {
  const base = memory().tensors
  const cases: [Tensor, number[], DType, number[]][] = [
    [tensor(3), [], 'float32', [3]],
    [tensor([1, 2, 3]), [3], 'float32', [1, 2, 3]],
    [tensor([[1, 2], [3, 4], [5, 6]]), [3, 2], 'float32', [1, 2, 3, 4, 5, 6]],
    [tensor([[[1]], [[2]]]), [2, 1, 1], 'float32', [1, 2]],
    [tensor([]), [0], 'float32', []],
    [tensor([[], []]), [2, 0], 'float32', []],
    [tensor([true, false]), [2], 'bool', [1, 0]],
    [tensor(true), [], 'bool', [1]],
    [tensor(new Float64Array([0.1, 0.2])), [2], 'float64', [0.1, 0.2]],
    [tensor(new Int32Array([-1, 7])), [2], 'int32', [-1, 7]],
    [tensor(new Uint32Array([1, 2 ** 32 - 1])), [2], 'uint32', [1, 2 ** 32 - 1]],
    [tensor(new Uint8Array([0, 5])), [2], 'bool', [0, 1]],
    [tensor(new Float32Array([1.5])), [1], 'float32', [1.5]],
    [tensor([1, 2, 3, 4, 5, 6], [2, 3]), [2, 3], 'float32', [1, 2, 3, 4, 5, 6]],
    [tensor(7, [2, 2], 'int32'), [2, 2], 'int32', [7, 7, 7, 7]],
    [tensor([1.7, -1.7], [2], 'int32'), [2], 'int32', [1, -1]],
    [tensor([0, 2, NaN], [3], 'bool'), [3], 'bool', [0, 1, 0]],
    [tensor([0.1], [1], 'float64'), [1], 'float64', [0.1]],
    [tensor(0.1), [], 'float32', [Math.fround(0.1)]],
  ]
  for (const [x, shape, dtype, v] of cases) {
    t.same(x.shape, shape, `shape [${shape}]`)
    t.equal(x.dtype, dtype)
    t.same(vals(x), v)
    t.equal(x.rank, shape.length)
    t.equal(x.size, v.length)
  }
  t.ok(Object.isFrozen(cases[2]![0].shape), 'shape is frozen')
  dispose(cases.map(c => c[0]))
  t.equal(memory().tensors, base)
})

t.test('tensor() rejects bad data', async t => {
  const base = memory().tensors
  t.throws(() => tensor([[1, 2], [3]]), ShapeError, 'ragged')
  t.throws(() => tensor([[1, 2], 3] as never), ShapeError, 'mixed depth')
  try {
    tensor([[1, 2], [3, 4], [5]])
  } catch (e) {
    t.type(e, ShapeError)
    t.equal((e as ShapeError).arg, 'data[2]', 'names the ragged row')
  }
  t.throws(() => tensor(['a'] as never), ArgumentError, 'string leaf')
  t.throws(() => tensor({} as never), ArgumentError)
  t.throws(() => tensor([1, 2, 3], [2, 2]), ShapeError, 'shape does not fit')
  t.throws(() => tensor([1, 2], [-2]), ShapeError)
  t.throws(() => tensor([1, 2], [2], 'float8' as DType), DTypeError)
  t.equal(memory().tensors, base, 'nothing allocated by failures')
})

t.test('tensor.parse returns Either', async t => {
  const base = memory().tensors
  const good = tensor.parse([[1, 2], [3, 4]], undefined, 'float64')
  t.ok(E.isRight(good))
  if (E.isRight(good)) {
    t.same(good.right.shape, [2, 2])
    t.equal(good.right.dtype, 'float64')
    t.same(vals(good.right), [1, 2, 3, 4])
    good.right.dispose()
  }
  const cyclic: unknown[] = [1]
  cyclic.push(cyclic)
  const bad: [unknown, unknown?, unknown?][] = [
    [[[1, 2], [3]]],
    [['x']],
    [[1, 2], [3]],
    [[1, 2], undefined, 'complex64'],
    [null],
    [undefined],
    [{ length: 2 }],
    [cyclic],
    [[1, 2], 'abc'],
  ]
  for (const args of bad) {
    const r = tensor.parse(...args)
    t.ok(E.isLeft(r), `Left for ${String(args[0])}`)
    if (E.isLeft(r)) {
      t.type(r.left, ParseError)
      t.equal(r.left.op, 'tensor.parse')
      t.match(r.left.message, /^tensor\.parse: /, 'the message names tensor.parse')
      t.notMatch(r.left.message, /tensor: |(expected .*){2}/, 'once, and says what it expected once')
    }
  }
  const unknownKey = tensor.parse([1], undefined, undefined, { backnd: 'cpu' } as never)
  t.ok(E.isLeft(unknownKey) && unknownKey.left.arg === 'backnd' && /did you mean backend\?/.test(unknownKey.left.message), 'an unknown option is a Left naming it')
  t.equal(memory().tensors, base)
})

t.test('tensor checks its options', async t => {
  t.throws(() => tensor([1], undefined, 'float32', { backnd: 'cpu' } as never), { name: 'ArgumentError', op: 'tensor', arg: 'backnd', message: /did you mean backend\?/ })
  t.throws(() => tensor([1], undefined, 'float32', null as never), { name: 'ArgumentError', op: 'tensor', arg: 'opts' })
  t.throws(() => tensor([1], undefined, 'float32', { backend: 3 } as never), { name: 'ArgumentError', op: 'tensor', arg: 'backend' })
  const x = tensor([1], undefined, 'float32', { backend: 'cpu' })
  t.equal(x.backend, 'cpu')
  x.dispose()
})

t.test('zeros, ones, full and the *Like forms', async t => {
  const z = zeros([2, 3])
  t.same([z.shape, z.dtype, vals(z)], [[2, 3], 'float32', [0, 0, 0, 0, 0, 0]])
  const o = ones([2], { dtype: 'int32' })
  t.same([o.dtype, vals(o)], ['int32', [1, 1]])
  const f = full([], 2.5, { dtype: 'float64' })
  t.same([f.shape, vals(f)], [[], [2.5]])
  const fb = full([2], 3, { dtype: 'bool' })
  t.same(vals(fb), [1, 1])
  const fh = full([1], 1 + 2 ** -11 + 2 ** -40, { dtype: 'float16' })
  t.same(vals(fh), [1 + 2 ** -10], 'float16 fill rounds once')
  const e = zeros([0, 3])
  t.same([e.size, vals(e)], [0, []])
  const zl = zerosLike(o)
  const ol = onesLike(f)
  const fl = fullLike(o, -4)
  t.same([zl.dtype, zl.shape, vals(zl)], ['int32', [2], [0, 0]])
  t.same([ol.dtype, vals(ol)], ['float64', [1]])
  t.same(vals(fl), [-4, -4])
  t.throws(() => zeros([-1]), ValueError)
  t.throws(() => zeros([1.5]), ValueError)
  t.throws(() => full([2], 'a' as never), ValueError)
  t.throws(() => ones([2], { dtype: 'int8' as DType }), DTypeError)
  dispose([z, o, f, fb, fh, e, zl, ol, fl])
})

t.test('arange', async t => {
  const cases: [Tensor, number[]][] = [
    [arange(5), [0, 1, 2, 3, 4]],
    [arange(2, 5), [2, 3, 4]],
    [arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]],
    [arange(5, 0, -2), [5, 3, 1]],
    [arange(3, 3), []],
    [arange(5, 0), []],
    [arange(0, 3, 1, { dtype: 'int32' }), [0, 1, 2]],
  ]
  for (const [x, want] of cases) t.same(vals(x), want)
  t.equal(cases[6]![0].dtype, 'int32')
  t.same(arange(0, 1, 0.1, { dtype: 'float64' }).size, 10, 'numpy length: ceil((stop-start)/step)')
  t.throws(() => arange(0, 5, 0), ValueError)
  t.throws(() => arange(0, Infinity), ValueError)
  t.throws(() => arange(NaN), ValueError)
  t.throws(() => arange(0, 1e12), ValueError, 'too many elements is a ValueError, not a RangeError')
  dispose(cases.map(c => c[0]))
})

t.test('linspace', async t => {
  const a = linspace(0, 1, 5, { dtype: 'float64' })
  t.same(vals(a), [0, 0.25, 0.5, 0.75, 1])
  const b = linspace(0.1, 0.3, 3, { dtype: 'float64' })
  t.equal(vals(b)[2], 0.3, 'the endpoint is exactly stop')
  t.same(vals(linspace(2, 7, 1)), [2])
  t.same(vals(linspace(2, 7, 0)), [])
  t.same(vals(linspace(1, 0, 3)), [1, 0.5, 0])
  t.throws(() => linspace(0, 1, -1), ValueError)
  t.throws(() => linspace(0, 1, 2.5), ValueError)
  t.throws(() => linspace(0, NaN, 2), ValueError)
})

t.test('eye', async t => {
  t.same(vals(eye(3)), [1, 0, 0, 0, 1, 0, 0, 0, 1])
  const r = eye(2, 3, { k: 1 })
  t.same([r.shape, vals(r)], [[2, 3], [0, 1, 0, 0, 0, 1]])
  t.same(vals(eye(3, 2, { k: -1 })), [0, 0, 1, 0, 0, 1])
  t.same(vals(eye(2, 2, { k: 5 })), [0, 0, 0, 0])
  t.same(eye(0).shape, [0, 0])
  t.equal(eye(2, 2, { dtype: 'bool' }).dtype, 'bool')
  t.throws(() => eye(-1), ValueError)
  t.throws(() => eye(2, 1.5), ValueError)
  t.throws(() => eye(2, 2, { k: 0.5 }), ValueError)
})

t.test('scalar', async t => {
  const s = scalar(4)
  t.same([s.shape, s.dtype, vals(s)], [[], 'float32', [4]])
  const b = scalar(true)
  t.same([b.dtype, vals(b)], ['bool', [1]])
  const i = scalar(-3, 'int32')
  t.same([i.dtype, vals(i)], ['int32', [-3]])
  t.equal(await s.array(), 4)
  dispose([s, b, i])
})
