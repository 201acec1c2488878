import type { Attrs, Backend, TensorInfo } from './backend.js'
import { CpuBackend } from './backends/cpu/CpuBackend.js'
import { bytesPerElement } from './dtype.js'
import { ArgumentError, BackendError, DeviceLostError, ValueError, kindOf } from './errors.js'
import { sizeOf } from './shape.js'
import { Storage } from './storage.js'
import { Tensor } from './Tensor.js'
import { requireFunction } from './validate.js'

/**
 * Global engine state: the backends, which one is current, and the stack of open scopes. Backends are created
 * lazily on first use (nothing happens at import time), so `sideEffects: false` holds.
 */

export type BackendFactory = () => Backend | Promise<Backend>

/** A backend or kernel name: a non-empty string (`registerBackend(undefined, …)` would add an `undefined` backend). */
function requireName(op: string, arg: string, v: unknown): void {
  if (typeof v !== 'string' || v === '') throw new ArgumentError({ op, arg, expected: 'a non-empty string', actual: v === '' ? 'an empty string' : kindOf(v) })
}

const factories = new Map<string, BackendFactory>([
  ['cpu', () => new CpuBackend()],
  // Imported on demand so that Dawn (the optional `webgpu` package) loads only for those who ask for it.
  ['webgpu', async () => (await import('./backends/webgpu/index.js')).createWebGpuBackend()],
])
const instances = new Map<string, Backend>()
/** Re-acquisitions in flight after a device loss. */
const reacquiring = new Map<string, Promise<Backend>>()
let current = 'cpu'

/** Make a backend available under `name` (the WebGPU entry point registers itself this way when asked to). */
export function registerBackend(name: string, factory: BackendFactory): void {
  requireName('registerBackend', 'name', name)
  requireFunction('registerBackend', 'factory', factory)
  factories.set(name, factory)
  instances.delete(name)
}

/** Kernels added by other packages, replayed into every instance of their backend (also after a device loss). */
const extensionKernels = new Map<string, Map<string, unknown>>()

/**
 * Add a kernel to a backend by name: how packages beyond @heed/tensor bring fused kernels without touching it.
 * `impl` has the backend's kernel type (`CpuKernel` for cpu, `WebGpuKernel` for webgpu). Idempotent.
 */
export function registerKernel(backend: string, kernel: string, impl: unknown): void {
  requireName('registerKernel', 'backend', backend)
  requireName('registerKernel', 'kernel', kernel)
  requireFunction('registerKernel', 'impl', impl as () => unknown)
  let m = extensionKernels.get(backend)
  if (!m) extensionKernels.set(backend, (m = new Map()))
  m.set(kernel, impl)
  instances.get(backend)?.registerKernel?.(kernel, impl)
}

/** Whether `backend` (instantiated) has `kernel`. */
export const hasKernel = (backend: string, kernel: string): boolean =>
  instances.get(backend)?.hasKernel(kernel) ?? extensionKernels.get(backend)?.has(kernel) ?? false

/** Names of the backends that can be selected. */
export const listBackends = (): string[] => [...factories.keys()]

/** Instantiate (once) and return a backend. Async because GPU backends acquire a device. */
export function initBackend(name: string): Promise<Backend> {
  return initAs('initBackend', name)
}

/** `initBackend` in the name of the public function called (`setBackend`, `ready`, `initBackend`). */
async function initAs(op: string, name: string): Promise<Backend> {
  const have = instances.get(name)
  if (have) return have
  const factory = factories.get(name)
  if (!factory) throw new BackendError({ op, arg: 'name', expected: `one of ${listBackends().join(', ')}`, actual: typeof name === 'string' ? name : kindOf(name) })
  const b = await factory()
  for (const [kernel, impl] of extensionKernels.get(name) ?? []) b.registerKernel?.(kernel, impl)
  instances.set(name, b)
  // A lost device is replaced at once in the background; tensors of the old device stay dead (DeviceLostError).
  b.onLost?.(() => {
    if (instances.get(name) !== b) return
    instances.delete(name)
    const again = initAs('initBackend', name).finally(() => reacquiring.delete(name))
    again.catch(() => undefined)
    reacquiring.set(name, again)
  })
  return b
}

/** Resolves when `name` is usable: immediately, or once a device lost earlier has been re-acquired. */
export async function ready(name: string = current): Promise<void> {
  await (reacquiring.get(name) ?? initAs('ready', name))
}

/** The backend instance for `name`, which must already be initialised (cpu always is). */
export function backendSync(name: string, op = 'backend'): Backend {
  const have = instances.get(name)
  if (have) return have
  if (name === 'cpu') {
    const cpu = new CpuBackend()
    for (const [kernel, impl] of extensionKernels.get('cpu') ?? []) cpu.registerKernel(kernel, impl)
    instances.set('cpu', cpu)
    return cpu
  }
  if (!factories.has(name)) throw new BackendError({ op, arg: 'backend', expected: `one of ${listBackends().join(', ')}`, actual: name })
  if (reacquiring.has(name))
    throw new DeviceLostError({ op, arg: 'backend', actual: name }, `the device was lost and is being re-acquired, await ready('${name}') first`)
  throw new BackendError({ op, arg: 'backend', actual: name }, `backend is not initialised, call await setBackend('${name}') or await initBackend('${name}') first`)
}

/** Select the default backend for new tensors. */
export async function setBackend(name: string): Promise<void> {
  await initAs('setBackend', name)
  current = name
}

export const getBackend = (): string => current

