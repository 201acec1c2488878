/**
 * The docs site's live demo (docs/demo.md) in a real browser: `npm run docs:build` builds the site, the output is
 * served on loopback, and headless Chromium opens the demo page, types a prompt, sets the controls, presses
 * Generate and waits for the shipped model's text. On the CPU backend (`?backend=cpu`) the text and the KV bytes
 * must equal what the page's own pipeline (docs/snippets/_demo.ts) gives in Node for the same seed, from the bytes
 * the site serves. The WebGPU run must stream every token and say so when it falls back to the CPU; its text is
 * compared with Node's in a comment only, since WebGPU's float32 rounding may flip a sampled character.
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
import { lastValueFrom, toArray } from 'rxjs'
import { dispose } from '@heed/tensor'
import { demoStream, loadDemoModel, type DemoModel, type DemoOptions, type DemoStep } from '../docs/snippets/_demo.js'
import { cleanEnv, root, run } from './helpers/proc.js'

const CHROMIUM = process.env['HEED_CHROMIUM'] || '/usr/bin/chromium'
// As in test/browser.ts: WebGPU is behind a flag on Linux, and nothing may stall on a closed network.
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--enable-webgpu-developer-features', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run']
const requireWebgpu = !!process.env['HEED_REQUIRE_WEBGPU'] && process.env['HEED_REQUIRE_WEBGPU'] !== '0'
const dist = join(root, 'docs', '.vitepress', 'dist')

/** What the page leaves on window when a run ends (docs/.vitepress/theme/HeedDemo.vue). */
interface DemoReport {
  readonly status?: 'done' | 'stopped' | 'failed'
  readonly backend?: string
  readonly fellBack?: boolean
  readonly model?: string
  readonly text?: string
  readonly tokens?: number
  readonly kvBytes?: number
  readonly tokensPerSecond?: number
  readonly error?: string
  readonly log: readonly string[]
}

const PROMPT = 'And God said, Let there be'

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

