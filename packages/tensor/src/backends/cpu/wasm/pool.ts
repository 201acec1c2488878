/**
 * A pool of worker threads that run exported functions of the kernel module over the shared WebAssembly memory.
 *
 * Kernels are synchronous (the CPU backend's `run` returns its outputs), so dispatch is synchronous too: the
 * calling thread publishes a batch of jobs in a small shared control block, wakes the workers, claims jobs itself
 * like any worker, and blocks until every job is done. Because the caller claims jobs too, workers that are slow
 * to start or descheduled only cost parallelism, never correctness, and the pool can be used before they are up.
 *
 * Control block (Int32Array over a SharedArrayBuffer):
 *  [CLAIM] seq (10 bits) | total (11) | next (11): one word, so a claim (compare-exchange) can only succeed on the
 *          dispatch it read; job arguments are read only after a successful claim, and the caller does not rewrite
 *          them before every job is done, so a claimed job always sees its own dispatch's arguments.
 *  [DONE]  jobs finished; the worker finishing the last one notifies the caller.
 *  [FN]    index of the function in `names`; [FAIL] set when a job threw (the caller then throws).
 *  [ARGS…] the i32 arguments after the job index.
 */

import type { WasmMemory, WasmModule } from './api.js'

const CLAIM = 0
const DONE = 1
const FN = 2
const FAIL = 3
const ARGS = 4
export const MAX_ARGS = 12
export const MAX_JOBS = 2047
const QUIT = -1

/** Where worker threads come from: worker_threads in Node; a browser host would wrap Web Workers the same way. */
export interface WorkerHost {
  /** Start one worker running `source` (a script that calls `heedWorkerMain(data)`) with `data` posted to it. */
  spawn(source: string, data: WorkerData): WorkerHandle
}

export interface WorkerHandle {
  terminate(): Promise<unknown> | void
}

export interface WorkerData {
  readonly module: WasmModule
  readonly memory: WasmMemory
  readonly control: SharedArrayBuffer
  readonly names: readonly string[]
}

/**
 * The worker's side, as source text: it must run where the TypeScript sources are not loadable (a fresh worker
 * isolate, a Blob URL in a browser), so it is plain JavaScript with no imports. It mirrors `claimLoop` below.
 */
const WORKER_MAIN = `function heedWorkerMain(d) {
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory } })
  const fns = d.names.map(n => inst.exports[n])
  const c = new Int32Array(d.control)
  for (;;) {
    const w = Atomics.load(c, ${CLAIM})
    if (w === ${QUIT}) return
    const next = w & 0x7ff
    const total = (w >>> 11) & 0x7ff
    if (next >= total) { Atomics.wait(c, ${CLAIM}, w); continue }
    if (Atomics.compareExchange(c, ${CLAIM}, w, w + 1) !== w) continue
    try {
      fns[c[${FN}]](next, c[${ARGS}], c[${ARGS + 1}], c[${ARGS + 2}], c[${ARGS + 3}], c[${ARGS + 4}], c[${ARGS + 5}], c[${ARGS + 6}], c[${ARGS + 7}], c[${ARGS + 8}], c[${ARGS + 9}], c[${ARGS + 10}], c[${ARGS + 11}])
    } catch (e) {
      Atomics.store(c, ${FAIL}, 1)
    }
    if (Atomics.add(c, ${DONE}, 1) + 1 === total) Atomics.notify(c, ${DONE})
  }
}`

/** worker_threads host: workers are unref'd so an idle pool never keeps the process alive. */
export async function nodeWorkerHost(): Promise<WorkerHost | undefined> {
  const spec = 'node:worker_threads'
  let wt: typeof import('node:worker_threads')
  try {
    wt = (await import(spec)) as typeof import('node:worker_threads')
  } catch {
    return undefined
  }
  return {
    spawn(source, data) {
      const w = new wt.Worker(`${source}\nheedWorkerMain(require('node:worker_threads').workerData)`, { eval: true, workerData: data })
      w.unref()
      // a worker that dies only costs parallelism: its unclaimed jobs fall to the caller
      w.on('error', () => undefined)
      return w
    },
  }
}

