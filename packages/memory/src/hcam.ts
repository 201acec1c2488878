/**
 * HCAM, hierarchical chunk attention memory (Lampinen, Chan, Banino, Hill 2021). The past is stored as chunks of
 * C steps, each summarised by the mean of its rows. A query scores every summary, keeps the top k, attends inside
 * each kept chunk with ordinary attention, and mixes the k results by a softmax over the k kept scores only. Per
 * query that costs O(M·D) for the summaries plus O(k·C·D) for the chunks, against O(M·C·D) for full attention.
 *
 * Stored keys and contents are cut from the gradient (the paper's stop-gradient): memory is a record of the past,
 * not a parameter.
 */
import { scaledDotProductAttention } from '@heed/attention'
import { config, finite, flag, kindOf, oneOf, optionKeys } from './internal.js'
import {
  positiveInt,
  checkAllocation,
  isFloat,
  knownOptions,
  ArgumentError,
  DTypeError,
  ShapeError,
  ValueError,
  add,
  concat,
  dispose,
  full,
  gather,
  greater,
  logicalAnd,
  isTensor,
  matmul,
  mean,
  mul,
  permute,
  reshape,
  scope,
  slice,
  softmax,
  stopGradient,
  sum,
  tensor,
  topk,
  where,
  type Tensor,
} from '@heed/tensor'

export interface HcamMemory {
  readonly chunkSize: number
  /** Oldest chunks are dropped beyond this many (a ring buffer); Infinity by default. */
  readonly maxChunks: number
  /** `[M, D]` chunk summaries (means), or null while empty. */
  readonly keys: Tensor | null
  /** `[M, C, D]` chunk rows. */
  readonly contents: Tensor | null
  /** Absolute position one past each stored chunk's last row. */
  readonly ends: readonly number[]
  /** Rows of the incomplete chunk, not yet attendable. */
  readonly pending: Tensor | null
  /** Rows written so far. */
  readonly position: number
}

export interface HcamMemoryOptions {
  /** Rows per stored chunk (each chunk gets one summary key). */
  readonly chunkSize: number
  /** Most chunks kept; the oldest are dropped past it (default: no limit). */
  readonly maxChunks?: number
}

const MEMORY_OPTIONS = optionKeys<HcamMemoryOptions>({ chunkSize: true, maxChunks: true })

/** An empty memory. */
export function hcamMemory(opts: HcamMemoryOptions): HcamMemory {
  const op = 'hcamMemory'
  config(op, opts, MEMORY_OPTIONS, 'opts')
  const chunkSize = positiveInt(op, 'chunkSize', opts?.chunkSize)
  const maxChunks = opts.maxChunks === undefined ? Infinity : positiveInt(op, 'maxChunks', opts.maxChunks)
  return { chunkSize, maxChunks, keys: null, contents: null, ends: [], pending: null, position: 0 }
}

/** An HcamMemory argument (from hcamMemory or hcamWrite): a tensor, an array or null is named here. */
function checkMemory(op: string, mem: HcamMemory): void {
  const slot = (x: unknown): boolean => x === null || isTensor(x)
  if (mem === null || typeof mem !== 'object' || isTensor(mem) || Array.isArray(mem) || typeof mem.chunkSize !== 'number' || !Array.isArray(mem.ends) || !slot(mem.keys) || !slot(mem.contents) || !slot(mem.pending))
    throw new ArgumentError({ op, arg: 'mem', expected: 'an HcamMemory (hcamMemory, hcamWrite)', actual: isTensor(mem) ? 'a Tensor' : mem === null ? 'null' : Array.isArray(mem) ? 'an array' : typeof mem })
}

export function disposeHcam(mem: HcamMemory): void {
  checkMemory('disposeHcam', mem)
  dispose([mem.keys, mem.contents, mem.pending])
}

const copy = (x: Tensor | null): Tensor | null => (x ? reshape(x, x.shape) : null)

/**
 * Append rows `x: [T, D]`. Every time C rows have accumulated they become one chunk, keyed by their mean; the
 * remainder waits. Returns a new memory that shares no tensor with the old one (the caller owns both).
 */
