/**
 * The bad-input cases every public function taking options gets (issue 19), shared by the packages' strict-options
 * tests: a generated unknown key, a misspelt key (with the suggestion), a known key of the wrong type, null and
 * array options, a bad argument, each a typed heed error naming the op and the argument, never a TypeError; every
 * documented key accepted as known; the valid call still working. The documented keys are read from the function's
 * `…Options` interface in the source, so a key added to the interface and not to the function's list fails here.
 */
import fc from 'fast-check'
import type { Test } from 'tap'
import ts from 'typescript'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ArgumentError, HeedError, dispose } from '@heed/tensor'
import { root } from './proc.js'

type Tap = Test
type ErrorClass = abstract new (...a: never[]) => HeedError

export interface StrictCase {
  /** The op every error must name. */
  readonly op: string
  /** The call with options `o`. */
  readonly call: (o: unknown) => unknown
  /** Valid options; the unknown and documented keys are added to them. */
  readonly base?: Record<string, unknown>
  /** The documented keys: an interface of the packages' sources (extends and Omit resolved), or a list. */
  readonly keys: { readonly iface: string } | readonly string[]
  /** A misspelling of a known key and the key the error must suggest. */
  readonly misspelt: readonly [string, string]
  /** Options with a known key of the wrong type or value, the error class and the argument named. */
  readonly wrong: readonly [Record<string, unknown>, ErrorClass, string]
  /** A call with null or a plain array where a tensor or object belongs, the class and argument named (op: the case's unless given). */
  readonly badArg: readonly [() => unknown, ErrorClass, string, string?]
  /** The name null options are blamed on (default `opts`). */
  readonly optsArg?: string
  /** The base call itself runs (default true; false where it needs a model the test does not build). */
  readonly runs?: boolean
}

/** The error `fn` throws or rejects with, or undefined; what it returns is disposed. */
export async function caught(fn: () => unknown): Promise<unknown> {
  try {
    let r = fn()
    if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') r = await r
    if (r !== null && typeof r === 'object' && typeof (r as { dispose?: unknown }).dispose === 'function') (r as { dispose(): void }).dispose()
    else dispose(r)
    return undefined
  } catch (e) {
    return e
  }
}

const describe = (e: unknown): string => (e === undefined ? 'no error' : e instanceof Error ? `${e.name}: ${e.message}` : String(e))

/** e is a `cls` naming `op` and `arg` in its fields and its message. */
function named(e: unknown, cls: ErrorClass, op: string, arg: string): string | undefined {
  if (!(e instanceof cls) || e.op !== op || e.arg !== arg || !e.message.startsWith(`${op}: ${arg}: `)) return `wanted ${cls.name} naming ${op}: ${arg}, got ${describe(e)}`
  return undefined
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return sources(p)
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [p] : []
  })
}

/** The members of every interface in the given packages' sources, by name, with their heritage clauses unresolved. */
function interfaces(packages: readonly string[]): Map<string, ts.InterfaceDeclaration> {
  const out = new Map<string, ts.InterfaceDeclaration>()
  for (const f of packages.flatMap(p => sources(join(root, 'packages', p, 'src')))) {
    const sf = ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true)
    for (const st of sf.statements) if (ts.isInterfaceDeclaration(st) && !out.has(st.name.text)) out.set(st.name.text, st)
  }
  return out
}

/** An interface's property names, inherited ones included (`extends A, Omit<B, 'x' | 'y'>`). */
export function interfaceKeys(all: Map<string, ts.InterfaceDeclaration>, name: string): string[] {
  const decl = all.get(name)
  if (decl === undefined) throw new Error(`interface ${name} not found`)
  const own = decl.members.filter(m => m.name !== undefined).map(m => (m.name as ts.Identifier).text)
  const inherited = (decl.heritageClauses ?? []).flatMap(h =>
    h.types.flatMap(ty => {
      const base = ty.expression.getText()
      if (base !== 'Omit') return interfaceKeys(all, base)
      const [target, omitted] = ty.typeArguments!
      const drop = new Set((ts.isUnionTypeNode(omitted!) ? omitted.types : [omitted!]).map(l => l.getText().slice(1, -1)))
      return interfaceKeys(all, target!.getText().replace(/<.*$/, '')).filter(k => !drop.has(k))
    }),
  )
  return [...new Set([...own, ...inherited])]
}

/** Runs every case as a subtest of `t`. */
export async function strictCases(t: Tap, packages: readonly string[], cases: readonly StrictCase[]): Promise<void> {
  const all = interfaces(packages)
  for (const c of cases) {
    await t.test(c.op, async t => {
      const base = c.base ?? {}
      const allowed = Array.isArray(c.keys) ? c.keys : interfaceKeys(all, (c.keys as { iface: string }).iface)
      const bad: string[] = []
      const unknown = fc.sample(fc.string({ minLength: 1, maxLength: 12 }).filter(k => !allowed.includes(k) && k !== '__proto__' && !(k in base)), { numRuns: 12, seed: 19 })
      for (const k of unknown) {
        const why = named(await caught(() => c.call({ ...base, [k]: 1 })), ArgumentError, c.op, k)
        if (why) bad.push(`${JSON.stringify(k)}: ${why}`)
      }
      t.same(bad, [], 'generated unknown keys are ArgumentErrors naming op and key')
      const [typo, near] = c.misspelt
      const e = await caught(() => c.call({ ...base, [typo]: 1 }))
      t.same([named(e, ArgumentError, c.op, typo), (e as Error | undefined)?.message.includes(`did you mean ${near}?`)], [undefined, true], `${typo}: suggests ${near} (${describe(e)})`)
      const [opts, cls, arg] = c.wrong
      t.same(named(await caught(() => c.call({ ...base, ...opts })), cls, c.op, arg), undefined, `a wrong ${arg}`)
      for (const o of [null, [base]]) t.same(named(await caught(() => c.call(o)), ArgumentError, c.op, c.optsArg ?? 'opts'), undefined, `${o === null ? 'null' : 'array'} options`)
      const [fn, badCls, badArg, badOp] = c.badArg
      t.same(named(await caught(fn), badCls, badOp ?? c.op, badArg), undefined, `a bad ${badArg}`)
      const rejected: string[] = []
      for (const k of allowed) {
        const err = await caught(() => c.call({ ...base, [k]: base[k] ?? null }))
        if (err instanceof ArgumentError && /unknown option/.test(err.message)) rejected.push(k)
        if (err !== undefined && !(err instanceof HeedError)) rejected.push(`${k}: untyped ${describe(err)}`)
      }
      t.same(rejected, [], 'every documented key is known, and a null value is a typed error or accepted')
      if (c.runs !== false) t.same(describe(await caught(() => c.call(base))), 'no error', 'the valid call still works')
    })
  }
}
