import t from 'tap'
import * as h from '@heed/tensor'
import {
  ArgumentError,
  checkAllocation,
  closestName,
  cumsum,
  finiteNumber,
  inRange,
  intAtLeast,
  knownOptions,
  matmul,
  mean,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
  positiveNumber,
  softmax,
  sum,
  tensor,
  ValueError,
  variance,
  zeros,
  topk,
  sort,
  argsort,
  oneHot,
  DisposedError,
  fullLike,
  grad,
  noGrad,
  onesLike,
  profile,
  scope,
  stopGradient,
  toBackend,
  valueAndGrad,
  zerosLike,
  gelu,
  ones,
  warmupCosine,
  configureCpuWasm,
  HeedError,
  ShapeError,
  ParseError,
  Tensor,
  sizeOf,
  broadcastShapes,
  bytesPerElement,
  scalar,
  kernelOp,
  listBackends,
  registerBackend,
  registerKernel,
  setBackend,
  initBackend,
  ready,
  loadSafetensors,
  parseSafetensorsHeader,
} from '@heed/tensor'

t.test('each check returns its value or throws a ValueError naming op, argument, expected and actual', async t => {
  t.equal(positiveInt('f', 'n', 3), 3)
  t.equal(nonNegativeInt('f', 'n', 0), 0)
  t.equal(intAtLeast('f', 'n', 2, 2), 2)
  t.equal(finiteNumber('f', 'x', -1.5), -1.5)
  t.equal(positiveNumber('f', 'x', 1e-9), 1e-9)
  t.equal(nonNegativeNumber('f', 'x', 0), 0)
  t.equal(inRange('f', 'p', 1, 0, 1), 1)
  t.equal(inRange('f', 'b', 0, 0, 1, { upper: 'open' }), 0)
  const cases: [() => unknown, string, unknown][] = [
    [() => positiveInt('f', 'n', 0), 'f: n: expected a positive integer, got 0', 0],
    [() => positiveInt('f', 'n', 1.5), 'f: n: expected a positive integer, got 1.5', 1.5],
    [() => positiveInt('f', 'n', '3'), 'f: n: expected a positive integer, got 3', '3'],
    [() => positiveInt('f', 'n', undefined), 'f: n: expected a positive integer, got undefined', 'undefined'],
    [() => nonNegativeInt('f', 'n', -1), 'f: n: expected a non-negative integer, got -1', -1],
    [() => intAtLeast('f', 'n', 1, 2), 'f: n: expected an integer ≥ 2, got 1', 1],
    [() => finiteNumber('f', 'x', NaN), 'f: x: expected a finite number, got NaN', NaN],
    [() => positiveNumber('f', 'x', 0), 'f: x: expected a finite number > 0, got 0', 0],
    [() => positiveNumber('f', 'x', Infinity), 'f: x: expected a finite number > 0, got Infinity', Infinity],
    [() => nonNegativeNumber('f', 'x', -0.5), 'f: x: expected a finite number ≥ 0, got -0.5', -0.5],
    [() => inRange('f', 'p', 1.5, 0, 1), 'f: p: expected a number in [0, 1], got 1.5', 1.5],
    [() => inRange('f', 'b', 1, 0, 1, { upper: 'open' }), 'f: b: expected a number in [0, 1), got 1', 1],
    [() => inRange('f', 'p', NaN, 0, 1), 'f: p: expected a number in [0, 1], got NaN', NaN],
  ]
  for (const [fn, message, actual] of cases) t.throws(fn, { name: 'ValueError', message, op: 'f', actual }, message)
  t.throws(() => positiveInt('f', 'n', -2), ValueError)
})

t.test('knownOptions rejects unknown keys, naming op and key and suggesting the closest name', async t => {
  const o = { axis: 0, keepDims: true }
  t.equal(knownOptions('sum', o, ['axis', 'keepDims']), o)
  t.same(knownOptions('sum', { axis: 0, extra: undefined }, ['axis']), { axis: 0, extra: undefined }, 'undefined values are ignored')
  t.throws(() => knownOptions('sum', { axis: 0, keepdim: true }, ['axis', 'keepDims']), { name: 'ArgumentError', op: 'sum', arg: 'keepdim', message: /did you mean keepDims\?/ })
  t.throws(() => knownOptions('sum', { axes: 1 }, ['axis', 'keepDims']), { name: 'ArgumentError', arg: 'axes', message: /did you mean axis\?/ })
  t.throws(() => knownOptions('f', { zzzzzz: 1 }, ['axis']), { name: 'ArgumentError', message: /^f: zzzzzz: unknown option, expected one of axis/ }, 'no suggestion when nothing is close')
  t.equal(closestName('causl', ['causal', 'mask']), 'causal')
  t.equal(closestName('q', ['causal', 'mask']), undefined)
  // the checkers' own arguments, in their own names
  t.throws(() => knownOptions(undefined as never, {}, []), { name: 'ArgumentError', op: 'knownOptions', arg: 'op' })
  t.throws(() => knownOptions('f', { a: 1 }, undefined as never), { name: 'ArgumentError', op: 'knownOptions', arg: 'allowed' })
  t.throws(() => closestName(3 as never, ['a']), { name: 'ArgumentError', op: 'closestName', arg: 'key' })
  t.throws(() => closestName('a', 'abc' as never), { name: 'ArgumentError', op: 'closestName', arg: 'allowed' })
})

