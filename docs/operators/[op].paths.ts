import { OPERATORS, topicPage } from '../.vitepress/readmes'

export default {
  watch: ['../../packages/attention/README.md', '../../packages/attention/src/operators/*.ts'],
  paths: () => OPERATORS.map(t => ({ params: { op: t.slug }, content: topicPage(t) })),
}
