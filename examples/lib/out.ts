/**
 * Where examples, the tour and the results script put what they generate: `out/<name>/` at the repository root,
 * which git ignores, so running a demo never dirties the work tree.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The monorepo root (this file sits in examples/lib). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** `out/<name>` under the repository root, created if missing. */
export function outDir(name: string): string {
  const dir = join(repoRoot, 'out', name)
  mkdirSync(dir, { recursive: true })
  return dir
}

/** Write a file, creating its folder, and return the path as the user would type it from the current folder. */
export function writeOutput(path: string, content: string): string {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, content)
  return shown(path)
}

/** A path relative to the current folder when it lies below it (short and pasteable), else absolute. */
export function shown(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel !== '' && !rel.startsWith('..') ? rel : path
}
