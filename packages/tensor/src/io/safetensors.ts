import { either as E } from 'fp-ts'
import { allocArray, f16BitsToF32, f32ToF16Bits, type DType } from '../dtype.js'
import { ArgumentError, ParseError, ValueError } from '../errors.js'
import { fromValues } from '../engine.js'
import { sizeOf } from '../shape.js'
import { isTensor, type Tensor } from '../Tensor.js'
import { knownOptions } from '../validate.js'

/**
 * safetensors (https://github.com/huggingface/safetensors, "Format" section): an 8-byte little-endian u64 header
 * length N, N bytes of UTF-8 JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {…} }`,
 * then the data buffer; offsets are relative to the buffer, data is little-endian and row-major.
 *
 * Reading is strict in the way the reference implementation is: offsets must tile the buffer exactly (sorted,
 * contiguous, no holes, no overlap, ending at the end of the file) and each extent must equal shape × dtype size.
 * Everything is validated before any tensor is allocated, so a Left never leaves tensors behind.
 */

/** safetensors dtype names this reader understands, and the heed dtype each becomes. */
export const SAFETENSORS_DTYPES = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'float32', // no bfloat16 dtype in heed: widened exactly
  I64: 'int32', // range-checked: values outside int32 are a ParseError, or read as float64 with { int64: 'float64' }
  I32: 'int32',
  I16: 'int32',
  I8: 'int32',
  U64: 'uint32', // range-checked, as I64
  U32: 'uint32',
  U16: 'uint32',
  U8: 'uint32',
  BOOL: 'bool',
  // 8-bit floats (OCP FP8: E4M3 "fn", no infinities; E5M2, IEEE-like): widened exactly
  F8_E4M3: 'float32',
  F8_E5M2: 'float32',
} as const satisfies Record<string, DType>

/** safetensors dtypes this reader rejects, and why (the ParseError says it). */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  C64: 'complex64 has no heed dtype (heed tensors are real): store the real and imaginary parts as two F32 tensors',
  F8_E8M0: 'E8M0 is a scale format (MX block exponents), not a value dtype; heed has no microscaling support',
  F4: '4-bit floats are packed two per byte with block scales; heed has no microscaling support',
  F6_E2M3: '6-bit floats are packed with block scales; heed has no microscaling support',
  F6_E3M2: '6-bit floats are packed with block scales; heed has no microscaling support',
}

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPES

const BYTES: Record<SafetensorsDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1 }

const WRITE: Record<DType, SafetensorsDType> = { float64: 'F64', float32: 'F32', float16: 'F16', int32: 'I32', uint32: 'U32', bool: 'BOOL' }

/** One entry of a parsed header. `begin`/`end` are absolute byte offsets into the file. */
export interface SafetensorsEntry {
  readonly name: string
  readonly dtype: SafetensorsDType
  readonly shape: readonly number[]
  readonly begin: number
  readonly end: number
}

export interface SafetensorsHeader {
  readonly entries: readonly SafetensorsEntry[]
  readonly metadata: Readonly<Record<string, string>>
  /** Absolute offset of the data buffer (8 + N). */
  readonly dataStart: number
}

export interface LoadOptions {
  /** Backend to allocate on (default: the current backend). */
  readonly backend?: string
  /**
   * How I64/U64 tensors are read: `'int32'` (default; int32/uint32, a value outside that range is a ParseError) or
   * `'float64'` (every value exactly up to 2^53 in magnitude, which covers token ids, counts and byte offsets).
   */
  readonly int64?: 'int32' | 'float64'
}

/** The reference implementation's cap, so a hostile length cannot make us decode gigabytes of "JSON". */
const MAX_HEADER = 100_000_000

/** A Left naming `op`: the public function called (`parseSafetensors`, `parseSafetensorsHeader`, `loadSafetensors`). */
const failAs =
  (op: string) =>
  (arg: string, expected: unknown, actual: unknown, msg?: string): E.Either<ParseError, never> =>
    E.left(new ParseError({ op, arg, expected, actual }, msg))

const describe = (u: unknown): string => (u === null ? 'null' : Array.isArray(u) ? 'an array' : typeof u === 'string' ? JSON.stringify(u) : typeof u === 'object' ? 'an object' : String(u))

