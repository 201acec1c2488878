/**
 * @heed/tensor's WebGPU backend in a real browser: the package source is bundled for the browser with esbuild, served
 * on loopback and run in headless Chromium (navigator.gpu, not Dawn for Node). The page only computes; every value
 * is checked here against float64 references, with the parity tolerance of packages/tensor/test/helpers/parity.ts.
 *
 * Without /usr/bin/chromium (or $HEED_CHROMIUM) or without a WebGPU adapter in it the test is skipped with a visible
 * notice, unless HEED_REQUIRE_WEBGPU is set (CI), where either is a failure.
 */
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'
import { chromium, type Browser } from 'playwright-core'
import { f16Round, scope, setBackend, tensor } from '@heed/tensor'
import { requireWebgpu } from '../packages/tensor/test/helpers/backends.js'
import { cases, type PageResults } from './browser/_cases.js'
import { root } from './helpers/proc.js'

// Debian's package (what .ci/run installs); HEED_CHROMIUM points elsewhere, e.g. at a Chrome of one's own.
const CHROMIUM = process.env['HEED_CHROMIUM'] || '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  // WebGPU is behind this flag on Linux; Debian's Chromium then offers SwiftShader's Vulkan as the adapter. Never
  // --disable-gpu: it removes the GPU process and with it every WebGPU adapter.
  '--enable-unsafe-webgpu',
  // Without it adapter.info leaves description (and device) empty, and the report should say what ran.
  '--enable-webgpu-developer-features',
  // Playwright passes most of these already; listed so a closed network never stalls startup whatever its defaults.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
]

// ---- float64 references ----------------------------------------------------------------------------------------

type Ref = { shape: number[]; values: number[] }

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1)
const stridesOf = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length).fill(1)
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!
  return s
}
const unravel = (i: number, shape: readonly number[]): number[] => {
  const idx = new Array<number>(shape.length)
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!
    i = Math.floor(i / shape[d]!)
  }
  return idx
}

function broadcastBinary(a: Ref, b: Ref, f: (x: number, y: number) => number): Ref {
  const rank = Math.max(a.shape.length, b.shape.length)
  const pad = (s: readonly number[]): number[] => [...new Array<number>(rank - s.length).fill(1), ...s]
  const [sa, sb] = [pad(a.shape), pad(b.shape)]
  const shape = sa.map((d, i) => Math.max(d, sb[i]!))
  const [ta, tb] = [stridesOf(sa), stridesOf(sb)]
  const values = Array.from({ length: sizeOf(shape) }, (_, i) => {
    const idx = unravel(i, shape)
    const at = (s: number[], st: number[]): number => idx.reduce((o, v, d) => o + (s[d] === 1 ? 0 : v * st[d]!), 0)
    return f(a.values[at(sa, ta)]!, b.values[at(sb, tb)]!)
  })
  return { shape, values }
}

function reduceRef(x: Ref, axes: readonly number[] | undefined, op: 'sum' | 'mean', keepDims = false): Ref {
  const ax = (axes ?? x.shape.map((_, d) => d)).map(a => (a < 0 ? a + x.shape.length : a))
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d))
  const out = new Array<number>(sizeOf(kept)).fill(0)
  const st = stridesOf(kept)
  x.values.forEach((v, i) => {
    const o = unravel(i, x.shape).reduce((acc, k, d) => acc + (ax.includes(d) ? 0 : k * st[d]!), 0)
    out[o]! += v
  })
  const n = ax.reduce((p, d) => p * x.shape[d]!, 1)
  return { shape: keepDims ? kept : x.shape.filter((_, i) => !ax.includes(i)), values: op === 'mean' ? out.map(v => v / n) : out }
}

/** Batched a·b (or a·bᵀ), b broadcast over a's leading dims. */
function matmulRef(a: Ref, b: Ref, transposeB = false): Ref {
  const [m, k] = a.shape.slice(-2) as [number, number]
  const n = transposeB ? b.shape[b.shape.length - 2]! : b.shape[b.shape.length - 1]!
  const batch = sizeOf(a.shape.slice(0, -2))
  const values: number[] = []
  for (let p = 0; p < batch; p++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0
        for (let q = 0; q < k; q++) s += a.values[p * m * k + i * k + q]! * b.values[transposeB ? j * k + q : q * n + j]!
        values.push(s)
      }
  return { shape: [...a.shape.slice(0, -2), m, n], values }
}

