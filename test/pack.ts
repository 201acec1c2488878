// What a user installs is the packed tarballs, not this workspace: this test packs every package, installs the
// tarballs into a scratch project outside the repository and uses them with plain Node and a strict tsc, so a
// missing file in `files`, an export pointing at nothing, or a declaration that only type-checks inside the
// monorepo fails here rather than after publishing.
import t from 'tap'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, sep } from 'node:path'
import { describe, root, run } from './helpers/proc.js'

interface Manifest {
  name: string
  version: string
  exports: Record<string, unknown>
}

const rootManifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { workspaces: string[] }
const manifests = await Promise.all(
  rootManifest.workspaces.map(async ws => JSON.parse(await readFile(join(root, ws, 'package.json'), 'utf8')) as Manifest),
)
// Every public entry point, e.g. "@heed/tensor" and "@heed/tensor/stream".
const entryPoints = manifests.flatMap(m =>
  Object.keys(m.exports)
    .filter(k => k !== './package.json')
    .map(k => (k === '.' ? m.name : `${m.name}/${k.slice(2)}`)),
)

const work = await mkdtemp(join(tmpdir(), 'heed-pack-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const tarballs = join(work, 'tarballs')
const consumer = join(work, 'consumer')

// Each step needs the previous one; a failure stops the chain instead of burying it under follow-on failures.
const passed = async (p: Promise<{ ok: boolean } | null>): Promise<boolean> => (await p)?.ok ?? false

const ok =
  // A fresh clone has no dist/, and a stale dist/ would be packed silently; tsc -b is incremental, so this is cheap.
  (await passed(t.test('build', async t => {
    const r = await run('npm', ['run', 'build'], root)
    t.equal(r.code, 0, describe(r))
  }))) &&
  (await passed(t.test('built declarations do not depend on the typed-function shim', async t => {
    // The shim is an ambient src/types/*.d.ts that tsc does not copy to dist/, so a published .d.ts that imported
    // 'typed-function' would hand consumers an untyped module (TS7016 under strict).
    const dist = join(root, 'packages', 'tensor', 'dist')
    const offenders: string[] = []
    for (const f of await readdir(dist, { recursive: true })) {
      if (!f.endsWith('.d.ts')) continue
      const src = await readFile(join(dist, f), 'utf8')
      if (/from ['"]typed-function['"]|import\(['"]typed-function['"]\)/.test(src)) offenders.push(f)
    }
    t.same(offenders, [])
  }))) &&
  (await passed(t.test('npm pack every workspace', async t => {
    await mkdir(tarballs)
    const r = await run('npm', ['pack', '--workspaces', '--json', '--pack-destination', tarballs], root)
    t.equal(r.code, 0, describe(r))
    const packed = JSON.parse(r.stdout) as { name: string; filename: string; files: { path: string }[] }[]
    t.same(packed.map(p => p.name).sort(), manifests.map(m => m.name).sort())
    for (const p of packed) {
      const files = p.files.map(f => f.path)
      t.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), `${p.name} ships dist/`)
      t.ok(files.includes('README.md') && files.includes('LICENSE'), `${p.name} ships README.md and LICENSE`)
      t.notOk(files.some(f => f.startsWith('test/') || f.endsWith('.tsbuildinfo')), `${p.name} ships no tests or build state`)
    }
  }))) &&
  (await passed(t.test('install the tarballs into a project outside the workspace', async t => {
    await mkdir(consumer)
    t.ok(relative(root, consumer).startsWith('..'), 'the consumer cannot resolve anything from the workspace')
    const files = await readdir(tarballs)
    const deps: Record<string, string> = { rxjs: '^7.8.0' }
    for (const m of manifests) {
      const file = files.find(f => f === `${m.name.slice(1).replace('/', '-')}-${m.version}.tgz`)
      t.ok(file, `tarball for ${m.name}`)
      deps[m.name] = `file:${join(tarballs, file ?? '')}`
    }
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'heed-consumer', private: true, type: 'module', dependencies: deps }, null, 2))
    const r = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], consumer)
    t.equal(r.code, 0, describe(r))
  })))