t.test('error classes and Tensor check what they are built from', async t => {
  for (const E of [HeedError, ValueError, ShapeError, DisposedError, ParseError]) {
    t.throws(() => new E(undefined as never), { name: 'ArgumentError', op: E.name, arg: 'details' }, `new ${E.name}()`)
    t.throws(() => new E({ zz: 1 } as never), { name: 'ArgumentError', op: E.name, arg: 'details.op' }, `new ${E.name}({ zz })`)
    t.throws(() => new E({ op: 'f', arg: 3 } as never), { name: 'ArgumentError', op: E.name, arg: 'details.arg' })
    t.throws(() => new E({ op: 'f' }, 5 as never), { name: 'ArgumentError', op: E.name, arg: 'message' })
    t.match(new E({ op: 'f', arg: 'x', expected: 1, actual: 2 }, 'why'), { op: 'f', message: 'f: x: why, expected 1, got 2' }, 'a valid one as before')
  }
  t.throws(() => new Tensor(undefined as never, [2] as never, 'float32'), { name: 'ArgumentError', op: 'Tensor', arg: 'storage' })
  const x = tensor([1, 2])
  t.throws(() => new Tensor(x.storage, 'x' as never, 'float32'), { name: 'ArgumentError', op: 'Tensor', arg: 'shape' })
  t.throws(() => new Tensor(x.storage, [2], 'float8' as never), { name: 'ArgumentError', op: 'Tensor', arg: 'dtype' })
  x.dispose()
})

t.test('shape helpers, bytesPerElement, scalar, kernelOp and backend registration check their arguments', async t => {
  t.equal(sizeOf([2, 3]), 6)
  for (const bad of [undefined, 'x', [[1, 2], [3]], [2, -1]]) t.throws(() => sizeOf(bad as never), { name: 'ValueError', op: 'sizeOf', arg: 'shape' }, `sizeOf(${JSON.stringify(bad)})`)
  t.same(broadcastShapes('add', [2, 1], [3]), [2, 3])
  t.throws(() => broadcastShapes(undefined as never, [1], [1]), { name: 'ArgumentError', op: 'broadcastShapes', arg: 'op' })
  t.throws(() => broadcastShapes('add', [1], 'x' as never), { name: 'ArgumentError', op: 'broadcastShapes', arg: 'b' })
  t.equal(bytesPerElement('float16'), 2)
  t.throws(() => bytesPerElement('x' as never), { name: 'DTypeError', op: 'bytesPerElement' })
  t.throws(() => scalar([1, 2] as never), { name: 'ArgumentError', op: 'scalar', arg: 'value' })
  t.throws(() => scalar(1, 'float8' as never), { name: 'DTypeError', op: 'scalar', arg: 'dtype' })
  t.throws(() => scalar(1, undefined, { backnd: 'cpu' } as never), { name: 'ArgumentError', op: 'scalar', arg: 'backnd' })
  t.equal(scalar(true).dtype, 'bool')
  t.throws(() => kernelOp(undefined as never, 'K', []), { name: 'ArgumentError', op: 'kernelOp', arg: 'op' })
  t.throws(() => kernelOp('myOp', 'K', 'x' as never), { name: 'ArgumentError', op: 'kernelOp', arg: 'inputs' })
  t.throws(() => kernelOp('myOp', 'K', [[1]] as never), { name: 'ArgumentError', op: 'myOp', arg: 'inputs[0]' })
  t.throws(() => kernelOp('myOp', 'K', [], 3 as never), { name: 'ArgumentError', op: 'kernelOp', arg: 'attrs' })
  const before = listBackends()
  t.throws(() => registerBackend(undefined as never, () => undefined as never), { name: 'ArgumentError', op: 'registerBackend', arg: 'name' })
  t.throws(() => registerBackend('mine', [1] as never), { name: 'ArgumentError', op: 'registerBackend', arg: 'factory' })
  t.throws(() => registerKernel('cpu', '', () => undefined), { name: 'ArgumentError', op: 'registerKernel', arg: 'kernel' })
  t.throws(() => registerKernel('cpu', 'Mine', {}), { name: 'ArgumentError', op: 'registerKernel', arg: 'impl' })
  t.same(listBackends(), before, 'a rejected registration adds nothing')
  await t.rejects(setBackend('nope'), { name: 'BackendError', op: 'setBackend', arg: 'name' })
  await t.rejects(initBackend('nope'), { name: 'BackendError', op: 'initBackend', arg: 'name' })
  await t.rejects(ready(null as never), { name: 'BackendError', op: 'ready', arg: 'name' })
  t.throws(() => loadSafetensors('x' as never), { name: 'ParseError', op: 'loadSafetensors', arg: 'bytes' })
  const h = parseSafetensorsHeader(new Uint8Array(3))
  t.match(h, { _tag: 'Left', left: { name: 'ParseError', op: 'parseSafetensorsHeader', arg: 'header length' } })
})

