import { positiveInt, random, ValueError, type Rng } from '@heed/tensor'
import type { Verse } from '@heed/attention'
import { optionKeys, requireNumber, requireOptions } from './internal.js'

/** One preference pair of text: the same prompt with a preferred and a dispreferred completion. */
export interface TextPreferencePair {
  readonly prompt: string
  readonly chosen: string
  readonly rejected: string
  /** Which task made the pair (see `kjvPreferencePairs`). */
  readonly task: 'continuation' | 'style'
  /** The verse the prompt opens, as `Book chapter:verse`. */
  readonly source: string
}

export interface KjvPreferencePairsOptions {
  /** Pairs to make. */
  readonly count: number
  /** Characters of the verse opening used as the prompt. Default 32. */
  readonly promptLength?: number
  /** Characters of every completion (chosen and rejected alike). Default 24. */
  readonly completionLength?: number
  /** Fraction of style pairs; the rest are continuation pairs (rounded to whole pairs). Default 0.5. */
  readonly styleFraction?: number
  /** The style task's target word: chosen completions contain it, rejected ones do not. Default `God`. */
  readonly targetWord?: string
  /** Default 0. */
  readonly seed?: number
}

const OPTIONS = optionKeys<KjvPreferencePairsOptions>({ count: true, promptLength: true, completionLength: true, styleFraction: true, targetWord: true, seed: true })

const ref = (v: Verse): string => `${v.book} ${v.chapter}:${v.verse}`

/** The words of `s` (split on single spaces) in another order: same characters, same length; `undefined` if no order differs. */
function shuffleWords(s: string, g: Rng): string | undefined {
  const words = s.split(' ')
  if (new Set(words).size < 2) return undefined
  for (let attempt = 0; attempt < 8; attempt++) {
    const w = [...words]
    for (let i = w.length - 1; i > 0; i--) {
      const j = g.int(0, i + 1)
      ;[w[i], w[j]] = [w[j]!, w[i]!]
    }
    const out = w.join(' ')
    if (out !== s) return out
  }
  return undefined
}

/**
 * Preference pairs of text made from KJV verses, for fine-tuning a character model with DPO and its family.
 * Pass one side of `kjvSplit` (its training verses for training pairs, its validation books for held-out pairs),
 * so that no held-out prompt opens a verse seen in training.
 *
 * Two tasks, mixed by `styleFraction`:
 * - **continuation**: the prompt is a verse opening (`promptLength` characters), chosen is the verse's true
 *   continuation (`completionLength` characters), rejected is the same characters with its words shuffled (the
 *   continuation of another verse where shuffling cannot change it, e.g. one repeated word). A model of the corpus
 *   already prefers chosen; what DPO adds is a sharper contrast.
 * - **style**: the prompt is a verse opening; chosen is the continuation window of another verse that contains
 *   `targetWord`, rejected that of a third verse that does not. Neither is the true continuation, so the only
 *   thing that separates them is the word: a reward the corpus alone does not teach.
 *
 * Completions have equal lengths within a pair, so a summed log-prob cannot prefer a side by being shorter.
 * Deterministic for a given `seed` and verse list.
 */
export function kjvPreferencePairs(verses: readonly Verse[], opts: KjvPreferencePairsOptions): TextPreferencePair[] {
  const op = 'kjvPreferencePairs'
  if (!Array.isArray(verses)) throw new ValueError({ op, arg: 'verses', expected: 'an array of verses (a side of kjvSplit)', actual: typeof verses })
  if (opts === undefined) throw new ValueError({ op, arg: 'opts', expected: '{ count, … }', actual: 'undefined' })
  const o = requireOptions(op, opts, OPTIONS)
  const count = positiveInt(op, 'count', o['count'])
  const P = positiveInt(op, 'promptLength', o['promptLength'] ?? 32)
  const C = positiveInt(op, 'completionLength', o['completionLength'] ?? 24)
  const frac = o['styleFraction'] ?? 0.5
  if (typeof frac !== 'number' || !(frac >= 0 && frac <= 1)) throw new ValueError({ op, arg: 'styleFraction', expected: 'a number in [0, 1]', actual: String(frac) })
  const word = o['targetWord'] ?? 'God'
  if (typeof word !== 'string' || word.length === 0 || word.length > C)
    throw new ValueError({ op, arg: 'targetWord', expected: `a non-empty word of at most completionLength = ${C} characters`, actual: JSON.stringify(word) })
  const g = random.rng(requireNumber(op, 'seed', o['seed'] ?? 0, Number.isInteger, 'an integer seed'))

  const long = verses.filter(v => v.text.length >= P + C)
  const windowOf = (v: Verse): string => v.text.slice(P, P + C)
  const withWord = long.filter(v => windowOf(v).includes(word))
  const without = long.filter(v => !windowOf(v).includes(word))
  const styleCount = Math.round(count * frac)
  if (long.length < 2) throw new ValueError({ op, arg: 'verses', expected: `at least 2 verses of ${P + C}+ characters`, actual: long.length })
  if (styleCount > 0 && (withWord.length === 0 || without.length === 0))
    throw new ValueError({ op, arg: 'targetWord', expected: `verses whose characters ${P}…${P + C} contain ${JSON.stringify(word)} and verses whose do not`, actual: `${withWord.length} and ${without.length}` })
  const pick = <T>(xs: readonly T[]): T => xs[g.int(0, xs.length)]!

  const pairs: TextPreferencePair[] = []
  // Interleaved rather than blocked, so that every batch of a stream in order sees both tasks.
  for (let i = 0; i < count; i++) {
    const style = styleCount > 0 && Math.floor(((i + 1) * styleCount) / count) > Math.floor((i * styleCount) / count)
    const v = pick(long)
    const prompt = v.text.slice(0, P)
    if (style) {
      pairs.push({ prompt, chosen: windowOf(pick(withWord)), rejected: windowOf(pick(without)), task: 'style', source: ref(v) })
      continue
    }
    const chosen = windowOf(v)
    let rejected = shuffleWords(chosen, g)
    // a window whose words cannot be reordered gets another verse's window; a few random draws, then a scan, so
    // verses whose windows are all this one are an error rather than an endless loop
    for (let tries = 0; (rejected === undefined || rejected === chosen) && tries < 16; tries++) rejected = windowOf(pick(long))
    if (rejected === undefined || rejected === chosen) rejected = long.map(windowOf).find(w => w !== chosen)
    if (rejected === undefined)
      throw new ValueError({ op, arg: 'verses', expected: `a continuation window (characters ${P}…${P + C}) that differs from ${JSON.stringify(chosen)}, or one whose words can be reordered`, actual: `${long.length} verses, all with that window` })
    pairs.push({ prompt, chosen, rejected, task: 'continuation', source: ref(v) })
  }
  return pairs
}