const isRecord = (u: unknown): u is Record<string, unknown> => u !== null && typeof u === 'object' && !Array.isArray(u)

/** Parse and validate the header without reading tensor data. */
export function parseSafetensorsHeader(bytes: Uint8Array): E.Either<ParseError, SafetensorsHeader> {
  return parseHeader('parseSafetensorsHeader', bytes)
}

function parseHeader(op: string, bytes: Uint8Array): E.Either<ParseError, SafetensorsHeader> {
  const fail = failAs(op)
  if (!(bytes instanceof Uint8Array)) return fail('bytes', 'a Uint8Array', describe(bytes))
  if (bytes.length < 8) return fail('header length', 'at least 8 bytes', `a file of ${bytes.length} bytes`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const lo = view.getUint32(0, true)
  const hi = view.getUint32(4, true)
  const n = hi * 2 ** 32 + lo
  if (n > MAX_HEADER) return fail('header length', `at most ${MAX_HEADER} bytes`, n)
  if (8 + n > bytes.length) return fail('header length', `at most ${bytes.length - 8} (file is ${bytes.length} bytes)`, n, 'header runs past the end of the file')
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n))
  } catch {
    return fail('header', 'UTF-8 JSON', 'invalid UTF-8')
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    return fail('header', 'valid JSON', (err as Error).message, 'header is not JSON')
  }
  if (!isRecord(json)) return fail('header', 'a JSON object', describe(json))
  // JSON.parse keeps the last of two equal keys; the reference reader rejects the file
  const dup = duplicateKey(text)
  if (dup !== undefined) return fail('header', 'distinct keys in every object', JSON.stringify(dup), `key ${JSON.stringify(dup)} appears twice`)

  const dataStart = 8 + n
  const bufferLength = bytes.length - dataStart
  const meta: [string, string][] = []
  const entries: SafetensorsEntry[] = []
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isRecord(raw)) return fail('__metadata__', 'an object of strings', describe(raw))
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') return fail(`__metadata__.${k}`, 'a string', describe(v))
        meta.push([k, v])
      }
      continue
    }
    const where = `tensor ${JSON.stringify(name)}`
    if (!isRecord(raw)) return fail(where, 'an object { dtype, shape, data_offsets }', describe(raw))
    const { dtype, shape, data_offsets: offsets } = raw
    if (dtype === undefined) return fail(`${where}.dtype`, 'a dtype', 'nothing (missing field)')
    if (typeof dtype === 'string' && Object.hasOwn(UNSUPPORTED, dtype)) return fail(`${where}.dtype`, `one of ${Object.keys(BYTES).join(', ')}`, dtype, `unsupported dtype: ${UNSUPPORTED[dtype]}`)
    if (typeof dtype !== 'string' || !Object.hasOwn(BYTES, dtype))
      return fail(`${where}.dtype`, `one of ${Object.keys(BYTES).join(', ')}`, describe(dtype), 'unknown dtype')
    if (shape === undefined) return fail(`${where}.shape`, 'a shape', 'nothing (missing field)')
    if (!Array.isArray(shape) || !shape.every(d => Number.isSafeInteger(d) && d >= 0))
      return fail(`${where}.shape`, 'an array of non-negative integers', JSON.stringify(shape))
    if (offsets === undefined) return fail(`${where}.data_offsets`, '[begin, end]', 'nothing (missing field)')
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(o => Number.isSafeInteger(o) && o >= 0))
      return fail(`${where}.data_offsets`, '[begin, end] of non-negative integers', JSON.stringify(offsets))
    const [begin, end] = offsets as [number, number]
    if (begin > end) return fail(`${where}.data_offsets`, 'begin ≤ end', JSON.stringify(offsets))
    if (end > bufferLength) return fail(`${where}.data_offsets`, `end ≤ ${bufferLength} (data buffer size)`, end, 'offsets run past the end of the file')
    const st = dtype as SafetensorsDType
    const want = sizeOf(shape as number[]) * BYTES[st]
    if (end - begin !== want)
      return fail(`${where}.data_offsets`, `${want} bytes for ${st}[${shape.join(',')}]`, `${end - begin} bytes`, 'extent does not match shape × dtype size')
    entries.push({ name, dtype: st, shape: shape as number[], begin: dataStart + begin, end: dataStart + end })
  }
  // Tiling check on a sorted copy; the returned entries keep header order.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let cursor = dataStart
  for (const e of sorted) {
    if (e.begin < cursor) return fail(`tensor ${JSON.stringify(e.name)}.data_offsets`, `begin ≥ ${cursor - dataStart}`, e.begin - dataStart, 'overlaps the previous tensor')
    if (e.begin > cursor) return fail(`tensor ${JSON.stringify(e.name)}.data_offsets`, `begin = ${cursor - dataStart}`, e.begin - dataStart, 'leaves a hole in the data buffer')
    cursor = e.end
  }
  if (cursor !== bytes.length) return fail('data buffer', `${cursor - dataStart} bytes (what the header describes)`, `${bufferLength} bytes`, 'trailing bytes after the last tensor')
  // fromEntries defines own properties, so a "__proto__" key stays data instead of becoming a prototype.
  return E.right({ entries, metadata: Object.fromEntries(meta), dataStart })
}

