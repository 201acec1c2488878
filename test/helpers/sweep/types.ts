/** The shared vocabulary of the bad-input sweep (test/bad-input-sweep.ts) and its per-package lists. */

/** The generated bad calls; each is described in test/bad-input-sweep.ts (`argsFor`). */
export type CaseName = 'noArgs' | 'null' | 'undefined' | 'disposed' | 'nestedArray' | 'string' | 'huge' | 'unknownOption'
export const CASES: readonly CaseName[] = ['noArgs', 'null', 'undefined', 'disposed', 'nestedArray', 'string', 'huge', 'unknownOption']

/** What one package tells the sweep about its exports. */
export interface SweepConfig {
  /** Namespace objects whose functions are swept too, as `ns.fn`. */
  readonly namespaces: readonly string[]
  /** Exports (or single cases of them) that legitimately accept the bad call, with the reason; `'*'`: every case. */
  readonly allowed: Readonly<Record<string, Partial<Record<CaseName | '*', string>>>>
  /**
   * Calls not yet fixed, with the outcome observed. Shrink-only: a call that starts to give a typed error naming
   * its function fails the sweep until it leaves this list, and a new gap fails it too.
   */
  readonly gaps: Readonly<Record<string, Partial<Record<CaseName, string>>>>
  /** Exports whose errors may carry another public op's name (export → accepted `op`s), e.g. an alias. */
  readonly aliases: Readonly<Record<string, readonly string[]>>
}