function gatherRef(x: Ref, idx: readonly number[], axis: number): Ref {
  const shape = x.shape.map((d, i) => (i === axis ? idx.length : d))
  const st = stridesOf(x.shape)
  const values = Array.from({ length: sizeOf(shape) }, (_, i) => {
    const at = unravel(i, shape)
    at[axis] = idx[at[axis]!]!
    return x.values[at.reduce((o, v, d) => o + v * st[d]!, 0)]!
  })
  return { shape, values }
}

/** Softmax and log Σ exp over the last axis, max-shifted: exact at ±1e4 where exp alone overflows. */
function softmaxRef(x: Ref): { softmax: Ref; lse: Ref } {
  const n = x.shape[x.shape.length - 1]!
  const sm: number[] = []
  const lse: number[] = []
  for (let r = 0; r < x.values.length / n; r++) {
    const row = x.values.slice(r * n, (r + 1) * n)
    const m = Math.max(...row)
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0)
    sm.push(...row.map(v => Math.exp(v - m) / z))
    lse.push(m + Math.log(z))
  }
  return { softmax: { shape: x.shape, values: sm }, lse: { shape: x.shape.slice(0, -1), values: lse } }
}

/** erf in float64: Maclaurin series near 0, the erfc continued fraction beyond (≈1e-15 both sides of 2.5). */
function erf(x: number): number {
  const a = Math.abs(x)
  if (a < 2.5) {
    let term = x
    let s = x
    for (let n = 1; n < 60; n++) {
      term *= (-x * x) / n
      s += term / (2 * n + 1)
    }
    return (2 / Math.sqrt(Math.PI)) * s
  }
  let f = a
  for (let n = 200; n >= 1; n--) f = a + n / 2 / f
  const erfc = Math.exp(-a * a) / (Math.sqrt(Math.PI) * f)
  return Math.sign(x) * (1 - erfc)
}
const geluRef = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2))
const geluTanhRef = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))

const map = (x: Ref, f: (v: number) => number): Ref => ({ shape: x.shape, values: x.values.map(f) })

/** The float64 answer for each case of _cases.ts, from that case's inputs alone. */
const golden: Record<string, (xs: Ref[]) => Ref[]> = {
  'add with broadcasting [4,1,5] + [3,1]': ([a, b]) => [broadcastBinary(a!, b!, (x, y) => x + y)],
  'exp, tanh, gelu (exact) and gelu (tanh)': ([x]) => [map(x!, Math.exp), map(x!, Math.tanh), map(x!, geluRef), map(x!, geluTanhRef)],
  'sum and mean over axes, and a long row': ([x, y]) => [
    reduceRef(x!, [0, 2], 'sum'),
    reduceRef(x!, [1], 'mean', true),
    reduceRef(x!, undefined, 'sum'),
    reduceRef(y!, [-1], 'mean'),
    reduceRef(y!, [0], 'sum'),
  ],
  'softmax and logSumExp at ±1e4 logits': ([x]) => {
    const r = softmaxRef(x!)
    return [r.softmax, r.lse]
  },
  'matmul: odd sizes, transposeB, batched': ([a, b, c, d, e, f]) => [matmulRef(a!, b!, true), matmulRef(c!, d!), matmulRef(e!, f!)],
  'gather along axis 0 and axis 1': ([x, i, j]) => [gatherRef(x!, i!.values, 0), gatherRef(x!, j!.values, 1)],
  'valueAndGrad of sum(c * tanh(x @ w + b))': ([x, w, b, c]) => {
    // y = tanh(x·w + b), L = Σ c⊙y; dz = c⊙(1 − y²), dx = dz·wᵀ, dw = xᵀ·dz, db = Σ_rows dz
    const y = map(broadcastBinary(matmulRef(x!, w!), b!, (p, q) => p + q), Math.tanh)
    const dz = broadcastBinary(c!, y, (cc, yy) => cc * (1 - yy * yy))
    const wT: Ref = { shape: [3, 7], values: Array.from({ length: 21 }, (_, i) => w!.values[(i % 7) * 3 + Math.floor(i / 7)]!) }
    const xT: Ref = { shape: [7, 5], values: Array.from({ length: 35 }, (_, i) => x!.values[(i % 5) * 7 + Math.floor(i / 5)]!) }
    const loss = broadcastBinary(c!, y, (cc, yy) => cc * yy).values.reduce((s, v) => s + v, 0)
    return [{ shape: [], values: [loss] }, matmulRef(dz, wT), matmulRef(xT, dz), reduceRef(dz, [0], 'sum')]
  },
  'float16: x * y + exp(x), its sum, and a matmul': ([x, y, a, b]) => {
    const h = (r: Ref): Ref => map(r, f16Round)
    const [xh, yh] = [h(x!), h(y!)]
    const z = { shape: xh.shape, values: xh.values.map((v, i) => v * yh.values[i]! + Math.exp(v)) }
    return [z, reduceRef(z, undefined, 'sum'), matmulRef(h(a!), h(b!))]
  },
}