/**
 * The first key that appears twice in one object of a JSON text (already known to parse), or undefined. A small
 * scanner over strings and brackets: a string followed by ':' inside an object is a key.
 */
function duplicateKey(text: string): string | undefined {
  const stack: (Set<string> | null)[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      const top = stack[stack.length - 1]
      if (top) {
        let k = j + 1
        while (k < text.length && ' \t\n\r'.includes(text[k]!)) k++
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string
          if (top.has(key)) return key
          top.add(key)
        }
      }
      i = j
    } else if (c === '{') stack.push(new Set())
    else if (c === '[') stack.push(null)
    else if (c === '}' || c === ']') stack.pop()
  }
  return undefined
}

/** OCP FP8 E4M3 ("fn": bias 7, no infinities, S.1111.111 is NaN) to its exact value. */
function f8e4m3(b: number): number {
  const s = b & 0x80 ? -1 : 1
  const e = (b >> 3) & 0xf
  const m = b & 7
  if (e === 0xf && m === 7) return NaN
  return e === 0 ? s * (m / 8) * 2 ** -6 : s * (1 + m / 8) * 2 ** (e - 7)
}

/** OCP FP8 E5M2 (bias 15, IEEE-like infinities and NaNs) to its exact value. */
function f8e5m2(b: number): number {
  const s = b & 0x80 ? -1 : 1
  const e = (b >> 2) & 0x1f
  const m = b & 3
  if (e === 0x1f) return m ? NaN : s * Infinity
  return e === 0 ? s * (m / 4) * 2 ** -14 : s * (1 + m / 4) * 2 ** (e - 15)
}

/** The heed dtype an entry is read as. */
const dtypeOf = (e: SafetensorsEntry, opts: LoadOptions): DType => ((e.dtype === 'I64' || e.dtype === 'U64') && opts.int64 === 'float64' ? 'float64' : SAFETENSORS_DTYPES[e.dtype])

/**
 * Decode one entry to host values of its heed dtype; Left when an I64/U64 value does not fit or a BOOL byte is not
 * 0/1. Floats of 32 bits and less are written by their bits, so NaN payloads survive (a float16 NaN keeps its
 * payload in the float32's top mantissa bits, and comes back out on save).
 */
