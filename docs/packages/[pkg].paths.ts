import { PACKAGES, packagePage } from '../.vitepress/readmes'

export default {
  watch: ['../../packages/*/README.md'],
  paths: () => PACKAGES.map(pkg => ({ params: { pkg }, content: packagePage(pkg) })),
}