// ---- the tolerance of parity.ts: err(kernel) ≤ 2·err(CPU float32) + atol·max(1, |golden|) ------------------------

const maxErr = (a: readonly number[], b: readonly number[]): number =>
  a.reduce((m, x, i) => {
    const y = b[i]!
    if (Number.isNaN(x) && Number.isNaN(y)) return m
    if (!Number.isFinite(x) || !Number.isFinite(y)) return x === y ? m : Infinity
    return Math.max(m, Math.abs(x - y))
  }, 0)
const maxAbs = (a: readonly number[]): number => a.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 0)

/** The same case on the CPU backend in float32: how far float32 arithmetic alone is from float64. */
async function cpuFloat32(c: (typeof cases)[number]): Promise<{ shape: number[]; dtype: string; values: number[] }[]> {
  await setBackend('cpu')
  const xs = c.inputs.map(s => tensor([...s.values], s.shape, s.dtype))
  const outs = scope(() => c.run(...xs))
  const r = await Promise.all(outs.map(async o => ({ shape: [...o.shape], dtype: o.dtype, values: Array.from(await o.data()) })))
  for (const o of [...outs, ...xs]) o.dispose()
  return r
}

// ---- running the page ------------------------------------------------------------------------------------------

/** Bundle the page, serve it on loopback, run it in Chromium; `unavailable` when this machine cannot run WebGPU. */
async function runInBrowser(log: (s: string) => void): Promise<{ results?: PageResults; unavailable?: string; failure?: string }> {
  if (!existsSync(CHROMIUM)) return { unavailable: `${CHROMIUM} not found (on Debian: apt-get install chromium)` }
  const dir = mkdtempSync(join(tmpdir(), 'heed-browser-'))
  let server: Server | undefined
  let browser: Browser | undefined
  try {
    const t0 = Date.now()
    await build({
      entryPoints: [join(root, 'test/browser/_page.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      conditions: ['@heed/source'],
      outfile: join(dir, 'page.js'),
      logLevel: 'error',
      absWorkingDir: root,
    })
    writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>heed webgpu</title><script type="module" src="/page.js"></script>\n')
    log(`bundled the page in ${Date.now() - t0} ms`)

    const files: Record<string, [string, string]> = {
      '/': ['index.html', 'text/html; charset=utf-8'],
      '/page.js': ['page.js', 'text/javascript; charset=utf-8'],
    }
    server = createServer((req, res) => {
      const f = files[new URL(req.url ?? '/', 'http://127.0.0.1').pathname]
      if (!f) return void res.writeHead(404).end()
      let body: Buffer
      try {
        body = readFileSync(join(dir, f[0]))
      } catch (err) {
        return void res.writeHead(500).end(String(err))
      }
      res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' }).end(body)
    })
    const s = server
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen(0, '127.0.0.1', resolve)
    })
    // 127.0.0.1 is a secure context, which navigator.gpu requires.
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

    const t1 = Date.now()
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 })
    log(`${browser.version()} started in ${Date.now() - t1} ms`)
    const context = await browser.newContext()
    // The page needs nothing but its own origin; anything else would be a request off this machine.
    await context.route('**/*', route => (route.request().url().startsWith(`${origin}/`) ? route.continue() : route.abort()))
    const page = await context.newPage()
    const pageLog: string[] = []
    page.on('console', m => void pageLog.push(`console.${m.type()}: ${m.text()}`))
    page.on('pageerror', e => void pageLog.push(`pageerror: ${e.message}`))
    // An uncaught error in the page means it will never report: fail then, not 45 s later.
    const died = new Promise<never>((_, reject) => page.once('pageerror', e => reject(e)))
    died.catch(() => {})
    const t2 = Date.now()
    await page.goto(`${origin}/`, { timeout: 10_000 })
    try {
      await Promise.race([page.waitForFunction(() => (globalThis as { __heedResults?: unknown }).__heedResults !== undefined, undefined, { timeout: 45_000, polling: 100 }), died])
    } catch (err) {
      throw new Error(`the page reported nothing (${err instanceof Error ? err.message : String(err)}); its log:\n${pageLog.join('\n')}`, { cause: err })
    }
    const results = await page.evaluate(() => (globalThis as { __heedResults?: PageResults }).__heedResults!)
    log(`the page ran in ${Date.now() - t2} ms (load included)`)
    if (pageLog.length) log(`page log:\n${pageLog.join('\n')}`)
    if (results.unavailable !== undefined) return { unavailable: `Chromium has no WebGPU adapter: ${results.unavailable}` }
    return { results }
  } finally {
    await browser?.close().catch(() => {})
    if (server) {
      server.closeAllConnections()
      await new Promise(resolve => server!.close(resolve))
    }
    rmSync(dir, { recursive: true, force: true })
  }
}

