import { ArgumentError, ValueError } from '@heed/tensor'
import { operatorOptions } from '../operators/strict.js'

/** The 66 books of the KJV in canonical order, as abbreviated in the shipped text (`Ge1:1 …`). */
export const KJV_BOOKS = [
  'Ge', 'Exo', 'Lev', 'Num', 'Deu', 'Josh', 'Jdgs', 'Ruth', '1Sm', '2Sm', '1Ki', '2Ki', '1Chr', '2Chr', 'Ezra', 'Neh', 'Est',
  'Job', 'Psa', 'Prv', 'Eccl', 'SSol', 'Isa', 'Jer', 'Lam', 'Eze', 'Dan', 'Hos', 'Joel', 'Amos', 'Obad', 'Jonah', 'Mic',
  'Nahum', 'Hab', 'Zep', 'Hag', 'Zec', 'Mal', 'Mat', 'Mark', 'Luke', 'John', 'Acts', 'Rom', '1Cor', '2Cor', 'Gal', 'Eph',
  'Phi', 'Col', '1Th', '2Th', '1Tim', '2Tim', 'Titus', 'Phmn', 'Heb', 'Jas', '1Pet', '2Pet', '1Jn', '2Jn', '3Jn', 'Jude', 'Rev',
] as const
export type KjvBook = (typeof KJV_BOOKS)[number]

/**
 * The characters of the verse text (references dropped), sorted by code unit: the vocabulary of the KJV models.
 * 63 characters: newline (the verse separator), space, punctuation, and the letters (no capital X occurs).
 */
export const KJV_ALPHABET = "\n !'(),-.:;?ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwxyz"

/** The first book of the validation split: Romans to Revelation, 9.3 % of the verse text's characters. */
export const KJV_VALIDATION_FROM: KjvBook = 'Rom'

export interface Verse {
  readonly book: KjvBook
  readonly chapter: number
  readonly verse: number
  /** The verse without its reference. */
  readonly text: string
}

const LINE = /^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$/

/** Verses of the shipped text (one `Book1:1 text` line each), validated: known books, canonical order. */
export function parseKjv(text: string): Verse[] {
  const op = 'parseKjv'
  if (typeof text !== 'string') throw new ArgumentError({ op, arg: 'text', expected: 'the text of the corpus, a string', actual: text === null ? 'null' : Array.isArray(text) ? 'an array' : typeof text })
  const order = new Map<string, number>(KJV_BOOKS.map((b, i) => [b, i]))
  const verses: Verse[] = []
  let last = -1
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '')
    if (line === '') continue
    const m = LINE.exec(line)
    if (m === null) throw new ValueError({ op, arg: `line ${i + 1}`, expected: '`Book<chapter>:<verse> text`', actual: JSON.stringify(line.slice(0, 40)) })
    const at = order.get(m[1]!)
    if (at === undefined) throw new ValueError({ op, arg: `line ${i + 1}`, expected: `one of the 66 book abbreviations (${KJV_BOOKS.slice(0, 3).join(', ')}, …)`, actual: m[1] })
    if (at < last) throw new ValueError({ op, arg: `line ${i + 1}`, expected: 'books in canonical order', actual: `${m[1]} after ${KJV_BOOKS[last]}` })
    last = at
    verses.push({ book: m[1] as KjvBook, chapter: Number(m[2]), verse: Number(m[3]), text: m[4]! })
  }
  return verses
}

export interface KjvSplitOptions {
  /** The first validation book (default `KJV_VALIDATION_FROM`, Romans): it and every later book are held out. */
  readonly validationFrom?: KjvBook
}

export interface KjvSplit {
  readonly train: readonly Verse[]
  readonly validation: readonly Verse[]
  /** The training verses' text, one verse a line (each line ends with `\n`). */
  readonly trainText: string
  readonly validationText: string
}

/** The verse text that a language model reads: verses without references, each ending in a newline. */
export const versesText = (verses: readonly Verse[]): string => checkVerses('versesText', verses).map(v => v.text + '\n').join('')

/** An array of verses (`{ text, book, … }` as `parseKjv` makes them), checked before anything reads them. */
function checkVerses(op: string, verses: readonly Verse[]): readonly Verse[] {
  if (!Array.isArray(verses)) throw new ArgumentError({ op, arg: 'verses', expected: 'an array of verses (see parseKjv)', actual: verses === null ? 'null' : typeof verses })
  verses.forEach((v: unknown, i) => {
    if (v === null || typeof v !== 'object' || typeof (v as Verse).text !== 'string')
      throw new ArgumentError({ op, arg: `verses[${i}]`, expected: 'a verse { book, chapter, verse, text }', actual: v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v })
  })
  return verses
}

const KJV_SPLIT_OPTIONS: Record<keyof KjvSplitOptions, true> = { validationFrom: true }

/**
 * The fixed split by book: validation is every verse from `validationFrom` to the end of the canon, training
 * everything before it. A split by book (not by random verses) keeps whole writings unseen, so validation
 * measures modelling of new text, not recall of neighbouring verses. Verse references are dropped from the text:
 * they are bookkeeping, and digits and colons would otherwise be a tenth of what the model learns to predict.
 */
export function kjvSplit(verses: readonly Verse[], opts: KjvSplitOptions = {}): KjvSplit {
  checkVerses('kjvSplit', verses)
  operatorOptions('kjvSplit', opts, Object.keys(KJV_SPLIT_OPTIONS))
  const from = opts.validationFrom ?? KJV_VALIDATION_FROM
  const at = KJV_BOOKS.indexOf(from)
  if (at < 0) throw new ValueError({ op: 'kjvSplit', arg: 'validationFrom', expected: 'a KJV book abbreviation', actual: from })
  const isVal = (v: Verse): boolean => KJV_BOOKS.indexOf(v.book) >= at
  const train = verses.filter(v => !isVal(v))
  const validation = verses.filter(isVal)
  if (train.length === 0 || validation.length === 0)
    throw new ValueError({ op: 'kjvSplit', arg: 'verses', expected: `verses before and from ${from}`, actual: `${train.length} training, ${validation.length} validation verses` })
  return { train, validation, trainText: versesText(train), validationText: versesText(validation) }
}

/**
 * The shipped KJV text (packages/attention/data/kjv.txt.gz), unpacked and parsed. Node only (it reads the file
 * with node:fs); in a browser, fetch the file and pass its text to `parseKjv`.
 */
export async function loadKjv(): Promise<Verse[]> {
  // Imported lazily so that the package stays importable where node:fs does not exist.
  const fs = await import('node:fs/promises')
  const zlib = await import('node:zlib')
  const bytes = await fs.readFile(new URL('../../data/kjv.txt.gz', import.meta.url))
  return parseKjv(zlib.gunzipSync(bytes).toString('latin1'))
}
