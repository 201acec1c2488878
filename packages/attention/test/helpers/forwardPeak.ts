import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Time and peak memory of one causal attention forward, measured in a child process (shared by
 * test/memory.ts and `npm run bench -- attention`).
 *
 * Method. A kernel call is synchronous, so nothing in the calling process can sample memory while it runs, and a
 * test process's resident-set high-water mark is already raised by whatever ran before. A fresh child therefore:
 * runs a tiny forward to load and JIT-compile the code, makes the real inputs, collects garbage, resets its
 * high-water mark to the current RSS (Linux: `5 > /proc/self/clear_refs`), reads its current RSS, runs the forward
 * and the readback of `out` and `lse`, then reads `process.resourceUsage().maxRSS`.
 * `extraBytes = maxRSS after − RSS before` counts everything the forward touched: its outputs, the readback copy,
 * scratch, transient buffers, JIT code, and on WebGPU the driver's host-side buffers (lavapipe keeps "device"
 * memory in host RAM). It is exact when the mark was reset or the forward raised it (`exact`); otherwise (no
 * clear_refs) it is an upper bound, the mark having been set earlier, so `extraBytes < limit` is never optimistic.
 * A baseline child that only makes the inputs was the other candidate; it compares two processes' JIT and GC
 * histories and hides any forward peak below the baseline's own input-making transient, so it was not used.
 * RSS can understate one thing: an allocation the C allocator serves from memory freed earlier that is still
 * resident. `retainedBytes` (heapUsed + arrayBuffers right after a forward − before, garbage not yet collected
 * included) counts allocations instead, so test/memory.ts checks both.
 */
export interface ForwardConfig {
  readonly backend: 'cpu' | 'webgpu'
  readonly T: number
  readonly H: number
  readonly D: number
  readonly dtype: 'float32'
  /** Forwards timed in the child (median reported; the peak covers all of them). Default 1. */
  readonly runs?: number
}

export type ForwardResult =
  | {
      readonly ok: true
      /** median over `runs`, call plus readback */
      readonly ms: number
      readonly runs: number
      readonly rssBefore: number
      readonly maxRssBefore: number
      readonly maxRssAfter: number
      readonly extraBytes: number
      readonly exact: boolean
      /** largest heapUsed + arrayBuffers growth seen right after a forward, its outputs still alive */
      readonly retainedBytes: number
      readonly lseFinite: boolean
      /** WebGPU only */
      readonly adapter?: string | undefined
    }
  | { readonly ok: false; readonly error: string }

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..', '..', '..')

/** Run one measured forward in a child; a child past `timeoutMs` is killed and reported as an error. */
export function measureForward(cfg: ForwardConfig, timeoutMs = 600_000): Promise<ForwardResult> {
  // The child gets a clean Node: no loader hooks of a parent test runner (NODE_OPTIONS) and no coverage (tap's
  // process tracking re-adds its hooks to a child; `_TAPJS_PROCESSINFO_COVERAGE_=0` keeps its coverage off). A
  // child's coverage, taken under tsx's transform, would be merged by URL with the test processes' coverage of the
  // same sources under another transform, whose byte ranges do not line up.
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  delete env['NODE_OPTIONS']
  const child = spawn(process.execPath, ['--expose-gc', '--conditions=@heed/source', '--import', 'tsx', join(here, 'forwardChild.ts'), JSON.stringify(cfg)], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise(resolve => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find(l => l.startsWith('RESULT '))
      if (line) resolve(JSON.parse(line.slice('RESULT '.length)) as ForwardResult)
      else if (signal === 'SIGKILL') resolve({ ok: false, error: `timed out after ${Math.round(timeoutMs / 1000)} s` })
      else resolve({ ok: false, error: `child exited ${code ?? signal}: ${(stderr.trim().split('\n').pop() ?? '').slice(0, 120)}` })
    })
  })
}
