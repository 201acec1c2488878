// #region recipe
import { from, lastValueFrom } from 'rxjs'
import { dispose, gather, noGrad, random, sgd, sum, tensor, type Tensor } from '@heed/tensor'
import { dpoLoss, tokenLogps } from '@heed/align'
import { collectMetrics, preferenceBatches, trainStep } from '@heed/align/stream'

// The smallest policy that still has a likelihood: a table of logits per prompt and response position.
const PROMPTS = 4, T = 3, V = 6
type Policy = { readonly logits: Tensor }
const reference: Policy = { logits: random.normal([PROMPTS, T, V], { rng: random.rng(0), std: 0.5 }) }

interface Pair { readonly prompt: number; readonly chosen: number[]; readonly rejected: number[] }
const counting = (s: number) => [1, 2, 3].map(i => (s + i) % V) // preferred: count up from the prompt
const repeating = (s: number) => [s, s, s] // dispreferred: repeat it
const pairs: Pair[] = Array.from({ length: 40 * 8 }, (_, i) => ({ prompt: i % PROMPTS, chosen: counting(i % PROMPTS), rejected: repeating(i % PROMPTS) }))

/** Summed log-probabilities [B] of each response under a policy. */
const logps = (p: Policy, prompts: number[], responses: number[][]): Tensor =>
  sum(tokenLogps(gather(p.logits, tensor(prompts, [prompts.length], 'int32')), tensor(responses, [responses.length, T], 'int32')), { axis: -1 })

const loss = (p: Policy, batch: readonly Pair[]) => {
  const prompts = batch.map(b => b.prompt)
  const [refChosenLogps, refRejectedLogps] = noGrad(() => [logps(reference, prompts, batch.map(b => b.chosen)), logps(reference, prompts, batch.map(b => b.rejected))])
  return dpoLoss({ chosenLogps: logps(p, prompts, batch.map(b => b.chosen)), rejectedLogps: logps(p, prompts, batch.map(b => b.rejected)), refChosenLogps: refChosenLogps!, refRejectedLogps: refRejectedLogps! }, { beta: 0.1 })
}

// examples → batches of 8 → one DPO step each (the policy starts as a copy of the reference) → metric history.
const history = await lastValueFrom(
  from(pairs).pipe(
    preferenceBatches({ size: 8, collate: (xs: readonly Pair[]) => xs }),
    trainStep({ params: reference, optimizer: sgd({ lr: 4, momentum: 0.9 }), loss }),
    collectMetrics(),
  ),
)
const first = (k: string) => history.series[k]![0]!
const final = (k: string) => history.series[k]!.at(-1)!
console.log(history.steps.length) // => 40
// Policy = reference at step 1, so the loss is ln 2 and no pair is ranked yet.
console.log(first('loss').toFixed(4), first('rewards/accuracies')) // => ["0.6931", 0]
// After 40 steps every pair is ranked right and the loss is near 0.
console.log(final('loss') < 0.1, final('rewards/accuracies'), final('rewards/margins') > 0) // => [true, 1, true]
dispose(reference)
// #endregion recipe
