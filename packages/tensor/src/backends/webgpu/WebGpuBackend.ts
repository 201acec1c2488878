/// <reference types="@webgpu/types" preserve="true" />
import type { Attrs, Backend, DataId, TensorInfo } from '../../backend.js'
import { f16BitsToF32, f16Round, f32ToF16Bits, type AnyTypedArray, type DType } from '../../dtype.js'
import { BackendError, DeviceLostError, ValueError } from '../../errors.js'
import { sizeOf, type Shape } from '../../shape.js'
import type { GpuDeviceInfo } from './device.js'
import { storageBytes, storageType, type StorageType } from './dtypes.js'
import type { DispatchSpec, GpuData, GpuTensor, IndexCheck, IndexCheckSlot, WebGpuContext, WebGpuKernel } from './types.js'
import { webgpuKernels } from './kernels/index.js'
import { Kernel } from '../../kernelContract.js'

/** Largest integer upload whose host values are kept for index checks (4 MiB of int32). */
const HOST_INTEGERS = 1 << 20

// GPUBufferUsage / GPUMapMode values, spelled out so nothing global has to be installed in Node.
const STORAGE = 0x80
const UNIFORM = 0x40
const COPY_SRC = 0x04
const COPY_DST = 0x08
const MAP_READ = 0x01
const QUERY_RESOLVE = 0x200
const MAP_MODE_READ = 0x1
/** Timestamp pairs one profile can hold; dispatches past this are profiled by wall time only. */
const MAX_TIMED_DISPATCHES = 2048

const MAX_PENDING_DISPATCHES = 64
const MAX_CACHED_UNIFORMS = 4096
const MAX_CACHED_CONSTANTS = 1024
const MAX_CACHED_BIND_GROUPS = 8192
/**
 * Compiled pipelines kept (least recently used evicted). Shader text depends only on what changes the code
 * (dtypes, tile sizes, a mask's structure), never on per-step values, so a model needs a few dozen; the bound
 * keeps a caller that does put a changing value into a key from growing memory and compile time without limit.
 */
const MAX_CACHED_PIPELINES = 512
const MAX_BIND_GROUPS_WITHOUT_YIELD = 20_000
/**
 * Index-checked dispatches one flags buffer records between reads; later ones share the last slot (its error then
 * names the first op that took it, which is still an op that ran since the last read).
 */
const CHECK_SLOTS = 256
const sizeClass = (bytes: number): number => Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))))

/**
 * WebGPU backend (Dawn in Node through the `webgpu` package, `navigator.gpu` in browsers). Dispatches are
 * recorded into one open command encoder and submitted on readback or every few dozen dispatches; buffers come
 * from size-class pools, and a freed buffer rejoins its pool only once the submission that last used it has
 * been queued, so a recycled buffer never races a pending command.
 */
