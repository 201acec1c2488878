import DefaultTheme from 'vitepress/theme'
import type { Theme } from 'vitepress'
import HeedDemo from './HeedDemo.vue'
import './custom.css'

export default {
  extends: DefaultTheme,
  enhanceApp({ app }) {
    app.component('HeedDemo', HeedDemo)
  },
} satisfies Theme
