/**
 * Every docs recipe (docs/snippets/*.ts) runs here, so no page can show code that no longer works.
 *
 * A recipe states its output in one of two ways, and at least one is required:
 * - a trailing `// => <json>` on a `console.log(...)` line: every call made from that line must log that value
 *   (the single argument, or the array of arguments when there are several), compared after a JSON round trip;
 *   a line that never runs is a failure, not a pass;
 * - `export const expected` next to `export const result`: the two must be deeply equal.
 * The pages include each file's `// #region recipe` block, so the region must exist, and the code inside it must
 * reach heed through package names, as a reader would.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { root } from './helpers/proc.js'

const dir = join(root, 'docs', 'snippets')
const files = readdirSync(dir).filter(f => f.endsWith('.ts') && !f.startsWith('_')).sort()

// Line numbers of console.log calls come from stack traces; without source maps they would point into the
// transpiled output instead of the recipe.
process.setSourceMapsEnabled(true)

interface Expectation {
  readonly line: number
  readonly value: unknown
}

/** The `// => json` expectations of a recipe, by 1-based line. */
function expectationsOf(source: string, file: string): Expectation[] {
  const out: Expectation[] = []
  source.split('\n').forEach((text, i) => {
    const m = /console\.log\(.*\/\/ => (.+)$/.exec(text)
    if (!m) return
    try {
      out.push({ line: i + 1, value: JSON.parse(m[1]!) })
    } catch (err) {
      throw new Error(`${file}:${i + 1}: the text after // => is not JSON: ${m[1]}`, { cause: err })
    }
  })
  return out
}

/** The line of `file` a console.log call came from, read off the caller's stack. */
function callerLine(stack: string | undefined, file: string): number | undefined {
  for (const frame of (stack ?? '').split('\n').slice(1)) {
    const m = /(?:file:\/\/)?([^\s()]+):(\d+):\d+\)?$/.exec(frame.trim())
    if (m && (m[1] === file || m[1] === pathToFileURL(file).pathname || m[1]!.endsWith(`/docs/snippets/${file.split('/').pop()}`))) return Number(m[2])
  }
  return undefined
}

const normalise = (v: unknown): unknown => (v === undefined ? null : JSON.parse(JSON.stringify(v)))

for (const name of files) {
  t.test(name, async t => {
    const file = join(dir, name)
    const source = readFileSync(file, 'utf8')
    const region = /\/\/ #region recipe\n([\s\S]*?)\/\/ #endregion recipe/.exec(source)
    t.ok(region, 'has a // #region recipe … // #endregion recipe block for the docs to include')
    t.notMatch(region?.[1] ?? '', /from '\.{1,2}\/(?:\.\.\/)*packages\//, 'imports heed by package name inside the region')
    const expectations = expectationsOf(source, name)

    const calls: { line: number | undefined; args: unknown[] }[] = []
    const original = console.log
    console.log = (...args: unknown[]) => void calls.push({ line: callerLine(new Error().stack, file), args })
    const t0 = performance.now()
    let mod: Record<string, unknown>
    try {
      mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>
    } finally {
      console.log = original
    }
    t.comment(`ran in ${(performance.now() - t0).toFixed(0)} ms, ${calls.length} console.log call(s)`)

    const exported = 'expected' in mod
    t.ok(expectations.length > 0 || exported, 'states its output (// => comments or export const expected)')
    if (exported) t.same(normalise(mod['result']), normalise(mod['expected']), 'export result equals export expected')

    for (const e of expectations) {
      const here = calls.filter(c => c.line === e.line)
      if (here.length === 0) {
        t.fail(`line ${e.line}: its console.log never ran`, { lines: calls.map(c => c.line) })
        continue
      }
      for (const c of here) t.same(normalise(c.args.length === 1 ? c.args[0] : c.args), e.value, `line ${e.line} logs ${JSON.stringify(e.value)}`)
    }
  })
}
