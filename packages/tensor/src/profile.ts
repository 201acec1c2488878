import { liveBackends, startRecording, stopRecording } from './engine.js'
import { requireFunction } from './validate.js'

/** One kernel in a profile. */
export interface KernelProfile {
  /** The public op that launched it (`matmul`), and the kernel name (`MatMul`). */
  readonly op: string
  readonly kernel: string
  readonly backend: string
  /** Milliseconds: device time from timestamp queries where the adapter has them, else host wall time. */
  readonly ms: number
  readonly source: 'gpu-timestamp' | 'wall'
}

export interface Profile<T> {
  readonly result: T
  readonly kernels: readonly KernelProfile[]
  /** Wall time of the whole call, including awaits. */
  readonly wallMs: number
  /** Total per kernel name, largest first: the table people read first. */
  readonly byKernel: readonly { readonly kernel: string; readonly backend: string; readonly calls: number; readonly ms: number }[]
}

/**
 * Run `fn` and report every kernel it launched with its time. On WebGPU adapters with `timestamp-query` the
 * times are device times of each dispatch; elsewhere they are host wall times of each kernel call (on the CPU
 * that is the compute itself).
 */
export async function profile<T>(fn: () => T | Promise<T>): Promise<Profile<T>> {
  requireFunction('profile', 'fn', fn)
  const backends = liveBackends()
  for (const b of backends) b.beginProfile?.()
  const prev = startRecording()
  const t0 = performance.now()
  let result: T
  let calls
  try {
    result = await fn()
  } finally {
    calls = stopRecording(prev)
  }
  const device = new Map<string, readonly { kernel: string; ms: number }[]>()
  for (const b of backends) {
    const timings = await b.endProfile?.()
    if (timings) device.set(b.name, timings)
  }
  const wallMs = performance.now() - t0
  const kernels: KernelProfile[] = []
  const gpuQueues = new Map([...device].map(([name, list]) => [name, [...list]]))
  for (const c of calls) {
    const q = gpuQueues.get(c.backend)
    if (q === undefined) {
      kernels.push({ ...c, source: 'wall' })
      continue
    }
    // a kernel call may launch zero or several dispatches: they come in order and carry the kernel's name
    let ms = 0
    while (q.length > 0 && q[0]!.kernel === c.kernel) ms += q.shift()!.ms
    kernels.push({ ...c, ms, source: 'gpu-timestamp' })
  }
  const totals = new Map<string, { kernel: string; backend: string; calls: number; ms: number }>()
  for (const k of kernels) {
    const key = `${k.backend}:${k.kernel}`
    const e = totals.get(key) ?? { kernel: k.kernel, backend: k.backend, calls: 0, ms: 0 }
    e.calls++
    e.ms += k.ms
    totals.set(key, e)
  }
  return { result, kernels, wallMs, byKernel: [...totals.values()].sort((a, b) => b.ms - a.ms) }
}
