import { MODELS, topicPage } from '../.vitepress/readmes'

export default {
  watch: ['../../packages/memory/README.md'],
  paths: () => MODELS.map(t => ({ params: { model: t.slug }, content: topicPage(t) })),
}