export function hcamWrite(mem: HcamMemory, x: Tensor): HcamMemory {
  const op = 'hcamWrite'
  checkMemory(op, mem)
  if (!isTensor(x) || x.rank !== 2) throw new ShapeError({ op, arg: 'x', expected: 'rows [T, D]', actual: isTensor(x) ? x.shape : typeof x })
  const D = mem.keys?.shape[1] ?? mem.pending?.shape[1] ?? x.shape[1]!
  if (x.shape[1] !== D) throw new ShapeError({ op, arg: 'x', expected: `[T, ${D}]`, actual: x.shape })
  const dt = mem.keys?.dtype ?? mem.pending?.dtype ?? x.dtype
  if (x.dtype !== dt) throw new DTypeError({ op, arg: 'x', expected: dt, actual: x.dtype })
  const C = mem.chunkSize
  return scope(() => {
    const rows = stopGradient(mem.pending ? concat([mem.pending, x]) : x)
    const total = rows.shape[0]!
    const full_ = Math.floor(total / C)
    let keys = mem.keys
    let contents = mem.contents
    let ends = [...mem.ends]
    if (full_ > 0) {
      const chunks = reshape(slice(rows, [[0, full_ * C]]), [full_, C, D])
      const sums = mean(chunks, { axis: 1 })
      keys = keys ? concat([keys, sums]) : sums
      contents = contents ? concat([contents, chunks]) : chunks
      const first = mem.position - (mem.pending?.shape[0] ?? 0)
      for (let i = 0; i < full_; i++) ends.push(first + (i + 1) * C)
      const over = ends.length - mem.maxChunks
      if (over > 0) {
        keys = slice(keys, [[over, ends.length]])
        contents = slice(contents, [[over, ends.length]])
        ends = ends.slice(over)
      }
    }
    const pending = full_ * C < total ? slice(rows, [[full_ * C, total]]) : null
    return {
      chunkSize: C,
      maxChunks: mem.maxChunks,
      keys: keys === mem.keys ? copy(keys) : keys,
      contents: contents === mem.contents ? copy(contents) : contents,
      ends,
      pending,
      position: mem.position + x.shape[0]!,
    }
  })
}

/** Sinusoidal position encodings `[C, D]` (Vaswani et al.), for positions inside a chunk. */
export function sinusoidalPositions(C: number, D: number, dtype: 'float32' | 'float64' = 'float32', backend?: string): Tensor {
  const op = 'sinusoidalPositions'
  positiveInt(op, 'C', C)
  positiveInt(op, 'D', D)
  oneOf(op, 'dtype', dtype, ['float32', 'float64'])
  if (backend !== undefined && typeof backend !== 'string') throw new ArgumentError({ op, arg: 'backend', expected: 'a backend name', actual: typeof backend })
  checkAllocation(op, 'C·D', C * D, dtype)
  const v = new Array<number>(C * D)
  for (let p = 0; p < C; p++)
    for (let i = 0; i < D; i++) {
      const freq = Math.pow(10000, -(2 * Math.floor(i / 2)) / D)
      v[p * D + i] = i % 2 === 0 ? Math.sin(p * freq) : Math.cos(p * freq)
    }
  return tensor(v, [C, D], dtype, backend !== undefined ? { backend } : {})
}

/** Optional learned maps: selection query/key, in-chunk query/key/value, output. All `[D, D]`. */
export interface HcamParams {
  readonly wq: Tensor
  readonly wk: Tensor
  readonly wv: Tensor
  readonly wo: Tensor
}

export interface HcamReadOptions {
  /** Chunks attended per query (k). Clamped to the number of stored chunks. */
  readonly topK: number
  /** Heads of the in-chunk attention (D must divide). Default 1. */
  readonly heads?: number
  /** Score scale; default 1/√D for selection and 1/√(D/heads) inside chunks. */
  readonly scale?: number
  /** `[Q, M]` bool: false rules a chunk out for that query. */
  readonly mask?: Tensor
  /**
   * Absolute position of each query (a number: of query 0, the rest follow). A chunk is eligible only when it
   * ended at or before the query, so the future is never selected.
   */
  readonly queryPositions?: number | readonly number[]
  /** Add sinusoidal position encodings to chunk rows before attending inside them. Default false. */
  readonly positionalEncoding?: boolean
  /** Learned projections of the read (default: identity, the parameter-free read). */
  readonly params?: HcamParams
}

