// No package's sources form an import cycle: a cycle makes evaluation order decide which binding is still
// undefined, and ties files together so that neither can be read or changed alone. The cycle finder is tested on
// small planted graphs first, so a passing repository check means something.
import t from 'tap'
import { buildGraph, findCycles, importSpecifiers, repositorySources, type Graph } from './helpers/importGraph.js'
import { root } from './helpers/proc.js'

const graph = (edges: Record<string, string[]>): Graph => new Map(Object.entries(edges))

t.test('findCycles on planted graphs', async t => {
  t.same(findCycles(graph({ a: ['b'], b: ['c'], c: [] })), [], 'a chain has none')
  t.same(findCycles(graph({ a: ['b', 'c'], b: ['d'], c: ['d'], d: [] })), [], 'a diamond has none')
  t.same(findCycles(graph({ a: ['b'], b: ['c'], c: ['a'], d: ['a'] })), [['a', 'b', 'c']], 'a three-file cycle, the file leading into it left out')
  t.same(findCycles(graph({ a: ['a'] })), [['a']], 'a file importing itself')
  const two = findCycles(graph({ a: ['b'], b: ['a'], c: ['d'], d: ['e'], e: ['c'], f: ['a', 'c'] }))
  t.same(two.map(c => [...c].sort()).sort(), [['a', 'b'], ['c', 'd', 'e']], 'two separate cycles')
  // In a component with several loops the reported path is a real one: every step is an edge and it closes.
  const g = graph({ a: ['b', 'c'], b: ['a', 'c'], c: ['a'] })
  const [path] = findCycles(g)
  t.ok(path && path.length >= 2, 'one path for the component')
  path!.forEach((v, i) => t.ok(g.get(v)!.includes(path![(i + 1) % path!.length]!), `${v} → ${path![(i + 1) % path!.length]} is an edge`))
})

t.test('importSpecifiers reads every static import form, and nothing else', async t => {
  const src = [
    "import { a } from './a.js'",
    "import type { B } from './b.js'",
    "import def, * as ns from './c.js'",
    "import './side.js'",
    "export * from './d.js'",
    "export { e, type E } from './e.js'",
    "export const x = 1",
    '// import { no } from "./comment.js"',
    "const s = \"import { no } from './string.js'\"",
    "const later = () => import('./dynamic.js')",
  ].join('\n')
  t.same(importSpecifiers('m.ts', src), ['./a.js', './b.js', './c.js', './side.js', './d.js', './e.js'])
})

t.test('buildGraph resolves relative and @heed/ specifiers, and a planted cycle is found', async t => {
  const files = new Map([
    ['packages/p/src/index.ts', "export * from './ops/one.js'"],
    ['packages/p/src/ops/one.ts', "import { two } from './two.js'\nexport const one = () => two()"],
    ['packages/p/src/ops/two.ts', "import type { Thing } from '../types'\nexport const two = () => 2"],
    ['packages/p/src/types/index.ts', "import { one } from '@heed/p'\nexport type Thing = ReturnType<typeof one>"],
    ['packages/q/src/index.ts', "import { one } from '@heed/p'\nimport { of } from 'rxjs'\nexport const q = one"],
  ])
  const bare = (s: string) => (s === '@heed/p' ? 'packages/p/src/index.ts' : undefined)
  const g = buildGraph(files, bare)
  t.same(g.get('packages/p/src/ops/two.ts'), ['packages/p/src/types/index.ts'], 'a directory import names its index.ts')
  t.same(g.get('packages/q/src/index.ts'), ['packages/p/src/index.ts'], 'outside packages are not edges')
  const cycles = findCycles(g)
  t.equal(cycles.length, 1, 'the planted cycle is found')
  t.same(
    [...cycles[0]!].sort(),
    ['packages/p/src/index.ts', 'packages/p/src/ops/one.ts', 'packages/p/src/ops/two.ts', 'packages/p/src/types/index.ts'],
    'with every file in it',
  )
  files.set('packages/p/src/types/index.ts', 'export type Thing = number')
  t.same(findCycles(buildGraph(files, bare)), [], 'and is gone once the back edge is')
})

t.test('no package has an import cycle', async t => {
  const { files, bare } = repositorySources(root)
  t.ok(files.size > 100, `${files.size} source files read`)
  t.ok(bare('@heed/tensor'), '@heed/tensor resolves through its exports')
  const g = buildGraph(files, bare)
  const crossing = [...g].some(([f, deps]) => f.startsWith('packages/attention/') && deps.some(d => d.startsWith('packages/tensor/')))
  t.ok(crossing, 'edges between packages are seen')
  const cycles = findCycles(g)
  t.same(
    cycles.map(c => `${c.join(' → ')} → ${c[0]}`),
    [],
    'import cycles (each a closed path of files)',
  )
})
