// `npm start` is the first thing a new user runs after `npm install`; it must work from source, without a build.
import t from 'tap'
import { describe, root, run } from './helpers/proc.js'

t.test('npm start runs the demo and exits 0', async t => {
  const r = await run('npm', ['start', '--silent'], root)
  t.equal(r.code, 0, describe(r))
  t.match(r.stdout, /heed demo on the cpu backend/)
  t.match(r.stdout, /d\/dx = \[2,-4,6\]/)
  t.match(r.stdout, /after dispose\s+0 live tensors/)
})
