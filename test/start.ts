// `npm start` is the first thing a new user runs after `npm install`; it must work from source, without a build.
// The suite runs the tour with --quick, which keeps every section but shrinks it, so CI stays fast.
import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import t from 'tap'
import { describe, root, run } from './helpers/proc.js'

t.test('npm start runs the tour, prints the summary table and writes the HTML report', async t => {
  const r = await run('npm', ['start', '--silent', '--', '--quick'], root)
  t.equal(r.code, 0, describe(r))
  t.match(r.stdout, /heed tour on the cpu backend/)
  t.match(r.stdout, /^section\s+\|\s+run\s+\|\s+result\s+\|\s+time/m)
  t.match(r.stdout, /^And God said unto\S* \S+/m, 'generated text streams to stdout, after the prompt')
  t.match(r.stdout, /^lm\s+\| shipped KJV model: 1\.\d+ M params, 6 layers, context 256\s+\| validation \d\.\d+ bits\/char/m)
  t.match(r.stdout, /^lm\s+\| generate \d+ chars.*\| \d+ chars\/s with a KV cache/m)
  t.match(r.stdout, /^lm\s+\| full KV cache\s+\| \d\.\d+ bits\/char, KV/m)
  t.match(r.stdout, /^lm\s+\| window of 128, no sinks\s+\| \d\.\d+ bits\/char, KV/m)
  t.match(r.stdout, /^lm\s+\| StreamingLLM: 4 sinks \+ 124 recent\s+\| \d\.\d+ bits\/char, KV/m)
  t.match(r.stdout, /^lm\s+\| DuoAttention: \d+\/24 retrieval heads\s+\| \d\.\d+ bits\/char, KV/m, 'retrieval heads from the gates shipped with the model')
  t.match(r.stdout, /^lm\s+\| Lightning.*\| \d+\.\d+ bits\/char, KV 96\.0 KiB/m, 'a linear operator holds a fixed-size state')
  t.match(r.stdout, /^memory\s+\| Sparsey MNIST.*\| accuracy \d+\.\d %/m)
  t.match(r.stdout, /^memory\s+\| Tensor Brain.*\| episodic recall 100\.0 %/m)
  t.match(r.stdout, /^memory\s+\| Titans passkey.*\| recall \d\/\d/m)
  t.match(r.stdout, /^align\s+\| DPO.*\| loss 0\.693 → 0\.\d+/m, 'the DPO loss starts at ln 2')
  t.match(r.stdout, /^fairness\s+\| Distraction.*\| acc 0\.\d+, DP gap 0\.\d+/m)
  t.match(r.stdout, /live tensors 0$/m)
  const path = /^report: (.+)$/m.exec(r.stdout)?.[1]
  t.ok(path, 'names the report')
  const file = isAbsolute(path!) ? path! : join(root, path!)
  t.ok(existsSync(file), `${file} exists`)
  const html = readFileSync(file, 'utf8')
  t.match(html, /^<!doctype html>/)
  t.ok((html.match(/<svg /g) ?? []).length >= 5, 'the report inlines its plots')
  t.match(r.stderr, /lm: /, 'progress goes to stderr')
})