t.test('reductions and softmax reject misspelt options', async t => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3])
  t.throws(() => sum(x, { axis: 0, keepdim: true } as never), { name: 'ArgumentError', arg: 'keepdim' })
  t.throws(() => sum(x, { axes: 1 } as never), { name: 'ArgumentError', arg: 'axes' })
  t.throws(() => mean(x, { dim: 1 } as never), ArgumentError)
  t.throws(() => variance(x, { ddof: 1 } as never), { name: 'ArgumentError', message: /expected one of axis, keepDims, correction/ })
  t.throws(() => softmax(x, { dim: -1 } as never), ArgumentError)
  t.throws(() => cumsum(x, { axis: 0, reversed: true } as never), { name: 'ArgumentError', message: /did you mean reverse\?/ })
  t.same(sum(x, { axis: 0, keepDims: true }).shape, [1, 3])
  t.throws(() => topk(x, 1, { dim: 0 } as never), { name: 'ArgumentError', op: 'topk', arg: 'dim' })
  t.throws(() => sort(x, { descending: true, reverse: true } as never), { name: 'ArgumentError', op: 'sort' })
  t.throws(() => argsort(x, { decending: true } as never), { name: 'ArgumentError', message: /did you mean descending\?/ })
  t.throws(() => oneHot(tensor([0], [1], 'int32'), 2, { dtpye: 'int32' } as never), { name: 'ArgumentError', message: /did you mean dtype\?/ })
  t.throws(() => zeros([2], { dtyp: 'int32' } as never), { name: 'ArgumentError', op: 'zeros', arg: 'dtyp' }, 'zeros names itself, not full')
  t.throws(() => ones('x' as never), { name: 'ValueError', op: 'ones', arg: 'shape' })
  t.throws(() => gelu(x, { approx: 'tanh' } as never), { name: 'ArgumentError', op: 'gelu', arg: 'approx', message: /did you mean approximate\?/ })
  t.throws(() => warmupCosine({ lr: 1, total: 10, warmUp: 2 } as never), { name: 'ArgumentError', op: 'warmupCosine', arg: 'warmUp' })
  t.throws(() => warmupCosine(undefined as never), { name: 'ArgumentError', op: 'warmupCosine', arg: 'opts' })
  await t.rejects(configureCpuWasm({ mode: 'force', thread: 2 } as never), { name: 'ArgumentError', op: 'configureCpuWasm', arg: 'thread' })
  await t.rejects(configureCpuWasm(null as never), { name: 'ArgumentError', op: 'configureCpuWasm', arg: 'opts' })
  await t.rejects(configureCpuWasm({ mode: 'fast' } as never), { name: 'ValueError', op: 'configureCpuWasm', arg: 'mode' })
  x.dispose()
})

