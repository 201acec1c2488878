import { ArgumentError, ValueError } from '../errors.js'
import { knownOptions } from '../validate.js'

export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warm-up. */
  readonly lr: number
  /** Updates of linear warm-up from `lr / warmup` (default 0: no warm-up). */
  readonly warmup?: number
  /** Updates in total; the cosine decay ends here. */
  readonly total: number
  /** Learning rate at the end of the decay (default `lr / 10`). */
  readonly minLr?: number
}

const WARMUP_COSINE_KEYS: Record<keyof WarmupCosineOptions, true> = { lr: true, warmup: true, total: true, minLr: true }
const WARMUP_COSINE_OPTIONS = Object.keys(WARMUP_COSINE_KEYS)

/**
 * Linear warm-up then cosine decay (Loshchilov & Hutter 2017, "SGDR", eq. 5, one cycle without restarts; the
 * schedule of GPT-2/3 and nanoGPT): step `s` (1 on the first update) gets `lr · s / warmup` during warm-up, then
 * `minLr + ½(lr − minLr)(1 + cos(π·progress))` with progress from 0 to 1 over the remaining updates, and `minLr`
 * after `total`. A pure function of the step, so a resumed run continues on the same curve.
 */
export function warmupCosine(opts: WarmupCosineOptions): (step: number) => number {
  const op = 'warmupCosine'
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new ArgumentError({ op, arg: 'opts', expected: '{ lr, total, warmup?, minLr? }', actual: opts === null ? 'null' : Array.isArray(opts) ? 'an array' : typeof opts })
  knownOptions(op, opts, WARMUP_COSINE_OPTIONS)
  const { lr, total } = opts
  const warmup = opts.warmup ?? 0
  const minLr = opts.minLr ?? lr / 10
  if (!(lr > 0 && Number.isFinite(lr))) throw new ValueError({ op, arg: 'lr', expected: 'a positive finite number', actual: lr })
  if (!(Number.isInteger(total) && total >= 1)) throw new ValueError({ op, arg: 'total', expected: 'a positive integer', actual: total })
  if (!(Number.isInteger(warmup) && warmup >= 0 && warmup <= total)) throw new ValueError({ op, arg: 'warmup', expected: `an integer in [0, total = ${total}]`, actual: warmup })
  if (!(minLr >= 0 && minLr <= lr)) throw new ValueError({ op, arg: 'minLr', expected: `a number in [0, lr = ${lr}]`, actual: minLr })
  return step => {
    if (warmup > 0 && step <= warmup) return (lr * Math.max(step, 1)) / warmup
    if (step >= total) return minLr
    const progress = (step - warmup) / (total - warmup)
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress))
  }
}