function decode(op: string, bytes: Uint8Array, e: SafetensorsEntry, opts: LoadOptions): E.Either<ParseError, ReturnType<typeof allocArray>> {
  const fail = failAs(op)
  const dt = dtypeOf(e, opts)
  const n = sizeOf(e.shape)
  const out = allocArray(dt, n, op)
  const bits = out instanceof Float32Array ? new Uint32Array(out.buffer, out.byteOffset, n) : undefined
  const v = new DataView(bytes.buffer, bytes.byteOffset + e.begin, e.end - e.begin)
  const w = BYTES[e.dtype]
  for (let i = 0; i < n; i++) {
    const o = i * w
    switch (e.dtype) {
      case 'F64': out[i] = v.getFloat64(o, true); break
      case 'F32': bits![i] = v.getUint32(o, true); break
      case 'F16': {
        const h = v.getUint16(o, true)
        if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) bits![i] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)
        else out[i] = f16BitsToF32(h)
        break
      }
      // bfloat16 is the top half of a float32.
      case 'BF16': bits![i] = v.getUint16(o, true) << 16; break
      case 'F8_E4M3': out[i] = f8e4m3(v.getUint8(o)); break
      case 'F8_E5M2': out[i] = f8e5m2(v.getUint8(o)); break
      case 'I32': out[i] = v.getInt32(o, true); break
      case 'I16': out[i] = v.getInt16(o, true); break
      case 'I8': out[i] = v.getInt8(o); break
      case 'U32': out[i] = v.getUint32(o, true); break
      case 'U16': out[i] = v.getUint16(o, true); break
      case 'U8': out[i] = v.getUint8(o); break
      case 'BOOL': {
        const b = v.getUint8(o)
        if (b > 1) return fail(`tensor ${JSON.stringify(e.name)}[${i}]`, 'a BOOL byte 0 or 1', b, 'BOOL byte is neither 0 nor 1')
        out[i] = b
        break
      }
      case 'I64':
      case 'U64': {
        const x = e.dtype === 'I64' ? v.getBigInt64(o, true) : v.getBigUint64(o, true)
        const [min, max] = dt === 'float64' ? [-(2n ** 53n), 2n ** 53n] : e.dtype === 'I64' ? [-2147483648n, 2147483647n] : [0n, 4294967295n]
        if (x < min || x > max)
          return fail(
            `tensor ${JSON.stringify(e.name)}[${i}]`,
            `a value in ${dt} range [${min}, ${max}]`,
            String(x),
            dt === 'float64' ? `${e.dtype} value is beyond 2^53, where float64 is no longer exact` : `${e.dtype} value does not fit ${dt} (pass { int64: 'float64' } to read it as float64, exact up to 2^53)`,
          )
        out[i] = Number(x)
        break
      }
    }
  }
  return E.right(out)
}

/**
 * Parse a safetensors file into tensors (owned by the caller). Any malformation is a `Left(ParseError)` naming
 * the field and tensor at fault; nothing is allocated in that case. Options that are not `LoadOptions` (an unknown
 * key, an `int64` other than 'int32' or 'float64') are the program's mistake, not the file's: an `ArgumentError`, thrown.
 */
export function parseSafetensors(bytes: Uint8Array, opts: LoadOptions = {}): E.Either<ParseError, Record<string, Tensor>> {
  return parseAs('parseSafetensors', bytes, opts)
}

/**
 * The options of a load: checked before the file and thrown (an `ArgumentError`), since they are the program's
 * mistake and not the file's; only what comes from the file is a `Left`.
 */
function loadOptions(op: string, opts: unknown): LoadOptions {
  if (!isRecord(opts)) throw new ArgumentError({ op, arg: 'opts', expected: '{ backend?, int64? }', actual: describe(opts) })
  knownOptions(op, opts, LOAD_OPTIONS)
  if (opts['backend'] !== undefined && typeof opts['backend'] !== 'string') throw new ArgumentError({ op, arg: 'backend', expected: 'a backend name', actual: describe(opts['backend']) })
  if (opts['int64'] !== undefined && opts['int64'] !== 'int32' && opts['int64'] !== 'float64')
    throw new ArgumentError({ op, arg: 'int64', expected: "'int32' or 'float64'", actual: describe(opts['int64']) })
  return opts as LoadOptions
}
const LOAD_KEYS: Record<keyof LoadOptions, true> = { backend: true, int64: true }
const LOAD_OPTIONS = Object.keys(LOAD_KEYS)

function parseAs(op: string, bytes: Uint8Array, rawOpts: LoadOptions): E.Either<ParseError, Record<string, Tensor>> {
  const opts = loadOptions(op, rawOpts)
  const header = parseHeader(op, bytes)
  if (E.isLeft(header)) return header
  const host: [SafetensorsEntry, ReturnType<typeof allocArray>][] = []
  for (const e of header.right.entries) {
    const d = decode(op, bytes, e, opts)
    if (E.isLeft(d)) return d
    host.push([e, d.right])
  }
  const made: [string, Tensor][] = []
  try {
    for (const [e, values] of host) made.push([e.name, fromValues(values, e.shape, dtypeOf(e, opts), opts.backend)])
  } catch (err) {
    for (const [, t] of made) t.dispose()
    throw err
  }
  return E.right(Object.fromEntries(made))
}

