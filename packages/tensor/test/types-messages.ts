/**
 * What tsc says about a literal shape mismatch. The other type tests prove that such a call fails to compile; this
 * one compiles calls with the TypeScript compiler API and reads the diagnostic, which must say what differs and
 * show both shapes (not "Expected 3 arguments, but got 2" about a hidden parameter).
 */
import t from 'tap'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
// A file that exists only in memory, inside the repository so that '@heed/tensor' resolves as it does for users here.
const virtual = join(root, 'packages/tensor/test/__shape-messages__.ts')

function diagnostics(body: string): string[] {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root)
  const source = `import { add, expandDims, matmul, permute, squeeze, zeros } from '@heed/tensor'\n${body}\n`
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, lang, ...rest) => (resolve(name) === virtual ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest))
  const fileExists = host.fileExists.bind(host)
  host.fileExists = name => resolve(name) === virtual || fileExists(name)
  const program = ts.createProgram({ rootNames: [virtual], options: { ...options, noEmit: true }, host })
  return ts
    .getPreEmitDiagnostics(program, program.getSourceFile(virtual))
    .filter(d => d.file !== undefined && resolve(d.file.fileName) === virtual)
    .map(d => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
}

t.test('literal shape mismatches: the compiler message names what differs and both shapes', async t => {
  const cases: [string, string][] = [
    ['matmul(zeros([2, 3]), zeros([4, 5]))', 'ShapeError<"matmul: inner dims differ", readonly [2, 3], readonly [4, 5]>'],
    // the shapes as multiplied: b transposed
    ['matmul(zeros([2, 3]), zeros([3, 4]), { transposeB: true })', 'ShapeError<"matmul: inner dims differ", readonly [2, 3], readonly [4, 3]>'],
    ['matmul(zeros([2, 2, 3]), zeros([3, 3, 4]))', 'ShapeError<"matmul: batch dims are not broadcastable", readonly [2, 2, 3], readonly [3, 3, 4]>'],
    ['add(zeros([2, 3]), zeros([4, 3]))', 'ShapeError<"shapes are not broadcastable", readonly [2, 3], readonly [4, 3]>'],
    ['permute(zeros([2, 3]), [0])', 'ShapeError<"permute: axes must list every axis of the shape exactly once", readonly [2, 3], readonly [0]>'],
    ['squeeze(zeros([2, 3]), 0)', 'ShapeError<"squeeze: the squeezed dim is not 1", readonly [2, 3], 0>'],
    ['expandDims(zeros([2, 3]), 5)', 'ShapeError<"expandDims: axis is out of range for the shape", readonly [2, 3], 5>'],
  ]
  // one program for all of them: each call on its own line, each diagnostic matched to its line's expectation
  const messages = diagnostics(cases.map(([call]) => `${call}`).join('\n'))
  t.equal(messages.length, cases.length, 'one error per mismatched call')
  for (const [call, want] of cases) {
    const hit = messages.find(m => m.includes(want))
    t.ok(hit, `${call}: the message contains ${want}`)
  }
  for (const m of messages) t.notMatch(m, /Expected \d+ arguments/, 'no arity message about a hidden parameter')
})

t.test('fitting literal shapes and runtime shapes compile without a message', async t => {
  const ok = diagnostics(
    [
      'const c = matmul(zeros([2, 3]), zeros([3, 4]))',
      'const d = matmul(zeros([2, 3]), zeros([4, 3]), { transposeB: true })',
      'const e = add(zeros([2, 3]), zeros([3]))',
      'const f = permute(zeros([2, 3]), [1, 0])',
      'const g = squeeze(zeros([2, 1]), 1)',
      'const h = expandDims(zeros([2, 3]), 2)',
      'const shape: number[] = [4, 5]',
      'const i = matmul(zeros([2, 3]), zeros(shape))',
      'export { c, d, e, f, g, h, i }',
    ].join('\n'),
  )
  t.same(ok, [])
})
