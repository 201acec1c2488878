import { spawn } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The monorepo root. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * The environment for child processes that must behave as they would for a user: tap's loaders (NODE_OPTIONS,
 * coverage hooks, TAP_* settings) would otherwise leak into them, and the npm_* variables of `npm test` would point
 * a child npm back at this workspace (npm_config_local_prefix) instead of the directory it runs in.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS_|TS_NODE_|INIT_CWD$|npm_(lifecycle_|package_|command$|config_(local_prefix|call|workspace|include_workspace_root)))/.test(k)) continue
    env[k] = v
  }
  // tap's process tracking wraps child_process and puts its hooks back into a child's NODE_OPTIONS; this turns its
  // coverage off there. A child's coverage would be merged by URL with the test processes' coverage of the same
  // sources, under another transform (tsx's), whose byte ranges do not line up: the report comes out wrong.
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
}

export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Run a command to completion, capturing its output; never rejects on a non-zero exit (callers assert on it). */
export function run(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    child.on('error', reject)
    child.on('close', code => resolvePromise({ code, stdout, stderr }))
  })
}

/** A compact description of a failed command, for assertion messages. */
export const describe = (r: RunResult): string => `exit ${r.code}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`
