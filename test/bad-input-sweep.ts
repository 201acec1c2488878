/**
 * The bad-input sweep (issue 19): every public function of the five packages (the runtime exports, the functions
 * of their namespace objects, class constructors) is called with generated bad inputs: no arguments, null,
 * undefined everywhere, a disposed tensor, a plain nested array, a string, a huge size and an unknown option key
 * (fast-check, fixed seed). Each call must fail synchronously (or reject, or error on an Observable's error
 * channel) with a `HeedError` whose `op` names the function (or the public op it is an alias of): never a
 * TypeError from deep inside, a silent result, a hang or a crash. No case allocates anything big: sizes fail at
 * validation.
 *
 * Each package's list lives in test/helpers/sweep/<package>.ts: the exports that legitimately accept such a call
 * (with the reason), the accepted aliases, and the gaps not yet fixed, which may only shrink: a new gap fails this
 * test, and so does a listed gap that now passes (remove it).
 *
 * `HEED_SWEEP_REPORT=1` prints every outcome; `HEED_SWEEP_ONLY=align,memory` sweeps some packages only.
 */
import t from 'tap'
import fc from 'fast-check'
import { isObservable, of } from 'rxjs'
import * as tensorApi from '@heed/tensor'
import * as attentionApi from '@heed/attention'
import * as memoryApi from '@heed/memory'
import * as alignApi from '@heed/align'
import * as fairnessApi from '@heed/fairness'
import * as tensorStream from '@heed/tensor/stream'
import * as attentionStream from '@heed/attention/stream'
import * as memoryStream from '@heed/memory/stream'
import * as alignStream from '@heed/align/stream'
import * as fairnessStream from '@heed/fairness/stream'
import { HeedError } from '@heed/tensor'
import { CASES, type CaseName, type SweepConfig } from './helpers/sweep/types.js'
import { tensorSweep } from './helpers/sweep/tensor.js'
import { attentionSweep } from './helpers/sweep/attention.js'
import { memorySweep } from './helpers/sweep/memory.js'
import { alignSweep } from './helpers/sweep/align.js'
import { fairnessSweep } from './helpers/sweep/fairness.js'
import { streamSweeps } from './helpers/sweep/stream.js'

type Fn = (...a: unknown[]) => unknown
interface Target {
  readonly pkg: string
  readonly name: string
  readonly fn: Fn
  readonly isClass: boolean
  readonly aliases: readonly string[] | undefined
}

const PACKAGES: readonly (readonly [string, Record<string, unknown>, SweepConfig])[] = [
  ['tensor', tensorApi, tensorSweep],
  ['attention', attentionApi, attentionSweep],
  ['memory', memoryApi, memorySweep],
  ['align', alignApi, alignSweep],
  ['fairness', fairnessApi, fairnessSweep],
  // The RxJS entries: a factory's returned operator is applied to a stream of one `null` item, which must error on
  // the error channel naming the operator.
  ['tensor/stream', tensorStream, streamSweeps.tensor],
  ['attention/stream', attentionStream, streamSweeps.attention],
  ['memory/stream', memoryStream, streamSweeps.memory],
  ['align/stream', alignStream, streamSweeps.align],
  ['fairness/stream', fairnessStream, streamSweeps.fairness],
]
const only = process.env['HEED_SWEEP_ONLY']?.split(',').filter(Boolean)

const isClass = (f: unknown): boolean => typeof f === 'function' && /^class\b/.test(Function.prototype.toString.call(f))

function targetsOf(pkg: string, api: Record<string, unknown>, config: SweepConfig): Target[] {
  const out: Target[] = []
  const add = (name: string, f: unknown) => {
    if (typeof f === 'function')
      out.push({
        pkg,
        name,
        fn: f as Fn,
        isClass: isClass(f),
        aliases: config.aliases[name],
      })
  }
  for (const [name, v] of Object.entries(api)) {
    if (typeof v === 'function') add(name, v)
    else if (v !== null && typeof v === 'object' && config.namespaces.includes(name)) for (const [k, f] of Object.entries(v)) add(`${name}.${k}`, f)
  }
  return out
}

/** Argument-check helpers: they throw in the name of the op they are given (their first argument), so any HeedError is right. */
const CALLER_NAMED = new Set([
  'checkAllocation',
  'checkChunk',
  'finiteNumber',
  'inRange',
  'intAtLeast',
  'knownOptions',
  'nonNegativeInt',
  'nonNegativeNumber',
  'positiveInt',
  'positiveNumber',
  'requireFunction',
  'requireTensor',
])

type Outcome =
  | { kind: 'typed' }
  | { kind: 'misnamed'; op: string; msg: string }
  | { kind: 'untyped'; msg: string }
  | { kind: 'silent'; what: string }
  | { kind: 'timeout' }

