import type { Backend, DataId } from './backend.js'

/** Per-backend live counters behind `memory()`. */
export interface LiveCounters {
  tensors: number
  bytes: number
  storages: number
}

export const liveCounters = new Map<string, LiveCounters>()

export const countersFor = (backend: string): LiveCounters => {
  let c = liveCounters.get(backend)
  if (c === undefined) {
    c = { tensors: 0, bytes: 0, storages: 0 }
    liveCounters.set(backend, c)
  }
  return c
}

/**
 * Reference-counted device storage. Several tensors share one storage when an op returns a view
 * (reshape, squeeze, stopGradient); the device memory is freed when the last of them is disposed.
 */
export class Storage {
  #refs = 0
  constructor(
    readonly backend: Backend,
    readonly dataId: DataId,
    readonly bytes: number,
  ) {
    const c = countersFor(backend.name)
    c.bytes += bytes
    c.storages++
  }
  get refs(): number {
    return this.#refs
  }
  retain(): void {
    this.#refs++
  }
  release(): void {
    if (--this.#refs > 0) return
    const c = countersFor(this.backend.name)
    c.bytes -= this.bytes
    c.storages--
    this.backend.free(this.dataId)
  }
}