export interface HcamReadResult {
  /** `[Q, D]` */
  readonly out: Tensor
  /** `[Q, k]` int32 chunk indices by descending score; −1 where fewer than k chunks were eligible. */
  readonly indices: Tensor
  /** `[Q, k]` relevance weights (softmax over the kept scores; 0 for ineligible slots). */
  readonly weights: Tensor
  /** Multiply-adds per query actually spent: selection M·D, in-chunk scores and mixing 2·k·C·D. */
  readonly cost: { readonly selection: number; readonly chunks: number; readonly fullAttention: number }
}

const READ_OPTIONS = optionKeys<HcamReadOptions>({ topK: true, heads: true, scale: true, mask: true, queryPositions: true, positionalEncoding: true, params: true })

/** Queries are a float [Q, D] tensor: checked first, so a wrong one is blamed, not the memory's keys. */
function checkQueries(op: string, queries: Tensor, opts?: HcamReadOptions): void {
  if (!isTensor(queries) || queries.rank !== 2) throw new ShapeError({ op, arg: 'queries', expected: '[Q, D]', actual: isTensor(queries) ? queries.shape : queries === null ? 'null' : typeof queries })
  if (!isFloat(queries.dtype)) throw new DTypeError({ op, arg: 'queries', expected: 'a float dtype (float32 or float64)', actual: queries.dtype })
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new ArgumentError({ op, arg: 'opts', expected: '{ topK, … }', actual: kindOf(opts) })
  knownOptions(op, opts, READ_OPTIONS)
  flag(op, 'positionalEncoding', opts.positionalEncoding)
  finite(op, 'scale', opts.scale)
  const qp: unknown = opts.queryPositions
  if (qp !== undefined && typeof qp !== 'number' && !Array.isArray(qp)) throw new ValueError({ op, arg: 'queryPositions', expected: 'a start position or one integer position per query', actual: kindOf(qp) })
}

/**
 * Top-k chunk attention of `queries: [Q, D]` over explicit `keys: [M, D]` and `contents: [M, C, D]`. Ties in the
 * selection keep the lower chunk index (topk's order).
 */
