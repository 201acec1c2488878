// The README's first example is examples/readme.ts verbatim; this keeps the two identical and the code working.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { root } from './helpers/proc.js'

t.test('README shows examples/readme.ts verbatim', async t => {
  const readme = await readFile(join(root, 'README.md'), 'utf8')
  const example = await readFile(join(root, 'examples', 'readme.ts'), 'utf8')
  t.ok(readme.includes('```ts\n' + example + '```'), 'README.md contains the example as a ts code block')
})

t.test('the README example prints what its comments say', async t => {
  const logs = t.capture(console, 'log')
  await import('../examples/readme.js')
  const calls = logs().map(c => c.args)
  t.same(calls, [
    [[[-0.5], [-1.5]]],
    [8.5, [[-18], [-26]]],
  ])
})
