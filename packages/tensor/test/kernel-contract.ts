// The kernel contract is the only place that spells a kernel's name: ops, gradient rules and autodiff call
// kernels through `Kernel.X`, so a renamed or mistyped kernel is a compile error instead of a run-time
// "kernel not implemented". The scanner is checked on planted code first, so that a clean run means something.
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Kernel } from '@heed/tensor'
import { kernelNameLiterals } from './helpers/kernelLiterals.js'

const names = new Set(Object.keys(Kernel))
const src = fileURLToPath(new URL('../src', import.meta.url))

t.test('Kernel lists each name as itself', async t => {
  t.ok(names.size > 30, `${names.size} kernels`)
  for (const [k, v] of Object.entries(Kernel)) t.equal(v, k)
})

t.test('the scanner finds a kernel name literal at a call site, and only there', async t => {
  const planted = [
    "import { runOp1 } from '../op.js'",
    "const a = runOp1('sum', 'Sum', [x], { axes, keepDims })",
    'const b = runOp1("matmul", `MatMul`, [x, y], attrs)',
    "const c = runOp1('sum', Kernel.Sum, [x], { axes, keepDims })",
    "type R = GradientTable['Sum']",
    "// runOp1('sum', 'Sum', …) in a comment",
    "const d = 'sum'",
  ].join('\n')
  t.same(kernelNameLiterals('planted.ts', planted, names), [
    { line: 2, name: 'Sum' },
    { line: 3, name: 'MatMul' },
  ])
})

// Backends name their own WGSL pipelines after the kernel they implement (a cache label, not a lookup), so they
// and the contract itself are the only files left out.
const skipped = (rel: string): boolean => rel === 'kernelContract.ts' || rel.startsWith('backends/')

const sources = (dir: string, out: string[] = []): string[] => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) sources(p, out)
    else if (name.endsWith('.ts')) out.push(p)
  }
  return out
}

t.test('no kernel name is a string literal in @heed/tensor outside the contract', async t => {
  const files = sources(src).filter(p => !skipped(relative(src, p).split('\\').join('/')))
  t.ok(files.some(p => p.includes(`${join('src', 'ops')}`)) && files.some(p => p.includes(join('src', 'gradients'))), 'ops and gradients are scanned')
  const hits = files.flatMap(p => kernelNameLiterals(p, readFileSync(p, 'utf8'), names).map(h => `${relative(src, p)}:${h.line} '${h.name}'`))
  t.same(hits, [], 'use Kernel.X from kernelContract.ts')
})