export function hcamAttention(queries: Tensor, keys: Tensor, contents: Tensor, opts: HcamReadOptions, chunkEnds?: readonly number[], op = 'hcamAttention'): HcamReadResult {
  checkQueries(op, queries, opts)
  const [Q, D] = queries.shape as [number, number]
  if (keys.rank !== 2 || keys.shape[1] !== D) throw new ShapeError({ op, arg: 'keys', expected: `[M, ${D}]`, actual: keys.shape })
  const M = keys.shape[0]!
  if (contents.rank !== 3 || contents.shape[0] !== M || contents.shape[2] !== D) throw new ShapeError({ op, arg: 'contents', expected: `[${M}, C, ${D}]`, actual: contents.shape })
  for (const [arg, x] of [['keys', keys], ['contents', contents]] as const)
    if (x.dtype !== queries.dtype) throw new DTypeError({ op, arg, expected: queries.dtype, actual: x.dtype })
  const C = contents.shape[1]!
  const kReq = positiveInt(op, 'topK', opts?.topK)
  const heads = positiveInt(op, 'heads', opts.heads ?? 1)
  if (D % heads !== 0) throw new ValueError({ op, arg: 'heads', expected: `a divisor of D=${D}`, actual: heads })
  if (opts.mask !== undefined && (!isTensor(opts.mask) || opts.mask.dtype !== 'bool' || opts.mask.rank !== 2 || opts.mask.shape[0] !== Q || opts.mask.shape[1] !== M))
    throw new ShapeError({ op, arg: 'mask', expected: `bool [${Q}, ${M}]`, actual: isTensor(opts.mask) ? `${opts.mask.dtype} [${opts.mask.shape.join(',')}]` : typeof opts.mask })
  let qPos: number[] | undefined
  if (opts.queryPositions !== undefined) {
    if (!chunkEnds) throw new ArgumentError({ op, arg: 'queryPositions', expected: 'chunk end positions (use hcamRead, or pass chunkEnds)', actual: 'none' })
    const qp = opts.queryPositions
    qPos = typeof qp === 'number' ? Array.from({ length: Q }, (_, i) => qp + i) : [...qp]
    if (qPos.length !== Q || !qPos.every(Number.isInteger)) throw new ValueError({ op, arg: 'queryPositions', expected: `${Q} integer positions`, actual: qp })
  }
  if (chunkEnds && chunkEnds.length !== M) throw new ShapeError({ op, arg: 'chunkEnds', expected: `${M} entries`, actual: chunkEnds.length })
  const k = Math.min(kReq, M)
  const p = opts.params
  const dt = queries.dtype
  return scope(() => {
    const mem = stopGradient(contents)
    const sel = stopGradient(keys)
    const qSel = p ? matmul(queries, p.wq) : queries
    const kSel = p ? matmul(sel, p.wk) : sel
    const scale = opts.scale ?? 1 / Math.sqrt(D)
    let logits = mul(matmul(qSel, kSel, { transposeB: true }), scale) // [Q, M]
    let allowed: Tensor | undefined = opts.mask
    if (qPos) {
      const v = new Array<boolean>(Q * M)
      for (let i = 0; i < Q; i++) for (let m = 0; m < M; m++) v[i * M + m] = chunkEnds![m]! <= qPos[i]!
      const causal = tensor(v, [Q, M], 'bool', { backend: queries.backend })
      allowed = allowed ? logicalAnd(allowed, causal) : causal
    }
    // A finite stand-in for −∞: top-k still sorts it last, and exp() of it beside any eligible score is 0.
    const NEG = dt === 'float16' ? -6e4 : -1e30
    if (allowed) logits = where(allowed, logits, NEG)
    const top = topk(logits, k)
    const eligible = greater(top.values, NEG / 2)
    const weights = where(eligible, softmax(top.values), 0) // [Q, k]
    const indices = where(eligible, top.indices, -1)
    const flat = reshape(top.indices, [Q * k])
    let rows = gather(mem, flat, 0) // [Q·k, C, D]
    if (opts.positionalEncoding) rows = add(rows, sinusoidalPositions(C, D, dt === 'float64' ? 'float64' : 'float32', queries.backend))
    const Dh = D / heads
    const qIn = p ? matmul(queries, p.wq) : queries
    const kIn = p ? matmul(rows, p.wk) : rows
    const vIn = p ? matmul(rows, p.wv) : rows
    // Each (query, kept chunk) pair is one batch row of ordinary attention: one query row against C keys.
    const qB = permute(reshape(mul(reshape(qIn, [Q, 1, D]), full([1, k, 1], 1, { dtype: dt, backend: queries.backend })), [Q * k, 1, heads, Dh]), [0, 2, 1, 3])
    const kB = permute(reshape(kIn, [Q * k, C, heads, Dh]), [0, 2, 1, 3])
    const vB = permute(reshape(vIn, [Q * k, C, heads, Dh]), [0, 2, 1, 3])
    const att = scaledDotProductAttention(qB, kB, vB, opts.scale !== undefined ? { scale: opts.scale } : {})
    const perChunk = reshape(permute(att.out, [0, 2, 1, 3]), [Q, k, D])
    let out = sum(mul(perChunk, reshape(weights, [Q, k, 1])), { axis: 1 })
    if (p) out = matmul(out, p.wo)
    return {
      out,
      indices,
      weights,
      cost: { selection: M * D, chunks: 2 * k * C * D, fullAttention: 2 * M * C * D },
    }
  })
}

/**
 * Read from a memory: only complete chunks are attendable; with `queryPositions`, only chunks already ended. A
 * memory with no complete chunk yet reads as nothing: `out` is 0, `indices` −1 and `weights` 0 (documented, not an
 * error, so a stream can be queried before its first chunk ends).
 */
export function hcamRead(mem: HcamMemory, queries: Tensor, opts: HcamReadOptions): HcamReadResult {
  const op = 'hcamRead'
  checkMemory(op, mem)
  if (!mem.keys || !mem.contents) {
    checkQueries(op, queries, opts)
    positiveInt(op, 'topK', opts?.topK)
    const [Q, D] = queries.shape as [number, number]
    const k = opts.topK
    const be = { backend: queries.backend }
    return {
      out: full([Q, D], 0, { dtype: queries.dtype, ...be }),
      indices: full([Q, k], -1, { dtype: 'int32', ...be }),
      weights: full([Q, k], 0, { dtype: queries.dtype, ...be }),
      cost: { selection: 0, chunks: 0, fullAttention: 0 },
    }
  }
  return hcamAttention(queries, mem.keys, mem.contents, opts, mem.ends, op)
}
