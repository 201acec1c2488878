// One rule for RxJS: each package keeps its operators behind `./stream`, with rxjs an optional peer, so a user of
// the main entries never needs rxjs installed. Checked on the sources: the module graph of every main entry (type
// imports included, since a published declaration that names rxjs needs it too) reaches no rxjs import.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import ts from 'typescript'
import { root } from './helpers/proc.js'

interface Manifest {
  name: string
  exports: Record<string, { '@heed/source'?: string } | string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}

const workspaces = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces
const manifests = new Map(workspaces.map(ws => [ws, JSON.parse(readFileSync(join(root, ws, 'package.json'), 'utf8')) as Manifest]))

/** `@heed/<pkg>[/sub]` to its source file, through the `@heed/source` condition as the tests run. */
function entryFile(spec: string): string | undefined {
  for (const [ws, m] of manifests) {
    if (spec !== m.name && !spec.startsWith(`${m.name}/`)) continue
    const e = m.exports[spec === m.name ? '.' : `./${spec.slice(m.name.length + 1)}`]
    const src = typeof e === 'object' ? e['@heed/source'] : undefined
    return src ? join(root, ws, src) : undefined
  }
  return undefined
}

/** Static import and re-export specifiers (dynamic import() runs only when called, so it is left out). */
function specifiers(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  return sf.statements.flatMap(st =>
    (ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) ? [st.moduleSpecifier.text] : [],
  )
}

function resolveRelative(from: string, spec: string): string | undefined {
  const p = normalize(join(dirname(from), spec))
  return [p.replace(/\.js$/, '.ts'), p, `${p}.ts`, join(p, 'index.ts')].find(c => c.endsWith('.ts') && existsSync(c))
}

/** The import chains from `entry` that end in rxjs (each as file → … → 'rxjs'), one per importing file. */
function rxjsChains(entry: string): string[] {
  const parent = new Map<string, string | undefined>([[entry, undefined]])
  const queue = [entry]
  const found: string[] = []
  const chain = (f: string): string[] => (f === entry ? [f] : [...chain(parent.get(f)!), f])
  for (let i = 0; i < queue.length; i++) {
    const f = queue[i]!
    for (const spec of specifiers(f)) {
      if (spec === 'rxjs' || spec.startsWith('rxjs/')) {
        found.push([...chain(f), spec].map(x => x.replace(`${root}/`, '')).join(' → '))
        continue
      }
      const next = spec.startsWith('.') ? resolveRelative(f, spec) : entryFile(spec)
      if (next && !parent.has(next)) {
        parent.set(next, f)
        queue.push(next)
      }
    }
  }
  return found
}

t.test('the scan sees rxjs where it is imported', async t => {
  t.ok(rxjsChains(entryFile('@heed/tensor/stream')!).length > 0, '@heed/tensor/stream imports rxjs')
})

for (const [ws, m] of manifests) {
  t.test(`${m.name}: rxjs stays behind ./stream`, async t => {
    const main = entryFile(m.name)
    t.ok(main, 'main entry found')
    t.same(rxjsChains(main!), [], 'the main entry reaches no rxjs import')
    if (m.peerDependencies?.['rxjs']) {
      t.ok(m.exports['./stream'], `${ws} has a ./stream entry`)
      t.equal(m.peerDependenciesMeta?.['rxjs']?.optional, true, 'rxjs is an optional peer')
    }
  })
}