// A bundling error, a browser that will not start or a page that hangs is a failure here, not a reason to skip.
const { results, unavailable, failure } = await runInBrowser(s => t.comment(s)).catch((err: unknown) => ({
  results: undefined,
  unavailable: undefined,
  failure: err instanceof Error ? (err.stack ?? err.message) : String(err),
}))

if (failure !== undefined) t.fail(`the browser run failed: ${failure}`)
else if (unavailable !== undefined) {
  if (requireWebgpu()) t.fail(`HEED_REQUIRE_WEBGPU is set but the browser test cannot run: ${unavailable}`)
  else t.test('WebGPU in headless Chromium', { skip: `WebGPU in the browser is unavailable: ${unavailable}` }, () => {})
} else {
  const r = results!
  t.test('the page ran on a WebGPU adapter', async t => {
    t.equal(r.error, undefined, 'no error outside the cases')
    t.ok(r.navigatorGpu, 'navigator.gpu exists')
    t.ok(r.adapter, 'an adapter was acquired')
    t.equal(r.backend, 'webgpu', 'the default backend is webgpu')
    t.equal(r.cases?.length, cases.length, 'every case reported')
    const a = r.adapter
    if (a) {
      t.comment(`adapter: ${a.vendor} / ${a.architecture} / ${a.description || '(no description)'}${a.fallback ? ' (fallback)' : ''}; shader-f16 ${a.f16 ? 'yes' : 'no: float16 is stored as f32'}; timestamps ${a.timestamps ? 'yes' : 'no'}`)
      t.comment(`${r.userAgent}`)
      t.comment(`device acquired in ${r.initMs?.toFixed(0)} ms, all cases in ${r.totalMs?.toFixed(0)} ms`)
    }
  })

  for (const c of cases) {
    t.test(c.name, async t => {
      const got = r.cases?.find(k => k.name === c.name)
      if (!got) return void t.fail('the page did not report this case')
      t.equal(got.error, undefined, 'ran without throwing')
      t.equal(got.leaked, 0, 'no WebGPU tensors left behind')
      t.comment(`${got.ms.toFixed(1)} ms in the browser`)
      const ref = await cpuFloat32(c)
      const gold = golden[c.name]!(c.inputs.map(s => ({ shape: [...s.shape], values: [...s.values] })))
      t.equal(got.outputs.length, gold.length, 'output count')
      const atol = c.atol ?? 1e-5
      gold.forEach((g, i) => {
        const k = got.outputs[i]
        const f = ref[i]!
        if (!k) return
        t.equal(k.backend, 'webgpu', `output ${i} lives on webgpu`)
        t.same(k.shape, g.shape, `output ${i}: shape`)
        t.equal(k.dtype, f.dtype, `output ${i}: dtype ${f.dtype}`)
        if (k.values.length !== g.values.length || f.values.length !== g.values.length) return void t.fail(`output ${i}: ${k.values.length} values, expected ${g.values.length}`)
        const floor = atol * Math.max(1, maxAbs(g.values))
        const errR = maxErr(f.values, g.values)
        // The bound below grows with errR, so a wrong reference would loosen it instead of failing: check the
        // reference itself first, against the CPU backend (tested against float64 oracles on its own).
        t.ok(errR <= floor, `output ${i}: the float64 reference agrees with the CPU in ${f.dtype} (${errR.toExponential(2)} ≤ ${floor.toExponential(2)})`)
        const errK = maxErr(k.values, g.values)
        const bound = 2 * errR + floor
        t.ok(errK <= bound, `output ${i}: max err ${errK.toExponential(2)} ≤ ${bound.toExponential(2)}`, errK <= bound ? {} : { kernel: k.values.slice(0, 8), golden: g.values.slice(0, 8) })
      })
    })
  }
}
