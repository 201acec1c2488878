// The API reference (issue 19: "grouped by topic with every public option documented"). Both checks read the
// sources, not TypeDoc's output, so they take a second: every source file maps to a topic of
// docs/typedoc-topics.mjs (a new file cannot fall into an untitled "Other" section), and every property of an
// exported `…Options` interface carries a doc comment (TypeDoc shows it beside the option).
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { topicOf } from '../docs/typedoc-topics.mjs'
import { root } from './helpers/proc.js'

const PACKAGES = ['tensor', 'attention', 'memory', 'align', 'fairness']

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return sources(p)
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [p] : []
  })
}
const files = PACKAGES.flatMap(p => sources(join(root, 'packages', p, 'src')))

t.test('every source file has a topic in the API reference', async t => {
  const missing = files.filter(f => !f.endsWith('index.ts') && !f.endsWith('internal.ts') && topicOf(f) === undefined).map(f => relative(root, f))
  t.same(missing, [], 'files without a topic (add a rule to docs/typedoc-topics.mjs)')
  t.equal(topicOf(join(root, 'packages/tensor/src/autodiff/tape.ts')), 'Autodiff')
  t.equal(topicOf(join(root, 'packages/attention/src/kvCache.ts')), 'KV caches, streaming decode and observers')
  t.equal(topicOf('/elsewhere/file.ts'), undefined, 'files outside the packages have none')
})

t.test('every option of an exported …Options interface is documented', async t => {
  const undocumented: string[] = []
  for (const f of files) {
    const sf = ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true)
    for (const st of sf.statements) {
      if (!ts.isInterfaceDeclaration(st) || !/Options$/.test(st.name.text)) continue
      if (!st.modifiers?.some(m => m.kind === ts.SyntaxKind.ExportKeyword)) continue
      for (const m of st.members) {
        if (!ts.isPropertySignature(m) && !ts.isMethodSignature(m)) continue
        const docs = ts.getJSDocCommentsAndTags(m)
        if (docs.length === 0) undocumented.push(`${relative(root, f)}: ${st.name.text}.${m.name.getText(sf)}`)
      }
    }
  }
  t.same(undocumented, [], 'options without a doc comment')
})
