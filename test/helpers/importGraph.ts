import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, posix } from 'node:path'
import ts from 'typescript'

/** Module graph: each source file (a path) to the source files it imports. */
export type Graph = ReadonlyMap<string, readonly string[]>

/**
 * The module specifiers a file depends on at load time: `import … from`, `import '…'`, `export … from`, type-only
 * forms included (a type cycle still ties the files together for whoever reads them). Dynamic `import()` is left
 * out: it runs after every module has been evaluated, so it cannot form an evaluation-order cycle, and engine.ts
 * uses it on purpose to load the WebGPU backend on demand. Read off the syntax tree, so comments and strings that
 * merely look like imports do not count.
 */
export function importSpecifiers(fileName: string, source: string): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const out: string[] = []
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier))
      out.push(st.moduleSpecifier.text)
  }
  return out
}

/** How a bare specifier such as `@heed/tensor/cpu` maps to a source file; undefined for outside packages. */
export type BareResolver = (specifier: string) => string | undefined

/**
 * The graph of `files` (path → source, paths with forward slashes): relative specifiers resolve against the
 * importing file (`.js` names the `.ts` source, a directory its `index.ts`), bare ones through `bare`. Specifiers
 * that name no file of `files` (node builtins, rxjs) are not edges.
 */
export function buildGraph(files: ReadonlyMap<string, string>, bare: BareResolver = () => undefined): Graph {
  const known = (p: string): string | undefined => {
    for (const c of [p, p.replace(/\.js$/, '.ts'), `${p}.ts`, `${p}/index.ts`]) if (files.has(c)) return c
    return undefined
  }
  const graph = new Map<string, string[]>()
  for (const [file, source] of files) {
    const deps = new Set<string>()
    for (const spec of importSpecifiers(file, source)) {
      const target = spec.startsWith('.') ? known(posix.normalize(posix.join(posix.dirname(file), spec))) : bare(spec)
      if (target !== undefined && files.has(target)) deps.add(target)
    }
    graph.set(file, [...deps])
  }
  return graph
}

/**
 * Every import cycle of `graph`, one per strongly connected component that has one (Tarjan's algorithm), each
 * given as a concrete closed path through that component: [a, b, c] means a → b → c → a.
 */
export function findCycles(graph: Graph): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const components: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) !== index.get(v)) return
    const comp: string[] = []
    let w: string
    do {
      w = stack.pop()!
      onStack.delete(w)
      comp.push(w)
    } while (w !== v)
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(comp)
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return components.map(comp => closedPath(graph, new Set(comp), [...comp].sort()[0]!))
}

/** A shortest path from `start` back to itself inside `within` (breadth first), without the repeated end. */
function closedPath(graph: Graph, within: ReadonlySet<string>, start: string): string[] {
  const from = new Map<string, string>()
  const queue = [start]
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!
    for (const w of graph.get(v) ?? []) {
      if (!within.has(w)) continue
      if (w === start) {
        const path = [v]
        while (path[0] !== start) path.unshift(from.get(path[0]!)!)
        return path
      }
      if (!from.has(w) && w !== start) {
        from.set(w, v)
        queue.push(w)
      }
    }
  }
  return [start]
}

// ---- the repository ---------------------------------------------------------------------------------------------

const walk = (dir: string, out: string[]): string[] => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p)
  }
  return out
}

interface Manifest {
  readonly name: string
  readonly exports?: Readonly<Record<string, unknown>>
}

/**
 * The sources under `packages/<pkg>/src` of the monorepo at `root` (paths relative to it), and the resolver of
 * `@heed/<pkg>[/sub]` through each package's `exports` (the `@heed/source` condition, as the tests run).
 */
export function repositorySources(root: string): { files: Map<string, string>; bare: BareResolver } {
  const files = new Map<string, string>()
  const entries = new Map<string, string>()
  const rel = (p: string): string => p.slice(root.length + 1).split('\\').join('/')
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const dir = join(root, 'packages', pkg)
    let manifest: Manifest
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest
    } catch {
      continue
    }
    for (const f of walk(join(dir, 'src'), [])) files.set(rel(f), readFileSync(f, 'utf8'))
    for (const [key, value] of Object.entries(manifest.exports ?? {})) {
      const target = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['@heed/source'] : undefined
      if (typeof target !== 'string') continue
      const spec = key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`
      entries.set(spec, posix.normalize(`${rel(dir)}/${target}`))
    }
  }
  return { files, bare: spec => entries.get(spec) }
}