export class WebGpuBackend implements Backend, WebGpuContext {
  readonly name: string = 'webgpu'
  readonly info: GpuDeviceInfo
  readonly device: GPUDevice
  readonly f16: boolean
  // Dispatch by name erases each kernel's attrs type (WebGpuKernel<never> accepts any of them), as on the CPU.
  readonly #kernels: Map<string, WebGpuKernel<never>>
  readonly #pipelines = new Map<string, GPUComputePipeline>()
  /** A number per compiled pipeline: bind groups are keyed by it, so an evicted pipeline's groups are never reused. */
  readonly #pipelineIds = new WeakMap<GPUComputePipeline, number>()
  #pipelinesCompiled = 0
  /** Buffers free since before the last submit: safe for anything, including queue.writeBuffer uploads. */
  readonly #pool = new Map<number, GPUBuffer[]>()
  /**
   * Buffers freed since the last submit. Commands still pending in the open encoder may read them, which is
   * fine for later dispatches in the same encoder (they run in order) but not for queue.writeBuffer (it lands
   * before the whole encoder), so only kernel outputs take from here. Reusing them at once keeps a loop's buffer
   * assignment identical step after step, which is what lets bind groups be cached.
   */
  readonly #hot = new Map<number, GPUBuffer[]>()
  readonly #constants = new Map<string, GpuData>()
  readonly #uniforms = new Map<string, GPUBuffer>()
  readonly #bindGroups = new Map<string, GPUBindGroup>()
  readonly #bufferIds = new WeakMap<GPUBuffer, number>()
  #nextBufferId = 0
  #newSinceYield = 0
  #bindGroupsMade = 0
  /** Uniform buffers evicted from the cache: destroyed once the submission that used them has been queued. */
  readonly #retired = new Map<number, GPUBuffer[]>()
  readonly #stagingPool = new Map<number, GPUBuffer[]>()
  #releaseAfterSubmit: { buffer: GPUBuffer; pool: Map<number, GPUBuffer[]> }[] = []
  #encoder: GPUCommandEncoder | undefined
  #pass: GPUComputePassEncoder | undefined
  #pending = 0
  #currentKernel = ''
  #live = 0
  #liveBytes = 0
  #allocated = 0
  #lostReason: string | undefined
  readonly #lostListeners: ((reason: string) => void)[] = []
  readonly #lostPromise: Promise<string>
  #profiling: { querySet: GPUQuerySet; kernels: string[] } | undefined
  /** Validation errors reported asynchronously by the device; surfaced by the next read. */
  #errors: string[] = []
  #scopesClosed: Promise<void> = Promise.resolve()
  /**
   * The index checks recorded since the last read, one flags word each. A read takes the whole epoch (its buffer
   * and what each slot checked) and later dispatches start a new one, so a read awaiting its map never races
   * the checks recorded meanwhile.
   */
  #checks: { buffer: GPUBuffer; what: IndexCheck[] } | undefined
  /** Zeroed flags buffers, ready for the next epoch. */
  readonly #freeChecks: GPUBuffer[] = []

