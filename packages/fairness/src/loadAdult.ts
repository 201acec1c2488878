import { ArgumentError, ParseError, ValueError } from '@heed/tensor'
import { kindOf, options } from './validate.js'
import { either as E } from 'fp-ts'
import type { TabularData } from './tabularData.js'

/** The 14 UCI Adult attributes and the label, in file order. */
export const ADULT_COLUMNS = [
  'age', 'workclass', 'fnlwgt', 'education', 'education-num', 'marital-status', 'occupation', 'relationship',
  'race', 'sex', 'capital-gain', 'capital-loss', 'hours-per-week', 'native-country', 'income',
] as const

const NUMERIC = new Set(['age', 'fnlwgt', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week'])

/** One raw row: numeric attributes as numbers, categorical ones as strings, `null` where the file has `?`. */
export type AdultRecord = { readonly [K in (typeof ADULT_COLUMNS)[number]]: K extends 'income' ? 0 | 1 : string | number | null }

/**
 * Parse the text of `adult.data` or `adult.test`: comma-separated, blank lines and the test file's
 * `|1x3 Cross validator` line skipped, the trailing `.` of test labels removed, `?` read as missing. A
 * malformed row is a `ParseError` naming its line.
 */
export function parseAdult(text: string): E.Either<ParseError, AdultRecord[]> {
  const op = 'parseAdult'
  if (typeof text !== 'string') return E.left(new ParseError({ op, arg: 'text', expected: 'the text of an Adult file', actual: typeof text }))
  const rows: AdultRecord[] = []
  const lines = text.split('\n')
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.trim()
    if (line === '' || line.startsWith('|')) continue
    const cells = line.split(',').map(c => c.trim())
    if (cells.length !== ADULT_COLUMNS.length)
      return E.left(new ParseError({ op, arg: `line ${ln + 1}`, expected: `${ADULT_COLUMNS.length} comma-separated fields`, actual: `${cells.length} fields` }))
    const rec: Record<string, string | number | null> = {}
    for (let j = 0; j < ADULT_COLUMNS.length; j++) {
      const name = ADULT_COLUMNS[j]!
      const c = cells[j]!
      if (name === 'income') {
        const label = c.endsWith('.') ? c.slice(0, -1) : c
        if (label !== '>50K' && label !== '<=50K')
          return E.left(new ParseError({ op, arg: `line ${ln + 1}: income`, expected: "'<=50K' or '>50K' (optionally with a trailing '.')", actual: c }))
        rec[name] = label === '>50K' ? 1 : 0
      } else if (c === '?') rec[name] = null
      else if (NUMERIC.has(name)) {
        const v = Number(c)
        if (c === '' || !Number.isFinite(v)) return E.left(new ParseError({ op, arg: `line ${ln + 1}: ${name}`, expected: 'a number', actual: c }))
        rec[name] = v
      } else rec[name] = c
    }
    rows.push(rec as AdultRecord)
  }
  return E.right(rows)
}

export interface EncodeAdultOptions {
  /** `drop` (default, as AIF360 and the Distraction code): remove rows with a `?`; `category`: treat `?` as its own category. */
  readonly missing?: 'drop' | 'category'
  /** Drop the `fnlwgt` sampling weight from the features (default true, as AIF360). */
  readonly dropFnlwgt?: boolean
  /** The sensitive attribute (default `sex`; `race` also works, with any number of groups). */
  readonly sensitive?: 'sex' | 'race'
}

export interface AdultSplits {
  readonly train: TabularData
  readonly test: TabularData
}

/**
 * One-hot encode the categorical attributes (categories taken from the training rows; unseen test categories
 * encode as all zeros) and standardise the numeric ones with the training mean and standard deviation.
 * Groups are the sensitive attribute's values in sorted order (for `sex`: 0 = Female, 1 = Male).
 */
const ENCODE_KEYS: Record<keyof EncodeAdultOptions, true> = { missing: true, dropFnlwgt: true, sensitive: true }
const LOAD_KEYS: Record<keyof LoadAdultOptions, true> = { ...ENCODE_KEYS, dir: true }

/** The values of EncodeAdultOptions (the keys are checked by the caller). */
function checkEncodeOptions(op: string, opts: EncodeAdultOptions): void {
  if (opts.missing !== undefined && opts.missing !== 'drop' && opts.missing !== 'category')
    throw new ValueError({ op, arg: 'missing', expected: "'drop' or 'category'", actual: String(opts.missing) })
  if (opts.sensitive !== undefined && opts.sensitive !== 'sex' && opts.sensitive !== 'race')
    throw new ValueError({ op, arg: 'sensitive', expected: "'sex' or 'race'", actual: String(opts.sensitive) })
  if (opts.dropFnlwgt !== undefined && typeof opts.dropFnlwgt !== 'boolean') throw new ArgumentError({ op, arg: 'dropFnlwgt', expected: 'a boolean', actual: kindOf(opts.dropFnlwgt) })
}

/** Rows as parseAdult gives them: an array of records holding every Adult column. */
function checkRecords(op: string, arg: string, rows: unknown, nonEmpty: boolean): void {
  if (!Array.isArray(rows)) throw new ArgumentError({ op, arg, expected: 'an array of Adult records (parseAdult)', actual: kindOf(rows) })
  if (nonEmpty && rows.length === 0) throw new ValueError({ op, arg, expected: 'at least one training row', actual: 'an empty array' })
  rows.forEach((r: unknown, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r) || !ADULT_COLUMNS.every(c => c in (r as object)))
      throw new ArgumentError({ op, arg: `${arg}[${i}]`, expected: `an Adult record with the columns ${ADULT_COLUMNS.join(', ')} (parseAdult)`, actual: kindOf(r) })
    const y = (r as AdultRecord).income
    if (y !== 0 && y !== 1) throw new ValueError({ op, arg: `${arg}[${i}].income`, expected: 'a label 0 or 1', actual: String(y) })
  })
}

