import t from 'tap'
import { tensor, type DType } from '@heed/tensor'
import * as fairness from '@heed/fairness'
import type { Tensor } from '@heed/fairness'

t.test('the entry point exports the metrics, the Distraction module and the benchmark', async t => {
  for (const name of ['metricFrame', 'demographicParityDifference', 'dpPenalty', 'distractionAttention', 'trainDistraction', 'loadAdult', 'adultBenchmark', 'trainMlp', 'reweighing', 'trainAdversarialDebiasing'])
    t.type((fairness as Record<string, unknown>)[name], 'function', name)
})

t.test('its re-exported Tensor type is @heed/tensor\'s', async t => {
  const x: Tensor = tensor([1, 2])
  const dtype: DType = x.dtype
  t.same(Array.from(await x.data()), [1, 2])
  x.dispose()
})