  constructor(info: GpuDeviceInfo, kernels: Readonly<Record<string, WebGpuKernel<never>>> = webgpuKernels) {
    this.info = info
    this.device = info.device
    this.f16 = info.f16
    this.#kernels = new Map(Object.entries(kernels))
    this.#lostPromise = this.device.lost.then(l => {
      const reason = l.message || String(l.reason) || 'device lost'
      this.#lostReason = reason
      for (const f of this.#lostListeners.splice(0)) f(reason)
      return reason
    })
  }

  get lost(): boolean {
    return this.#lostReason !== undefined
  }

  #assertAlive(op: string): void {
    if (this.#lostReason !== undefined) throw new DeviceLostError({ op, actual: this.#lostReason }, 'the WebGPU device was lost; its tensors are gone')
  }

  onLost(listener: (reason: string) => void): void {
    if (this.#lostReason !== undefined) listener(this.#lostReason)
    else this.#lostListeners.push(listener)
  }

  // ---- buffers --------------------------------------------------------------------------------------------

  #take(pool: Map<number, GPUBuffer[]>, bytes: number, usage: number): GPUBuffer {
    const cls = sizeClass(bytes)
    const free = pool.get(cls)
    const b = free?.pop()
    if (b) return b
    this.#allocated++
    return this.device.createBuffer({ size: cls, usage })
  }

  #releaseLater(buffer: GPUBuffer, pool: Map<number, GPUBuffer[]>): void {
    this.#releaseAfterSubmit.push({ buffer, pool })
  }

  #newData(dtype: DType, size: number, forUpload: boolean): GpuData {
    this.#assertAlive('allocate')
    const st = storageType(dtype, this.f16)
    const bytes = Math.ceil((size * storageBytes(st)) / 4) * 4
    // checked before createBuffer: an oversized buffer would fail later, asynchronously, as an OperationError on
    // read; this way the call fails at once and the device stays usable (the engine names the op)
    const limit = Math.min(this.device.limits.maxBufferSize, this.device.limits.maxStorageBufferBindingSize)
    if (!(bytes <= limit))
      throw new ValueError({ op: 'allocate', arg: 'size', expected: `at most ${limit} bytes per buffer on this WebGPU device`, actual: `${size} ${dtype} elements (${bytes} bytes)` }, 'tensor too large to allocate')
    this.#live++
    this.#liveBytes += bytes
    const usage = STORAGE | COPY_SRC | COPY_DST
    const hot = forUpload ? undefined : this.#hot.get(sizeClass(bytes))?.pop()
    return { buffer: hot ?? this.#take(this.#pool, bytes, usage), st, bytes }
  }

  /** Scalars (the `2` in `mul(x, 2)`) are cached per dtype and value, so loops do not upload them again. */
  #constant(dtype: DType, value: number): GpuData {
    const st = storageType(dtype, this.f16)
    const key = `${st}:${dtype}:${Object.is(value, -0) ? '-0' : value}`
    let c = this.#constants.get(key)
    if (!c) {
      const buffer = this.device.createBuffer({ size: 16, usage: STORAGE | COPY_SRC | COPY_DST, mappedAtCreation: true })
      const enc = this.#encode(dtype, st, Float64Array.of(value))
      new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(enc.buffer, enc.byteOffset, enc.byteLength))
      buffer.unmap()
      this.#allocated++
      c = { buffer, st, bytes: 4, constant: true }
      this.#constants.set(key, c)
      // an evicted constant may still back live tensors: drop it from the cache, let the GC reclaim it
      if (this.#constants.size > MAX_CACHED_CONSTANTS) this.#constants.delete(this.#constants.keys().next().value!)
    }
    this.#live++
    this.#liveBytes += c.bytes
    return c
  }

  #encode(dtype: DType, st: StorageType, values: AnyTypedArray): ArrayBufferView {
    const n = values.length
    if (st === 'f16') {
      const out = new Uint16Array(n + (n & 1))
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]!)
      return out
    }
    if (st === 'f32') {
      const out = new Float32Array(values)
      if (dtype === 'float16') for (let i = 0; i < n; i++) out[i] = f16Round(out[i]!)
      return out
    }
    if (st === 'i32') return values instanceof Int32Array ? values : new Int32Array(values)
    if (dtype === 'bool') return Uint32Array.from(values, v => (v ? 1 : 0))
    return values instanceof Uint32Array ? values : new Uint32Array(values)
  }

  allocate(dtype: DType, size: number, values?: AnyTypedArray): DataId {
    if (size === 1 && values !== undefined && values.length === 1) {
      const c = this.#constant(dtype, values[0]!)
      if (dtype === 'int32' || dtype === 'uint32') c.host ??= values.slice()
      return c
    }
    const d = this.#newData(dtype, size, values !== undefined)
    if (values !== undefined && size > 0) {
      const enc = this.#encode(dtype, d.st, values)
      this.device.queue.writeBuffer(d.buffer, 0, enc.buffer, enc.byteOffset, Math.ceil(enc.byteLength / 4) * 4)
      // index tensors are mostly made on the host: keep their values so gather/oneHot can check them before dispatch
      if ((dtype === 'int32' || dtype === 'uint32') && size <= HOST_INTEGERS) d.host = values.slice(0, size)
    }
    return d
  }

  hostIntegers(dataId: DataId): AnyTypedArray | undefined {
    return (dataId as GpuData).host
  }

  write(dataId: DataId, values: AnyTypedArray): void {
    const d = dataId as GpuData
    if (d.constant) throw new BackendError({ op: 'write', actual: 'a cached scalar constant' }, 'constants are immutable')
    // pending commands may still read the old contents; queue them first
    this.flush()
    const dtype: DType = d.st === 'f16' ? 'float16' : d.st === 'f32' ? 'float32' : d.st === 'i32' ? 'int32' : 'uint32'
    d.host = undefined
    const enc = this.#encode(dtype, d.st, values)
    this.device.queue.writeBuffer(d.buffer, 0, enc.buffer, enc.byteOffset, Math.ceil(enc.byteLength / 4) * 4)
  }

  free(dataId: DataId): void {
    const d = dataId as GpuData
    this.#live--
    this.#liveBytes -= d.bytes
    if (this.lost || d.constant) return
    const cls = d.buffer.size
    let hot = this.#hot.get(cls)
    if (!hot) this.#hot.set(cls, (hot = []))
    hot.push(d.buffer)
  }

  indexCheck(check: IndexCheck): IndexCheckSlot {
    let e = this.#checks
    if (!e) {
      // createBuffer zero-fills, and returned buffers are zeroed before they rejoin the free list
      const buffer = this.#freeChecks.pop() ?? this.device.createBuffer({ size: CHECK_SLOTS * 4, usage: STORAGE | COPY_SRC | COPY_DST })
      e = this.#checks = { buffer, what: [] }
    }
    const slot = Math.min(e.what.length, CHECK_SLOTS - 1)
    if (e.what.length < CHECK_SLOTS) e.what.push(check)
    return { flags: { data: { buffer: e.buffer, st: 'u32', bytes: CHECK_SLOTS * 4 }, shape: [CHECK_SLOTS], dtype: 'uint32' }, slot }
  }

  /** The first flagged slot of an epoch's words as the op's ValueError, the same error the host-side check raises. */
  #indexError(words: Uint32Array, what: readonly IndexCheck[]): ValueError | undefined {
    for (let s = 0; s < what.length; s++) {
      if (words[s] === 0) continue
      const c = what[s]!
      const pos = 0xffffffff - words[s]!
      return new ValueError(
        { op: c.op, arg: c.arg, expected: `indices in [0, ${c.n}) (${c.what})`, actual: 'an index outside that range (found on the device)' },
        `${c.arg} at flat position ${pos} is out of range; the kernel gave zeros there and this read was abandoned`,
      )
    }
    return undefined
  }

  async read(dataId: DataId, dtype: DType, size: number): Promise<AnyTypedArray> {
    this.#assertAlive('data')
    const d = dataId as GpuData
    const bytes = Math.max(4, d.bytes)
    const staging = this.#take(this.#stagingPool, bytes, MAP_READ | COPY_DST)
    this.#endPass()
    this.#encoderOpen().copyBufferToBuffer(d.buffer, 0, staging, 0, bytes)
    const checks = this.#checks
    this.#checks = undefined
    const flagStaging = checks ? this.#take(this.#stagingPool, CHECK_SLOTS * 4, MAP_READ | COPY_DST) : undefined
    if (checks && flagStaging) this.#encoderOpen().copyBufferToBuffer(checks.buffer, 0, flagStaging, 0, CHECK_SLOTS * 4)
    this.flush()
    try {
      // await the error scopes together with the map: Dawn for Node only processes events while one is pending.
      // A loss while waiting rejects at once rather than leaving the caller hanging.
      const lost = this.#lostPromise.then(reason => {
        throw new DeviceLostError({ op: 'data', actual: reason }, 'the WebGPU device was lost during a read')
      })
      const maps = [staging.mapAsync(MAP_MODE_READ, 0, bytes), this.#scopesClosed]
      if (flagStaging) maps.push(flagStaging.mapAsync(MAP_MODE_READ, 0, CHECK_SLOTS * 4))
      await Promise.race([Promise.all(maps), lost])
    } catch (err) {
      if (err instanceof DeviceLostError) throw err
      if (this.#lostReason !== undefined) throw new DeviceLostError({ op: 'data', actual: this.#lostReason }, 'the WebGPU device was lost during a read')
      throw new BackendError({ op: 'data', actual: String(err) }, 'reading a WebGPU buffer failed')
    }
    const raw = staging.getMappedRange(0, bytes).slice(0)
    staging.unmap()
    if (this.#errors.length > 0) {
      const errs = this.#errors.splice(0)
      throw new BackendError({ op: 'data', actual: errs.join('\n') }, 'a WebGPU kernel failed validation')
    }
    this.#restage(staging)
    if (checks && flagStaging) {
      const words = new Uint32Array(flagStaging.getMappedRange(0, CHECK_SLOTS * 4).slice(0))
      flagStaging.unmap()
      this.#restage(flagStaging)
      const err = this.#indexError(words, checks.what)
      // zeroed before reuse; nothing recorded since the read started binds this buffer, so the write cannot race
      if (err) this.device.queue.writeBuffer(checks.buffer, 0, new Uint32Array(CHECK_SLOTS))
      this.#freeChecks.push(checks.buffer)
      if (err) throw err
    }
    return decode(dtype, d.st, raw, size)
  }

  #restage(staging: GPUBuffer): void {
    const cls = sizeClass(staging.size)
    ;(this.#stagingPool.get(cls) ?? this.#stagingPool.set(cls, []).get(cls)!).push(staging)
  }

  readSync(): undefined {
    return undefined
  }

  // ---- dispatch -------------------------------------------------------------------------------------------

  #encoderOpen(): GPUCommandEncoder {
    if (!this.#encoder) {
      // Validation errors surface through an error scope per batch (Dawn for Node crashes on
      // onuncapturederror); read() awaits the scope and rejects with what it caught.
      this.device.pushErrorScope('validation')
      this.#encoder = this.device.createCommandEncoder()
    }
    return this.#encoder
  }

  #endPass(): void {
    this.#pass?.end()
    this.#pass = undefined
  }

  /** Submit everything recorded so far; buffers freed before this point return to their pools. */
  flush(): void {
    this.#endPass()
    if (this.#encoder) {
      this.device.queue.submit([this.#encoder.finish()])
      this.#encoder = undefined
      const closed = this.device.popErrorScope().then(
        e => {
          if (e) this.#errors.push(e.message)
        },
        () => undefined,
      )
      this.#scopesClosed = Promise.all([this.#scopesClosed, closed]).then(() => undefined)
    }
    this.#pending = 0
    for (const { buffer, pool } of this.#releaseAfterSubmit) {
      if (pool === this.#retired) {
        buffer.destroy()
        continue
      }
      const cls = buffer.size
      let free = pool.get(cls)
      if (!free) pool.set(cls, (free = []))
      free.push(buffer)
    }
    this.#releaseAfterSubmit = []
    for (const [cls, list] of this.#hot) {
      let free = this.#pool.get(cls)
      if (!free) this.#pool.set(cls, (free = []))
      free.push(...list)
    }
    this.#hot.clear()
  }

  output(dtype: DType, shape: Shape): GpuTensor {
    return { data: this.#newData(dtype, sizeOf(shape), false), shape, dtype }
  }

  #pipeline(key: string, code: () => string): GPUComputePipeline {
    let p = this.#pipelines.get(key)
    if (p) {
      // refresh LRU order
      this.#pipelines.delete(key)
      this.#pipelines.set(key, p)
      return p
    }
    const module = this.device.createShaderModule({ code: code(), label: key })
    p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key })
    this.#pipelineIds.set(p, this.#pipelinesCompiled++)
    this.#pipelines.set(key, p)
    if (this.#pipelines.size > MAX_CACHED_PIPELINES) this.#pipelines.delete(this.#pipelines.keys().next().value!)
    return p
  }

  dispatch(spec: DispatchSpec): void {
    this.#assertAlive(spec.key)
    const pipeline = this.#pipeline(spec.key, spec.code)
    const bindGroup = this.#bindGroup(spec, pipeline)
    const prof = this.#profiling
    const timed = prof !== undefined && prof.kernels.length < MAX_TIMED_DISPATCHES
    if (timed) {
      // one pass per dispatch so each gets its own begin/end timestamps
      this.#endPass()
      const k = prof.kernels.length
      this.#pass = this.#encoderOpen().beginComputePass({
        timestampWrites: { querySet: prof.querySet, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 },
      })
      prof.kernels.push(this.#currentKernel)
    }
    this.#pass ??= this.#encoderOpen().beginComputePass()
    this.#pass.setPipeline(pipeline)
    this.#pass.setBindGroup(0, bindGroup)
    const [x, y = 1, z = 1] = spec.workgroups
    if (x > 0 && y > 0 && z > 0) this.#pass.dispatchWorkgroups(x, y, z)
    if (timed) this.#endPass()
    if (++this.#pending >= MAX_PENDING_DISPATCHES) this.flush()
  }

  /**
   * Bind groups are cached by (pipeline, buffers, uniform contents), and uniform blocks by contents. Dawn frees a
   * bind group's descriptors only when the event loop lets it tick, so a long synchronous loop that made a new
   * bind group per dispatch exhausted lavapipe's descriptor pools and crashed. With pooled buffers a training
   * loop repeats the same combinations, so steady state creates nothing.
   */
  #bindGroup(spec: DispatchSpec, pipeline: GPUComputePipeline): GPUBindGroup {
    const bufs = [...spec.inputs, ...spec.outputs].map(t => t.data)
    // keyed by the pipeline object, not its cache key: a recompiled pipeline has a new layout ('auto')
    let key = `p${this.#pipelineIds.get(pipeline)}`
    for (const d of bufs) key += `|${this.#bufferId(d.buffer)}:${d.bytes}`
    let uniform: GPUBuffer | undefined
    if (spec.uniforms) {
      const words = new Uint32Array(spec.uniforms)
      const ukey = words.join(',')
      uniform = this.#uniforms.get(ukey)
      if (!uniform) {
        uniform = this.device.createBuffer({ size: Math.max(16, spec.uniforms.byteLength), usage: UNIFORM | COPY_DST, mappedAtCreation: true })
        new Uint32Array(uniform.getMappedRange()).set(words)
        uniform.unmap()
        this.#uniforms.set(ukey, uniform)
        if (this.#uniforms.size > MAX_CACHED_UNIFORMS) this.#evictUniform()
      }
      key += `|u${this.#bufferId(uniform)}`
    }
    const hit = this.#bindGroups.get(key)
    if (hit) {
      // refresh LRU order
      this.#bindGroups.delete(key)
      this.#bindGroups.set(key, hit)
      return hit
    }
    this.#noteNewBindGroup()
    this.#bindGroupsMade++
    const entries: GPUBindGroupEntry[] = bufs.map((d, i) => ({ binding: i, resource: { buffer: d.buffer, size: Math.max(4, d.bytes) } }))
    if (uniform && spec.uniforms) entries.push({ binding: entries.length, resource: { buffer: uniform, size: spec.uniforms.byteLength } })
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries })
    this.#bindGroups.set(key, group)
    if (this.#bindGroups.size > MAX_CACHED_BIND_GROUPS) this.#bindGroups.delete(this.#bindGroups.keys().next().value!)
    return group
  }

  #bufferId(b: GPUBuffer): number {
    let id = this.#bufferIds.get(b)
    if (id === undefined) this.#bufferIds.set(b, (id = this.#nextBufferId++))
    return id
  }

  #evictUniform(): void {
    // drop the oldest uniform block and every bind group that refers to it (they are keyed by its id)
    const [ukey, buf] = this.#uniforms.entries().next().value!
    this.#uniforms.delete(ukey)
    const tag = `|u${this.#bufferId(buf)}`
    for (const k of [...this.#bindGroups.keys()]) if (k.endsWith(tag)) this.#bindGroups.delete(k)
    this.#releaseLater(buf, this.#retired)
  }

  /**
   * Count bind groups made since the event loop last ran. Past a limit, fail with a clear error instead of
   * letting the driver run out of descriptors: the cure is to await something now and then.
   */
  #noteNewBindGroup(): void {
    if (this.#newSinceYield++ === 0) setTimeout(() => (this.#newSinceYield = 0), 0)
    if (this.#newSinceYield > MAX_BIND_GROUPS_WITHOUT_YIELD)
      throw new BackendError(
        { op: 'webgpu', actual: `${this.#newSinceYield} new bind groups` },
        'too much distinct GPU work without yielding to the event loop; the device frees resources only between ' +
          'event-loop turns, so await something (a data() read, or `await new Promise(r => setTimeout(r))`) in long loops',
      )
  }

  registerKernel(name: string, impl: unknown): void {
    this.#kernels.set(name, impl as WebGpuKernel<never>)
  }

  hasKernel(kernel: string): boolean {
    return this.#kernels.has(kernel)
  }

  run(kernel: string, inputs: readonly TensorInfo[], attrs: Attrs): TensorInfo[] {
    this.#assertAlive(kernel)
    const k = this.#kernels.get(kernel)
    if (!k) throw new BackendError({ op: kernel, actual: 'webgpu' }, 'no such kernel')
    for (const i of inputs) if (i.dtype === 'float64') storageType(i.dtype, this.f16, kernel)
    const ins: GpuTensor[] = inputs.map(i => ({ data: i.dataId as GpuData, shape: i.shape, dtype: i.dtype }))
    // the one mutating kernel: its destination's host copy (if any) is stale from here on
    if (kernel === Kernel.WriteSlice && ins[0] && !ins[0].data.constant) ins[0].data.host = undefined
    this.#currentKernel = kernel
    const result = k(this, ins, attrs as never)
    const outs = Array.isArray(result) ? (result as readonly GpuTensor[]) : [result as GpuTensor]
    return outs.map(o => ({ dataId: o.data, shape: o.shape, dtype: o.dtype }))
  }

  memory(): { buffers: number; bytes: number } {
    return { buffers: this.#live, bytes: this.#liveBytes }
  }

  /**
   * Pool statistics: buffers ever created and buffers waiting in pools, bind groups made, pipelines compiled and
   * cached (for leak tests: a steady loop compiles nothing new after its first iteration).
   */
  poolStats(): { created: number; pooled: number; pendingRelease: number; bindGroups: number; pipelinesCompiled: number; pipelinesCached: number } {
    let pooled = 0
    for (const l of this.#pool.values()) pooled += l.length
    for (const l of this.#hot.values()) pooled += l.length
    return {
      created: this.#allocated,
      pooled,
      pendingRelease: this.#releaseAfterSubmit.length,
      bindGroups: this.#bindGroupsMade,
      pipelinesCompiled: this.#pipelinesCompiled,
      pipelinesCached: this.#pipelines.size,
    }
  }

  beginProfile(): void {
    if (!this.info.timestamps || this.lost) return
    this.flush()
    this.#profiling = { querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * MAX_TIMED_DISPATCHES }), kernels: [] }
  }

  async endProfile(): Promise<{ kernel: string; ms: number }[] | undefined> {
    const prof = this.#profiling
    this.#profiling = undefined
    if (!prof) return undefined
    this.#endPass()
    const n = prof.kernels.length
    if (n === 0) {
      prof.querySet.destroy()
      return []
    }
    const bytes = 16 * n
    const resolve = this.device.createBuffer({ size: bytes, usage: QUERY_RESOLVE | COPY_SRC })
    const staging = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST })
    const enc = this.#encoderOpen()
    enc.resolveQuerySet(prof.querySet, 0, 2 * n, resolve, 0)
    enc.copyBufferToBuffer(resolve, 0, staging, 0, bytes)
    this.flush()
    await Promise.all([staging.mapAsync(MAP_MODE_READ), this.#scopesClosed])
    const ts = new BigUint64Array(staging.getMappedRange().slice(0))
    staging.unmap()
    staging.destroy()
    resolve.destroy()
    prof.querySet.destroy()
    return prof.kernels.map((kernel, i) => ({ kernel, ms: Number(ts[2 * i + 1]! - ts[2 * i]!) / 1e6 }))
  }

  destroy(): void {
    this.flush()
    this.device.destroy()
  }
}

function decode(dtype: DType, st: StorageType, raw: ArrayBuffer, size: number): AnyTypedArray {
  if (st === 'f16') {
    const bits = new Uint16Array(raw, 0, size)
    const out = new Float32Array(size)
    for (let i = 0; i < size; i++) out[i] = f16BitsToF32(bits[i]!)
    return out
  }
  if (st === 'f32') return new Float32Array(raw, 0, size).slice()
  if (st === 'i32') return new Int32Array(raw, 0, size).slice()
  const u = new Uint32Array(raw, 0, size)
  return dtype === 'bool' ? Uint8Array.from(u, v => (v ? 1 : 0)) : u.slice()
}