const names = (target: Target, e: HeedError): boolean => {
  const short = target.name.includes('.') ? target.name.slice(target.name.indexOf('.') + 1) : target.name
  const ok = [target.name, short, ...(target.aliases ?? [])]
  if (CALLER_NAMED.has(target.name)) return true
  const op = String(e.op)
  return ok.includes(op) || ok.some(n => op.startsWith(`${n}.`) || op.startsWith(`${n}(`))
}
const classify = (target: Target, e: unknown): Outcome =>
  e instanceof HeedError
    ? names(target, e)
      ? { kind: 'typed' }
      : { kind: 'misnamed', op: e.op, msg: e.message.slice(0, 160) }
    : {
        kind: 'untyped',
        msg: `${(e as Error)?.constructor?.name ?? typeof e}: ${String((e as Error)?.message ?? e).slice(0, 160)}`,
      }

// Generous: a bad call fails at validation in microseconds; only a hang gets near this, and CI machines are loaded.
const TIMEOUT_MS = 10_000
const settle = async (target: Target, p: Promise<unknown>): Promise<Outcome> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>(res => (timer = setTimeout(() => res('timeout'), TIMEOUT_MS)))
  try {
    const r = await Promise.race([p, timeout])
    if (r === 'timeout') return { kind: 'timeout' }
    release(r)
    return { kind: 'silent', what: `resolved ${describe(r)}` }
  } catch (e) {
    return classify(target, e)
  } finally {
    clearTimeout(timer)
  }
}
const describe = (r: unknown): string =>
  r === undefined
    ? 'undefined'
    : r === null
    ? 'null'
    : tensorApi.isTensor(r)
    ? `Tensor[${r.shape.join(',')}]`
    : typeof r === 'object'
    ? `object{${Object.keys(r).slice(0, 4).join(',')}}`
    : typeof r
const release = (r: unknown): void => {
  if (tensorApi.isTensor(r)) r.dispose()
}

/** Run one bad call and follow what it returns: a promise must reject, an Observable must error, a returned function is called with a bad stream. */
async function run(target: Target, args: unknown[]): Promise<Outcome> {
  let r: unknown
  try {
    r = target.isClass ? new (target.fn as unknown as new (...a: unknown[]) => unknown)(...args) : target.fn(...args)
  } catch (e) {
    return classify(target, e)
  }
  return follow(target, r, 1)
}
async function follow(target: Target, r: unknown, depth: number): Promise<Outcome> {
  if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') return settle(target, r as Promise<unknown>)
  if (isObservable(r)) {
    return settle(
      target,
      new Promise((res, rej) => {
        const sub = r.subscribe({
          next: v => (sub?.unsubscribe(), res(v)),
          error: rej,
          complete: () => res('completed'),
        })
      })
    )
  }
  if (typeof r === 'function' && depth > 0) {
    let r2: unknown
    try {
      r2 = (r as Fn)(of(null))
    } catch (e) {
      return classify(target, e)
    }
    return follow(target, r2, depth - 1)
  }
  // an fp-ts Either: a Left holding the typed error is heed's error channel for untrusted data (parseSafetensors)
  if (r !== null && typeof r === 'object' && (r as { _tag?: unknown })._tag === 'Left') return classify(target, (r as { left: unknown }).left)
  release(r)
  return { kind: 'silent', what: `returned ${describe(r)}` }
}

const arityOf = (f: Fn): number => Math.max(1, f.length)
const disposed = (): tensorApi.Tensor => {
  const d = tensorApi.zeros([2, 2])
  d.dispose()
  return d
}
const unknownKeys = fc.sample(
  fc.string({ minLength: 3, maxLength: 8 }).filter(k => /^[a-z]\w+$/i.test(k)),
  { numRuns: 200, seed: 19 }
)
function argsFor(c: CaseName, target: Target, i: number, live: tensorApi.Tensor): unknown[] {
  const n = arityOf(target.fn)
  switch (c) {
    case 'noArgs':
      return []
    case 'null':
      return [null]
    case 'undefined':
      return Array.from({ length: n }, () => undefined)
    case 'disposed':
      return [disposed(), ...Array.from({ length: n - 1 }, () => live)]
    case 'nestedArray':
      return [[[1, 2], [3]]]
    case 'string':
      return ['x']
    case 'huge':
      return [2 ** 40, [2 ** 20, 2 ** 20, 2 ** 20]]
    case 'unknownOption':
      // the valid-looking tensors first, then an options object with a generated unknown key
      return [...Array.from({ length: n - 1 }, () => live), { [`zz${unknownKeys[i % unknownKeys.length]!}`]: 1 }]
  }
}

const lineOf = (name: string, c: CaseName, out: Outcome): string =>
  `${name} ${c}: ${out.kind}${'msg' in out ? ` ${out.msg}` : ''}${'op' in out ? ` (op ${out.op})` : ''}${'what' in out ? ` ${out.what}` : ''}`

interface SweepRun {
  readonly outcomes: Map<string, Outcome>
  readonly counts: Record<Outcome['kind'] | 'allowed', number>
  readonly cases: number
  readonly ms: number
}