/** `parseSafetensors` that throws the ParseError: for trusted files at the edge of a program. */
export function loadSafetensors(bytes: Uint8Array, opts: LoadOptions = {}): Record<string, Tensor> {
  const r = parseAs('loadSafetensors', bytes, opts)
  if (E.isLeft(r)) throw r.left
  return r.right
}

/**
 * Serialise tensors (read back from their backend) and optional string metadata. float16 is written as F16
 * bits, bool as BOOL bytes. Tensors are laid out in name order and the header is padded with spaces to a
 * multiple of 8 bytes, as the reference writer does, so the data buffer is aligned. Inputs are not disposed.
 */
export async function saveSafetensors(tensors: Readonly<Record<string, Tensor>>, metadata?: Readonly<Record<string, string>>): Promise<Uint8Array> {
  const op = 'saveSafetensors'
  if (!isRecord(tensors)) throw new ArgumentError({ op, arg: 'tensors', expected: 'a record of tensors', actual: describe(tensors) })
  const names = Object.keys(tensors).sort()
  for (const name of names) {
    if (name === '__metadata__' || name === '') throw new ValueError({ op, arg: 'tensors', expected: 'tensor names other than "" and "__metadata__"', actual: JSON.stringify(name) })
    const t = tensors[name]
    if (!isTensor(t)) throw new ArgumentError({ op, arg: `tensors.${name}`, expected: 'a Tensor', actual: describe(t) })
    t.assertLive(op)
  }
  if (metadata !== undefined) {
    if (!isRecord(metadata)) throw new ArgumentError({ op, arg: 'metadata', expected: 'a record of strings', actual: describe(metadata) })
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new ArgumentError({ op, arg: `metadata.${k}`, expected: 'a string', actual: describe(v) })
  }
  const header: [string, unknown][] = []
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.push(['__metadata__', Object.fromEntries(Object.entries(metadata))])
  let offset = 0
  const parts: { t: Tensor; st: SafetensorsDType; begin: number }[] = []
  for (const name of names) {
    const t = tensors[name]!
    const st = WRITE[t.dtype]
    const size = t.size * BYTES[st]
    header.push([name, { dtype: st, shape: [...t.shape], data_offsets: [offset, offset + size] }])
    parts.push({ t, st, begin: offset })
    offset += size
  }
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)))
  const n = Math.ceil(json.length / 8) * 8
  const out = new Uint8Array(8 + n + offset)
  const view = new DataView(out.buffer)
  view.setUint32(0, n % 2 ** 32, true)
  view.setUint32(4, Math.floor(n / 2 ** 32), true)
  out.set(json, 8)
  out.fill(0x20, 8 + json.length, 8 + n)
  const values = await Promise.all(parts.map(p => p.t.data()))
  parts.forEach(({ st, begin }, k) => {
    const v = values[k]!
    const base = 8 + n + begin
    // float32 host values are written by their bits, so NaN payloads survive a load/save round trip
    const bits = v instanceof Float32Array ? new Uint32Array(v.buffer, v.byteOffset, v.length) : undefined
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!
      switch (st) {
        case 'F64': view.setFloat64(base + i * 8, x, true); break
        case 'F32': bits ? view.setUint32(base + i * 4, bits[i]!, true) : view.setFloat32(base + i * 4, x, true); break
        case 'F16': {
          const u = bits?.[i]
          // a NaN keeps its sign and top payload bits (a quiet bit if those are all zero)
          const h = u !== undefined && (u & 0x7f800000) === 0x7f800000 && u & 0x7fffff ? ((u >>> 16) & 0x8000) | 0x7c00 | ((u >>> 13) & 0x3ff || 0x200) : f32ToF16Bits(x)
          view.setUint16(base + i * 2, h, true)
          break
        }
        case 'I32': view.setInt32(base + i * 4, x, true); break
        case 'U32': view.setUint32(base + i * 4, x, true); break
        default: view.setUint8(base + i, x ? 1 : 0)
      }
    }
  })
  return out
}
