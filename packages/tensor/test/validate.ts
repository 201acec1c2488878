import t from 'tap'
import { finiteNumber, inRange, intAtLeast, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, ValueError } from '@heed/tensor'

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