/** Run `fn` with `name` as the default backend (a per-call choice); restores the previous default after. */
export function withBackend<T>(name: string, fn: () => T): T {
  backendSync(name, 'withBackend')
  const prev = current
  current = name
  try {
    return fn()
  } finally {
    current = prev
  }
}

/** Drop an instantiated backend (tests, device loss). The next use re-creates it. */
export function resetBackend(name: string): void {
  instances.delete(name)
}

// ---- profiling ----------------------------------------------------------------------------------------------

/** @internal one kernel call as the engine saw it (host time, which on a GPU is only the encoding). */
export interface KernelCall {
  readonly op: string
  readonly kernel: string
  readonly backend: string
  readonly ms: number
}

let profiler: KernelCall[] | undefined

/** @internal start recording kernel calls; returns the previous recorder (profiles nest). */
export function startRecording(): KernelCall[] | undefined {
  const prev = profiler
  profiler = []
  return prev
}

/** @internal stop recording; restores the enclosing recorder and appends to it. */
export function stopRecording(prev: KernelCall[] | undefined): KernelCall[] {
  const mine = profiler ?? []
  profiler = prev
  prev?.push(...mine)
  return mine
}

/** @internal instantiated backends (profile asks each for device timings). */
export const liveBackends = (): Backend[] => [...instances.values()]

// ---- scopes -----------------------------------------------------------------------------------------------

const scopeStack: Set<Tensor>[] = []

/** @internal every tensor an op or creation function makes passes through here. */
export function track<T extends Tensor>(t: T): T {
  scopeStack[scopeStack.length - 1]?.add(t)
  return t
}

/** @internal */
export const openScope = (): Set<Tensor> => {
  const s = new Set<Tensor>()
  scopeStack.push(s)
  return s
}

/** @internal close the innermost scope, disposing all but `keep`; survivors move to the parent scope. */
export function closeScope(s: Set<Tensor>, keep: ReadonlySet<Tensor>): void {
  const i = scopeStack.lastIndexOf(s)
  if (i >= 0) scopeStack.splice(i, 1)
  const parent = scopeStack[scopeStack.length - 1]
  for (const t of s) {
    if (keep.has(t)) parent?.add(t)
    else t.dispose()
  }
}

/** @internal remove a tensor from every open scope (`keep`). */
export function untrack(t: Tensor): void {
  for (const s of scopeStack) s.delete(t)
}

// ---- tensors from kernels ----------------------------------------------------------------------------------

/** @internal wrap a fresh or shared allocation in a tracked tensor. */
export function wrap(backend: Backend, info: TensorInfo, shared?: Storage): Tensor {
  const storage = shared ?? new Storage(backend, info.dataId, sizeOf(info.shape) * bytesPerElement(info.dtype))
  return track(new Tensor(storage, info.shape, info.dtype))
}

/**
 * @internal a second handle on the same storage, outside every scope and the GC safety net: tapes keep saved values
 * this way, and Tape.release disposes every one of them.
 */
export function shadow<T extends Tensor>(t: T): T {
  return new Tensor(t.storage, t.shape, t.dtype, false) as T
}

/**
 * @internal run a kernel on the inputs' backend (or `backend` for creation kernels with no tensor inputs).
 * Inputs on two backends are an error: heed never copies between devices behind your back.
 */
export function runKernel(op: string, kernel: string, inputs: readonly Tensor[], attrs: Attrs, backend?: string): Tensor[] {
  let b: Backend
  if (inputs.length === 0) b = backendSync(backend ?? current, op)
  else {
    const first = inputs[0]!
    for (const t of inputs) {
      t.assertLive(op)
      if (t.storage.backend !== first.storage.backend)
        throw new BackendError(
          { op, expected: 'all tensors on one backend', actual: inputs.map(x => x.backend).join(' and ') },
          'tensors live on different backends; move one with toBackend(t, name)',
        )
    }
    b = first.storage.backend
  }
  if (!b.hasKernel(kernel)) throw new BackendError({ op, actual: b.name }, `kernel ${kernel} is not implemented on this backend`)
  const t0 = profiler ? performance.now() : 0
  let infos: TensorInfo[]
  try {
    infos = b.run(
      kernel,
      inputs.map(t => ({ dataId: t.storage.dataId, shape: t.shape, dtype: t.dtype })),
      attrs,
    )
  } catch (err) {
    throw allocationError(op, err)
  }
  profiler?.push({ op, kernel, backend: b.name, ms: performance.now() - t0 })
  return infos.map(info => wrap(b, info, inputs.find(t => t.storage.dataId === info.dataId)?.storage))
}

/**
 * A result too large to allocate, reported by the op that asked for it: a backend's size check (op 'allocate'), or
 * the engine's own RangeError where a kernel allocates scratch itself. Any other error passes through unchanged.
 */
function allocationError(op: string, err: unknown): unknown {
  if (err instanceof ValueError && err.op === 'allocate') return new ValueError({ op, arg: 'result', expected: err.expected, actual: err.actual }, 'result too large to allocate')
  if (err instanceof RangeError && /Invalid typed array length|Array buffer allocation failed|Invalid array length/.test(err.message))
    return new ValueError({ op, arg: 'result', expected: 'a result that fits in memory (4 GiB per tensor)', actual: err.message }, 'result too large to allocate')
  return err
}

/** Upload host values as a new tensor on `backend` (default: the current one). */
export function fromValues(values: import('./dtype.js').AnyTypedArray, shape: readonly number[], dtype: import('./dtype.js').DType, backend?: string): Tensor {
  const b = backendSync(backend ?? current, 'tensor')
  const id = b.allocate(dtype, sizeOf(shape), values)
  return wrap(b, { dataId: id, shape, dtype })
}