/** Every bad call of every target on the current backend; allowed calls are skipped. */
async function sweep(targets: readonly Target[], config: SweepConfig): Promise<SweepRun> {
  const started = Date.now()
  const report = process.env['HEED_SWEEP_REPORT'] === '1'
  const live = tensorApi.zeros([1, 1, 4, 4])
  const counts = { typed: 0, misnamed: 0, untyped: 0, silent: 0, timeout: 0, allowed: 0 }
  const outcomes = new Map<string, Outcome>()
  let i = 0
  for (const target of targets) {
    for (const c of CASES) {
      i++
      if (config.allowed[target.name]?.['*'] !== undefined || config.allowed[target.name]?.[c] !== undefined) {
        counts.allowed++
        continue
      }
      if (process.env['HEED_SWEEP_TRACE']) process.stderr.write(`${target.name} ${c}\n`)
      const out = await run(target, argsFor(c, target, i, live))
      counts[out.kind]++
      outcomes.set(`${target.name} ${c}`, out)
      if (report) console.log(lineOf(target.name, c, out))
    }
  }
  live.dispose()
  return { outcomes, counts, cases: i, ms: Date.now() - started }
}

const cpuRuns = new Map<string, SweepRun>()

for (const [pkg, api, config] of PACKAGES) {
  if (only && !only.includes(pkg)) continue
  t.test(`@heed/${pkg}: every public function rejects generated bad inputs with a typed error naming it`, async t => {
    const targets = targetsOf(pkg, api, config)
    const r = await sweep(targets, config)
    cpuRuns.set(pkg, r)
    const failures: string[] = []
    const fixedGaps: string[] = []
    let gaps = 0
    for (const [key, out] of r.outcomes) {
      const [name, c] = key.split(' ') as [string, CaseName]
      const gap = config.gaps[name]?.[c]
      if (out.kind === 'typed') {
        if (gap !== undefined) fixedGaps.push(key)
      } else if (gap !== undefined) gaps++
      else failures.push(lineOf(name, c, out))
    }
    t.comment(`${targets.length} functions, ${r.cases} cases: ${JSON.stringify({ ...r.counts, gap: gaps })} in ${r.ms} ms`)
    t.same(failures, [], 'every bad call is a typed error naming the function (or a listed gap)')
    t.same(fixedGaps, [], `the gaps in test/helpers/sweep/${pkg.replace('/', '-')}-gaps.ts list only calls that still fail (remove the fixed ones)`)
    const exists = (n: string) => targets.some(x => x.name === n)
    t.same(
      [...Object.keys(config.allowed), ...Object.keys(config.gaps), ...Object.keys(config.aliases)].filter(n => !exists(n)),
      [],
      'no stale list entries',
    )
    t.ok(targets.length >= (pkg.endsWith('/stream') ? 2 : 20), `the sweep sees the exports (${targets.length})`)
  })
}

// The same calls with the WebGPU backend current (tensors made on the device): the same outcome as on the CPU for
// every call (validation happens before dispatch, so a bad call is the same typed error on every backend), and
// the device still computes correctly afterwards. Skipped without an adapter unless HEED_REQUIRE_WEBGPU is set.
t.test('on WebGPU every bad call has the CPU outcome, and the device stays usable', async t => {
  const reason = await tensorApi.initBackend('webgpu').then(
    () => undefined,
    (e: unknown) => (e instanceof Error ? e.message : String(e)),
  )
  if (reason !== undefined) {
    const require = !!process.env['HEED_REQUIRE_WEBGPU'] && process.env['HEED_REQUIRE_WEBGPU'] !== '0'
    if (require) t.fail(`HEED_REQUIRE_WEBGPU is set but WebGPU is unavailable: ${reason}`)
    else t.comment(`skipped: no WebGPU adapter (${reason})`)
    return
  }
  await tensorApi.setBackend('webgpu')
  try {
    for (const [pkg, api, config] of PACKAGES) {
      const cpu = cpuRuns.get(pkg)
      if (!cpu) continue
      const r = await sweep(targetsOf(pkg, api, config), config)
      const differ: string[] = []
      for (const [key, out] of r.outcomes) {
        const was = cpu.outcomes.get(key)
        // Kinds, not messages: a message may print the argument, and a tensor prints its backend.
        if (was?.kind !== out.kind) {
          const [name, c] = key.split(' ') as [string, CaseName]
          differ.push(`${lineOf(name, c, out)} | cpu: ${was ? lineOf(name, c, was) : 'not run'}`)
        }
      }
      t.comment(`@heed/${pkg} on webgpu: ${r.cases} cases: ${JSON.stringify(r.counts)} in ${r.ms} ms`)
      t.same(differ, [], `@heed/${pkg}: every bad call has the CPU's outcome on WebGPU`)
    }
    const x = tensorApi.tensor([1, 2, 3, 4], [2, 2])
    const y = tensorApi.matmul(x, x)
    t.same(Array.from(await y.data()), [7, 10, 15, 22], 'the device computes correctly after the sweep')
    tensorApi.dispose([x, y])
  } finally {
    await tensorApi.setBackend('cpu')
  }
})
