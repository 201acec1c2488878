import { ArgumentError, ShapeError, ValueError, div, mean, reshape, scope, slice, sum, gather, tensor, type Tensor } from '@heed/tensor'
import { requireFloat, requireRank } from './internal.js'

/** How the images of a MIA-DPO sample are laid out. */
export type MiaLayout =
  /** Several separate images; `attention` is `[nImages, H, W]` (or `[nImages, tokens]`). */
  | { readonly kind: 'sequence' }
  /** One collage of `rows × cols` tiles; `attention` is the `[H, W]` map of the collage. */
  | { readonly kind: 'grid'; readonly rows: number; readonly cols: number }
  /** A picture inside a picture; `attention` is `[H, W]`, the inset covers the central `inner × inner` cells. */
  | { readonly kind: 'pip'; readonly inner: number }

/**
 * MIA-DPO's attention ratio: the share of the generated tokens' attention (head-averaged, averaged over
 * generated tokens) that lands on the image the question refers to. `target` is the image index (sequence) or
 * the tile index in row-major order (grid); pic-in-pic measures the central inset.
 */
export function attentionRatio(attention: Tensor, layout: MiaLayout, target = 0): Tensor {
  const op = 'attentionRatio'
  const a = requireFloat(op, 'attention', attention)
  if (layout === null || typeof layout !== 'object') throw new ArgumentError({ op, arg: 'layout', expected: 'a layout object', actual: String(layout) })
  return scope(() => {
    switch (layout.kind) {
      case 'sequence': {
        if (a.rank < 2) throw new ShapeError({ op, arg: 'attention', expected: '[nImages, ...] per-image maps', actual: a.shape })
        const n = a.shape[0]!
        if (!Number.isInteger(target) || target < 0 || target >= n) throw new ValueError({ op, arg: 'target', expected: `an image index in [0, ${n})`, actual: target })
        const means = mean(reshape(a, [n, -1]), { axis: 1 })
        return div(gather(means, tensor([target], [1], 'int32')), sum(means))
      }
      case 'grid': {
        requireRank(op, 'attention', a, [2])
        const [h, w] = a.shape as [number, number]
        const { rows, cols } = layout
        if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || h % rows !== 0 || w % cols !== 0)
          throw new ValueError({ op, arg: 'layout', expected: `rows and cols that divide the map [${h},${w}]`, actual: `${rows}×${cols}` })
        if (!Number.isInteger(target) || target < 0 || target >= rows * cols) throw new ValueError({ op, arg: 'target', expected: `a tile index in [0, ${rows * cols})`, actual: target })
        const bh = h / rows
        const bw = w / cols
        const r = Math.floor(target / cols)
        const c = target % cols
        const block = slice(a, [[r * bh, (r + 1) * bh], [c * bw, (c + 1) * bw]])
        return reshape(div(sum(block), sum(a)), [1])
      }
      case 'pip': {
        requireRank(op, 'attention', a, [2])
        const [h, w] = a.shape as [number, number]
        const k = layout.inner
        if (!Number.isInteger(k) || k < 1 || k > h || k > w) throw new ValueError({ op, arg: 'layout.inner', expected: `an integer in [1, ${Math.min(h, w)}]`, actual: k })
        const top = Math.floor((h - k) / 2)
        const left = Math.floor((w - k) / 2)
        return reshape(div(sum(slice(a, [[top, top + k], [left, left + k]])), sum(a)), [1])
      }
      default:
        throw new ArgumentError({ op, arg: 'layout.kind', expected: "'sequence', 'grid' or 'pip'", actual: String((layout as { kind: unknown }).kind) })
    }
  })
}

/**
 * The thresholds of MIA-DPO's released data scripts: keep a rejected answer when its attention ratio is at or
 * below (sequence) or below (grid, pic-in-pic) this value for the given number of images/tiles.
 */
export function miaDpoThreshold(kind: MiaLayout['kind'], count: number): { readonly threshold: number; readonly inclusive: boolean } {
  const op = 'miaDpoThreshold'
  const table: Record<MiaLayout['kind'], Record<number, number>> = {
    sequence: { 2: 0.8, 3: 0.7, 4: 0.6, 5: 0.6 },
    grid: { 2: 0.7, 3: 0.6, 4: 0.5, 6: 0.4, 9: 0.3 },
    pip: { 1: 0.8, 2: 0.8 },
  }
  const row = table[kind]
  if (row === undefined) throw new ArgumentError({ op, arg: 'kind', expected: "'sequence', 'grid' or 'pip'", actual: String(kind) })
  const v = row[count]
  if (v === undefined) throw new ValueError({ op, arg: 'count', expected: `one of ${Object.keys(row).join(', ')} for ${kind}`, actual: count })
  return { threshold: v, inclusive: kind === 'sequence' }
}