export function encodeAdult(train: readonly AdultRecord[], test: readonly AdultRecord[], opts: EncodeAdultOptions = {}): AdultSplits {
  const op = 'encodeAdult'
  opts = options(op, opts, Object.keys(ENCODE_KEYS))
  checkEncodeOptions(op, opts)
  checkRecords(op, 'train', train, true)
  checkRecords(op, 'test', test, false)
  return encode(train, test, opts)
}

/** `encodeAdult` after its checks. */
function encode(train: readonly AdultRecord[], test: readonly AdultRecord[], opts: EncodeAdultOptions): AdultSplits {
  const missing = opts.missing ?? 'drop'
  const sensitive = opts.sensitive ?? 'sex'
  const complete = (r: AdultRecord): boolean => ADULT_COLUMNS.every(c => r[c] !== null)
  const tr = missing === 'drop' ? train.filter(complete) : [...train]
  const te = missing === 'drop' ? test.filter(complete) : [...test]
  const attrs = ADULT_COLUMNS.filter(c => c !== 'income' && !(c === 'fnlwgt' && (opts.dropFnlwgt ?? true)))
  const featureNames: string[] = []
  const sensitiveColumns: number[] = []
  type Enc = { name: string; numeric: true; mean: number; std: number; col: number } | { name: string; numeric: false; cats: Map<string, number> }
  const encs: Enc[] = []
  for (const name of attrs) {
    if (NUMERIC.has(name)) {
      const vs = tr.map(r => r[name]).filter((v): v is number => typeof v === 'number')
      const mean = vs.reduce((a, b) => a + b, 0) / vs.length
      const std = Math.sqrt(vs.reduce((a, b) => a + (b - mean) ** 2, 0) / vs.length) || 1
      encs.push({ name, numeric: true, mean, std, col: featureNames.length })
      featureNames.push(name)
    } else {
      const values = [...new Set(tr.map(r => String(r[name] ?? '?')))].sort()
      const cats = new Map<string, number>()
      for (const v of values) {
        cats.set(v, featureNames.length)
        if (name === sensitive) sensitiveColumns.push(featureNames.length)
        featureNames.push(`${name}=${v}`)
      }
      encs.push({ name, numeric: false, cats })
    }
  }
  const groupNames = [...new Set(tr.map(r => String(r[sensitive])))].sort()
  const encode = (rows: readonly AdultRecord[]): TabularData => {
    const d = featureNames.length
    const x = new Float32Array(rows.length * d)
    const y = new Uint8Array(rows.length)
    const groups = new Int32Array(rows.length)
    rows.forEach((r, i) => {
      for (const e of encs) {
        const v = r[e.name as keyof AdultRecord]
        if (e.numeric) x[i * d + e.col] = typeof v === 'number' ? (v - e.mean) / e.std : 0
        else {
          const col = e.cats.get(String(v ?? '?'))
          if (col !== undefined) x[i * d + col] = 1
        }
      }
      y[i] = r.income
      // A group never seen in training has no id; it joins the last group rather than breaking the encoding.
      const g = groupNames.indexOf(String(r[sensitive]))
      groups[i] = g >= 0 ? g : groupNames.length - 1
    })
    return { x, n: rows.length, d, y, groups, numGroups: groupNames.length, featureNames, groupNames, sensitiveColumns }
  }
  return { train: encode(tr), test: encode(te) }
}

