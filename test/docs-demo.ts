/**
 * The docs site's live demo (docs/demo.md) in a real browser: `npm run docs:build` builds the site, the output is
 * served on loopback, and headless Chromium opens the demo page, presses its buttons and reports what the page
 * printed. The pipeline runs on WebGPU when Chromium has an adapter and must say so when it falls back to the CPU.
 *
 * Without /usr/bin/chromium (or $HEED_CHROMIUM) the test is skipped with a visible notice, unless
 * HEED_REQUIRE_WEBGPU is set, where that, or a fallback to the CPU, is a failure (the policy of test/browser.ts).
 */
import t from 'tap'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { cleanEnv, root, run } from './helpers/proc.js'

const CHROMIUM = process.env['HEED_CHROMIUM'] || '/usr/bin/chromium'
// As in test/browser.ts: WebGPU is behind a flag on Linux, and nothing may stall on a closed network.
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--enable-webgpu-developer-features', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run']
const requireWebgpu = !!process.env['HEED_REQUIRE_WEBGPU'] && process.env['HEED_REQUIRE_WEBGPU'] !== '0'
const dist = join(root, 'docs', '.vitepress', 'dist')

interface DemoReport {
  readonly backend?: string
  readonly fellBack?: boolean
  readonly tokens?: number
  readonly maxAbsDiff?: number
  readonly ok?: boolean
  readonly error?: string
  readonly lines: readonly string[]
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.woff2': 'font/woff2',
  '.png': 'image/png',
}

/** The built site as a static server; `/demo` is `demo.html`, as `cleanUrls` publishes it. */
async function serve(): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname))
    const candidates = [path, `${path}.html`, join(path, 'index.html')].map(p => join(dist, p))
    const file = candidates.find(f => f.startsWith(dist) && existsSync(f) && statSync(f).isFile())
    if (!file) return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(readFileSync(file))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  // 127.0.0.1 is a secure context, which navigator.gpu requires.
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** Press one of the demo's buttons and wait for the report the page leaves on window. */
async function press(page: Page, button: 'run-webgpu' | 'run-cpu'): Promise<{ report: DemoReport; printed: string }> {
  await page.evaluate(() => void ((globalThis as unknown as { __heedDemo?: unknown }).__heedDemo = undefined))
  await page.click(`[data-test=${button}]`)
  await page.waitForFunction(() => (globalThis as unknown as { __heedDemo?: unknown }).__heedDemo !== undefined, undefined, { timeout: 240_000, polling: 200 })
  const report = await page.evaluate(() => (globalThis as unknown as { __heedDemo: DemoReport }).__heedDemo)
  return { report, printed: await page.textContent('[data-test=output]') ?? '' }
}

if (!existsSync(CHROMIUM)) {
  const why = `${CHROMIUM} not found (on Debian: apt-get install chromium)`
  if (requireWebgpu) t.fail(`HEED_REQUIRE_WEBGPU is set but the docs demo cannot run: ${why}`)
  else t.test('the docs demo in headless Chromium', { skip: `the docs demo test needs a browser: ${why}` }, () => {})
} else {
  // A cold site build on a busy 2-core machine takes minutes, more than tap's per-file default.
  t.setTimeout(900_000)

  t.test('npm run docs:build builds the site', async t => {
    const t0 = Date.now()
    const r = await run('npm', ['run', 'docs:build'], root, cleanEnv())
    t.equal(r.code, 0, 'exit code 0', r.code === 0 ? {} : { output: (r.stdout + r.stderr).slice(-4000) })
    t.comment(`built in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
    for (const page of ['index.html', 'demo.html', 'results.html', 'guide/getting-started.html', 'recipes/streaming-decode.html', 'operators/lightning.html', 'memory/titans.html', 'packages/attention.html', 'api/index.html'])
      t.ok(existsSync(join(dist, page)), `dist has ${page}`)
  })

  t.test('the demo page runs its pipeline and prints the result', async t => {
    if (!existsSync(join(dist, 'demo.html'))) return void t.fail('no built demo page')
    const { server, origin } = await serve()
    let browser: Browser | undefined
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 })
      const context = await browser.newContext()
      // Everything the page needs is on its own origin; anything else would be a request off this machine.
      await context.route('**/*', route => (route.request().url().startsWith(`${origin}/`) ? route.continue() : route.abort()))
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', e => void errors.push(e.message))
      await page.goto(`${origin}/demo`, { waitUntil: 'networkidle', timeout: 30_000 })
      t.match(await page.title(), /Live demo/, 'the demo page is served')
      // The buttons work only once Vue has hydrated the server-rendered page.
      await page.waitForFunction(
        () => {
          const doc = (globalThis as unknown as { document: { querySelector(s: string): { __vue_app__?: unknown } | null } }).document
          return !!doc.querySelector('[data-test=run-webgpu]') && !!doc.querySelector('#app')?.__vue_app__
        },
        undefined,
        { timeout: 30_000 },
      )

      const gpu = await press(page, 'run-webgpu')
      t.comment(gpu.printed)
      t.equal(gpu.report.error, undefined, 'the WebGPU run threw nothing')
      t.equal(gpu.report.tokens, 40, 'every token went through the pipeline')
      t.ok(gpu.report.ok && (gpu.report.maxAbsDiff ?? Infinity) < 1e-3, `stream = one-shot (max |Δ| ${gpu.report.maxAbsDiff})`)
      t.match(gpu.printed, /stream = one-shot: the KV cache is exact/, 'the page prints the verdict')
      t.match(gpu.printed, new RegExp(`backend: ${gpu.report.backend}`), 'the page prints the backend it ran on')
      if (gpu.report.fellBack) {
        if (requireWebgpu) t.fail(`HEED_REQUIRE_WEBGPU is set but the demo fell back to the CPU:\n${gpu.printed}`)
        else t.comment('Chromium has no WebGPU adapter here: the demo fell back to the CPU, as it should')
      } else t.equal(gpu.report.backend, 'webgpu', 'ran on webgpu')

      const cpu = await press(page, 'run-cpu')
      t.equal(cpu.report.error, undefined, 'the CPU run threw nothing')
      t.equal(cpu.report.backend, 'cpu', 'ran on the cpu')
      t.ok(cpu.report.ok, `stream = one-shot on the cpu (max |Δ| ${cpu.report.maxAbsDiff})`)
      t.same(errors, [], 'no uncaught errors in the page')
    } finally {
      await browser?.close().catch(() => {})
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })
}