/** Type a prompt, set the controls, press Generate and wait for the report the page leaves on window. */
async function generate(page: Page, o: { prompt: string } & DemoOptions): Promise<{ report: DemoReport; printed: string; stats: string; log: string }> {
  await page.evaluate(() => void ((globalThis as unknown as { __heedDemo?: unknown }).__heedDemo = undefined))
  await page.fill('[data-test=prompt]', o.prompt)
  await page.selectOption('[data-test=policy]', o.policy)
  await page.fill('[data-test=seed]', String(o.seed))
  await page.fill('[data-test=temperature]', String(o.temperature))
  await page.fill('[data-test=max-tokens]', String(o.maxTokens))
  await page.click('[data-test=generate]')
  await page.waitForFunction(() => (globalThis as unknown as { __heedDemo?: unknown }).__heedDemo !== undefined, undefined, { timeout: 240_000, polling: 200 })
  const report = await page.evaluate(() => (globalThis as unknown as { __heedDemo: DemoReport }).__heedDemo)
  const text = async (sel: string): Promise<string> => ((await page.$(sel)) ? ((await page.textContent(sel)) ?? '') : '')
  return { report, printed: await text('[data-test=output]'), stats: await text('[data-test=stats]'), log: await text('[data-test=log]') }
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

  t.test('the demo page streams the shipped model and writes what Node writes for the same seed', async t => {
    if (!existsSync(join(dist, 'demo.html'))) return void t.fail('no built demo page')
    const { server, origin } = await serve()
    let browser: Browser | undefined
    let reference: DemoModel | undefined
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 })
      const context = await browser.newContext()
      // Everything the page needs is on its own origin; anything else would be a request off this machine.
      await context.route('**/*', route => (route.request().url().startsWith(`${origin}/`) ? route.continue() : route.abort()))
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', e => void errors.push(e.message))
      const open = async (query: string): Promise<void> => {
        await page.goto(`${origin}/demo${query}`, { waitUntil: 'networkidle', timeout: 30_000 })
        // The controls work only once Vue has hydrated the server-rendered page.
        await page.waitForFunction(
          () => {
            const doc = (globalThis as unknown as { document: { querySelector(s: string): { __vue_app__?: unknown } | null } }).document
            return !!doc.querySelector('[data-test=generate]') && !!doc.querySelector('#app')?.__vue_app__
          },
          undefined,
          { timeout: 30_000 },
        )
      }

      // ?backend=cpu: the equality with Node is float for float only on the same backend (see below for WebGPU).
      await open('?backend=cpu')
      t.match(await page.title(), /Live demo/, 'the demo page is served')
      t.equal(await page.inputValue('[data-test=backend]'), 'cpu', '?backend=cpu selects the CPU backend')
      const full = await generate(page, { prompt: PROMPT, policy: 'full', seed: 3, temperature: 0.8, maxTokens: 40 })
      t.comment(full.printed)
      t.equal(full.report.error, undefined, 'the CPU run threw nothing')
      t.equal(full.report.status, 'done', 'the stream completed')
      t.equal(full.report.backend, 'cpu', 'ran on the cpu')
      t.ok(typeof full.report.model === 'string' && full.report.model.endsWith('.safetensors'), `the checkpoint is an asset of the site (${full.report.model})`)

      // The same pipeline (the page's snippet) in Node, from the bytes the site serves, on the CPU backend.
      reference = await loadDemoModel(`${origin}${full.report.model}`, 'cpu', line => void t.comment(`node: ${line}`))
      const inNode = async (o: DemoOptions): Promise<DemoStep[]> => lastValueFrom(demoStream(reference!, PROMPT, o).pipe(toArray()))
      const want = await inNode({ policy: 'full', seed: 3, temperature: 0.8, maxTokens: 40 })
      const wantText = want.map(s => s.char).join('')
      t.equal(full.report.text, wantText, `the page's text equals Node's for seed 3: ${JSON.stringify(wantText)}`)
      t.equal(full.report.tokens, 40, 'every token streamed')
      t.equal(full.report.kvBytes, want.at(-1)!.kvBytes, `KV bytes of the full cache as in Node (${want.at(-1)!.kvBytes})`)
      const { layers, kvHeads, dModel, heads } = reference.lm.config
      const perToken = layers * kvHeads * 2 * (dModel / heads) * 4
      t.equal(full.report.kvBytes, (PROMPT.length + 39) * perToken, 'the full cache holds the prompt and every token before the last')
      t.match(full.printed, PROMPT + wantText, 'the page shows the prompt and its continuation')
      t.match(full.stats, /cpu · full cache · seed 3 · temperature 0\.8 · 40 tokens · [\d.]+ tokens\/s · KV cache [\d.]+ kB/, 'the stats line: backend, policy, seed, temperature, tokens/s, KV bytes')

      const sinks = await generate(page, { prompt: PROMPT, policy: 'sinks', seed: 3, temperature: 0.8, maxTokens: 80 })
      const wantSinks = await inNode({ policy: 'sinks', seed: 3, temperature: 0.8, maxTokens: 80 })
      t.equal(sinks.report.error, undefined, 'the sinks + recent run threw nothing')
      t.equal(sinks.report.text, wantSinks.map(s => s.char).join(''), 'sinks + recent: the same text as Node')
      t.equal(sinks.report.kvBytes, wantSinks.at(-1)!.kvBytes, 'sinks + recent: the same KV bytes as Node')
      t.ok((sinks.report.kvBytes ?? Infinity) <= 64 * perToken && (sinks.report.kvBytes ?? Infinity) < (PROMPT.length + 79) * perToken, `sinks + recent hold at most 4 + 60 tokens (${sinks.report.kvBytes} bytes)`)

      const bad = await generate(page, { prompt: 'Psalm 23', policy: 'full', seed: 1, temperature: 0, maxTokens: 5 })
      t.equal(bad.report.status, 'failed', 'a character outside the alphabet fails the run')
      t.match(bad.report.error, /"2"/, 'and the error names the character')

      // WebGPU (SwiftShader in CI) rounds float32 differently from the CPU, so a sampled character may differ: the
      // run must stream every token with the KV bytes of its policy, and the comparison with Node is reported only.
      await open('')
      const gpu = await generate(page, { prompt: PROMPT, policy: 'window', seed: 3, temperature: 0, maxTokens: 24 })
      const wantGpu = await inNode({ policy: 'window', seed: 3, temperature: 0, maxTokens: 24 })
      t.comment(gpu.printed)
      t.equal(gpu.report.error, undefined, 'the WebGPU run threw nothing')
      t.equal(gpu.report.status, 'done', 'the WebGPU stream completed')
      t.equal(gpu.report.tokens, 24, 'every token streamed')
      t.equal(gpu.report.text?.length, 24, 'one character per token')
      t.equal(gpu.report.kvBytes, wantGpu.at(-1)!.kvBytes, 'window: the KV bytes Node reports')
      const wantGpuText = wantGpu.map(s => s.char).join('')
      t.comment(gpu.report.text === wantGpuText ? `greedy text on ${gpu.report.backend} equals Node's CPU text` : `greedy text on ${gpu.report.backend} differs from Node's CPU text: ${JSON.stringify(gpu.report.text)} vs ${JSON.stringify(wantGpuText)}`)
      if (gpu.report.fellBack) {
        if (requireWebgpu) t.fail(`HEED_REQUIRE_WEBGPU is set but the demo fell back to the CPU:\n${gpu.log}`)
        else t.comment('Chromium has no WebGPU adapter here: the demo fell back to the CPU, as it should')
        t.equal(gpu.report.backend, 'cpu', 'fell back to the cpu')
      } else t.equal(gpu.report.backend, 'webgpu', 'ran on webgpu')
      t.same(errors, [], 'no uncaught errors in the page')
    } finally {
      if (reference) dispose(reference.params)
      await browser?.close().catch(() => {})
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  })
}
