/**
 * The package READMEs are the single source of the operator, model and package pages: the site splits them into
 * their `## ` sections at build time instead of keeping copies that would drift. Operators that have no README
 * section yet get the leading TSDoc comment of their source file.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const PACKAGES = ['tensor', 'attention', 'memory', 'align', 'fairness'] as const
export type Pkg = (typeof PACKAGES)[number]

export interface Section {
  readonly title: string
  readonly body: string
}

/** A page cut out of a README section (`heading` matches the start of the `## ` line) or a source file's TSDoc. */
export interface Topic {
  readonly slug: string
  readonly title: string
  readonly pkg: Pkg
  readonly heading?: string
  readonly source?: string
  /** Its row in the results page's language-model table (`npm run bench -- lm-operators`, issue 16). */
  readonly lmRow?: string
}

export const OPERATORS: readonly Topic[] = [
  { slug: 'lightning', title: 'Lightning Attention', pkg: 'attention', heading: 'Lightning Attention', lmRow: 'lm-lightning' },
  { slug: 'flow', title: 'Flow-Attention', pkg: 'attention', heading: 'Flow-Attention', lmRow: 'lm-flow' },
  { slug: 'agent', title: 'Agent Attention', pkg: 'attention', heading: 'Agent Attention', lmRow: 'lm-agent' },
  { slug: 'duo', title: 'DuoAttention', pkg: 'attention', heading: 'DuoAttention', lmRow: 'lm-applied-duo-50' },
  { slug: 'landmark', title: 'Landmark Attention', pkg: 'attention', heading: 'Landmark Attention', lmRow: 'lm-landmark' },
  { slug: 's2', title: 'S2-Attention', pkg: 'attention', heading: 'S2-Attention', lmRow: 'lm-s2' },
  { slug: 'moh', title: 'MoH: mixture-of-head attention', pkg: 'attention', heading: 'MoH', lmRow: 'lm-moh' },
  { slug: 'act', title: 'ACT: attention calibration', pkg: 'attention', heading: 'ACT', lmRow: 'lm-applied-act' },
  { slug: 'hilo', title: 'HiLo attention', pkg: 'attention', heading: 'HiLo attention', lmRow: 'lm-hilo' },
  { slug: 'davit', title: 'DaViT window and channel attention', pkg: 'attention', heading: 'DaViT', lmRow: 'lm-davit' },
  { slug: 'combiner', title: 'Combiner attention', pkg: 'attention', heading: 'Combiner', lmRow: 'lm-combiner' },
  { slug: 'routing', title: 'Routing attention', pkg: 'attention', heading: 'Routing attention', lmRow: 'lm-routing' },
  { slug: 'hip', title: 'HiP attention', pkg: 'attention', heading: 'HiP', lmRow: 'lm-applied-hip' },
  { slug: 'longheads', title: 'LongHeads', pkg: 'attention', heading: 'LongHeads', lmRow: 'lm-applied-longheads' },
  { slug: 'recycled', title: 'Recycled Attention', pkg: 'attention', heading: 'Recycled Attention', lmRow: 'lm-applied-recycled' },
  { slug: 'pine', title: 'PINE', pkg: 'attention', heading: 'PINE', lmRow: 'lm-pine' },
  { slug: 'var', title: 'VAR: visual attention redistribution', pkg: 'attention', heading: 'VAR', lmRow: 'lm-var' },
  { slug: 'task-kv', title: 'Task-KV', pkg: 'attention', heading: 'Task-KV', lmRow: 'lm-applied-taskkv' },
  { slug: 'positional', title: 'Positional attention', pkg: 'attention', heading: 'Positional attention' },
  { slug: 'observers', title: 'Observers: retrieval heads and VHD', pkg: 'attention', heading: 'Observers', lmRow: 'lm-observers' },
]

export const MODELS: readonly Topic[] = [
  { slug: 'sparsey', title: 'Sparsey', pkg: 'memory', heading: 'Sparsey' },
  { slug: 'tensor-brain', title: 'The Tensor Brain', pkg: 'memory', heading: 'Tensor Brain' },
  { slug: 'titans', title: 'Titans', pkg: 'memory', heading: 'Titans', lmRow: 'lm-titans-mac' },
  { slug: 'hcam', title: 'HCAM', pkg: 'memory', heading: 'HCAM', lmRow: 'lm-hcam' },
]

const TOPICS = [...OPERATORS, ...MODELS]