t.test('out-of-range integers and oversized tensors are typed errors, not wraps or RangeErrors', async t => {
  t.throws(() => tensor([3e9], undefined, 'int32'), { name: 'ValueError', op: 'tensor', arg: 'data[0]' })
  t.throws(() => tensor([-1], undefined, 'uint32'), { name: 'ValueError', op: 'tensor' })
  t.throws(() => tensor([1, NaN], undefined, 'int32'), { name: 'ValueError', arg: 'data[1]' })
  const ok = tensor([1.7, -(2 ** 31), 2 ** 31 - 1], undefined, 'int32')
  t.same(Array.from(ok.dataSync()), [1, -(2 ** 31), 2 ** 31 - 1], 'in range: the integer part, as before')
  ok.dispose()
  t.throws(() => zeros([1e6, 1e6]), { name: 'ValueError', op: 'zeros', arg: 'shape', message: /too large to allocate/ })
  t.throws(() => matmul(zeros([1e5, 1]), zeros([1, 1e5])), { name: 'ValueError', op: 'matmul', message: /too large to allocate/ })
  t.throws(() => checkAllocation('f', 'n', 2 ** 30, 'float64'), ValueError)
  t.doesNotThrow(() => checkAllocation('f', 'n', 2 ** 20, 'float64'))
})

t.test('function and tensor arguments are checked where the user passed them', async t => {
  // five bad calls each for the function-taking entry points: none, null, a number, a string, an object
  for (const [op, f] of [
    ['grad', (v: never) => grad(v)],
    ['valueAndGrad', (v: never) => valueAndGrad(v)],
    ['scope', (v: never) => scope(v)],
    ['noGrad', (v: never) => noGrad(v)],
  ] as const)
    for (const bad of [undefined, null, 3, 'f', {}])
      t.throws(() => f(bad as never), { name: 'ArgumentError', op, message: new RegExp(`^${op}: .*expected a function`) }, `${op}(${String(bad)})`)
  await t.rejects(profile(null as never), { name: 'ArgumentError', op: 'profile' })
  t.throws(() => grad((x: never) => x, { argnum: 1 } as never), { name: 'ArgumentError', op: 'grad', message: /did you mean argnums\?/ })
  const x = tensor([1, 2])
  const gone = tensor([1, 2])
  gone.dispose()
  for (const [op, f] of [
    ['zerosLike', (v: never) => zerosLike(v)],
    ['onesLike', (v: never) => onesLike(v)],
    ['fullLike', (v: never) => fullLike(v, 2)],
    ['stopGradient', (v: never) => stopGradient(v)],
  ] as const) {
    for (const bad of [undefined, null, [1, 2], 'x', 7]) t.throws(() => f(bad as never), { name: 'ArgumentError', op, arg: /^(t|x)$/ }, `${op}(${JSON.stringify(bad)})`)
  }
  t.throws(() => stopGradient(gone), DisposedError, 'stopGradient of a disposed tensor')
  t.throws(() => stopGradient(gone), { name: 'DisposedError', op: 'stopGradient', arg: 'x' }, 'naming the argument')
  for (const [op, f] of [
    ['zerosLike', () => zerosLike(gone)],
    ['onesLike', () => onesLike(gone)],
    ['fullLike', () => fullLike(gone, 2)],
  ] as const)
    t.throws(f, { name: 'DisposedError', op, arg: 't' }, `${op} of a disposed tensor, naming the argument`)
  t.throws(() => fullLike(x, {} as never), { name: 'ValueError', op: 'fullLike', arg: 'value' })
  await t.rejects(toBackend([1, 2] as never, 'cpu'), { name: 'ArgumentError', op: 'toBackend' })
  const z = zerosLike(x)
  t.same([...z.dataSync()], [0, 0], 'a live tensor still works')
  for (const v of [x, z]) v.dispose()
})

t.test('requireTensor and requireFunction: argument checks for code built on heed, in the caller’s name', async t => {
  const x = h.tensor([1, 2])
  t.equal(h.requireTensor('myOp', 'x', x), x, 'a live tensor passes through')
  t.throws(() => h.requireTensor('myOp', 'x', [1, 2] as never), { name: 'ArgumentError', op: 'myOp', arg: 'x', message: /wrap plain arrays/ })
  t.throws(() => h.requireTensor('myOp', 'x', null as never, 'a float tensor'), { name: 'ArgumentError', op: 'myOp', message: /expected a float tensor/ })
  x.dispose()
  t.throws(() => h.requireTensor('myOp', 'x', x), { name: 'DisposedError', op: 'myOp' })
  t.throws(() => h.requireTensor(undefined as never, 'x', x), { name: 'ArgumentError', op: 'requireTensor', arg: 'op' })
  const f = () => 1
  t.equal(h.requireFunction('myOp', 'f', f), f)
  t.throws(() => h.requireFunction('myOp', 'f', 3 as never), { name: 'ArgumentError', op: 'myOp', arg: 'f' })
  t.throws(() => h.requireFunction('myOp', 7 as never, f), { name: 'ArgumentError', op: 'requireFunction', arg: 'arg' })
})
