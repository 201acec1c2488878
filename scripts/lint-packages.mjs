#!/usr/bin/env node
// Lints what consumers actually receive: every workspace package is packed once, and each tarball is checked by
// publint (package.json shape, referenced files present in the tarball) and by @arethetypeswrong/cli (types
// resolve the way Node ESM and bundlers resolve the code). Exits 1 if either reports anything for any package.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, encoding: 'utf8', ...opts })

// attw and publint inspect dist/, so a stale or missing build would be linted instead of the sources; tsc -b is
// incremental, so this is cheap when the build is current.
if (run('npm', ['run', '--silent', 'build'], { stdio: 'inherit' }).status !== 0) process.exit(1)

const out = mkdtempSync(join(tmpdir(), 'heed-lint-'))
const failed = []
try {
  const pack = run('npm', ['pack', '--workspaces', '--json', '--pack-destination', out], { stdio: ['ignore', 'pipe', 'inherit'] })
  if (pack.status !== 0) process.exit(1)
  for (const { name, filename } of JSON.parse(pack.stdout)) {
    const tarball = join(out, filename)
    // strict: publint warnings (not only errors) fail the lint, since each one is a consumer-visible defect.
    const bytes = readFileSync(tarball)
    const { messages, pkg } = await publint({
      pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) },
      level: 'warning',
      strict: true,
    })
    for (const m of messages) console.error(`${name}: publint ${m.type}: ${formatMessage(m, pkg, { color: false })}`)
    if (messages.length > 0) failed.push(`${name} (publint)`)
    // esm-only: heed ships ESM only, so CommonJS `require` resolutions are expected to fail and are not problems.
    const attw = run(join(root, 'node_modules', '.bin', 'attw'), [tarball, '--profile', 'esm-only', '--format', 'table-flipped', '--no-color'], { stdio: 'inherit' })
    if (attw.status !== 0) failed.push(`${name} (attw)`)
    else console.log(`${name}: publint and attw clean`)
  }
} finally {
  rmSync(out, { recursive: true, force: true })
}

if (failed.length > 0) {
  console.error(`\nlint:pkg failed: ${failed.join(', ')}`)
  process.exit(1)
}
console.log('\nlint:pkg: every package is clean (publint --strict, attw --profile esm-only)')
