// #region recipe
import { from, lastValueFrom } from 'rxjs'
import { adam, dispose } from '@heed/tensor'
import { charTokenizer, kjvSplit, loadKjv, loadKjvModel } from '@heed/attention'
import { collatePreferences, dpoLoss, kjvPreferencePairs, lmPreferenceLogps, preferenceDataset } from '@heed/align'
import { collectMetrics, preferenceBatches, trainStep } from '@heed/align/stream'

// The shipped character model is the reference; the policy starts as a copy of it.
const reference = await loadKjvModel()
const tokenizer = charTokenizer(reference.vocab)

// Pairs from the training books: a verse opening, its true continuation (chosen) and the same words shuffled
// (rejected), interleaved with style pairs (a continuation containing "God" against one without it).
const split = kjvSplit(await loadKjv())
const pairs = kjvPreferencePairs(split.train, { count: 8, seed: 0 })
console.log(pairs[0]!.task, pairs[0]!.prompt.length, pairs[0]!.chosen.length === pairs[0]!.rejected.length) // => ["continuation", 32, true]

// The frozen reference's per-token log-probs of every completion, computed once.
const dataset = await preferenceDataset(pairs, { reference, tokenizer })

// two passes over the pairs → batches of 4 → one DPO step each (Adam, clipped) → TRL's metrics
const history = await lastValueFrom(
  from([...dataset, ...dataset]).pipe(
    preferenceBatches({ size: 4, collate: collatePreferences }),
    trainStep({
      params: reference.params,
      optimizer: adam({ lr: 3e-4 }),
      clipNorm: 1,
      loss: (params, batch) => dpoLoss(lmPreferenceLogps(reference.lm, params, batch), { beta: 0.1 }),
    }),
    collectMetrics(),
  ),
)
const series = (k: string) => history.series[k]!
console.log(history.steps.length) // => 4
// Policy = reference at step 1: the loss is ln 2 and no pair is ranked yet.
console.log(series('loss')[0]!.toFixed(4), series('rewards/accuracies')[0]) // => ["0.6931", 0]
// On the second pass the implicit reward β·(log π − log π_ref) ranks every pair of the batch right.
console.log(series('rewards/margins').at(-1)! > 0, series('rewards/accuracies').at(-1)) // => [true, 1]
dispose(reference.params)
// #endregion recipe