export function readme(pkg: Pkg): { intro: string; sections: Section[] } {
  const text = readFileSync(join(root, 'packages', pkg, 'README.md'), 'utf8')
  const [intro = '', ...rest] = text.split(/^## /m)
  const sections = rest.map(s => {
    const nl = s.indexOf('\n')
    return { title: s.slice(0, nl).trim(), body: s.slice(nl + 1).trim() }
  })
  return { intro: intro.trim(), sections }
}

const PAGE_OF_README: Record<string, string> = { '../../README.md': '/', ...Object.fromEntries(PACKAGES.map(p => [`../${p}/README.md`, `/packages/${p}`])) }

/**
 * README links are relative to packages/<name>/; pages live one level deeper in docs/, which keeps image paths
 * (../../examples/x.svg) valid as they are. Links to other READMEs become site pages; links to files the site
 * does not publish become plain text, so the build's dead-link check stays meaningful.
 */
export function relink(md: string, pkg: Pkg): string {
  return md.replace(/(!?)\[([^\]]*)\]\(([^)\s]+)\)/g, (all, bang: string, text: string, href: string) => {
    if (/^[a-z]+:/i.test(href) || href.startsWith('#') || href.startsWith('/')) return all
    // A figure the README names but nobody has generated (examples write under out/) would fail the build.
    if (bang) return existsSync(join(root, 'packages', pkg, href)) ? all : `*(figure: ${text}, not generated in this checkout)*`
    const page = PAGE_OF_README[href]
    return page ? `[${text}](${page})` : text
  })
}

/** Drops the "Status: …" paragraph: the site tracks status on the home page, and README ones lag behind. */
const withoutStatus = (md: string): string => md.replace(/^\*\*Status:[^\n]*(\n[^\n]+)*\n*/m, '')

/** The link to the topic's row of the language-model table on the results page, where it has one. */
const lmLink = (t: Topic): string =>
  t.lmRow ? `## In a language model\n\nWhat it costs in bits per character, speed and KV bytes inside the KJV character LM: [its row on the results page](/results#${t.lmRow}) (\`npm run bench -- lm-operators\`).\n\n` : ''

export function topicPage(t: Topic): string {
  if (t.heading) {
    const s = readme(t.pkg).sections.find(s => s.title.startsWith(t.heading!))
    if (!s) throw new Error(`packages/${t.pkg}/README.md has no section starting with "## ${t.heading}"`)
    return `# ${t.title}\n\n${relink(s.body, t.pkg)}\n\n${lmLink(t)}---\n\nFrom [\`@heed/${t.pkg}\`](/packages/${t.pkg}) (README section "${s.title}"). API: [@heed/${t.pkg} reference](/api/@heed/${t.pkg}/).\n`
  }
  const src = readFileSync(join(root, 'packages', t.pkg, t.source!), 'utf8')
  const m = /\/\*\*\n([\s\S]*?)\*\//.exec(src)
  if (!m) throw new Error(`packages/${t.pkg}/${t.source} has no leading TSDoc comment`)
  const doc = m[1]!
    .split('\n')
    .map(l => l.replace(/^ \* ?/, '').replace(/^ \*$/, ''))
    .join('\n')
    .replace(/\{@link ([^}]+)\}/g, '`$1`')
  return `# ${t.title}\n\n${doc.trim()}\n\n${lmLink(t)}---\n\nFrom the TSDoc of \`packages/${t.pkg}/${t.source}\` in [\`@heed/${t.pkg}\`](/packages/${t.pkg}); the README section is still to be written. API: [@heed/${t.pkg} reference](/api/@heed/${t.pkg}/).\n`
}

export function packagePage(pkg: Pkg): string {
  const { intro, sections } = readme(pkg)
  const own = TOPICS.filter(t => t.pkg === pkg)
  const moved = (s: Section) => own.some(t => t.heading && s.title.startsWith(t.heading))
  const body = sections.filter(s => !moved(s)).map(s => `## ${s.title}\n\n${s.body}`)
  const links = own.length
    ? [`## ${pkg === 'memory' ? 'Models' : 'Operators'}\n\n${own.map(t => `- [${t.title}](/${pkg === 'memory' ? 'memory' : 'operators'}/${t.slug})`).join('\n')}`]
    : []
  return relink([withoutStatus(intro), ...links, ...body, `## API reference\n\n[Every export of \`@heed/${pkg}\`](/api/@heed/${pkg}/), generated from its TSDoc comments.`].join('\n\n'), pkg) + '\n'
}
