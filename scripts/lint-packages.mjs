#!/usr/bin/env node
// Lints what consumers actually receive: every workspace package is packed and checked by publint (package.json
// shape, files present in the tarball) and by @arethetypeswrong/cli (types resolve the way Node ESM and bundlers
// resolve code). Exits 1 if either reports anything for any package.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const bin = name => join(root, 'node_modules', '.bin', name)
const { workspaces } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

const run = (cmd, args, cwd) => {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' })
  return r.status === 0
}

// attw inspects dist/, so a stale or missing build would be linted instead of the sources; tsc -b is incremental.
if (!run('npm', ['run', '--silent', 'build'], root)) process.exit(1)

const failed = []
for (const ws of workspaces) {
  const dir = join(root, ws)
  // --strict: publint warnings (not only errors) fail the lint, since each one is a consumer-visible defect.
  if (!run(bin('publint'), ['--strict'], dir)) failed.push(`${ws}: publint`)
  // esm-only: heed ships ESM only, so CommonJS `require` resolutions are expected to fail and are not problems.
  if (!run(bin('attw'), ['--pack', '.', '--profile', 'esm-only'], dir)) failed.push(`${ws}: attw`)
}

if (failed.length > 0) {
  console.error(`\nlint:pkg failed for ${failed.join(', ')}`)
  process.exit(1)
}
console.log(`\nlint:pkg: ${workspaces.length} packages clean (publint --strict, attw --profile esm-only)`)
