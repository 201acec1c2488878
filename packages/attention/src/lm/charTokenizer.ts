import { ArgumentError, ValueError } from '@heed/tensor'
import { operatorOptions } from '../operators/strict.js'

/** What `encode` does with a character outside the vocabulary. */
export type UnknownChar = 'error' | 'skip' | { readonly replace: string }

export interface EncodeOptions {
  /** Default `'error'`: a `ValueError` naming the character and its position; nothing is dropped silently. */
  readonly unknown?: UnknownChar
}

/**
 * A character-level tokenizer: token `i` is `vocab[i]`, one UTF-16 code unit each. The vocabulary travels with
 * every checkpoint (`lmCheckpoint`), so a model always decodes with the alphabet it was trained on.
 */
export interface CharTokenizer {
  /** The characters, in id order. */
  readonly vocab: readonly string[]
  readonly size: number
  encode(text: string, opts?: EncodeOptions): Int32Array
  decode(ids: ArrayLike<number>): string
  /** Whether every character of `text` is in the vocabulary. */
  covers(text: string): boolean
}

/**
 * A tokenizer over `alphabet` (a string of distinct characters, or an array of single characters), ids in the
 * given order. `charTokenizer.fromText(corpus)` builds the sorted alphabet of a corpus.
 */
export function charTokenizer(alphabet: string | readonly string[]): CharTokenizer {
  const op = 'charTokenizer'
  if (typeof alphabet !== 'string' && !Array.isArray(alphabet))
    throw new ArgumentError({ op, arg: 'alphabet', expected: 'a string of distinct characters or an array of single characters', actual: alphabet === null ? 'null' : typeof alphabet })
  const vocab = typeof alphabet === 'string' ? [...alphabet] : [...alphabet]
  if (vocab.length === 0) throw new ValueError({ op, arg: 'alphabet', expected: 'at least one character', actual: 'none' })
  const index = new Map<string, number>()
  vocab.forEach((c, i) => {
    if (typeof c !== 'string' || c.length !== 1) throw new ValueError({ op, arg: `alphabet[${i}]`, expected: 'a single UTF-16 character', actual: JSON.stringify(c) })
    if (index.has(c)) throw new ValueError({ op, arg: 'alphabet', expected: 'distinct characters', actual: `${JSON.stringify(c)} at ${index.get(c)} and ${i}` })
    index.set(c, i)
  })
  Object.freeze(vocab)
  const encode = (text: string, opts: EncodeOptions = {}): Int32Array => {
    if (typeof text !== 'string') throw new ValueError({ op: 'encode', arg: 'text', expected: 'a string', actual: typeof text })
    operatorOptions('encode', opts, ['unknown'] satisfies (keyof EncodeOptions)[], "{ unknown?: 'error' | 'skip' | { replace } }")
    const unknown = opts.unknown ?? 'error'
    const replacement = typeof unknown === 'object' ? index.get(unknown.replace) : undefined
    if (typeof unknown === 'object' && replacement === undefined)
      throw new ValueError({ op: 'encode', arg: 'unknown.replace', expected: 'a character of the vocabulary', actual: JSON.stringify(unknown.replace) })
    const out = new Int32Array(text.length)
    let n = 0
    for (let i = 0; i < text.length; i++) {
      const id = index.get(text[i]!)
      if (id !== undefined) out[n++] = id
      else if (replacement !== undefined) out[n++] = replacement
      else if (unknown === 'error')
        throw new ValueError({ op: 'encode', arg: 'text', expected: `characters of the ${vocab.length}-character vocabulary`, actual: `${JSON.stringify(text[i])} (code ${text.charCodeAt(i)}) at position ${i}` }, "pass { unknown: 'skip' } or { unknown: { replace: c } } to map it")
    }
    return n === out.length ? out : out.slice(0, n)
  }
  const decode = (ids: ArrayLike<number>): string => {
    if (ids === null || typeof ids !== 'object' || !Number.isSafeInteger((ids as { length?: unknown }).length))
      throw new ArgumentError({ op: 'decode', arg: 'ids', expected: 'an array of token ids', actual: ids === null ? 'null' : typeof ids })
    let s = ''
    for (let i = 0; i < ids.length; i++) {
      const c = vocab[ids[i]!]
      if (c === undefined) throw new ValueError({ op: 'decode', arg: 'ids', expected: `ids in [0, ${vocab.length})`, actual: `${ids[i]} at position ${i}` })
      s += c
    }
    return s
  }
  const covers = (text: string): boolean => {
    for (let i = 0; i < text.length; i++) if (!index.has(text[i]!)) return false
    return true
  }
  return { vocab, size: vocab.length, encode, decode, covers }
}

/** The sorted distinct characters of `text` (by code unit) as a tokenizer. */
charTokenizer.fromText = (text: string): CharTokenizer => charTokenizer([...new Set(text)].sort())