export interface LoadAdultOptions extends EncodeAdultOptions {
  /** Folder holding `adult.data.gz` and `adult.test.gz` (or the uncompressed files); default: the copy bundled in this package. */
  readonly dir?: string | URL
}

/** Read, parse and encode the bundled UCI Adult copy (CC BY 4.0, Becker & Kohavi 1996). Node only. */
export async function loadAdult(opts: LoadAdultOptions = {}): Promise<E.Either<ParseError, AdultSplits>> {
  // wrong options are the caller's bug, not the data's: a rejection before anything is read (a Left is for the files)
  opts = options('loadAdult', opts, Object.keys(LOAD_KEYS))
  checkEncodeOptions('loadAdult', opts)
  if (opts.dir !== undefined && typeof opts.dir !== 'string' && !(opts.dir instanceof URL))
    throw new ArgumentError({ op: 'loadAdult', arg: 'dir', expected: 'a folder path or file: URL', actual: kindOf(opts.dir) })
  // Imported lazily so that the package stays importable where node:fs does not exist.
  const fs = await import('node:fs/promises')
  const zlib = await import('node:zlib')
  const dir = opts.dir ?? new URL('../data/', import.meta.url)
  const read = async (name: string): Promise<E.Either<ParseError, string>> => {
    const base = typeof dir === 'string' ? new URL(`file://${dir.endsWith('/') ? dir : dir + '/'}`) : dir
    for (const [file, gz] of [[`${name}.gz`, true], [name, false]] as const) {
      try {
        const buf = await fs.readFile(new URL(file, base))
        return E.right((gz ? zlib.gunzipSync(buf) : buf).toString('utf8'))
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') return E.left(new ParseError({ op: 'loadAdult', arg: file, expected: 'a readable Adult file', actual: String(err) }))
      }
    }
    return E.left(new ParseError({ op: 'loadAdult', arg: name, expected: `${name}.gz or ${name} in ${String(dir)}`, actual: 'no such file' }))
  }
  const trainText = await read('adult.data')
  if (E.isLeft(trainText)) return trainText
  const testText = await read('adult.test')
  if (E.isLeft(testText)) return testText
  const train = parseAdult(trainText.right)
  if (E.isLeft(train)) return train
  const test = parseAdult(testText.right)
  if (E.isLeft(test)) return test
  return E.right(encode(train.right, test.right, opts))
}