if (ok) {
  t.test('every entry point imports with plain node (ESM)', async t => {
    const script = `
      import { tensor, add, mul, sum, valueAndGrad, memory } from '@heed/tensor'
      const resolved = ${JSON.stringify(entryPoints)}.map(e => import.meta.resolve(e))
      for (const e of ${JSON.stringify(entryPoints)}) await import(e)
      const functions = {}
      for (const n of ${JSON.stringify(manifests.map(m => m.name).filter(n => n !== '@heed/tensor'))}) functions[n] = Object.values(await import(n)).filter(v => typeof v === 'function').length
      const x = tensor([1, 2])
      const y = add(x, x)
      const [v, g] = valueAndGrad(a => sum(mul(a, a)))(x)
      console.log(JSON.stringify({ resolved, functions, y: Array.from(await y.data()), v: Array.from(await v.data()), g: Array.from(await g.data()), tensors: memory().tensors }))
    `
    await writeFile(join(consumer, 'use.mjs'), script)
    const r = await run(process.execPath, ['use.mjs'], consumer)
    t.equal(r.code, 0, describe(r))
    if (r.code !== 0) return
    const out = JSON.parse(r.stdout) as { resolved: string[]; functions: Record<string, number>; y: number[]; v: number[]; g: number[] }
    for (const url of out.resolved) {
      t.match(url, `${sep}node_modules${sep}@heed${sep}`.replaceAll(sep, '/'), `${url} resolves inside the consumer`)
      t.match(url, /\/dist\/.*\.js$/, `${url} resolves to built JavaScript, not source`)
    }
    t.same(out.y, [2, 4])
    t.same(out.v, [5])
    t.same(out.g, [2, 4])
    for (const [name, n] of Object.entries(out.functions)) t.ok(n > 0, `${name} exports its API from the built package (${n} functions)`)
  })

  t.test('CommonJS require works where Node supports require(esm)', { skip: !process.features.require_module && 'this Node cannot require ESM' }, async t => {
    await writeFile(join(consumer, 'use.cjs'), `const { tensor } = require('@heed/tensor'); console.log(tensor([3]).shape.length)`)
    const r = await run(process.execPath, ['use.cjs'], consumer)
    t.equal(r.code, 0, describe(r))
    t.equal(r.stdout.trim(), '1')
  })

  t.test('a strict TypeScript consumer type-checks against the published declarations', async t => {
    await writeFile(
      join(consumer, 'use.ts'),
      `import { tensor, add, valueAndGrad, sum, mul, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, type AttentionResult } from '@heed/attention'
import type { Tensor as AttentionTensor } from '@heed/attention'
const x = tensor([1, 2])
const y: Tensor = add(x, x)
const z: AttentionTensor = y
const [value, gradient] = valueAndGrad((a: Tensor) => sum(mul(a, a)))(x)
const q = tensor(new Float32Array(8), [1, 1, 2, 4])
const s: AttentionResult = scaledDotProductAttention(q, q, q, { mask: mask.causal })
export { z, s, value, gradient }
`,
    )
    // skipLibCheck off: the published .d.ts files themselves must compile for a consumer, not just our sources.
    // No @types/node, so the lib must declare Symbol.dispose (tensors are Disposable) and timers (rxjs's types
    // use setTimeout): the requirements the package READMEs state for TypeScript users.
    await writeFile(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', lib: ['ES2022', 'ESNext.Disposable', 'DOM'], module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: [] },
        files: ['use.ts'],
      }),
    )
    const r = await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], consumer)
    t.equal(r.code, 0, describe(r))
  })

  t.test('publint and attw are clean for every package', async t => {
    const r = await run(process.execPath, [join(root, 'scripts', 'lint-packages.mjs')], root)
    t.equal(r.code, 0, describe(r))
  })
}