interface WebWorkerLike {
  postMessage(data: unknown): void
  terminate(): void
  addEventListener(type: 'error', listener: () => void): void
}
interface WebGlobals {
  Worker?: new (url: string) => WebWorkerLike
  Blob?: new (parts: string[], opts: { type: string }) => object
  URL?: { createObjectURL(blob: object): string }
}

/**
 * Web Worker host for browsers (cross-origin isolated pages, where SharedArrayBuffer exists): each worker runs the
 * same source from a Blob URL and receives its data by message. Where workers cannot be created (no Worker, a CSP
 * without blob:), kernels simply stay on the calling thread.
 */
export function webWorkerHost(): WorkerHost | undefined {
  const g = globalThis as WebGlobals
  const { Worker, Blob, URL } = g
  if (!Worker || !Blob || !URL) return undefined
  return {
    spawn(source, data) {
      const url = URL.createObjectURL(new Blob([`${source}\nonmessage = e => heedWorkerMain(e.data)`], { type: 'text/javascript' }))
      const w = new Worker(url)
      w.addEventListener('error', () => undefined)
      w.postMessage(data)
      return w
    },
  }
}

type JobFn = (job: number, ...args: number[]) => void

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0)
    return true
  } catch {
    return false
  }
}

export class WorkerPool {
  readonly #control: Int32Array
  readonly #workers: WorkerHandle[] = []
  readonly #fns: readonly JobFn[]
  readonly #names: readonly string[]
  readonly #block = canBlock()
  #seq = 0
  #closed = false

  /** `threads` counts the calling thread: a pool of N threads starts N − 1 workers. */
  constructor(
    host: WorkerHost,
    module: WasmModule,
    memory: WasmMemory,
    exports: Readonly<Record<string, unknown>>,
    names: readonly string[],
    readonly threads: number,
  ) {
    this.#control = new Int32Array(new SharedArrayBuffer((ARGS + MAX_ARGS) * 4))
    this.#names = names
    this.#fns = names.map(n => exports[n] as JobFn)
    for (let i = 1; i < threads; i++) this.#workers.push(host.spawn(WORKER_MAIN, { module, memory, control: this.#control.buffer as SharedArrayBuffer, names }))
  }

  /** Run fn(job, ...args) for job in [0, total) across the pool; returns when all are done. */
  run(name: string, total: number, args: readonly number[]): void {
    const fi = this.#names.indexOf(name)
    const fn = this.#fns[fi]
    if (!fn || this.#closed) throw new Error(`pool: cannot run ${name}`)
    if (total > MAX_JOBS || args.length > MAX_ARGS) throw new RangeError('pool: too many jobs or arguments')
    const c = this.#control
    c[FN] = fi
    c.set(args, ARGS)
    Atomics.store(c, FAIL, 0)
    Atomics.store(c, DONE, 0)
    // seq skips 1023 so that a live word can never equal QUIT (all ones)
    this.#seq = (this.#seq + 1) % 1023
    Atomics.store(c, CLAIM, (this.#seq << 22) | (total << 11))
    Atomics.notify(c, CLAIM)
    const a = Array.from({ length: MAX_ARGS }, (_, i) => args[i] ?? 0)
    for (;;) {
      const w = Atomics.load(c, CLAIM)
      const next = w & 0x7ff
      if (next >= ((w >>> 11) & 0x7ff)) break
      if (Atomics.compareExchange(c, CLAIM, w, w + 1) !== w) continue
      try {
        fn(next, ...a)
      } catch {
        Atomics.store(c, FAIL, 1)
      }
      Atomics.add(c, DONE, 1)
    }
    for (let d = Atomics.load(c, DONE); d < total; d = Atomics.load(c, DONE)) {
      if (this.#block) Atomics.wait(c, DONE, d)
    }
    if (Atomics.load(c, FAIL) !== 0) throw new Error(`pool: a ${name} job failed`)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    Atomics.store(this.#control, CLAIM, QUIT)
    Atomics.notify(this.#control, CLAIM)
    await Promise.all(this.#workers.map(w => w.terminate()))
  }
}
